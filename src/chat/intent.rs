//! Intent classification of chat messages: a sparse linear model trained when the rules load.
//!
//! Owns: turning labelled examples into a model (`IntentModel::train`), scoring a message
//! (`IntentModel::classify`), and making the scores usable as probabilities (Platt scaling of
//! the one-vs-rest scores, fitted on a stratified slice of the training examples, never on test
//! data). The probabilities are per intent and deliberately not normalised to sum to one: a
//! message that fits no intent ("asdf", "who won the match") gets low values everywhere, which
//! is what the "unknown" threshold needs; a softmax would hand it a confident winner.
//! Features come from `features.rs` (character n-grams, word uni/bigrams, folded Vietnamese,
//! name shapes), weighted by log term frequency and idf, L2-normalised per block. The default
//! learner is a one-vs-rest squared-hinge linear SVM solved by dual coordinate descent;
//! multinomial logistic regression by SGD, alone or with the SVM, is available but lost in
//! cross-validation (`examples/cv.rs`).
//! Must never: read the clock or any global random state (training is a pure function of the
//! examples and `TrainParams`), panic on any message, or take longer than ~1 s to train on a
//! shop's rule set (a reload waits for it).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::features::{FeatureConfig, FeatureExtractor, is_word_feature};
use crate::locale::Locale;

/// One labelled training message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub intent: String,
    /// Used to stratify the calibration split so that every language is represented.
    pub lang: Locale,
}

impl Example {
    pub fn new(text: impl Into<String>, intent: impl Into<String>, lang: Locale) -> Self {
        Self {
            text: text.into(),
            intent: intent.into(),
            lang,
        }
    }
}

/// Multinomial logistic regression by SGD, step `eta0 / (1 + eta0 * lambda * t)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRegParams {
    pub lambda: f32,
    pub epochs: usize,
    pub eta0: f32,
}

impl Default for LogRegParams {
    fn default() -> Self {
        Self {
            lambda: 1e-5,
            epochs: 30,
            eta0: 0.5,
        }
    }
}

/// One-vs-rest L2-regularised squared-hinge SVM solved in the dual by coordinate descent.
#[derive(Debug, Clone, PartialEq)]
pub struct SvmParams {
    pub c: f32,
    pub max_epochs: usize,
    /// Stop when the spread of projected gradients in an epoch falls below this (LIBLINEAR's
    /// stopping rule; 0.1 is its default for dual solvers; 0.4 gives the same
    /// leave-one-industry-out accuracy and trains 15 % faster, but loses a message on xSID).
    pub tolerance: f32,
}

impl Default for SvmParams {
    fn default() -> Self {
        Self {
            c: 3.0,
            max_epochs: 200,
            tolerance: 0.1,
        }
    }
}

/// One learner of the model. With several, their scores are combined as a product of experts:
/// each expert's scores are divided by a softmax temperature fitted on the calibration slice
/// and added. The sum is still one linear model, so classifying costs the same as with one.
#[derive(Debug, Clone, PartialEq)]
pub enum Expert {
    LogReg(LogRegParams),
    Svm(SvmParams),
}

/// Training settings. `Default` is what cross-validation on the shop data chose.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub features: FeatureConfig,
    /// At least one.
    pub experts: Vec<Expert>,
    /// Share of the examples (per intent and language) held out to fit the calibration. The
    /// final model is then trained on all examples. 0 skips calibration (a fixed sigmoid).
    pub calibration_fraction: f32,
    /// Weight examples by n / (intents * n_intent) so that rare intents count as much as common
    /// ones; useful when the rule set's intents have very uneven numbers of examples.
    pub balance_classes: bool,
    /// Seed of the only source of randomness (example order, calibration split).
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            features: FeatureConfig::default(),
            experts: vec![Expert::Svm(SvmParams::default())],
            calibration_fraction: 0.2,
            balance_classes: false,
            seed: 0x5eed_c4a7,
        }
    }
}

/// Why training failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IntentError {
    #[error("no usable training examples (every text was empty or had no letters)")]
    NoExamples,
    #[error("all examples have the intent {0:?}; at least two intents are needed")]
    SingleClass(String),
    #[error("example {index} has an empty intent label")]
    EmptyLabel { index: usize },
    #[error("invalid training parameter: {0}")]
    InvalidParams(&'static str),
}

/// The answer for one message. Intents borrow from the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction<'m> {
    pub intent: &'m str,
    /// Calibrated probability of `intent`, in [0, 1].
    pub confidence: f32,
    pub runner_up: &'m str,
    pub runner_up_confidence: f32,
}

impl<'m> Prediction<'m> {
    /// The intent if its confidence reaches `threshold`, else `None` (the gateway's "unknown").
    pub fn accepted(&self, threshold: f32) -> Option<&'m str> {
        (self.confidence >= threshold).then_some(self.intent)
    }
}

/// Figures measured while training, for logs and the rules check.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainStats {
    pub examples: usize,
    pub skipped_empty: usize,
    pub features: usize,
    pub intents: usize,
    /// Confidence of intent c is sigmoid(platt.0 * score_c + platt.1).
    pub platt: (f32, f32),
    /// Accuracy on the calibration slice of a model trained without it (None if not calibrated).
    pub calibration_accuracy: Option<f32>,
    /// Per threshold in `THRESHOLDS`, (answered share, accuracy of answered) on that slice.
    pub calibration_curve: Vec<(f32, f32, f32)>,
}

