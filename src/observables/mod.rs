//! Observables of φ⁴ Markov chains and their errors (SPEC §6).
//!
//! - Statistical errors that account for autocorrelation: Wolff's Γ-method ("Monte Carlo
//!   errors with less errors", Comput. Phys. Commun. 156 (2004) 143) for primary and derived
//!   quantities, and the jackknife over bins.
//! - Per-configuration measurements ([`Measurements`]): M, |M|, M², M⁴ and the zero-momentum
//!   slice correlator C̃(t).
//! - The chain analysis ([`summarize`]): ⟨M⟩, ⟨|M|⟩, χ2, G̃(t), every m_p(t), the headline and
//!   plateau m_p, L·m_p, ξ, the Binder cumulant and integrated autocorrelation times.
//!
//! Conventions: τ_int = ½ + Σ_{t≥1} ρ(t) (Wolff's), so uncorrelated data has τ_int = ½ and the
//! error of a mean is √(2 τ_int Var / N). Quantities that are undefined on the data (an
//! arccosh of an argument below 1, a derived function that returns NaN) are NaN, never a
//! panic; in JSON every non-finite number is written as `null` and read back as NaN.

use serde::{Deserialize, Serialize};

use crate::error::{check_finite, check_len, Error, Result};

/// Wolff's S_τ: the window W is the first one where the estimated systematic error of the
/// truncated sum, exp(−W/τ), falls below its statistical error, τ·√(W/N) / W.
pub const S_TAU: f64 = 1.5;

/// The fewest configurations [`summarize`] accepts.
pub const MIN_CONFIGURATIONS: usize = 10;

/// A mean (or a function of means) with its Γ-method error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The estimate: the sample mean, or f of the sample means.
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// Its statistical error, autocorrelations included.
    #[serde(with = "nan_as_null")]
    pub error: f64,
    /// The integrated autocorrelation time, τ_int = ½ + Σ_{t=1}^{W} ρ(t) (½ for independent data).
    #[serde(with = "nan_as_null")]
    pub tau_int: f64,
    /// The statistical error of τ_int, 2 τ_int √((W + ½ − τ_int)/N) (Wolff Eq. 42).
    #[serde(with = "nan_as_null")]
    pub tau_int_error: f64,
    /// The summation window W chosen automatically (0 when no autocorrelation was summed).
    pub window: usize,
}

/// A value with a jackknife error (no autocorrelation time: bins absorb it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JackknifeEstimate {
    /// f of the sample means (NaN where f is undefined).
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// The jackknife error over bins (NaN if f is undefined on some leave-one-bin-out sample).
    #[serde(with = "nan_as_null")]
    pub error: f64,
}

/// Serde adapter writing non-finite numbers as `null` (JSON has no NaN) and reading `null` as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

// ---------------------------------------------------------------------------------------------
// The Γ-method
// ---------------------------------------------------------------------------------------------

/// Checks a primary series: at least two points, all finite.
fn check_series(what: &str, series: &[f64]) -> Result<()> {
    if series.is_empty() {
        return Err(Error::invalid(format!("{what}: the series is empty")));
    }
    if series.len() < 2 {
        return Err(Error::invalid(format!("{what}: one data point; at least 2 are needed for an error")));
    }
    check_finite(what, series)
}

/// The sample mean and the deviations from it. An exactly constant series gets its value as
/// the mean and zero deviations (a summed mean can miss it by an ulp, which would turn into
/// spurious autocorrelation of rounding noise).
fn mean_and_deviations(series: &[f64]) -> (f64, Vec<f64>) {
    let first = series[0];
    if series.iter().all(|&a| a == first) {
        return (first, vec![0.0; series.len()]);
    }
    let mean = series.iter().sum::<f64>() / series.len() as f64;
    (mean, series.iter().map(|a| a - mean).collect())
}

