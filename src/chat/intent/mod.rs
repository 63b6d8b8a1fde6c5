//! Intent classification of chat messages: a sparse linear model trained when the rules load.
//!
//! Owns: turning labelled examples into a model (`IntentModel::train`), scoring a message
//! (`IntentModel::classify`), and making the scores usable as probabilities (Platt scaling of
//! the one-vs-rest scores, fitted on a stratified slice of the training examples, never on test
//! data). The probabilities are per intent and deliberately not normalised to sum to one: a
//! message that fits no intent ("asdf", "who won the match") gets low values everywhere, which
//! is what the "unknown" threshold needs; a softmax would hand it a confident winner.
//! Features come from `features.rs` (character n-grams, word uni/bigrams, folded Vietnamese,
//! name shapes), weighted by log term frequency and idf, L2-normalised per block. The learner is
//! a one-vs-rest squared-hinge linear SVM solved by dual coordinate descent; its settings were
//! chosen by leave-one-industry-out cross-validation of the base corpus
//! (`examples/chat_tune.rs`).
//! Must never: read the clock or any global random state (training is a pure function of the
//! examples and `TrainParams`), panic on any message, or take longer than 2 s to train on the
//! base corpus and a shop's examples on two cores (a reload waits for it).

mod calibrate;
mod svm;
mod vocab;

use std::collections::{BTreeSet, HashMap};

use super::features::{FeatureConfig, FeatureExtractor};
use crate::locale::Locale;
use calibrate::{DEFAULT_PLATT, calibrate, platt};
use svm::{Linear, Problem, SplitMix64, fit_svm, on_all_cores};
use vocab::{Vocab, count_ids};

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

/// One-vs-rest L2-regularised squared-hinge SVM solved in the dual by coordinate descent.
#[derive(Debug, Clone, PartialEq)]
pub struct SvmParams {
    pub c: f32,
    pub max_epochs: usize,
    /// Stop when the spread of projected gradients in an epoch falls below this (LIBLINEAR's
    /// stopping rule; 0.1 is its default for dual solvers). 0.8 gives the same
    /// leave-one-industry-out accuracy as 0.1, within a few messages, and trains in about half the
    /// time.
    pub tolerance: f32,
}

impl Default for SvmParams {
    fn default() -> Self {
        Self {
            c: 10.0,
            max_epochs: 200,
            tolerance: 0.8,
        }
    }
}

/// Training settings. `Default` is what cross-validation on the shop data chose.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub features: FeatureConfig,
    pub svm: SvmParams,
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
            svm: SvmParams::default(),
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
/// the base corpus (`examples/chat_tune.rs`): at 0.05, 0.8 % of in-scope messages are refused
/// and 91.1 % of out-of-scope ones are, with every language at 94.8 % or better; 0.10 refuses
/// 1.0 % and 0.15 1.3 %, each costing about a tenth of a point of accuracy for a tenth of a point
/// more out of scope.
pub const RECOMMENDED_THRESHOLD: f32 = 0.05;

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
        let platt = cal.as_ref().map_or(DEFAULT_PLATT, |c| c.platt);

        let all: Vec<usize> = (0..x.rows()).collect();
        let problem = Problem::new(&x, &all, &y, k, dim, params.balance_classes);
        let warm = cal.as_ref().map(|c| &c.duals);
        let (Linear { weights, bias, .. }, _) = fit_svm(&problem, &params.svm, &mut rng, warm);
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

    /// Raw linear scores per intent.
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
    let s = &p.svm;
    if s.c > 0.0 && s.c.is_finite() && s.max_epochs > 0 && s.tolerance > 0.0 {
        Ok(())
    } else {
        Err(IntentError::InvalidParams(
            "learner settings must be positive and finite",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::calibrate::{fit_platt, stratified_split};
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
    fn learns_a_tiny_problem_with_and_without_calibration() {
        for calibration_fraction in [0.0, TrainParams::default().calibration_fraction] {
            let params = TrainParams {
                calibration_fraction,
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
                assert_eq!(p.intent, want, "calibration {calibration_fraction}: {t}");
                assert!(p.confidence >= p.runner_up_confidence);
                assert!((0.0..=1.0).contains(&p.confidence));
            }
            let p = m.classify("whatever");
            assert!((0.0..=1.0).contains(&p.runner_up_confidence));
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
