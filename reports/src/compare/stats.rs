//! The tests that tell a real change from run-to-run noise.
//!
//! Each test answers, one-sided and in both directions, "does the new run
//! tend to be greater (or less) than the base?" as a p-value: how often
//! noise alone would move the figure at least this far. `compare` asks
//! only the question in the direction the figure moved, so each verdict
//! is one one-sided test at the chosen α.
//!
//! - [`mann_whitney`] for figures with a value per time window (latency
//!   percentiles, throughput, error rate, settle time) or per sample (lag);
//! - [`poisson`] for single counts (breaker opens, saga compensations);
//! - [`two_proportions`] for a rate out of a known number of trials (the
//!   dead-letter rate).
//!
//! The normal approximation is used throughout: it is deterministic (the
//! same two reports always get the same verdict, which a CI gate needs)
//! and accurate at the sample sizes runs give (tens of windows, counts in
//! the tens or more); the floors in `figures.rs` keep the small counts
//! where it is poor from deciding anything.

/// A one-sided test in both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneSided {
    /// The standardised difference, positive when the new run is greater
    /// (before any continuity correction; 0 when there is no spread).
    pub z: f64,
    /// The p-value against "the new run tends to be greater".
    pub p_greater: f64,
    /// The p-value against "the new run tends to be less".
    pub p_less: f64,
}

impl OneSided {
    /// No evidence either way (no spread to measure against).
    const NOTHING: OneSided = OneSided {
        z: 0.0,
        p_greater: 1.0,
        p_less: 1.0,
    };
}

/// A Mann–Whitney U test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the new sample: how many (base, new) pairs have the new value
    /// greater, ties counting a half.
    pub u: f64,
    /// U's mean and standard deviation if neither run tended higher
    /// (the deviation corrected for ties).
    pub mean: f64,
    pub sd: f64,
    pub test: OneSided,
}

/// The Mann–Whitney U test (Wilcoxon rank-sum) of `new` against `base`,
/// with the normal approximation, the tie correction and a continuity
/// correction of ½. Non-finite values are left out; `None` when either
/// side has no values left.
///
/// Why a rank test over the 1 s windows, rather than a t-test or a
/// bootstrap:
///
/// - window percentiles are skewed and heavy-tailed: a window in which a
///   fault is in force has a p99 ten times the others', so the windows'
///   mean and variance are dominated by a few values and a t-test's
///   normality assumption fails (one fault window more or less swings its
///   verdict). Ranks only ask which values are larger, so a window 10× the
///   rest weighs the same as one 1.1× the rest;
/// - it is deterministic, unlike a bootstrap or a permutation test by
///   sampling: a CI job re-judging the same two reports gets the same
///   verdict;
/// - error rates are 0 in most windows; the tie correction keeps the
///   variance right when most values are equal.
///
/// Its assumption that windows are independent does not hold (a slow
/// second is followed by another; a fault spans several), which makes it
/// over-confident. `compare` therefore also requires the change to exceed
/// a relative threshold and an absolute floor before calling it a
/// regression: the test guards against noise the threshold lets through,
/// the threshold against the autocorrelation the test ignores.
pub fn mann_whitney(base: &[f64], new: &[f64]) -> Option<MannWhitney> {
    let mut all: Vec<(f64, bool)> = base
        .iter()
        .map(|v| (*v, false))
        .chain(new.iter().map(|v| (*v, true)))
        .filter(|(v, _)| v.is_finite())
        .collect();
    let n_new = all.iter().filter(|(_, is_new)| *is_new).count();
    let n_base = all.len() - n_new;
    if n_base == 0 || n_new == 0 {
        return None;
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Ranks 1..=n, tied values sharing the mean of the ranks they span.
    let mut rank_sum_new = 0.0;
    let mut ties = 0.0; // Σ (t³ − t) over groups of t tied values
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + 1 + j) as f64 / 2.0;
        let in_new = all[i..j].iter().filter(|(_, is_new)| *is_new).count();
        rank_sum_new += rank * in_new as f64;
        let t = (j - i) as f64;
        ties += t * t * t - t;
        i = j;
    }

    let (n1, n2, n) = (n_base as f64, n_new as f64, all.len() as f64);
    let u = rank_sum_new - n2 * (n2 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = if n > 1.0 {
        n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))
    } else {
        0.0
    };
    let sd = var.max(0.0).sqrt();
    let test = if sd > 0.0 {
        OneSided {
            z: (u - mean) / sd,
            p_greater: normal_sf((u - mean - 0.5) / sd),
            p_less: normal_cdf((u - mean + 0.5) / sd),
        }
    } else {
        // Every value equal: nothing to tell the runs apart by.
        OneSided::NOTHING
    };
    Some(MannWhitney { u, mean, sd, test })
}

/// Two counts of events over the same exposure (the same scenario, so the
/// same load for the same time): are they from the same Poisson rate?
///
/// Given the total `base + new`, equal rates make `new` binomial with
/// p = ½; its normal approximation is `z = (new − base) / √(new + base)`.
/// No continuity correction: the count floor (a difference of 2 or less
/// never counts) already keeps the smallest counts from deciding.
pub fn poisson(base: u64, new: u64) -> OneSided {
    let total = (base + new) as f64;
    if total == 0.0 {
        return OneSided::NOTHING;
    }
    let z = (new as f64 - base as f64) / total.sqrt();
    OneSided {
        z,
        p_greater: normal_sf(z),
        p_less: normal_cdf(z),
    }
}

/// The two-proportion z-test with the pooled proportion: `hits` out of
/// `trials` in each run. `None` when either run had no trials.
///
/// Dead-lettered deliveries are not quite independent trials (one poison
/// event is dead-lettered by every group reading its topic), which makes
/// the test somewhat over-confident; the rate floor and the threshold
/// absorb that.
pub fn two_proportions(
    base_hits: u64,
    base_trials: u64,
    new_hits: u64,
    new_trials: u64,
) -> Option<OneSided> {
    if base_trials == 0 || new_trials == 0 {
        return None;
    }
    let (h1, n1) = (base_hits.min(base_trials) as f64, base_trials as f64);
    let (h2, n2) = (new_hits.min(new_trials) as f64, new_trials as f64);
    let pooled = (h1 + h2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        // Both runs all hits or all misses: the same proportion.
        return Some(OneSided::NOTHING);
    }
    let z = (h2 / n2 - h1 / n1) / se;
    Some(OneSided {
        z,
        p_greater: normal_sf(z),
        p_less: normal_cdf(z),
    })
}

/// P(Z ≤ z) for a standard normal Z.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// P(Z > z) for a standard normal Z, accurate far into the tail (it is
/// not computed as 1 − cdf, which would round tiny p-values to 0).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, with a fractional error below
/// 1.2 × 10⁻⁷ everywhere (the Chebyshev fit in Numerical Recipes, §6.2).
/// Written out because it is the only special function needed here, and
/// its accuracy is far beyond what deciding "p < α" asks for.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The interquartile range of `v` (linear interpolation between order
/// statistics, as R's default and numpy's); 0 for fewer than two values.
pub fn iqr(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let h = (s.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        s[lo] + (s[hi] - s[lo]) * (h - h.floor())
    };
    if s.len() < 2 {
        return 0.0;
    }
    q(0.75) - q(0.25)
}
