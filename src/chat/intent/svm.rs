//! The learner: a one-vs-rest L2-regularised squared-hinge linear SVM solved in the dual, classes
//! in groups that share each pass over an example, and the seeded generator that is training's
//! only randomness.

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

/// A training problem: some rows of a matrix, their intents, and per-intent example weights.
pub(super) struct Problem<'a> {
    x: &'a Csr,
    /// The rows of `x` this problem learns from; the fit's duals follow this order.
    rows: &'a [usize],
    /// Intent of every row of `x`.
    y: &'a [u32],
    k: usize,
    dim: usize,
    class_weight: Vec<f32>,
}

impl<'a> Problem<'a> {
    pub(super) fn new(
        x: &'a Csr,
        rows: &'a [usize],
        y: &'a [u32],
        k: usize,
        dim: usize,
        balance: bool,
    ) -> Self {
        let mut counts = vec![0usize; k];
        for &r in rows {
            counts[y[r] as usize] += 1;
        }
        let present = counts.iter().filter(|&&n| n > 0).count().max(1);
        let class_weight = counts
            .iter()
            .map(|&n| {
                if balance && n > 0 {
                    rows.len() as f32 / (present as f32 * n as f32)
                } else {
                    1.0
                }
            })
            .collect();
        Self {
            x,
            rows,
            y,
            k,
            dim,
            class_weight,
        }
    }

    #[inline]
    fn row(&self, i: usize) -> &'a [(u32, f32)] {
        self.x.row(self.rows[i])
    }

    #[inline]
    fn intent(&self, i: usize) -> usize {
        self.y[self.rows[i]] as usize
    }
}

/// Dual variables of an SVM fit, per class and example: where a later fit of a larger problem may
/// start from.
pub(super) type Duals = Vec<Vec<f32>>;

/// Classes solved together: their weights of one feature sit side by side, so one pass over an
/// example's features scores or updates all of them (two SIMD registers instead of eight
/// scattered reads).
const LANES: usize = 8;

