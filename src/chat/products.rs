//! Which of the site's products a chat message names.
//!
//! A product is known by the words of its names in the four languages, its SKU and model
//! number, and the marketplace search terms of its category (`keywords/<locale>.csv`), which
//! carry the names buyers really type ("magic com", "nồi chiên không dầu"). Each word counts by
//! how few products share it (BM25's idf), so "air fryer" picks the air fryer while "listrik"
//! (electric), which several names carry, decides nothing on its own. Words buyers use in every
//! trade ("harga", "giá", "price", "murah") are no product's: the base corpus, written about
//! 96 industries, tells which those are. A misspelt word ("fryr", "coker") counts for the word
//! it is one edit away from.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use crate::config::{Product, SiteSeo};
use crate::locale::Locale;

use super::features::folded_words;

/// A product's words: the score of a message is the sum of the weights of the product's
/// words it contains.
pub struct ProductIndex {
    products: Vec<Arc<Product>>,
    words: HashMap<String, Entry>,
    /// The weight a word of one product alone has: the scale of the acceptance threshold.
    unique_weight: f32,
}

/// What one word says: its weight, and the products (indices) that have it with how strongly.
struct Entry {
    weight: f32,
    owners: Vec<(usize, f32)>,
}

/// Share of base-corpus messages above which a word is part of how buyers talk, not of what a
/// product is called.
const GENERIC_SHARE: f32 = 0.004;
/// A word only the search terms of a product's category carry counts this much.
const SEARCHED: f32 = 0.5;
/// A misspelt word counts this much of the word it stands for.
const FUZZY_WEIGHT: f32 = 0.8;
/// A product is named when its score reaches this share of one unshared word's weight…
const ACCEPT: f32 = 0.6;
/// …and beats the next product's score by this factor.
const MARGIN: f32 = 1.25;

/// Words of the base corpus that occur in too many messages to name a product.
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

fn bm25_idf(n: usize, df: usize) -> f32 {
    let (n, df) = (n as f32, df as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

impl ProductIndex {
    /// The index of the site's product feed and keyword database; `None` without products.
    pub fn new(seo: &SiteSeo) -> Option<ProductIndex> {
        let products = seo.products.list.clone();
        if products.is_empty() {
            return None;
        }
        // Per product, its words and whether each is in its own names (else only in its
        // category's search terms, which speak for the product less).
        let mut owners: HashMap<String, Vec<(usize, f32)>> = HashMap::new();
        for (i, p) in products.iter().enumerate() {
            let mut own: Vec<&str> = Locale::ALL
                .iter()
                .map(|l| p.name.get(*l).as_str())
                .collect();
            own.push(&p.sku);
            own.extend(p.mpn.as_deref());
            let searched = Locale::ALL
                .iter()
                .flat_map(|l| seo.keywords.top(*l, &p.category))
                .map(|k| k.text.as_str());
            let mut strength: HashMap<String, f32> = HashMap::new();
            for (text, s) in own
                .into_iter()
                .map(|t| (t, 1.0))
                .chain(searched.map(|t| (t, SEARCHED)))
            {
                for w in folded_words(text) {
                    if is_name_word(&w) && !GENERIC.contains(&w) {
                        let e = strength.entry(w).or_insert(s);
                        *e = e.max(s);
                    }
                }
            }
            for (w, s) in strength {
                owners.entry(w).or_default().push((i, s));
            }
        }
        let n = products.len();
        let words = owners
            .into_iter()
            .map(|(w, owners)| {
                let weight = bm25_idf(n, owners.len());
                (w, Entry { weight, owners })
            })
            .collect();
        Some(ProductIndex {
            products,
            words,
            unique_weight: bm25_idf(n, 1),
        })
    }

    /// The product `message` names, if one stands out.
    pub fn recognize(&self, message: &str) -> Option<&Arc<Product>> {
        let mut scores = vec![0.0f32; self.products.len()];
        let mut seen: HashSet<&str> = HashSet::new();
        for word in folded_words(message) {
            let (found, factor) = match self.words.get_key_value(word.as_str()) {
                Some(hit) => (Some(hit), 1.0),
                None => (self.near(&word), FUZZY_WEIGHT),
            };
            let Some((key, entry)) = found else {
                continue;
            };
            if !seen.insert(key.as_str()) {
                continue;
            }
            for &(i, strength) in &entry.owners {
                scores[i] += entry.weight * factor * strength;
            }
        }
        let (mut best, mut second) = (None::<usize>, 0.0f32);
        for (i, &s) in scores.iter().enumerate() {
            match best {
                Some(b) if s <= scores[b] => second = second.max(s),
                _ => {
                    if let Some(b) = best {
                        second = second.max(scores[b]);
                    }
                    best = Some(i);
                }
            }
        }
        let best = best?;
        let score = scores[best];
        (score >= ACCEPT * self.unique_weight && score >= MARGIN * second)
            .then(|| &self.products[best])
    }

    /// The product word one edit away from a misspelt Latin `word` (same first letter, length
    /// within one), if exactly one is.
    fn near(&self, word: &str) -> Option<(&String, &Entry)> {
        if word.len() < 5 || !word.is_ascii() {
            return None;
        }
        let first = word.as_bytes()[0];
        let mut found = None;
        for (key, entry) in &self.words {
            if key.len().abs_diff(word.len()) > 1 || key.as_bytes().first() != Some(&first) {
                continue;
            }
            if strsim::osa_distance(key, word) == 1 {
                if found.is_some() {
                    return None;
                }
                found = Some((key, entry));
            }
        }
        found
    }
}

/// Words that can name a product: anything with a letter, except single Latin letters.
fn is_name_word(w: &str) -> bool {
    w.chars().any(char::is_alphabetic) && (w.chars().count() > 1 || !w.is_ascii())
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
        ] {
            assert_eq!(sku(&index, message), None, "{message}");
        }
    }
}