/// Confidence below which the gateway should answer "unknown" (ask again or hand over to a
/// human). Out-of-scope chatter is mostly caught by the `unknown` class of the base corpus; the
/// threshold only adds the doubtful rest. Chosen by leave-one-industry-out cross-validation of
/// the base corpus (`examples/chat_tune.rs`): at 0.10, 1.3 % of in-scope messages are refused
/// and 91 % of out-of-scope ones are, with every language at 94 % or better; 0.15 refuses more
/// buyers (1.7 %) and takes Vietnamese under 94 % for a fifth of a point more out of scope.
pub const RECOMMENDED_THRESHOLD: f32 = 0.10;

/// Thresholds reported in `TrainStats::calibration_curve`.
pub const THRESHOLDS: [f32; 8] = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// A trained classifier. Immutable and `Send + Sync`: share it behind an `Arc` and swap it whole
/// on reload.
#[derive(Debug, Clone)]
pub struct IntentModel {
    extractor: FeatureExtractor,
    labels: Vec<String>,
    vocab: Vocab,
    /// Feature-major: the weights of feature `f` are `weights[f * k .. (f + 1) * k]`, so scoring
    /// a sparse message reads one short contiguous row per feature.
    weights: Vec<f32>,
    bias: Vec<f32>,
    platt: (f32, f32),
    stats: TrainStats,
}

impl IntentModel {
    /// Trains on `examples`. Deterministic for a given input and `params.seed`.
    pub fn train(examples: &[Example], params: &TrainParams) -> Result<Self, IntentError> {
        validate(params)?;
        let extractor = FeatureExtractor::new(params.features.clone());

        let mut labels = BTreeSet::new();
        for (index, e) in examples.iter().enumerate() {
            if e.intent.trim().is_empty() {
                return Err(IntentError::EmptyLabel { index });
            }
            labels.insert(e.intent.as_str());
        }
        let labels: Vec<String> = labels.into_iter().map(str::to_string).collect();
        let label_of: HashMap<&str, u32> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u32))
            .collect();

        // Bag of feature ids per example; examples that yield nothing cannot teach anything.
        const CHUNK: usize = 512;
        let chunks = on_all_cores(examples.len().div_ceil(CHUNK), |c| {
            let mut buf = Vec::new();
            let mut out = Vec::with_capacity(CHUNK);
            for (i, e) in examples.iter().enumerate().skip(c * CHUNK).take(CHUNK) {
                buf.clear();
                extractor.extract(&e.text, &mut buf);
                if !buf.is_empty() {
                    out.push((i, count_ids(&mut buf)));
                }
            }
            out
        });
        let (kept, bags): (Vec<usize>, Vec<_>) = chunks.into_iter().flatten().unzip();
        if kept.is_empty() {
            return Err(IntentError::NoExamples);
        }
        let y: Vec<u32> = kept
            .iter()
            .map(|&i| label_of[examples[i].intent.as_str()])
            .collect();
        let present: BTreeSet<u32> = y.iter().copied().collect();
        if present.len() < 2 {
            return Err(IntentError::SingleClass(labels[y[0] as usize].clone()));
        }

        let vocab = Vocab::build(&bags, &params.features);
        let x = vocab.matrix(&bags);
        let k = labels.len();

        let mut rng = SplitMix64::new(params.seed);
        let experts = &params.experts;
        let dim = vocab.len();

        let cal = if params.calibration_fraction > 0.0 {
            let groups: Vec<(u32, Locale)> = kept
                .iter()
                .zip(&y)
                .map(|(&i, &c)| (c, examples[i].lang))
                .collect();
            calibrate(&x, &y, &groups, k, dim, params, &mut rng)
        } else {
            None
        };
        let expert_t = cal
            .as_ref()
            .map_or_else(|| vec![1.0; experts.len()], |c| c.expert_t.clone());
        let platt = cal.as_ref().map_or(DEFAULT_PLATT, |c| c.platt);

        let mut weights = vec![0f32; dim * k];
        let mut bias = vec![0f32; k];
        let problem = Problem::new(&x, &y, k, dim, params.balance_classes);
        for (e, expert) in experts.iter().enumerate() {
            let warm = cal.as_ref().and_then(|c| c.duals.get(e));
            let (lin, _) = fit(&problem, expert, &mut rng, warm);
            for (w, v) in weights.iter_mut().zip(&lin.weights) {
                *w += v / expert_t[e];
            }
            for (b, v) in bias.iter_mut().zip(&lin.bias) {
                *b += v / expert_t[e];
            }
        }
        let stats = TrainStats {
            examples: kept.len(),
            skipped_empty: examples.len() - kept.len(),
            features: vocab.len(),
            intents: k,
            platt,
            calibration_accuracy: cal.as_ref().map(|c| c.accuracy),
            calibration_curve: cal.map(|c| c.curve).unwrap_or_default(),
        };
        Ok(Self {
            extractor,
            labels,
            vocab,
            weights,
            bias,
            platt,
            stats,
        })
    }

    /// Classifies one message. Never fails: text with no known feature gets the bias alone,
    /// which yields low confidences.
    pub fn classify(&self, text: &str) -> Prediction<'_> {
        let z = self.scores(text);
        let (mut best, mut second) = (0usize, 1usize);
        if z[second] > z[best] {
            std::mem::swap(&mut best, &mut second);
        }
        for (i, &v) in z.iter().enumerate().skip(2) {
            if v > z[best] {
                second = best;
                best = i;
            } else if v > z[second] {
                second = i;
            }
        }
        Prediction {
            intent: &self.labels[best],
            confidence: platt(self.platt, z[best]),
            runner_up: &self.labels[second],
            runner_up_confidence: platt(self.platt, z[second]),
        }
    }

    /// Calibrated probability of each intent, in the order of `intents()`. They need not sum to
    /// one (see the module comment).
    pub fn confidences(&self, text: &str) -> Vec<f32> {
        self.scores(text)
            .into_iter()
            .map(|z| platt(self.platt, z))
            .collect()
    }

    /// Raw linear scores (sum of the experts' scaled scores) per intent.
    fn scores(&self, text: &str) -> Vec<f32> {
        let mut buf = Vec::with_capacity(256);
        self.extractor.extract(text, &mut buf);
        let row = self.vocab.vectorize(&mut buf);
        let k = self.labels.len();
        let mut z = self.bias.clone();
        for &(f, v) in &row {
            let w = &self.weights[f as usize * k..(f as usize + 1) * k];
            for (zc, wc) in z.iter_mut().zip(w) {
                *zc += v * wc;
            }
        }
        z
    }

    /// Intent labels, sorted.
    pub fn intents(&self) -> &[String] {
        &self.labels
    }

    pub fn stats(&self) -> &TrainStats {
        &self.stats
    }
}

