//! Built-in trade-terms lexicon: common commercial product words and phrases
//! mapped to HS 2022 subheadings (6 digits) or headings (4 digits), in
//! English, Chinese (simplified), Thai and Vietnamese, written from general
//! trade knowledge. The tables live in the `lexicon_*` sibling modules; this
//! module combines them and adds a small glossary of foreign modifier words
//! (translated to English tokens, not codes).
//!
//! How the classifier uses them: English terms are matched as token phrases
//! after the same normalisation as descriptions (longest match wins); Chinese
//! and Thai terms by greedy longest substring; Vietnamese terms as word
//! phrases after diacritic folding. A match strongly boosts its subheading, or
//! (less strongly) every subheading of its heading.

use super::{
    lexicon_en_food, lexicon_en_goods, lexicon_en_industry, lexicon_en_machinery,
    lexicon_en_metals, lexicon_en_tech, lexicon_th, lexicon_vi, lexicon_zh,
};

/// Language of a lexicon table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lang {
    /// English (matched as normalised token phrases).
    En,
    /// Chinese, simplified (substring match).
    Zh,
    /// Thai (substring match).
    Th,
    /// Vietnamese (word phrases, diacritics folded).
    Vi,
}

/// All tables, in a fixed order (earlier entries win on exact duplicates of
/// a foreign key).
pub const TABLES: &[(Lang, &[(&str, &str)])] = &[
    (Lang::En, lexicon_en_food::EN_FOOD),
    (Lang::En, lexicon_en_goods::EN_GOODS),
    (Lang::En, lexicon_en_industry::EN_INDUSTRY),
    (Lang::En, lexicon_en_metals::EN_METALS),
    (Lang::En, lexicon_en_machinery::EN_MACHINERY),
    (Lang::En, lexicon_en_tech::EN_TECH),
    (Lang::Zh, lexicon_zh::ZH),
    (Lang::Th, lexicon_th::TH),
    (Lang::Vi, lexicon_vi::VI),
];

/// All `(term, code)` entries of one language, in table order.
pub fn entries(lang: Lang) -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLES
        .iter()
        .filter(move |(l, _)| *l == lang)
        .flat_map(|(_, t)| t.iter().copied())
}

/// Number of entries of one language.
pub fn count(lang: Lang) -> usize {
    entries(lang).count()
}

/// Modifier glossary: `("zh|th|vi words", "english")`. Lexicon terms take
/// precedence over these on identical keys; longer keys win over shorter.
pub const GLOSSARY: &[(&str, &str)] = &[
    ("冷冻|冷冻的|冻|แช่แข็ง|đông lạnh", "frozen"),
    ("新鲜|鲜|สด|tươi", "fresh"),
    ("冰鲜|แช่เย็น|ướp lạnh", "chilled"),
    ("干|干燥|อบแห้ง|ตากแห้ง|sấy khô|phơi khô", "dried"),
    ("罐头|กระป๋อง|đóng hộp", "canned"),
    ("棉|纯棉|棉质|ผ้าฝ้าย|คอตตอน|bông|cotton", "cotton"),
    ("涤纶|聚酯|โพลีเอสเตอร์|polyester", "polyester"),
    ("羊毛|ขนสัตว์|sợi len|lông cừu", "wool"),
    ("丝绸|真丝|ไหม|lụa", "silk"),
    ("皮|真皮|หนัง|da thật", "leather"),
    ("男|男士|男式|ผู้ชาย|nam", "men"),
    ("女|女士|女式|ผู้หญิง|nữ", "women"),
    ("儿童|童|เด็ก|trẻ em", "child"),
    ("针织|ถัก|dệt kim", "knitted"),
    ("电动|ไฟฟ้า|điện", "electric"),
    ("二手|旧|มือสอง|đã qua sử dụng", "used"),
    ("零件|配件|อะไหล่|ชิ้นส่วน|phụ tùng|linh kiện", "part"),
    ("塑料|พลาสติก|nhựa", "plastic"),
    ("钢|เหล็กกล้า", "steel"),
    ("木|ไม้", "wood"),
    ("有机|ออร์แกนิก|hữu cơ", "organic"),
    ("精炼|精制|บริสุทธิ์|tinh luyện", "refined"),
    ("原|ดิบ|thô", "crude"),
    ("烘焙|คั่ว|rang", "roasted"),
];

#[cfg(test)]
mod tests {
    use super::super::nomenclature::{test_table, Level};
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_lexicon_code_exists_in_hs2022() {
        let nom = test_table();
        let mut bad = Vec::new();
        for (lang, table) in TABLES {
            for &(term, code) in *table {
                let ok = match nom.entry(code) {
                    Some(e) => matches!(
                        (code.len(), e.level),
                        (6, Level::Subheading) | (4, Level::Heading)
                    ),
                    None => false,
                };
                if !ok || term.trim().is_empty() || term.contains('|') {
                    bad.push(format!("{lang:?} {term:?} -> {code}"));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "invalid lexicon entries:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn lexicon_sizes_and_no_duplicate_keys() {
        assert!(count(Lang::En) >= 400, "en {}", count(Lang::En));
        for lang in [Lang::Zh, Lang::Th, Lang::Vi] {
            assert!(count(lang) >= 80, "{lang:?} {}", count(lang));
        }
        for lang in [Lang::En, Lang::Zh, Lang::Th, Lang::Vi] {
            let mut seen = BTreeSet::new();
            let dups: Vec<&str> = entries(lang)
                .filter(|(t, _)| !seen.insert(t.to_lowercase()))
                .map(|(t, _)| t)
                .collect();
            assert!(dups.is_empty(), "{lang:?} duplicate terms: {dups:?}");
        }
    }
}
