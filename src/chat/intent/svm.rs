//! The learner: a one-vs-rest L2-regularised squared-hinge linear SVM solved in the dual, one
//! class per core, and the seeded generator that is training's only randomness.

use super::SvmParams;
use super::vocab::Csr;

/// Trained weights, feature-major (see `IntentModel::weights`).
pub(super) struct Linear {
    pub(super) k: usize,
    pub(super) weights: Vec<f32>,
    pub(super) bias: Vec<f32>,
}

impl Linear {
    pub(super) fn scores(&self, row: &[(u32, f32)]) -> Vec<f32> {
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
pub(super) struct Problem<'a> {
    pub(super) x: &'a Csr,
    pub(super) y: &'a [u32],
    pub(super) k: usize,
    pub(super) dim: usize,
    pub(super) class_weight: Vec<f32>,
}

impl<'a> Problem<'a> {
    pub(super) fn new(x: &'a Csr, y: &'a [u32], k: usize, dim: usize, balance: bool) -> Self {
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
pub(super) type Duals = Vec<Vec<f32>>;

/// One-vs-rest squared-hinge SVM, dual coordinate descent (Hsieh et al., ICML 2008). The bias is
/// an extra constant feature of value 1, regularised like the others, as in LIBLINEAR. The
/// classes are independent problems, solved on all cores (rules load while buyers wait); each has
/// its own seed, so the result does not depend on the number of cores. `warm` (from a fit of
/// most of these examples) is where the descent starts, so the final model after calibration
/// converges sooner.
pub(super) fn fit_svm(
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
pub(super) fn on_all_cores<T: Send>(n: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
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