/// Used without calibration: a sigmoid that maps an SVM margin of 0 to 0.5.
const DEFAULT_PLATT: (f32, f32) = (4.0, 0.0);

/// What the calibration slice taught: per-expert score scales, the sigmoid, and how accurate a
/// model that never saw the slice was on it.
struct Calibration {
    expert_t: Vec<f32>,
    platt: (f32, f32),
    accuracy: f32,
    curve: Vec<(f32, f32, f32)>,
    /// Per expert, its dual variables over all examples (0 for the calibration slice).
    duals: Vec<Duals>,
}

/// Fits on most of the examples and calibrates on a stratified slice of the rest. With several
/// experts, each expert's scores are first divided by a softmax temperature fitted to them, so
/// that they are on one scale before they are added; then one sigmoid is fitted for the sum.
fn calibrate(
    x: &Csr,
    y: &[u32],
    groups: &[(u32, Locale)],
    k: usize,
    dim: usize,
    params: &TrainParams,
    rng: &mut SplitMix64,
) -> Option<Calibration> {
    let (fit_rows, cal_rows) = stratified_split(groups, params.calibration_fraction, rng);
    if cal_rows.is_empty() || fit_rows.is_empty() {
        return None;
    }
    // The vocabulary and idf still come from all examples; only the weights are refitted. The
    // slight optimism that adds is cheaper than a second vocabulary pass.
    let sub = x.select(&fit_rows);
    let sub_y: Vec<u32> = fit_rows.iter().map(|&r| y[r]).collect();
    let cal_y: Vec<u32> = cal_rows.iter().map(|&r| y[r]).collect();
    let problem = Problem::new(&sub, &sub_y, k, dim, params.balance_classes);
    let mut expert_t = vec![1.0f32; params.experts.len()];
    let mut combined = vec![vec![0f32; k]; cal_rows.len()];
    let mut duals = Vec::with_capacity(params.experts.len());
    for (e, expert) in params.experts.iter().enumerate() {
        let (lin, sub_duals) = fit(&problem, expert, rng, None);
        duals.push(
            sub_duals
                .into_iter()
                .map(|d| {
                    let mut all = vec![0f32; y.len()];
                    for (&r, a) in fit_rows.iter().zip(d) {
                        all[r] = a;
                    }
                    all
                })
                .collect(),
        );
        let scores: Vec<Vec<f32>> = cal_rows.iter().map(|&r| lin.scores(x.row(r))).collect();
        if params.experts.len() > 1 {
            expert_t[e] = fit_temperature(&scores, &cal_y);
        }
        for (acc, z) in combined.iter_mut().zip(&scores) {
            for (a, v) in acc.iter_mut().zip(z) {
                *a += v / expert_t[e];
            }
        }
    }
    let platt = fit_platt(&combined, &cal_y);
    let (accuracy, curve) = threshold_curve(&combined, &cal_y, platt);
    Some(Calibration {
        expert_t,
        platt,
        accuracy,
        curve,
        duals,
    })
}

