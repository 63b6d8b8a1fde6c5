//! The model's vocabulary: feature ids seen in training, their idf weights, and messages as
//! sparse rows (log term frequency × idf, each block L2-normalised).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::super::features::{FeatureConfig, is_word_feature};
use super::svm::on_all_cores;

/// Sorts ids and collapses repeats into (id, count).
pub(super) fn count_ids(ids: &mut [u64]) -> Vec<(u64, f32)> {
    ids.sort_unstable();
    let mut out: Vec<(u64, f32)> = Vec::with_capacity(ids.len());
    for &id in ids.iter() {
        match out.last_mut() {
            Some((last, n)) if *last == id => *n += 1.0,
            _ => out.push((id, 1.0)),
        }
    }
    out
}

/// Feature ids are already well-mixed 64-bit hashes; rehashing them with SipHash is wasted work.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(super) type IdMap = HashMap<u64, u32, BuildHasherDefault<IdHasher>>;

/// Features seen in training, with their idf and block weight. Unseen features are ignored at
/// prediction time: their weight would be zero anyway.
#[derive(Debug, Clone)]
pub(super) struct Vocab {
    pub(super) index: IdMap,
    /// idf, times the word weight for word features unless blocks are normalised separately.
    pub(super) scale: Vec<f32>,
    /// Word-block weight applied after per-block normalisation (`FeatureConfig::block_norm`).
    pub(super) block_word_weight: Option<f32>,
}

impl Vocab {
    pub(super) fn build(bags: &[Vec<(u64, f32)>], cfg: &FeatureConfig) -> Self {
        let word_weight = if cfg.block_norm { 1.0 } else { cfg.word_weight };
        let mut index = IdMap::default();
        let mut df: Vec<u32> = Vec::new();
        let mut is_word: Vec<bool> = Vec::new();
        // Numbered by first appearance (below, only the tie-break), so the layout never depends on
        // hash-map order.
        for bag in bags {
            for &(id, _) in bag {
                let next = df.len() as u32;
                let f = *index.entry(id).or_insert(next);
                if f == next {
                    df.push(0);
                    is_word.push(is_word_feature(id));
                }
                df[f as usize] += 1;
            }
        }
        // Renumber by falling document frequency (first appearance breaks ties): the features most
        // messages share sit together, so training and scoring find their weights in cache.
        let mut by_df: Vec<u32> = (0..df.len() as u32).collect();
        by_df.sort_by_key(|&f| (std::cmp::Reverse(df[f as usize]), f));
        let mut new_of = vec![0u32; df.len()];
        for (new, &old) in by_df.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        for f in index.values_mut() {
            *f = new_of[*f as usize];
        }
        let df: Vec<u32> = by_df.iter().map(|&f| df[f as usize]).collect();
        let is_word: Vec<bool> = by_df.iter().map(|&f| is_word[f as usize]).collect();
        let n = bags.len() as f32;
        let scale = df
            .iter()
            .zip(&is_word)
            .map(|(&d, &w)| {
                let idf = ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0;
                if w { idf * word_weight } else { idf }
            })
            .collect();
        Self {
            index,
            scale,
            block_word_weight: cfg.block_norm.then_some(cfg.word_weight),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.scale.len()
    }

    /// (1 + ln tf) * idf, L2-normalised (per block first if configured); sorted by index.
    pub(super) fn weigh(&self, counted: &[(u64, f32)]) -> Vec<(u32, f32)> {
        let mut row: Vec<(u32, f32)> = Vec::with_capacity(counted.len());
        let mut is_word: Vec<bool> = Vec::with_capacity(counted.len());
        let mut sq = [0f32; 2];
        for &(id, tf) in counted {
            if let Some(&f) = self.index.get(&id) {
                let v = (1.0 + tf.ln()) * self.scale[f as usize];
                let w = is_word_feature(id);
                sq[usize::from(w)] += v * v;
                row.push((f, v));
                is_word.push(w);
            }
        }
        if let Some(ww) = self.block_word_weight {
            let scale = |sq: f32, weight: f32| if sq > 0.0 { weight / sq.sqrt() } else { 0.0 };
            let (char_scale, word_scale) = (scale(sq[0], 1.0), scale(sq[1], ww));
            for ((_, v), w) in row.iter_mut().zip(&is_word) {
                *v *= if *w { word_scale } else { char_scale };
            }
        }
        let norm = row.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for (_, v) in &mut row {
                *v /= norm;
            }
        }
        row.sort_unstable_by_key(|&(f, _)| f);
        row
    }

    pub(super) fn vectorize(&self, ids: &mut [u64]) -> Vec<(u32, f32)> {
        self.weigh(&count_ids(ids))
    }

    pub(super) fn matrix(&self, bags: &[Vec<(u64, f32)>]) -> Csr {
        const CHUNK: usize = 1024;
        let parts = on_all_cores(bags.len().div_ceil(CHUNK), |c| {
            let mut part = Csr::default();
            for bag in bags.iter().skip(c * CHUNK).take(CHUNK) {
                part.push(&self.weigh(bag));
            }
            part
        });
        let mut m = Csr::default();
        for part in parts {
            m.append(part);
        }
        m
    }
}

/// Compressed sparse rows.
#[derive(Debug, Clone)]
pub(super) struct Csr {
    pub(super) ptr: Vec<usize>,
    pub(super) entries: Vec<(u32, f32)>,
}

impl Default for Csr {
    fn default() -> Self {
        Self {
            ptr: vec![0],
            entries: Vec::new(),
        }
    }
}

impl Csr {
    pub(super) fn push(&mut self, row: &[(u32, f32)]) {
        self.entries.extend_from_slice(row);
        self.ptr.push(self.entries.len());
    }
    /// Adds `other`'s rows after these.
    fn append(&mut self, other: Csr) {
        let base = self.entries.len();
        self.ptr.extend(other.ptr[1..].iter().map(|p| p + base));
        self.entries.extend(other.entries);
    }
    pub(super) fn rows(&self) -> usize {
        self.ptr.len() - 1
    }
    pub(super) fn row(&self, r: usize) -> &[(u32, f32)] {
        &self.entries[self.ptr[r]..self.ptr[r + 1]]
    }
}
