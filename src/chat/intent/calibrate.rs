//! Turning one-vs-rest scores into probabilities: a Platt sigmoid fitted on a stratified slice
//! of the training examples (per intent and language) that the fit never saw, and the accuracy
//! and threshold curve measured on that slice.

use super::svm::{Duals, Problem, SplitMix64, fit_svm};
use super::vocab::Csr;
use super::{THRESHOLDS, TrainParams};
use crate::locale::Locale;

/// Used without calibration: a sigmoid that maps an SVM margin of 0 to 0.5.
pub(super) const DEFAULT_PLATT: (f32, f32) = (4.0, 0.0);

/// What the calibration slice taught: the sigmoid, and how accurate a model that never saw the
/// slice was on it.
pub(super) struct Calibration {
    pub(super) platt: (f32, f32),
    pub(super) accuracy: f32,
    pub(super) curve: Vec<(f32, f32, f32)>,
    /// The fit's dual variables over all examples (0 for the calibration slice), where the final
    /// fit starts.
    pub(super) duals: Duals,
}

/// Fits on most of the examples and calibrates a sigmoid on a stratified slice of the rest.
pub(super) fn calibrate(
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
    let cal_y: Vec<u32> = cal_rows.iter().map(|&r| y[r]).collect();
    let problem = Problem::new(x, &fit_rows, y, k, dim, params.balance_classes);
    let (lin, sub_duals) = fit_svm(&problem, &params.svm, rng, None);
    let duals = sub_duals
        .into_iter()
        .map(|d| {
            let mut all = vec![0f32; y.len()];
            for (&r, a) in fit_rows.iter().zip(d) {
                all[r] = a;
            }
            all
        })
        .collect();
    let scores: Vec<Vec<f32>> = cal_rows.iter().map(|&r| lin.scores(x.row(r))).collect();
    let platt = fit_platt(&scores, &cal_y);
    let (accuracy, curve) = threshold_curve(&scores, &cal_y, platt);
    Some(Calibration {
        platt,
        accuracy,
        curve,
        duals,
    })
}

pub(super) fn platt((a, b): (f32, f32), z: f32) -> f32 {
    1.0 / (1.0 + (-(a * z + b)).exp())
}

/// Fits sigmoid(a * score + b) to "is this the message's intent" over every (message, intent)
/// pair of the calibration slice, by Newton's method on the log-loss. Targets are Platt's
/// smoothed ones ((N+ + 1)/(N+ + 2) and 1/(N- + 2)), which keeps the fit finite when the slice
/// is perfectly separated.
pub(super) fn fit_platt(scores: &[Vec<f32>], y: &[u32]) -> (f32, f32) {
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
pub(super) fn threshold_curve(
    scores: &[Vec<f32>],
    y: &[u32],
    ab: (f32, f32),
) -> (f32, Vec<(f32, f32, f32)>) {
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
pub(super) fn stratified_split(
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