fn validate(p: &TrainParams) -> Result<(), IntentError> {
    let f = &p.features;
    if f.char_max == 0 && f.word_max == 0 {
        return Err(IntentError::InvalidParams(
            "no character or word features enabled",
        ));
    }
    if f.char_max > 0 && (f.char_min == 0 || f.char_min > f.char_max) {
        return Err(IntentError::InvalidParams("need 1 <= char_min <= char_max"));
    }
    if !(f.word_weight.is_finite() && f.word_weight > 0.0) {
        return Err(IntentError::InvalidParams("word_weight must be positive"));
    }
    if !(0.0..0.9).contains(&p.calibration_fraction) {
        return Err(IntentError::InvalidParams(
            "calibration_fraction must be in [0, 0.9)",
        ));
    }
    if p.experts.is_empty() {
        return Err(IntentError::InvalidParams("no expert (learner) configured"));
    }
    let ok = p.experts.iter().all(|e| match e {
        Expert::LogReg(l) => {
            l.lambda > 0.0
                && l.lambda.is_finite()
                && l.epochs > 0
                && l.eta0 > 0.0
                && l.eta0.is_finite()
        }
        Expert::Svm(s) => s.c > 0.0 && s.c.is_finite() && s.max_epochs > 0 && s.tolerance > 0.0,
    });
    if ok {
        Ok(())
    } else {
        Err(IntentError::InvalidParams(
            "learner settings must be positive and finite",
        ))
    }
}

/// Sorts ids and collapses repeats into (id, count).
fn count_ids(ids: &mut [u64]) -> Vec<(u64, f32)> {
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
struct IdHasher(u64);

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

type IdMap = HashMap<u64, u32, BuildHasherDefault<IdHasher>>;

/// Features seen in training, with their idf and block weight. Unseen features are ignored at
/// prediction time: their weight would be zero anyway.
#[derive(Debug, Clone)]
struct Vocab {
    index: IdMap,
    /// idf, times the word weight for word features unless blocks are normalised separately.
    scale: Vec<f32>,
    /// Word-block weight applied after per-block normalisation (`FeatureConfig::block_norm`).
    block_word_weight: Option<f32>,
}

impl Vocab {
    fn build(bags: &[Vec<(u64, f32)>], cfg: &FeatureConfig) -> Self {
        let word_weight = if cfg.block_norm { 1.0 } else { cfg.word_weight };
        let mut index = IdMap::default();
        let mut df: Vec<u32> = Vec::new();
        let mut is_word: Vec<bool> = Vec::new();
        // Indices in order of first appearance, so the layout never depends on hash-map order.
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

    fn len(&self) -> usize {
        self.scale.len()
    }

    /// (1 + ln tf) * idf, L2-normalised (per block first if configured); sorted by index.
    fn weigh(&self, counted: &[(u64, f32)]) -> Vec<(u32, f32)> {
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

    fn vectorize(&self, ids: &mut [u64]) -> Vec<(u32, f32)> {
        self.weigh(&count_ids(ids))
    }

    fn matrix(&self, bags: &[Vec<(u64, f32)>]) -> Csr {
        let mut m = Csr::default();
        for bag in bags {
            m.push(&self.weigh(bag));
        }
        m
    }
}

/// Compressed sparse rows.
#[derive(Debug, Clone)]
struct Csr {
    ptr: Vec<usize>,
    entries: Vec<(u32, f32)>,
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
    fn push(&mut self, row: &[(u32, f32)]) {
        self.entries.extend_from_slice(row);
        self.ptr.push(self.entries.len());
    }
    fn rows(&self) -> usize {
        self.ptr.len() - 1
    }
    fn row(&self, r: usize) -> &[(u32, f32)] {
        &self.entries[self.ptr[r]..self.ptr[r + 1]]
    }
    fn select(&self, rows: &[usize]) -> Csr {
        let mut m = Csr::default();
        for &r in rows {
            m.push(self.row(r));
        }
        m
    }
}

/// Trained weights, feature-major (see `IntentModel::weights`).
struct Linear {
    k: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    fn scores(&self, row: &[(u32, f32)]) -> Vec<f32> {
        let mut z = self.bias.clone();
        for &(f, v) in row {
            let w = &self.weights[f as usize * self.k..(f as usize + 1) * self.k];
            for (zc, wc) in z.iter_mut().zip(w) {
                *zc += v * wc;
            }
        }
        z
    }
}

/// A training problem: rows, their intents, and per-intent example weights.
struct Problem<'a> {
    x: &'a Csr,
    y: &'a [u32],
    k: usize,
    dim: usize,
    class_weight: Vec<f32>,
}

impl<'a> Problem<'a> {
    fn new(x: &'a Csr, y: &'a [u32], k: usize, dim: usize, balance: bool) -> Self {
        let mut counts = vec![0usize; k];
        for &c in y {
            counts[c as usize] += 1;
        }
        let present = counts.iter().filter(|&&n| n > 0).count().max(1);
        let class_weight = counts
            .iter()
            .map(|&n| {
                if balance && n > 0 {
                    y.len() as f32 / (present as f32 * n as f32)
                } else {
                    1.0
                }
            })
            .collect();
        Self {
            x,
            y,
            k,
            dim,
            class_weight,
        }
    }
}

/// Dual variables of an SVM fit, per class and example: where a later fit of a larger problem may
/// start from.
type Duals = Vec<Vec<f32>>;

fn fit(
    p: &Problem<'_>,
    expert: &Expert,
    rng: &mut SplitMix64,
    warm: Option<&Duals>,
) -> (Linear, Duals) {
    match expert {
        Expert::LogReg(params) => (fit_logreg(p, params, rng), Vec::new()),
        Expert::Svm(params) => fit_svm(p, params, rng, warm),
    }
}

/// Multinomial logistic regression by SGD on (1/n) sum of cross-entropy + lambda/2 |W|^2.
/// The L2 shrinkage is kept as one scalar multiplier so that each step only touches the
/// example's own features (dense shrinking would cost dim * k per step).
fn fit_logreg(p: &Problem<'_>, params: &LogRegParams, rng: &mut SplitMix64) -> Linear {
    let (x, y, k, dim) = (p.x, p.y, p.k, p.dim);
    let LogRegParams {
        lambda,
        epochs,
        eta0,
    } = *params;
    let n = x.rows();
    let mut v = vec![0f32; dim * k];
    let mut scale = 1.0f64;
    let mut bias = vec![0f32; k];
    let mut order: Vec<usize> = (0..n).collect();
    let mut z = vec![0f32; k];
    let mut t = 0f64;
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let eta = f64::from(eta0) / (1.0 + f64::from(eta0) * f64::from(lambda) * t);
            t += 1.0;
            let row = x.row(i);
            z.copy_from_slice(&bias);
            for &(f, val) in row {
                let w = &v[f as usize * k..(f as usize + 1) * k];
                for (zc, wc) in z.iter_mut().zip(w) {
                    *zc += val * wc * scale as f32;
                }
            }
            let prob = softmax(&z, 1.0);
            let cw = p.class_weight[y[i] as usize];
            scale *= 1.0 - eta * f64::from(lambda);
            let step = (eta / scale) as f32 * cw;
            for &(f, val) in row {
                let w = &mut v[f as usize * k..(f as usize + 1) * k];
                for (c, wc) in w.iter_mut().enumerate() {
                    let g = prob[c] - if c as u32 == y[i] { 1.0 } else { 0.0 };
                    *wc -= step * g * val;
                }
            }
            for (c, b) in bias.iter_mut().enumerate() {
                let g = prob[c] - if c as u32 == y[i] { 1.0 } else { 0.0 };
                *b -= eta as f32 * cw * g;
            }
            if scale < 1e-6 {
                for w in &mut v {
                    *w *= scale as f32;
                }
                scale = 1.0;
            }
        }
    }
    for w in &mut v {
        *w *= scale as f32;
    }
    Linear {
        k,
        weights: v,
        bias,
    }
}