/// One-vs-rest squared-hinge SVM, dual coordinate descent (Hsieh et al., ICML 2008). The bias is
/// an extra constant feature of value 1, regularised like the others, as in LIBLINEAR. The
/// classes are independent problems; they are solved in groups of `LANES` that share each pass
/// over an example, and the groups run in parallel (rules load while buyers wait; the base
/// corpus's 15 intents make two groups, for the two cores the groups are sized for). Every
/// class visits the examples in the same seeded order per epoch and keeps its own shrinking and
/// stopping state, so the result depends neither on the grouping nor on the number of cores.
/// `warm` (from a fit of most of these examples) is where the descent starts, so the final model
/// after calibration converges sooner.
pub(super) fn fit_svm(
    p: &Problem<'_>,
    params: &SvmParams,
    rng: &mut SplitMix64,
    warm: Option<&Duals>,
) -> (Linear, Duals) {
    let (k, dim, n) = (p.k, p.dim, p.rows.len());
    // Per-example C (class weight times C) enters the squared-hinge dual as the diagonal 1/(2C).
    let d_ii: Vec<f32> = (0..n)
        .map(|i| 0.5 / (params.c * p.class_weight[p.intent(i)]))
        .collect();
    // The constant bias feature adds 1 to |x|^2.
    let q_ii: Vec<f32> = (0..n)
        .map(|i| p.row(i).iter().map(|(_, v)| v * v).sum::<f32>() + 1.0 + d_ii[i])
        .collect();
    let seed = rng.next_u64();
    let solve = |group: usize| {
        let classes: Vec<usize> = (group * LANES..((group + 1) * LANES).min(k)).collect();
        let mut group_fit = GroupFit::new(&classes, n, dim);
        for (lane, &class) in classes.iter().enumerate() {
            if let Some(start) = warm.and_then(|d| d.get(class)).filter(|d| d.len() == n) {
                group_fit.start_from(lane, start, p, class);
            }
        }
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for epoch in 0..params.max_epochs {
            if group_fit.lanes.iter().all(|l| l.converged) {
                break;
            }
            // The same order for every class of every group: a function of the seed and epoch.
            order.clear();
            order.extend(0..n);
            SplitMix64::new(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .shuffle(&mut order);
            group_fit.epoch(&order, p, &d_ii, &q_ii, params.tolerance);
        }
        group_fit
    };
    let groups = on_all_cores(k.div_ceil(LANES), solve);
    let mut weights = vec![0f32; dim * k];
    let mut bias = vec![0f32; k];
    let mut duals = Vec::with_capacity(k);
    for g in groups {
        for (f, wf) in g.w.iter().enumerate() {
            for (lane, &class) in g.classes.iter().enumerate() {
                weights[f * k + class] = wf[lane];
            }
        }
        for (lane, &class) in g.classes.iter().enumerate() {
            bias[class] = g.b[lane];
        }
        duals.extend(g.lanes.into_iter().map(|l| l.alpha));
    }
    (Linear { k, weights, bias }, duals)
}

/// One class's dual variables and its shrinking and stopping state (as in LIBLINEAR: an example
/// at alpha = 0 whose gradient is beyond last epoch's largest projected gradient is set aside
/// until the rest converge, then everything is checked once more; the squared hinge has no upper
/// bound on alpha, so only that side shrinks).
struct Lane {
    alpha: Vec<f32>,
    shrunk: Vec<bool>,
    any_shrunk: bool,
    pg_max_old: f32,
    max_pg: f32,
    min_pg: f32,
    converged: bool,
}

/// Up to `LANES` classes fitted together, their weights feature-major.
struct GroupFit {
    classes: Vec<usize>,
    w: Vec<[f32; LANES]>,
    b: [f32; LANES],
    lanes: Vec<Lane>,
}

impl GroupFit {
    fn new(classes: &[usize], n: usize, dim: usize) -> Self {
        Self {
            classes: classes.to_vec(),
            w: vec![[0.0; LANES]; dim],
            b: [0.0; LANES],
            lanes: classes
                .iter()
                .map(|_| Lane {
                    alpha: vec![0.0; n],
                    shrunk: vec![false; n],
                    any_shrunk: false,
                    pg_max_old: f32::INFINITY,
                    max_pg: 0.0,
                    min_pg: 0.0,
                    converged: false,
                })
                .collect(),
        }
    }

    /// Starts lane from `alpha`: w and b become the sum of alpha_i * y_i * (x_i, 1).
    fn start_from(&mut self, lane: usize, alpha: &[f32], p: &Problem<'_>, class: usize) {
        for (i, &a) in alpha.iter().enumerate().filter(|(_, a)| **a > 0.0) {
            let signed = if p.intent(i) == class { a } else { -a };
            for &(f, v) in p.row(i) {
                self.w[f as usize][lane] += signed * v;
            }
            self.b[lane] += signed;
        }
        self.lanes[lane].alpha.copy_from_slice(alpha);
    }

    fn epoch(&mut self, order: &[usize], p: &Problem<'_>, d_ii: &[f32], q_ii: &[f32], tol: f32) {
        for l in self.lanes.iter_mut().filter(|l| !l.converged) {
            l.max_pg = f32::NEG_INFINITY;
            l.min_pg = f32::INFINITY;
        }
        for &i in order {
            let live = |l: &Lane| !l.converged && !l.shrunk[i];
            if !self.lanes.iter().any(live) {
                continue;
            }
            let row = p.row(i);
            let intent = p.intent(i);
            let mut z = self.b;
            for &(f, v) in row {
                let wf = &self.w[f as usize];
                for (zc, wc) in z.iter_mut().zip(wf) {
                    *zc += v * wc;
                }
            }
            let mut delta = [0f32; LANES];
            let mut moved = false;
            for (lane, l) in self.lanes.iter_mut().enumerate() {
                if !live(l) {
                    continue;
                }
                let yi = if intent == self.classes[lane] {
                    1.0
                } else {
                    -1.0
                };
                let g = yi * z[lane] - 1.0 + d_ii[i] * l.alpha[i];
                let pg = if l.alpha[i] == 0.0 {
                    if g > l.pg_max_old {
                        l.shrunk[i] = true;
                        l.any_shrunk = true;
                        continue;
                    }
                    g.min(0.0)
                } else {
                    g
                };
                l.max_pg = l.max_pg.max(pg);
                l.min_pg = l.min_pg.min(pg);
                if pg.abs() > 1e-12 {
                    let old = l.alpha[i];
                    l.alpha[i] = (old - g / q_ii[i]).max(0.0);
                    delta[lane] = (l.alpha[i] - old) * yi;
                    moved = true;
                }
            }
            if moved {
                for &(f, v) in row {
                    let wf = &mut self.w[f as usize];
                    for (wc, dc) in wf.iter_mut().zip(&delta) {
                        *wc += v * dc;
                    }
                }
                for (bc, dc) in self.b.iter_mut().zip(&delta) {
                    *bc += dc;
                }
            }
        }
        // LIBLINEAR's stopping rule: the projected gradient has (almost) vanished.
        for l in self.lanes.iter_mut().filter(|l| !l.converged) {
            if l.max_pg - l.min_pg < tol {
                if !l.any_shrunk {
                    l.converged = true;
                    continue;
                }
                l.shrunk.fill(false);
                l.any_shrunk = false;
                l.pg_max_old = f32::INFINITY;
            } else {
                l.pg_max_old = if l.max_pg <= 0.0 {
                    f32::INFINITY
                } else {
                    l.max_pg
                };
            }
        }
    }
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