/// In-place radix-2 complex FFT, X_k = Σ_j x_j exp(−2πi jk/n); n must be a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    debug_assert!(n.is_power_of_two() && im.len() == n);
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    // twiddles evaluated one by one (not by recurrence) to keep rounding at the ulp level
    let twiddles: Vec<(f64, f64)> = (0..n / 2)
        .map(|k| {
            let (s, c) = (-std::f64::consts::TAU * k as f64 / n as f64).sin_cos();
            (c, s)
        })
        .collect();
    let mut len = 2;
    while len <= n {
        let stride = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = twiddles[k * stride];
                let (a, b) = (start + k, start + k + len / 2);
                let xr = re[b] * wr - im[b] * wi;
                let xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

/// Γ(t) = 1/(N−t) Σ_{i=0}^{N−1−t} δ_i δ_{i+t} for t = 0..=t_max, through one FFT pair
/// (O(N log N), so a long window search never costs O(N²)).
fn autocovariance(dev: &[f64], t_max: usize) -> Vec<f64> {
    let n = dev.len();
    // zero padding to ≥ N + t_max: the circular correlation is then the linear one up to t_max
    let size = (n + t_max).next_power_of_two();
    let mut re = vec![0.0; size];
    let mut im = vec![0.0; size];
    re[..n].copy_from_slice(dev);
    fft(&mut re, &mut im);
    for (r, i) in re.iter_mut().zip(im.iter_mut()) {
        *r = *r * *r + *i * *i;
        *i = 0.0;
    }
    // |X|² is real and even, so the inverse transform is the forward one divided by the size
    fft(&mut re, &mut im);
    (0..=t_max).map(|t| re[t] / (size as f64 * (n - t) as f64)).collect()
}

/// Lags computed by direct sums before the Γ-method switches to the FFT.
const DIRECT_LAGS: usize = 48;

/// Γ(t) for t = 0..=t_max by direct sums.
fn autocovariance_direct(dev: &[f64], t_max: usize) -> Vec<f64> {
    let n = dev.len();
    (0..=t_max).map(|t| dev[..n - t].iter().zip(&dev[t..]).map(|(a, b)| a * b).sum::<f64>() / (n - t) as f64).collect()
}

/// Wolff's automatic windowing (§3.3): the first W ≥ 1 among the lags of `gamma` with
/// g(W) = exp(−W/τ) − τ/√(WN) < 0, where τ = S_τ / ln((2τ_int + 1)/(2τ_int − 1)) and
/// 2τ_int = 1 + 2 Σ_{t≤W} ρ(t) (τ → 0 once τ_int ≤ ½). `None` if no lag qualifies.
fn find_window(gamma: &[f64], n: usize) -> Option<usize> {
    let mut rho_sum = 0.0;
    for (w, &g) in gamma.iter().enumerate().skip(1) {
        rho_sum += g / gamma[0];
        let tau = if rho_sum <= 0.0 { f64::EPSILON } else { S_TAU / (1.0 / rho_sum).ln_1p() };
        let wf = w as f64;
        if (-wf / tau).exp() - tau / (wf * n as f64).sqrt() < 0.0 {
            return Some(w);
        }
    }
    None
}

/// Wolff's analysis of deviations δ_i (mean already subtracted): automatic window, bias
/// correction of Γ, error of the mean and τ_int with its error.
fn gamma_analysis(value: f64, dev: &[f64]) -> Estimate {
    let n = dev.len();
    let nf = n as f64;
    let w_max = n / 2;
    // short windows (the common case) from direct sums, O(N·W); the FFT only when the window
    // search runs past them
    let mut gamma = autocovariance_direct(dev, w_max.min(DIRECT_LAGS));
    let g0 = gamma[0];
    if g0 <= 0.0 {
        // constant data (or a derived quantity whose gradient vanishes)
        return Estimate { value, error: 0.0, tau_int: 0.5, tau_int_error: 0.0, window: 0 };
    }
    // no qualifying window at all (τ_int comparable to N): the largest, N/2
    let mut window = match find_window(&gamma, n) {
        Some(w) => w,
        None if gamma.len() <= w_max => {
            gamma = autocovariance(dev, w_max);
            find_window(&gamma, n).unwrap_or(w_max)
        }
        None => w_max,
    };
    let mut c_f = g0 + 2.0 * gamma[1..=window].iter().sum::<f64>();
    if c_f <= 0.0 {
        // strongly anti-correlated data: the windowed sum is not a variance; fall back to the
        // naive (conservative) estimate that ignores autocorrelation
        window = 0;
        c_f = g0;
    }
    // the estimated mean biases every Γ(t) by −C_F/N (Wolff Eq. 49); correct it
    let bias = c_f / nf;
    let g0 = g0 + bias;
    let c_f = c_f + bias * (2 * window + 1) as f64;
    let tau_int = c_f / (2.0 * g0);
    let tau_int_error = 2.0 * tau_int * ((window as f64 + 0.5 - tau_int).max(0.0) / nf).sqrt();
    Estimate { value, error: (c_f / nf).sqrt(), tau_int, tau_int_error, window }
}

/// The mean of a Markov-chain series with its error, by Wolff's Γ-method with automatic
/// windowing (S_τ = 1.5; W ≤ N/2) and bias correction of Γ. Γ(t) comes from direct sums for
/// short windows and from an FFT (O(N log N)) when the window search needs more lags.
///
/// Errors: an empty series, a single point, or non-finite data. A constant series has error 0
/// and τ_int = ½. Strongly anti-correlated data, where the windowed sum Γ(0) + 2 Σ Γ(t) is not
/// positive, falls back to the naive error √(Γ(0)/N) (window 0, τ_int = ½).
pub fn gamma_method(series: &[f64]) -> Result<Estimate> {
    check_series("gamma_method: series", series)?;
    let (mean, dev) = mean_and_deviations(series);
    Ok(gamma_analysis(mean, &dev))
}

/// Checks several primary series of one common length (at least 2, finite data).
fn check_primaries(what: &str, series: &[&[f64]]) -> Result<usize> {
    let first = series.first().ok_or_else(|| Error::invalid(format!("{what}: no series given")))?;
    for (k, s) in series.iter().enumerate() {
        check_len(&format!("{what}: series {k}"), s.len(), first.len())?;
        check_series(&format!("{what}: series {k}"), s)?;
    }
    Ok(first.len())
}

/// A derived quantity F = f(Ā_1, …, Ā_n) of the means of several primary series (equal length,
/// measured on the same configurations), by Wolff's Γ-method applied to the projected series
/// Σ_α ∂f/∂A_α (a_α,i − Ā_α). The gradient is a central difference at the means with steps
/// h_α = σ_α/(2√N), σ_α the standard deviation of series α (as in Wolff's UWerr).
///
/// `value` is f of the means. Where f or its gradient is not finite at the means, the estimate
/// is NaN (value, error and τ_int) rather than an error, so one undefined quantity does not
/// hide the others. Errors: no series, unequal lengths, fewer than 2 points, non-finite data.
pub fn gamma_method_derived(series: &[&[f64]], f: &dyn Fn(&[f64]) -> f64) -> Result<Estimate> {
    Ok(derived_with_gradient(series, f)?.0)
}

/// [`gamma_method_derived`] that also returns the gradient ∂f/∂A_α it used (NaN-filled
/// where the estimate is NaN).
pub(crate) fn derived_with_gradient(series: &[&[f64]], f: &dyn Fn(&[f64]) -> f64) -> Result<(Estimate, Vec<f64>)> {
    let n = check_primaries("gamma_method_derived", series)?;
    let nf = n as f64;
    let (means, devs): (Vec<f64>, Vec<Vec<f64>>) = series.iter().map(|s| mean_and_deviations(s)).unzip();
    let value = f(&means);
    let mut grad = vec![0.0; series.len()];
    let mut shifted = means.clone();
    for (alpha, dev) in devs.iter().enumerate() {
        let h = (dev.iter().map(|d| d * d).sum::<f64>() / nf).sqrt() / (2.0 * nf.sqrt());
        if h > 0.0 {
            shifted[alpha] = means[alpha] + h;
            let up = f(&shifted);
            shifted[alpha] = means[alpha] - h;
            let down = f(&shifted);
            shifted[alpha] = means[alpha];
            grad[alpha] = (up - down) / (2.0 * h);
        }
    }
    if !value.is_finite() || grad.iter().any(|g| !g.is_finite()) {
        let nan = f64::NAN;
        return Ok((Estimate { value: nan, error: nan, tau_int: nan, tau_int_error: nan, window: 0 }, grad));
    }
    let projected: Vec<f64> =
        (0..n).map(|i| grad.iter().zip(&devs).map(|(g, dev)| if *g == 0.0 { 0.0 } else { g * dev[i] }).sum()).collect();
    Ok((gamma_analysis(value, &projected), grad))
}

// ---------------------------------------------------------------------------------------------
// Jackknife
// ---------------------------------------------------------------------------------------------

/// Jackknife over bins for a function with several outputs: `f(means, out)` fills `out`
/// (length `n_out`). Returns (f of the means, jackknife error) per output.
fn jackknife_multi(
    what: &str,
    series: &[&[f64]],
    bin_size: usize,
    n_out: usize,
    f: &dyn Fn(&[f64], &mut [f64]),
) -> Result<Vec<JackknifeEstimate>> {
    let n = check_primaries(what, series)?;
    if bin_size == 0 {
        return Err(Error::invalid(format!("{what}: bin size 0; it must be at least 1")));
    }
    let n_bins = n / bin_size;
    if n_bins < 2 {
        return Err(Error::invalid(format!(
            "{what}: {n} points in bins of {bin_size} make {n_bins} bin(s); at least 2 are needed"
        )));
    }
    // bins cover the first n_bins·bin_size points; a remainder at the end is left out
    let bin_sums: Vec<Vec<f64>> = series
        .iter()
        .map(|s| s[..n_bins * bin_size].chunks_exact(bin_size).map(|c| c.iter().sum()).collect())
        .collect();
    let totals: Vec<f64> = bin_sums.iter().map(|b| b.iter().sum()).collect();
    let used = (n_bins * bin_size) as f64;
    let means: Vec<f64> = totals.iter().map(|t| t / used).collect();
    let mut value = vec![0.0; n_out];
    f(&means, &mut value);

    let left_out = ((n_bins - 1) * bin_size) as f64;
    let mut loo_means = vec![0.0; series.len()];
    let mut out = vec![0.0; n_out];
    let mut samples = vec![0.0; n_bins * n_out];
    for k in 0..n_bins {
        for (m, (t, b)) in loo_means.iter_mut().zip(totals.iter().zip(&bin_sums)) {
            *m = (t - b[k]) / left_out;
        }
        f(&loo_means, &mut out);
        samples[k * n_out..(k + 1) * n_out].copy_from_slice(&out);
    }
    let nb = n_bins as f64;
    Ok((0..n_out)
        .map(|j| {
            let mean = (0..n_bins).map(|k| samples[k * n_out + j]).sum::<f64>() / nb;
            let ss = (0..n_bins).map(|k| (samples[k * n_out + j] - mean).powi(2)).sum::<f64>();
            JackknifeEstimate { value: value[j], error: ((nb - 1.0) / nb * ss).sqrt() }
        })
        .collect())
}

/// f of the means of several primary series (equal length) with its jackknife error over bins
/// of `bin_size` consecutive points: (f(means), √((n−1)/n Σ_k (f_k − f̄)²)) with f_k computed
/// leaving bin k out. A remainder of fewer than `bin_size` points at the end is left out.
///
/// Errors: no series, unequal lengths, non-finite data, bin size 0, fewer than 2 bins.
/// If f is NaN on some leave-one-bin-out sample the error is NaN.
pub fn jackknife_binned(series: &[&[f64]], bin_size: usize, f: &dyn Fn(&[f64]) -> f64) -> Result<(f64, f64)> {
    let r = jackknife_multi("jackknife_binned", series, bin_size, 1, &|m, out| out[0] = f(m))?;
    Ok((r[0].value, r[0].error))
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------
pub(crate) mod measurements;
mod summary;

pub use measurements::Measurements;
pub use summary::{effective_mass, summarize, undefined_t, ChainSummary};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;
    use crate::rng::{Rng, Stream};

    pub(super) fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut x = vec![0.0; n];
        Rng::new(seed, Stream::Sample, 0).fill_normal(&mut x);
        x
    }

    /// Stationary AR(1): x_{t+1} = a x_t + √(1 − a²) ε_t, x_0 ~ N(0, 1).
    fn ar1(n: usize, a: f64, seed: u64) -> Vec<f64> {
        let eps = normals(n, seed);
        let c = (1.0 - a * a).sqrt();
        let mut x = Vec::with_capacity(n);
        let mut prev = eps[0];
        x.push(prev);
        for e in &eps[1..] {
            prev = a * prev + c * e;
            x.push(prev);
        }
        x
    }

    /// Exact variance of the mean of N points of a unit-variance stationary AR(1).
    fn ar1_var_of_mean(n: usize, a: f64) -> f64 {
        let nf = n as f64;
        (1.0 + a) / ((1.0 - a) * nf) - 2.0 * a * (1.0 - a.powi(n as i32)) / (nf * nf * (1.0 - a).powi(2))
    }

    #[test]
    fn fft_autocovariance_matches_direct_sums() {
        for n in [2, 3, 7, 64, 1000, 1023] {
            let x = ar1(n, 0.7, n as u64);
            let (_, dev) = mean_and_deviations(&x);
            let fast = autocovariance(&dev, n / 2);
            for (t, g) in fast.iter().enumerate() {
                let direct = (0..n - t).map(|i| dev[i] * dev[i + t]).sum::<f64>() / (n - t) as f64;
                assert!((g - direct).abs() < 1e-13 * fast[0].max(1.0), "n={n} t={t}: {g} vs {direct}");
            }
        }
    }

    #[test]
    fn direct_and_fft_windowing_agree() {
        // AR(1) with τ_int = 9.5 needs W > DIRECT_LAGS, so the FFT path runs; the direct sums
        // over all lags must give the same estimate
        let x = ar1(20_000, 0.9, 6);
        let (mean, dev) = mean_and_deviations(&x);
        let e = gamma_analysis(mean, &dev);
        assert!(e.window > DIRECT_LAGS, "W = {}", e.window);
        let gamma = autocovariance_direct(&dev, dev.len() / 2);
        assert_eq!(find_window(&gamma, dev.len()), Some(e.window));
        let c_f = gamma[0] + 2.0 * gamma[1..=e.window].iter().sum::<f64>();
        let c_f = c_f * (1.0 + (2 * e.window + 1) as f64 / dev.len() as f64);
        assert!(((c_f / dev.len() as f64).sqrt() / e.error - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ar1_tau_int_and_error_are_recovered() {
        let a = 0.9;
        let exact_tau = (1.0 + a) / (2.0 * (1.0 - a)); // 9.5
        let n = 200_000;
        let x = ar1(n, a, 11);
        let e = gamma_method(&x).unwrap();
        let exact_err = ar1_var_of_mean(n, a).sqrt();
        println!(
            "AR(1) a=0.9 N={n}: mean {:.5} ± {:.5} (exact error {:.5}), tau_int {:.3} ± {:.3} (exact {exact_tau}), W = {}",
            e.value, e.error, exact_err, e.tau_int, e.tau_int_error, e.window
        );
        assert!((e.tau_int - exact_tau).abs() < 3.0 * e.tau_int_error);
        assert!(e.tau_int_error > 0.05 && e.tau_int_error < 1.0);
        assert!((e.error / exact_err - 1.0).abs() < 0.2);
        assert!(e.value.abs() < 4.0 * exact_err);
        // the window sits at a few τ, as S_τ = 1.5 makes it
        assert!(e.window > 20 && e.window < 150, "W = {}", e.window);
    }

    #[test]
    fn ar1_errors_are_calibrated_across_replicas() {
        // the scatter of independent means must match the reported error (bias correction included)
        let (a, n, reps) = (0.8, 2000, 400);
        let mut means = Vec::new();
        let mut errs = Vec::new();
        for r in 0..reps {
            let e = gamma_method(&ar1(n, a, 1000 + r)).unwrap();
            means.push(e.value);
            errs.push(e.error);
        }
        let mbar = means.iter().sum::<f64>() / reps as f64;
        let scatter = (means.iter().map(|m| (m - mbar).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
        let mean_err = errs.iter().sum::<f64>() / reps as f64;
        let exact = ar1_var_of_mean(n, a).sqrt();
        println!("AR(1) a=0.8 replicas: scatter {scatter:.5}, mean reported error {mean_err:.5}, exact {exact:.5}");
        // the scatter of 400 replicas has a relative error of 1/√800 ≈ 3.5 %
        assert!((scatter / exact - 1.0).abs() < 0.12);
        assert!((mean_err / exact - 1.0).abs() < 0.08);
    }

    #[test]
    fn independent_data_has_tau_one_half() {
        let n = 100_000;
        let x = normals(n, 5);
        let e = gamma_method(&x).unwrap();
        let mean = x.iter().sum::<f64>() / n as f64;
        let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        println!(
            "iid: tau_int {:.4} ± {:.4}, W = {}, error {:.6} vs naive {:.6}",
            e.tau_int,
            e.tau_int_error,
            e.window,
            e.error,
            sd / (n as f64).sqrt()
        );
        assert!((e.tau_int - 0.5).abs() < 3.0 * e.tau_int_error.max(1e-3));
        assert!((e.error / (sd / (n as f64).sqrt()) - 1.0).abs() < 0.03);
        assert!((e.value - mean).abs() < 1e-15);
        // error = √(2 τ_int Var / N) by construction of the convention
        let var_c = e.error * e.error * n as f64 / (2.0 * e.tau_int);
        assert!((var_c / (sd * sd) - 1.0).abs() < 1e-3);
    }

    #[test]
    fn constant_and_pathological_series() {
        for c in [0.0, 0.1, -3.7e5] {
            let e = gamma_method(&vec![c; 1001]).unwrap();
            assert_eq!((e.value, e.error, e.tau_int, e.tau_int_error), (c, 0.0, 0.5, 0.0));
            let d = gamma_method_derived(&[&vec![c; 50], &vec![2.0; 50]], &|a| a[0] * a[1] + 1.0).unwrap();
            assert_eq!((d.value, d.error, d.tau_int), (2.0 * c + 1.0, 0.0, 0.5));
        }
        // alternating data: Γ(0) + 2Γ(1) < 0, the naive error is used, no NaN
        let alt: Vec<f64> = (0..100).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let e = gamma_method(&alt).unwrap();
        assert!(e.error.is_finite() && e.tau_int.is_finite());
        assert!((e.error - (1.0f64 / 100.0).sqrt()).abs() < 0.02, "{e:?}");
        let two = gamma_method(&[1.0, 2.0]).unwrap();
        assert!(two.error.is_finite() && two.value == 1.5);
    }

    #[test]
    fn invalid_series_give_typed_errors() {
        let e = gamma_method(&[]).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert!(e.message.contains("empty"));
        assert_eq!(gamma_method(&[1.0]).unwrap_err().status, Status::InvalidArgument);
        let e = gamma_method(&[1.0, f64::NAN, 2.0]).unwrap_err();
        assert!(e.message.contains("entry 1"), "{}", e.message);
        assert!(gamma_method(&[1.0, f64::INFINITY]).is_err());
        let f = |a: &[f64]| a[0];
        assert_eq!(gamma_method_derived(&[&[1.0, 2.0], &[1.0]], &f).unwrap_err().status, Status::BadLength);
        assert!(gamma_method_derived(&[], &f).is_err());
        assert!(jackknife_binned(&[&[1.0, 2.0, 3.0]], 0, &f).is_err());
        assert!(jackknife_binned(&[&[1.0, 2.0, 3.0]], 2, &f).is_err()); // one bin
        assert!(jackknife_binned(&[&[1.0, 2.0, 3.0]], 1, &f).is_ok());
    }

    #[test]
    fn derived_quantities_match_the_delta_method() {
        // f = Ā²: the error is |2Ā| times the error of the mean, with the same τ_int
        let x: Vec<f64> = ar1(50_000, 0.5, 3).iter().map(|v| 3.0 + v).collect();
        let e = gamma_method(&x).unwrap();
        let d = gamma_method_derived(&[&x], &|a| a[0] * a[0]).unwrap();
        println!(
            "f = mean^2: {:.6} ± {:.6} (delta method {:.6}), tau {:.3}",
            d.value,
            d.error,
            2.0 * e.value * e.error,
            d.tau_int
        );
        assert!((d.value - e.value * e.value).abs() < 1e-12);
        assert!((d.error / (2.0 * e.value.abs() * e.error) - 1.0).abs() < 1e-6);
        assert!((d.tau_int - e.tau_int).abs() < 1e-6);
        // a ratio of two correlated series against the projection with the analytic gradient
        let y: Vec<f64> = ar1(50_000, 0.6, 4).iter().zip(&x).map(|(v, u)| 2.0 + 0.5 * v + 0.3 * u).collect();
        let d = gamma_method_derived(&[&x, &y], &|a| a[0] / a[1]).unwrap();
        let (mx, my) = (x.iter().sum::<f64>() / x.len() as f64, y.iter().sum::<f64>() / y.len() as f64);
        let proj: Vec<f64> = x.iter().zip(&y).map(|(u, v)| (u - mx) / my - mx / (my * my) * (v - my)).collect();
        let p = gamma_method(&proj).unwrap();
        assert!((d.value - mx / my).abs() < 1e-14);
        assert!((d.error / p.error - 1.0).abs() < 1e-6, "{} vs {}", d.error, p.error);
        assert!((d.tau_int - p.tau_int).abs() < 1e-5);
        // undefined at the means: NaN, not an error
        let u = gamma_method_derived(&[&x], &|a| (a[0] - 10.0).sqrt()).unwrap();
        assert!(u.value.is_nan() && u.error.is_nan());
    }

    #[test]
    fn jackknife_matches_exact_identities_and_gamma_method() {
        let x = normals(10_000, 8);
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        // for a linear f and bins of 1 the jackknife error is exactly the naive one
        let (v, err) = jackknife_binned(&[&x], 1, &|a| a[0]).unwrap();
        assert!((v - mean).abs() < 1e-15 && (err / (sd / n.sqrt()) - 1.0).abs() < 1e-10);
        // f = Ā² + 1 agrees with the delta method to O(1/N)
        let y: Vec<f64> = x.iter().map(|v| v + 2.0).collect();
        let (v, err) = jackknife_binned(&[&y], 1, &|a| a[0] * a[0] + 1.0).unwrap();
        assert!((v - ((mean + 2.0).powi(2) + 1.0)).abs() < 1e-12);
        assert!((err / (2.0 * (mean + 2.0) * sd / n.sqrt()) - 1.0).abs() < 1e-3);
        // binned jackknife of a correlated series: bins ≫ τ give the exact error within 15 %
        let z = ar1(200_000, 0.9, 12);
        let (_, err) = jackknife_binned(&[&z], 200, &|a| a[0]).unwrap();
        let exact = ar1_var_of_mean(200_000, 0.9).sqrt();
        println!("binned jackknife AR(1): {err:.5} vs exact {exact:.5}");
        assert!((err / exact - 1.0).abs() < 0.15);
        // the remainder is left out: 7 points in bins of 3 use the first 6
        let (v, _) = jackknife_binned(&[&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0]], 3, &|a| a[0]).unwrap();
        assert_eq!(v, 3.5);
    }
}