/// One-vs-rest squared-hinge SVM, dual coordinate descent (Hsieh et al., ICML 2008). The bias is
/// an extra constant feature of value 1, regularised like the others, as in LIBLINEAR. The
/// classes are independent problems, solved on all cores (rules load while buyers wait); each has
/// its own seed, so the result does not depend on the number of cores. `warm` (from a fit of
/// most of these examples) is where the descent starts, so the final model after calibration
/// converges sooner.
fn fit_svm(
    p: &Problem<'_>,
    params: &SvmParams,
    rng: &mut SplitMix64,
    warm: Option<&Duals>,
) -> (Linear, Duals) {
    let (x, y, k, dim) = (p.x, p.y, p.k, p.dim);
    let n = x.rows();
    // Per-example C (class weight times C) enters the squared-hinge dual as the diagonal 1/(2C).
    let d_ii: Vec<f32> = y
        .iter()
        .map(|&c| 0.5 / (params.c * p.class_weight[c as usize]))
        .collect();
    // The constant bias feature adds 1 to |x|^2.
    let q_ii: Vec<f32> = (0..n)
        .map(|i| x.row(i).iter().map(|(_, v)| v * v).sum::<f32>() + 1.0 + d_ii[i])
        .collect();
    let seed = rng.next_u64();
    let solve = |class: usize| -> (Vec<f32>, f32, Vec<f32>) {
        let mut rng = SplitMix64::new(seed ^ (class as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut order: Vec<usize> = (0..n).collect();
        let mut w = vec![0f32; dim];
        let mut b = 0f32;
        let mut alpha = match warm.and_then(|d| d.get(class)) {
            Some(start) if start.len() == n => start.clone(),
            _ => vec![0f32; n],
        };
        // w and b as the starting duals make them: the sum of alpha_i * y_i * (x_i, 1).
        for (i, &a) in alpha.iter().enumerate().filter(|(_, a)| **a > 0.0) {
            let signed = if y[i] as usize == class { a } else { -a };
            for &(f, v) in x.row(i) {
                w[f as usize] += signed * v;
            }
            b += signed;
        }
        // Shrinking as in LIBLINEAR: an example at alpha = 0 whose gradient is beyond last
        // epoch's largest projected gradient is set aside until the active ones converge, then
        // everything is checked once more. (The squared hinge has no upper bound on alpha, so
        // only that side shrinks.)
        let mut active = n;
        let mut pg_max_old = f32::INFINITY;
        let mut epochs = 0;
        while epochs < params.max_epochs {
            rng.shuffle(&mut order[..active]);
            let (mut max_pg, mut min_pg) = (f32::NEG_INFINITY, f32::INFINITY);
            let mut s = 0;
            while s < active {
                let i = order[s];
                let yi = if y[i] as usize == class { 1.0 } else { -1.0 };
                let row = x.row(i);
                let wx: f32 = row.iter().map(|&(f, v)| w[f as usize] * v).sum::<f32>() + b;
                let g = yi * wx - 1.0 + d_ii[i] * alpha[i];
                let pg = if alpha[i] == 0.0 {
                    if g > pg_max_old {
                        active -= 1;
                        order.swap(s, active);
                        continue;
                    }
                    g.min(0.0)
                } else {
                    g
                };
                max_pg = max_pg.max(pg);
                min_pg = min_pg.min(pg);
                if pg.abs() > 1e-12 {
                    let old = alpha[i];
                    alpha[i] = (old - g / q_ii[i]).max(0.0);
                    let delta = (alpha[i] - old) * yi;
                    for &(f, v) in row {
                        w[f as usize] += delta * v;
                    }
                    b += delta;
                }
                s += 1;
            }
            epochs += 1;
            // LIBLINEAR's stopping rule: the projected gradient has (almost) vanished.
            if max_pg - min_pg < params.tolerance {
                if active == n {
                    break;
                }
                active = n;
                pg_max_old = f32::INFINITY;
                continue;
            }
            pg_max_old = if max_pg <= 0.0 { f32::INFINITY } else { max_pg };
        }
        (w, b, alpha)
    };
    let solved = on_all_cores(k, solve);
    let mut weights = vec![0f32; dim * k];
    let mut bias = vec![0f32; k];
    let mut duals = Vec::with_capacity(k);
    for (class, (w, b, alpha)) in solved.into_iter().enumerate() {
        for (f, wf) in w.iter().enumerate() {
            weights[f * k + class] = *wf;
        }
        bias[class] = b;
        duals.push(alpha);
    }
    (Linear { k, weights, bias }, duals)
}

/// `(0..n).map(job)`, the jobs shared among the machine's cores; results in order.
fn on_all_cores<T: Send>(n: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n);
    if threads <= 1 {
        return (0..n).map(job).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            return out;
                        }
                        out.push((i, job(i)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

fn softmax(z: &[f32], temperature: f32) -> Vec<f32> {
    let max = z.iter().copied().fold(f32::MIN, f32::max);
    let mut p: Vec<f32> = z.iter().map(|&v| ((v - max) / temperature).exp()).collect();
    let sum: f32 = p.iter().sum();
    for v in &mut p {
        *v /= sum;
    }
    p
}

/// Temperature minimising the negative log-likelihood of held-out scores; golden-section search
/// over ln T, which is unimodal in practice for softmax scaling.
fn fit_temperature(scores: &[Vec<f32>], y: &[u32]) -> f32 {
    let nll = |ln_t: f64| -> f64 {
        let t = ln_t.exp() as f32;
        scores
            .iter()
            .zip(y)
            .map(|(z, &c)| -f64::from(softmax(z, t)[c as usize].max(1e-12)).ln())
            .sum()
    };
    let (mut lo, mut hi) = ((0.005f64).ln(), (20.0f64).ln());
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - phi * (hi - lo);
    let mut b = lo + phi * (hi - lo);
    let (mut fa, mut fb) = (nll(a), nll(b));
    for _ in 0..60 {
        if fa < fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - phi * (hi - lo);
            fa = nll(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + phi * (hi - lo);
            fb = nll(b);
        }
    }
    ((lo + hi) / 2.0).exp() as f32
}

fn platt((a, b): (f32, f32), z: f32) -> f32 {
    1.0 / (1.0 + (-(a * z + b)).exp())
}

/// Fits sigmoid(a * score + b) to "is this the message's intent" over every (message, intent)
/// pair of the calibration slice, by Newton's method on the log-loss. Targets are Platt's
/// smoothed ones ((N+ + 1)/(N+ + 2) and 1/(N- + 2)), which keeps the fit finite when the slice
/// is perfectly separated.
fn fit_platt(scores: &[Vec<f32>], y: &[u32]) -> (f32, f32) {
    let pairs: Vec<(f64, bool)> = scores
        .iter()
        .zip(y)
        .flat_map(|(z, &c)| {
            z.iter()
                .enumerate()
                .map(move |(j, &v)| (f64::from(v), j as u32 == c))
        })
        .collect();
    let n_pos = pairs.iter().filter(|(_, p)| *p).count() as f64;
    let n_neg = pairs.len() as f64 - n_pos;
    let (t_pos, t_neg) = ((n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0));
    let (mut a, mut b) = (1.0f64, ((n_pos + 1.0) / (n_neg + 1.0)).ln());
    for _ in 0..100 {
        // Gradient and Hessian of the log-loss in (a, b); a tiny ridge keeps H invertible.
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for &(z, pos) in &pairs {
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let t = if pos { t_pos } else { t_neg };
            let d = p - t;
            let w = p * (1.0 - p);
            ga += d * z;
            gb += d;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-9 {
            break;
        }
    }
    if a.is_finite() && b.is_finite() && a > 0.0 {
        (a as f32, b as f32)
    } else {
        DEFAULT_PLATT
    }
}

/// Accuracy and, per threshold, (threshold, answered share, accuracy of answered).
fn threshold_curve(scores: &[Vec<f32>], y: &[u32], ab: (f32, f32)) -> (f32, Vec<(f32, f32, f32)>) {
    let preds: Vec<(usize, f32)> = scores
        .iter()
        .map(|z| {
            let (i, top) = z
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |acc, (i, v)| if v > acc.1 { (i, v) } else { acc },
                );
            (i, platt(ab, top))
        })
        .collect();
    let n = y.len().max(1) as f32;
    let correct = |th: f32| -> (usize, usize) {
        preds
            .iter()
            .zip(y)
            .fold((0, 0), |(ans, ok), (&(c, p), &yi)| {
                if p >= th {
                    (ans + 1, ok + usize::from(c as u32 == yi))
                } else {
                    (ans, ok)
                }
            })
    };
    let (_, all_ok) = correct(f32::MIN);
    let curve = THRESHOLDS
        .iter()
        .map(|&th| {
            let (ans, ok) = correct(th);
            (
                th,
                ans as f32 / n,
                if ans > 0 { ok as f32 / ans as f32 } else { 1.0 },
            )
        })
        .collect();
    (all_ok as f32 / n, curve)
}

/// Splits row indices so that each (intent, language) group gives `fraction` of its rows (rounded,
/// and at least one from groups of three or more) to the calibration side.
fn stratified_split(
    groups: &[(u32, Locale)],
    fraction: f32,
    rng: &mut SplitMix64,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_group: std::collections::BTreeMap<(u32, Locale), Vec<usize>> = Default::default();
    for (i, g) in groups.iter().enumerate() {
        by_group.entry(*g).or_default().push(i);
    }
    let (mut fit_rows, mut cal_rows) = (Vec::new(), Vec::new());
    for rows in by_group.values_mut() {
        rng.shuffle(rows);
        let mut take = (rows.len() as f32 * fraction).round() as usize;
        if take == 0 && rows.len() >= 3 {
            take = 1;
        }
        cal_rows.extend_from_slice(&rows[..take]);
        fit_rows.extend_from_slice(&rows[take..]);
    }
    fit_rows.sort_unstable();
    cal_rows.sort_unstable();
    (fit_rows, cal_rows)
}

/// SplitMix64: tiny, fast, and fully determined by its seed (no OS entropy, no crate version
/// changing the sequence under us).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Fisher-Yates.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const _: () = {
        const fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<IntentModel>();
    };

    fn toy() -> Vec<Example> {
        let mut v = Vec::new();
        let price = [
            "how much is it",
            "price please",
            "what is the price",
            "how much for 100",
            "price for 500 pcs",
            "berapa harganya",
            "harga brp",
            "gia bao nhieu",
            "giá bao nhiêu",
            "ราคาเท่าไหร่",
        ];
        let ship = [
            "do you ship to jakarta",
            "shipping cost to hanoi",
            "how do you ship",
            "ship by sea",
            "delivery to bangkok",
            "ongkir ke surabaya",
            "kirim ke medan",
            "giao hang ve ha noi",
            "giao hàng về hà nội",
            "ส่งไปกรุงเทพไหม",
        ];
        let greet = [
            "hello",
            "hi there",
            "good morning",
            "hey",
            "hello admin",
            "halo kak",
            "selamat pagi",
            "chao shop",
            "xin chào",
            "สวัสดีครับ",
        ];
        let langs = [
            Locale::En,
            Locale::En,
            Locale::En,
            Locale::En,
            Locale::En,
            Locale::Id,
            Locale::Id,
            Locale::Vi,
            Locale::Vi,
            Locale::Th,
        ];
        for (intent, texts) in [("price", price), ("shipping", ship), ("greeting", greet)] {
            for (t, l) in texts.iter().zip(langs) {
                v.push(Example::new(*t, intent, l));
            }
        }
        v
    }

    #[test]
    fn learns_a_tiny_problem_with_both_learners() {
        for experts in [
            vec![Expert::Svm(SvmParams::default())],
            vec![Expert::LogReg(LogRegParams::default())],
            TrainParams::default().experts,
        ] {
            let params = TrainParams {
                experts: experts.clone(),
                calibration_fraction: 0.0,
                ..TrainParams::default()
            };
            let m = IntentModel::train(&toy(), &params).unwrap();
            assert_eq!(m.intents(), ["greeting", "price", "shipping"]);
            for (t, want) in [
                ("how much for 200 pcs", "price"),
                ("harga berapa kak", "price"),
                ("gia si bao nhieu", "price"),
                ("can you ship to hanoi", "shipping"),
                ("kirim ke jakarta", "shipping"),
                ("hello there", "greeting"),
                ("สวัสดีค่ะ", "greeting"),
            ] {
                let p = m.classify(t);
                assert_eq!(p.intent, want, "{experts:?}: {t}");
                assert!(p.confidence >= p.runner_up_confidence);
                assert!((0.0..=1.0).contains(&p.confidence));
            }
            let c = m.confidences("whatever");
            assert_eq!(c.len(), 3);
            assert!(c.iter().all(|p| (0.0..=1.0).contains(p)));
        }
    }

    #[test]
    fn training_is_deterministic() {
        let params = TrainParams::default();
        let a = IntentModel::train(&toy(), &params).unwrap();
        let b = IntentModel::train(&toy(), &params).unwrap();
        assert_eq!(a.weights, b.weights);
        assert_eq!(a.bias, b.bias);
        assert_eq!(a.platt, b.platt);
        let lr = TrainParams {
            experts: vec![Expert::LogReg(LogRegParams::default())],
            ..TrainParams::default()
        };
        let a = IntentModel::train(&toy(), &lr).unwrap();
        let b = IntentModel::train(&toy(), &lr).unwrap();
        assert_eq!(a.weights, b.weights);
        assert_eq!(
            a.classify("price for 300").confidence,
            b.classify("price for 300").confidence
        );
    }

    #[test]
    fn rejects_bad_training_sets() {
        let p = TrainParams::default();
        assert_eq!(
            IntentModel::train(&[], &p).unwrap_err(),
            IntentError::NoExamples
        );
        let one = vec![
            Example::new("hi", "greeting", Locale::En),
            Example::new("hello", "greeting", Locale::En),
        ];
        assert_eq!(
            IntentModel::train(&one, &p).unwrap_err(),
            IntentError::SingleClass("greeting".into())
        );
        let empty_only = vec![
            Example::new("???", "a", Locale::En),
            Example::new("", "b", Locale::En),
        ];
        assert_eq!(
            IntentModel::train(&empty_only, &p).unwrap_err(),
            IntentError::NoExamples
        );
        let unlabeled = vec![Example::new("hi", " ", Locale::En)];
        assert_eq!(
            IntentModel::train(&unlabeled, &p).unwrap_err(),
            IntentError::EmptyLabel { index: 0 }
        );
        let bad = TrainParams {
            calibration_fraction: 2.0,
            ..TrainParams::default()
        };
        assert!(matches!(
            IntentModel::train(&toy(), &bad),
            Err(IntentError::InvalidParams(_))
        ));
    }

    #[test]
    fn empty_and_unknown_messages_do_not_panic() {
        let m = IntentModel::train(&toy(), &TrainParams::default()).unwrap();
        for t in ["", "???", "zzzz qqqq", "👋", &"x".repeat(10_000)] {
            let p = m.classify(t);
            assert!(p.confidence.is_finite(), "{t}");
        }
        assert_eq!(m.classify("price please").accepted(0.0), Some("price"));
        assert_eq!(m.classify("price please").accepted(1.1), None);
    }

    #[test]
    fn stratified_split_covers_every_group() {
        let groups: Vec<(u32, Locale)> = (0..40)
            .map(|i| {
                (
                    (i % 4) as u32,
                    if i % 2 == 0 { Locale::En } else { Locale::Th },
                )
            })
            .collect();
        let (fit, cal) = stratified_split(&groups, 0.2, &mut SplitMix64::new(1));
        assert_eq!(fit.len() + cal.len(), 40);
        assert_eq!(cal.len(), 8);
        let cal_groups: BTreeSet<(u32, Locale)> = cal.iter().map(|&i| groups[i]).collect();
        assert_eq!(cal_groups.len(), 4);
    }

    #[test]
    fn temperature_fit_recovers_scale() {
        // Scores that are 3x too confident for their accuracy should get T > 1.
        let mut scores = Vec::new();
        let mut y = Vec::new();
        for i in 0..100u32 {
            scores.push(vec![9.0, 0.0]);
            y.push(u32::from(i % 4 == 0)); // 75% right
        }
        let t = fit_temperature(&scores, &y);
        let p = softmax(&scores[0], t)[0];
        assert!((p - 0.75).abs() < 0.01, "t={t} p={p}");
    }

    #[test]
    fn platt_fit_matches_empirical_rates() {
        // Score +1 is right 3 times in 4, score -1 once in 4.
        let mut scores = Vec::new();
        let mut y = Vec::new();
        for i in 0..200u32 {
            scores.push(vec![1.0, -1.0]);
            y.push(u32::from(i % 4 == 0));
        }
        let ab = fit_platt(&scores, &y);
        assert!((platt(ab, 1.0) - 0.75).abs() < 0.01, "{ab:?}");
        assert!((platt(ab, -1.0) - 0.25).abs() < 0.01, "{ab:?}");
        // Perfectly separated data must not blow up.
        let ab = fit_platt(&[vec![2.0, -2.0], vec![-2.0, 2.0]], &[0, 1]);
        assert!(ab.0.is_finite() && ab.0 > 0.0);
    }

    #[test]
    fn gibberish_gets_lower_confidence_than_in_domain_text() {
        let mut rows = toy();
        // Enough rows for a calibration slice in every (intent, language) group.
        rows.extend(toy());
        let m = IntentModel::train(&rows, &TrainParams::default()).unwrap();
        let known = m.classify("how much is it").confidence;
        let junk = m.classify("zzzz qqqq xxxx").confidence;
        assert!(junk < known, "junk {junk} known {known}");
    }
}
