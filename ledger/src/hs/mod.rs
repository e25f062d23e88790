//! HS 2022 nomenclature (pinned by hash in the chain config) and the
//! offline, integer-scored HS classifier that learns from customs-confirmed
//! history, with a built-in multilingual trade-terms lexicon.

pub mod classifier;
pub mod lexicon;
pub mod lexicon_en_food;
pub mod lexicon_en_goods;
pub mod lexicon_en_industry;
pub mod lexicon_en_machinery;
pub mod lexicon_en_metals;
pub mod lexicon_en_tech;
pub mod lexicon_th;
pub mod lexicon_vi;
pub mod lexicon_zh;
pub mod nomenclature;
pub mod semantic;
pub mod wordmap;
