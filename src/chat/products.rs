//! Which of the site's products a chat message names.
//!
//! A product is named by one of its phrases: its name in each of the four languages without
//! sizes and counts ("nồi chiên không dầu", not "4.5L"), its SKU and model number, and the
//! marketplace search terms of its category (`keywords/<locale>.csv`), which carry the names
//! buyers really type ("magic com", "penggoreng tanpa minyak"). A message must contain a whole
//! phrase, word for word, so "stainless steel hex bolt" names no "Stainless Steel Electric
//! Kettle"; a Latin word one edit from a phrase's word stands for it ("air fryr", "rice coker"),
//! and Thai is split into words first, so "หม้อทอดไร้น้ำมันราคาเท่าไหร่" names the air fryer. The
//! longest phrase found decides; two products tied on it name none. A phrase of one word that
//! buyers of every trade use (in more than 0.4 % of the base corpus's messages: "price",
//! "giá", "sample") names nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use crate::config::{Product, SiteSeo};
use crate::locale::Locale;

use super::features::folded_words;

pub struct ProductIndex {
    products: Vec<Arc<Product>>,
    /// Phrases (folded words) by their first word, each with its product (index).
    phrases: HashMap<String, Vec<(Vec<String>, usize)>>,
    /// Every word of every phrase, for misspellings.
    words: HashSet<String>,
}

/// Share of base-corpus messages above which a word is part of how buyers talk, not of what a
/// product is called.
const GENERIC_SHARE: f32 = 0.004;

/// Words of the base corpus that occur in too many messages to name a product alone.
static GENERIC: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let Ok(base) = crate::config::base_chat() else {
        return HashSet::new();
    };
    let mut df: HashMap<String, u32> = HashMap::new();
    for e in &base.examples {
        let words: HashSet<String> = folded_words(&e.text).into_iter().collect();
        for w in words {
            *df.entry(w).or_default() += 1;
        }
    }
    let limit = (base.examples.len() as f32 * GENERIC_SHARE).max(1.0) as u32;
    df.into_iter()
        .filter(|(_, n)| *n > limit)
        .map(|(w, _)| w)
        .collect()
});

impl ProductIndex {
    /// The index of the site's product feed and keyword database; `None` without products.
    pub fn new(seo: &SiteSeo) -> Option<ProductIndex> {
        let products = seo.products.list.clone();
        if products.is_empty() {
            return None;
        }
        let mut phrases: HashMap<String, Vec<(Vec<String>, usize)>> = HashMap::new();
        let mut words = HashSet::new();
        for (i, p) in products.iter().enumerate() {
            let names = Locale::ALL
                .iter()
                .map(|l| without_sizes(folded_words(p.name.get(*l))));
            let codes = std::iter::once(p.sku.as_str())
                .chain(p.mpn.as_deref())
                .map(folded_words);
            let searched = Locale::ALL
                .iter()
                .flat_map(|l| seo.keywords.top(*l, &p.category))
                .map(|k| folded_words(&k.text));
            let mut seen = HashSet::new();
            for phrase in names.chain(codes).chain(searched) {
                let generic = phrase.len() == 1 && GENERIC.contains(&phrase[0]);
                if phrase.is_empty() || generic || !seen.insert(phrase.clone()) {
                    continue;
                }
                words.extend(phrase.iter().cloned());
                phrases
                    .entry(phrase[0].clone())
                    .or_default()
                    .push((phrase, i));
            }
        }
        Some(ProductIndex {
            products,
            phrases,
            words,
        })
    }

    /// The product `message` names, if one stands out.
    pub fn recognize(&self, message: &str) -> Option<&Arc<Product>> {
        let words: Vec<String> = folded_words(message)
            .into_iter()
            .map(|w| match self.words.contains(&w) {
                true => w,
                false => self.near(&w).cloned().unwrap_or(w),
            })
            .collect();
        // The longest phrase found (in characters), and whether another product has one as long.
        let mut best: Option<(usize, usize)> = None;
        let mut tied = false;
        for start in 0..words.len() {
            for (phrase, product) in self.phrases.get(&words[start]).into_iter().flatten() {
                if !words[start..].starts_with(phrase) {
                    continue;
                }
                let len: usize = phrase.iter().map(|w| w.chars().count()).sum();
                match best {
                    Some((l, p)) if len < l || (len == l && p == *product) => {}
                    Some((l, _)) if len == l => tied = true,
                    _ => {
                        best = Some((len, *product));
                        tied = false;
                    }
                }
            }
        }
        best.filter(|_| !tied).map(|(_, p)| &self.products[p])
    }

    /// The phrase word one edit away from a misspelt Latin `word` (same first letter, length
    /// within one), if exactly one is.
    fn near(&self, word: &str) -> Option<&String> {
        if word.len() < 5 || !word.is_ascii() {
            return None;
        }
        let first = word.as_bytes()[0];
        let mut found = None;
        for key in &self.words {
            if key.len().abs_diff(word.len()) > 1 || key.as_bytes().first() != Some(&first) {
                continue;
            }
            if strsim::osa_distance(key, word) == 1 {
                if found.is_some() {
                    return None;
                }
                found = Some(key);
            }
        }
        found
    }
}

/// A name's words without its sizes and counts: a word with a digit, and the unit word after a
/// number ("4.5 liter", "500 มล", "(10 pcs)").
fn without_sizes(words: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut after_number = false;
    for w in words {
        let number = w.chars().any(|c| c.is_ascii_digit());
        if !number && !after_number {
            out.push(w);
        }
        after_number = number;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> ProductIndex {
        let rules = crate::config::Rules::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rules"
        )))
        .unwrap();
        let seo = rules.sites[0].seo.clone().unwrap();
        ProductIndex::new(&seo).unwrap()
    }

    fn sku(index: &ProductIndex, message: &str) -> Option<String> {
        index.recognize(message).map(|p| p.sku.clone())
    }

    #[test]
    fn names_in_four_languages_search_terms_and_misspellings() {
        let index = demo();
        for (message, expected) in [
            ("what is the moq for the rice coker", "LH-RC-500"),
            ("magic com produksinya berapa lama?", "LH-RC-500"),
            ("gia noi chien khong dau bao nhieu", "LH-AF-45"),
            ("หม้อทอดไร้น้ำมันราคาเท่าไหร่คะ", "LH-AF-45"),
            ("ấm siêu tốc giá sỉ", "LH-EK-17"),
            ("kompor induksi ready?", "LH-IC-22"),
            ("price of LH-SM-12", "LH-SM-12"),
        ] {
            assert_eq!(sku(&index, message).as_deref(), Some(expected), "{message}");
        }
        for message in [
            "brp harga min?",
            "harga murah dong",
            "giá bao nhiêu",
            "ราคาเท่าไหร่คะ",
            // Words of a name, but not the name: other trades' goods.
            "best price for 5000 pcs stainless steel hex bolt M8x30?",
            "how fast u can finish 50 units mini rice harvester",
            "gelas kaca ini tahan panas gak?",
        ] {
            assert_eq!(sku(&index, message), None, "{message}");
        }
    }
}
