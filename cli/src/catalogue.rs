//! `customsctl classify --file`: classify a product catalogue offline.
//! The input is CSV with a header row naming a `description` column and,
//! optionally, an id column (`id`, `sku` or `product_id`) and a declared
//! code column (`hs_code`, `declared` or `hs`); quoted fields follow RFC
//! 4180. Each row gets the top suggestions and, where a code is declared,
//! the verdict; the result is written as CSV or JSON with a progress bar.
//! A row that cannot be classified (no description) is reported in the
//! output and counted, never dropped.

use anyhow::{anyhow, bail, Context, Result};
use ledger::hs::classifier::{Classifier, CLASSIFIER_VERSION};
use std::io::Write;
use std::path::Path;

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// One CSV row per product.
    Csv,
    /// One JSON array of products.
    Json,
}

/// Split CSV text into records (RFC 4180: quoted fields may hold commas,
/// doubled quotes and line breaks). Errors name the line of an unclosed
/// quote.
pub(crate) fn parse_csv(text: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1usize;
    let mut quote_line = 0usize;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                quote_line = line;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        bail!("unclosed quote opened on line {quote_line}");
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    // Blank lines are not records.
    rows.retain(|r| !(r.len() == 1 && r[0].trim().is_empty()));
    Ok(rows)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Column index of the first of `names` present in `header` (case-insensitive).
fn column(header: &[String], names: &[&str]) -> Option<usize> {
    header
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

/// One classified product.
struct Row {
    line: usize,
    id: String,
    description: String,
    declared: String,
    verdict: Option<&'static str>,
    suggestions: Vec<(String, u32, String)>,
    error: Option<String>,
}

/// Classify every product of `input`, writing to `out` (standard output
/// when `None`). Returns (rows, rows with errors).
pub(crate) fn run(
    classifier: &Classifier,
    input: &Path,
    out: Option<&Path>,
    format: Format,
    top: usize,
) -> Result<(usize, usize)> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let records = parse_csv(&text).with_context(|| format!("{} is not CSV", input.display()))?;
    let (header, body) = records
        .split_first()
        .ok_or_else(|| anyhow!("{} is empty", input.display()))?;
    let desc = column(header, &["description", "goods_description", "title"]).ok_or_else(|| {
        anyhow!(
            "{}: no description column in the header ({})",
            input.display(),
            header.join(",")
        )
    })?;
    let id_col = column(header, &["id", "sku", "product_id"]);
    let declared_col = column(header, &["hs_code", "declared", "hs"]);
    let bar = crate::progress_of(body.len() as u64, "classifying", "products");
    let mut rows = Vec::with_capacity(body.len());
    for (i, r) in body.iter().enumerate() {
        let get = |c: Option<usize>| c.and_then(|c| r.get(c)).map_or("", |s| s.trim());
        let description = get(Some(desc)).to_string();
        let declared = get(declared_col).to_string();
        let mut row = Row {
            line: i + 2,
            id: get(id_col).to_string(),
            description: description.clone(),
            declared: declared.clone(),
            verdict: None,
            suggestions: Vec::new(),
            error: None,
        };
        if description.is_empty() {
            row.error = Some("no description".into());
        } else if declared.is_empty() {
            row.suggestions = classifier
                .classify(&description, top)
                .into_iter()
                .map(|s| (s.hs6, s.score, s.description))
                .collect();
        } else {
            let j = classifier.judge(&description, &declared, top);
            row.verdict = Some(j.verdict.as_str());
            row.suggestions = j
                .suggestions
                .into_iter()
                .map(|s| (s.hs6, s.score, s.description))
                .collect();
        }
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    let rendered = match format {
        Format::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "line": r.line, "id": r.id, "description": r.description,
                        "declared": if r.declared.is_empty() { None } else { Some(&r.declared) },
                        "verdict": r.verdict, "error": r.error,
                        "suggestions": r.suggestions.iter().map(|(h, s, d)| serde_json::json!({
                            "hs6": h, "score": s, "description": d
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&serde_json::json!({
                "classifier_version": CLASSIFIER_VERSION,
                "products": v,
            }))? + "\n"
        }
        Format::Csv => {
            let mut s = String::from("line,id,description,declared,verdict,error");
            for k in 1..=top {
                s.push_str(&format!(",hs6_{k},score_{k}"));
            }
            s.push('\n');
            for r in &rows {
                let mut cells = vec![
                    r.line.to_string(),
                    csv_field(&r.id),
                    csv_field(&r.description),
                    csv_field(&r.declared),
                    r.verdict.unwrap_or("").to_string(),
                    csv_field(r.error.as_deref().unwrap_or("")),
                ];
                for k in 0..top {
                    match r.suggestions.get(k) {
                        Some((h, sc, _)) => {
                            cells.push(h.clone());
                            cells.push(sc.to_string());
                        }
                        None => cells.extend([String::new(), String::new()]),
                    }
                }
                s.push_str(&cells.join(","));
                s.push('\n');
            }
            s
        }
    };
    match out {
        Some(p) => {
            std::fs::write(p, rendered).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }
    Ok((rows.len(), failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_csv() {
        let rows = parse_csv("id,description\r\n1,\"cotton T-shirt, knitted\"\n2,\"a \"\"smart\"\" phone\nwith case\"\n\n3,bolts").unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["id", "description"],
                vec!["1", "cotton T-shirt, knitted"],
                vec!["2", "a \"smart\" phone\nwith case"],
                vec!["3", "bolts"],
            ]
        );
        assert!(parse_csv("a,\"b\nc")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
