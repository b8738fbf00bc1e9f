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
use crate::lattice::Lattice;

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
        return Ok(Estimate { value: nan, error: nan, tau_int: nan, tau_int_error: nan, window: 0 });
    }
    let projected: Vec<f64> =
        (0..n).map(|i| grad.iter().zip(&devs).map(|(g, dev)| if *g == 0.0 { 0.0 } else { g * dev[i] }).sum()).collect();
    Ok(gamma_analysis(value, &projected))
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

/// Per-configuration measurements of a sequence of fields on an L × L lattice (SPEC §6):
/// M = (1/V) Σ_x φ_x, |M|, M², M⁴, and the zero-momentum slice correlator
///
///   C̃(t) = (1/L) Σ_{x0} (1/V) Σ_y φ_y φ_{y+(x0,t)},  averaged over both axes,
///
/// so that G̃(t) = ⟨C̃(t)⟩ − ⟨M⟩² and L Σ_{t<L} C̃(t) = V M². It is computed from row and
/// column sums, C̃(t) = (1/(L V)) Σ_j S_j S_{j+t}, in O(V + L²) per field. Since C̃(t) = C̃(L − t)
/// exactly, only t = 0..=⌊L/2⌋ is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurements {
    lattice: Lattice,
    m: Vec<f64>,
    abs_m: Vec<f64>,
    m2: Vec<f64>,
    m4: Vec<f64>,
    /// ctilde[t][i]: C̃(t) of configuration i, t = 0..=⌊L/2⌋.
    ctilde: Vec<Vec<f64>>,
}

impl Measurements {
    /// No measurements yet, for an L × L lattice (L ≥ 2).
    pub fn new(l: usize) -> Result<Self> {
        let lattice = Lattice::new(l)?;
        Ok(Measurements {
            lattice,
            m: Vec::new(),
            abs_m: Vec::new(),
            m2: Vec::new(),
            m4: Vec::new(),
            ctilde: vec![Vec::new(); l / 2 + 1],
        })
    }

    /// Measures one field (length V, x1 fastest, finite entries) and appends the results.
    pub fn push(&mut self, phi: &[f64]) -> Result<()> {
        check_len("Measurements::push: phi", phi.len(), self.lattice.volume())?;
        check_finite("Measurements::push: phi", phi)?;
        self.measure(phi);
        Ok(())
    }

    /// Measures a batch of fields stored one after another (length n·V); nothing is appended
    /// unless the whole batch is valid.
    pub fn push_batch(&mut self, phi: &[f64]) -> Result<()> {
        let v = self.lattice.volume();
        if phi.len() % v != 0 {
            return Err(Error::length("Measurements::push_batch: phi", phi.len(), (phi.len() / v + 1) * v));
        }
        check_finite("Measurements::push_batch: phi", phi)?;
        for field in phi.chunks_exact(v) {
            self.measure(field);
        }
        Ok(())
    }

    fn measure(&mut self, phi: &[f64]) {
        let l = self.lattice.size();
        let v = self.lattice.volume();
        let mut rows = vec![0.0; l]; // R_{x0} = Σ_{x1} φ(x0, x1)
        let mut cols = vec![0.0; l]; // S_{x1} = Σ_{x0} φ(x0, x1)
        for (x0, row) in phi.chunks_exact(l).enumerate() {
            for (x1, &p) in row.iter().enumerate() {
                rows[x0] += p;
                cols[x1] += p;
            }
        }
        let m = rows.iter().sum::<f64>() / v as f64;
        let norm = 1.0 / (2.0 * (l * v) as f64);
        for (t, series) in self.ctilde.iter_mut().enumerate() {
            let mut c = 0.0;
            for j in 0..l {
                let k = (j + t) % l;
                c += rows[j] * rows[k] + cols[j] * cols[k];
            }
            series.push(c * norm);
        }
        let m2 = m * m;
        self.m.push(m);
        self.abs_m.push(m.abs());
        self.m2.push(m2);
        self.m4.push(m2 * m2);
    }

    /// The lattice size L.
    pub fn l(&self) -> usize {
        self.lattice.size()
    }
    /// The number of configurations measured.
    pub fn len(&self) -> usize {
        self.m.len()
    }
    /// Whether no configuration has been measured.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }
    /// The series of M = (1/V) Σ_x φ_x.
    pub fn m(&self) -> &[f64] {
        &self.m
    }
    /// The series of |M|.
    pub fn abs_m(&self) -> &[f64] {
        &self.abs_m
    }
    /// The series of M².
    pub fn m2(&self) -> &[f64] {
        &self.m2
    }
    /// The series of M⁴.
    pub fn m4(&self) -> &[f64] {
        &self.m4
    }
    /// The series of C̃(t) for any t (taken mod L; C̃(t) = C̃(L − t)).
    pub fn ctilde(&self, t: usize) -> &[f64] {
        let l = self.lattice.size();
        let t = t % l;
        &self.ctilde[t.min(l - t)]
    }
}

// ---------------------------------------------------------------------------------------------
// Chain analysis
// ---------------------------------------------------------------------------------------------

/// The analysis of a chain (SPEC §6), JSON-serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainSummary {
    /// The lattice size L.
    pub l: usize,
    /// The number of configurations.
    pub n: usize,
    /// ⟨M⟩.
    pub m: Estimate,
    /// ⟨|M|⟩.
    pub abs_m: Estimate,
    /// χ2 = V (⟨M²⟩ − ⟨M⟩²), the connected susceptibility.
    pub chi2: Estimate,
    /// G̃(t) = ⟨C̃(t)⟩ − ⟨M⟩² for t = 0..=⌊L/2⌋ (index = t).
    pub g: Vec<Estimate>,
    /// m_p(t) = arccosh[(G̃(t−1) + G̃(t+1)) / (2 G̃(t))] for t = 1..=⌊L/2⌋ (index = t − 1),
    /// with G̃(L/2 + s) = G̃(L/2 − s); NaN where the argument is below 1 or a G̃ is not positive.
    pub m_p_t: Vec<JackknifeEstimate>,
    /// The headline m_p: the mean of m_p(t) over t = 1..=⌊L/2⌋ (NaN if any m_p(t) is).
    pub m_p: JackknifeEstimate,
    /// The plateau m_p: the mean of m_p(t) over t = `plateau_start`..=⌊L/2⌋.
    pub m_p_plateau: JackknifeEstimate,
    /// The first t of the plateau, max(1, round(L/6)).
    pub plateau_start: usize,
    /// L · m_p (headline).
    pub l_m_p: JackknifeEstimate,
    /// ξ = 1/m_p (headline).
    pub xi: JackknifeEstimate,
    /// The Binder cumulant U = 1 − ⟨M⁴⟩ / (3 ⟨M²⟩²).
    pub binder: Estimate,
    /// τ_int of |M| (the same as `abs_m.tau_int`).
    #[serde(with = "nan_as_null")]
    pub tau_int_abs_m: f64,
    /// τ_int of χ2 as a derived quantity (the same as `chi2.tau_int`).
    #[serde(with = "nan_as_null")]
    pub tau_int_chi2: f64,
    /// The jackknife bin size used for the m_p family.
    pub bin_size: usize,
    /// The number of jackknife bins.
    pub n_bins: usize,
}

/// G̃ at any t from its values at t = 0..=⌊L/2⌋, by periodicity and reflection.
fn g_periodic(g: &[f64], l: usize, t: usize) -> f64 {
    let t = t % l;
    g[t.min(l - t)]
}

/// m_p(t) = arccosh[(G̃(t−1) + G̃(t+1)) / (2 G̃(t))] for 1 ≤ t ≤ ⌊L/2⌋, `g` holding
/// G̃(0..=⌊L/2⌋) (at least ⌊L/2⌋ + 1 values; G̃ beyond L/2 by reflection).
/// NaN if the argument is below 1, one of the three G̃ is not positive, or t is out of range.
pub fn effective_mass(g: &[f64], l: usize, t: usize) -> f64 {
    if t == 0 || t > l / 2 || g.len() <= l / 2 {
        return f64::NAN;
    }
    let (gm, g0, gp) = (g_periodic(g, l, t - 1), g_periodic(g, l, t), g_periodic(g, l, t + 1));
    if !(gm > 0.0 && g0 > 0.0 && gp > 0.0) {
        return f64::NAN;
    }
    let arg = (gm + gp) / (2.0 * g0);
    if arg >= 1.0 {
        arg.acosh()
    } else {
        f64::NAN
    }
}

/// The jackknife bin size for a chain of n configurations whose |M| has τ_int: at least
/// 4 τ_int (bins then nearly independent), reduced so that there are at least 20 bins when
/// n allows it.
fn bin_size_for(n: usize, tau_int: f64) -> usize {
    let b = if tau_int.is_finite() { (4.0 * tau_int).ceil().max(1.0) as usize } else { 1 };
    if n / b < 20 {
        (n / 20).max(1)
    } else {
        b
    }
}

/// The analysis of a chain of measured configurations (SPEC §6): Γ-method estimates of ⟨M⟩,
/// ⟨|M|⟩, χ2, G̃(t) and the Binder cumulant, and binned-jackknife estimates of m_p(t), the
/// headline and plateau m_p, L·m_p and ξ (bins of max(1, ⌈4 τ_int(|M|)⌉) configurations, fewer
/// if that leaves fewer than 20 bins).
///
/// Errors: fewer than [`MIN_CONFIGURATIONS`] configurations.
pub fn summarize(m: &Measurements) -> Result<ChainSummary> {
    let n = m.len();
    if n < MIN_CONFIGURATIONS {
        return Err(Error::invalid(format!(
            "summarize: {n} configurations measured; at least {MIN_CONFIGURATIONS} are needed for errors"
        )));
    }
    let l = m.l();
    let v = (l * l) as f64;
    let half = l / 2;

    let mag = gamma_method(m.m())?;
    let abs_m = gamma_method(m.abs_m())?;
    let chi2 = gamma_method_derived(&[m.m(), m.m2()], &|a| v * (a[1] - a[0] * a[0]))?;
    let g = (0..=half)
        .map(|t| gamma_method_derived(&[m.m(), m.ctilde(t)], &|a| a[1] - a[0] * a[0]))
        .collect::<Result<Vec<_>>>()?;
    let binder = gamma_method_derived(&[m.m2(), m.m4()], &|a| 1.0 - a[1] / (3.0 * a[0] * a[0]))?;

    // the m_p family from one jackknife over [M, C̃(0), …, C̃(⌊L/2⌋)]
    let plateau_start = ((l as f64 / 6.0).round() as usize).clamp(1, half);
    let mut series: Vec<&[f64]> = vec![m.m()];
    series.extend((0..=half).map(|t| m.ctilde(t)));
    let bin_size = bin_size_for(n, abs_m.tau_int);
    let n_out = half + 4;
    let mp_family = |a: &[f64], out: &mut [f64]| {
        let g: Vec<f64> = a[1..].iter().map(|c| c - a[0] * a[0]).collect();
        for t in 1..=half {
            out[t - 1] = effective_mass(&g, l, t);
        }
        let headline = out[..half].iter().sum::<f64>() / half as f64;
        let plateau = out[plateau_start - 1..half].iter().sum::<f64>() / (half + 1 - plateau_start) as f64;
        out[half] = headline;
        out[half + 1] = plateau;
        out[half + 2] = l as f64 * headline;
        out[half + 3] = 1.0 / headline;
    };
    let jk = jackknife_multi("summarize", &series, bin_size, n_out, &mp_family)?;

    Ok(ChainSummary {
        l,
        n,
        tau_int_abs_m: abs_m.tau_int,
        tau_int_chi2: chi2.tau_int,
        m: mag,
        abs_m,
        chi2,
        g,
        m_p_t: jk[..half].to_vec(),
        m_p: jk[half],
        m_p_plateau: jk[half + 1],
        plateau_start,
        l_m_p: jk[half + 2],
        xi: jk[half + 3],
        binder,
        bin_size,
        n_bins: n / bin_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;
    use crate::rng::{Rng, Stream};

    fn normals(n: usize, seed: u64) -> Vec<f64> {
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

    /// C̃(t) by the O(V²) double sum of its definition, averaged over both axes.
    fn ctilde_direct(phi: &[f64], l: usize, t: usize) -> f64 {
        let v = l * l;
        let mut c = 0.0;
        for x0 in 0..l {
            for y0 in 0..l {
                for y1 in 0..l {
                    let y = phi[y0 * l + y1];
                    // displacement (x0, t) and, for the other axis, (t, x0)
                    c += y * phi[((y0 + x0) % l) * l + (y1 + t) % l];
                    c += y * phi[((y0 + t) % l) * l + (y1 + x0) % l];
                }
            }
        }
        c / (2.0 * (l * v) as f64)
    }

    #[test]
    fn measurements_match_direct_sums() {
        for l in [2, 4, 5] {
            let v = l * l;
            let phis: Vec<f64> = normals(3 * v, l as u64).iter().map(|p| p + 0.3).collect();
            let mut meas = Measurements::new(l).unwrap();
            meas.push(&phis[..v]).unwrap();
            meas.push_batch(&phis[v..]).unwrap();
            assert_eq!(meas.len(), 3);
            for (i, phi) in phis.chunks(v).enumerate() {
                let m = phi.iter().sum::<f64>() / v as f64;
                assert!((meas.m()[i] - m).abs() < 1e-14);
                assert!((meas.abs_m()[i] - m.abs()).abs() < 1e-14);
                assert!((meas.m2()[i] - m * m).abs() < 1e-14);
                assert!((meas.m4()[i] - m.powi(4)).abs() < 1e-14);
                let mut sum_t = 0.0;
                for t in 0..l {
                    let direct = ctilde_direct(phi, l, t);
                    assert!((meas.ctilde(t)[i] - direct).abs() < 1e-12, "L={l} t={t}");
                    assert_eq!(meas.ctilde(t + l)[i], meas.ctilde(t)[i]);
                    sum_t += meas.ctilde(t)[i];
                }
                // L Σ_t C̃(t) = V M²
                assert!((l as f64 * sum_t - v as f64 * m * m).abs() < 1e-12);
            }
        }
        let mut meas = Measurements::new(3).unwrap();
        assert_eq!(meas.push(&[0.0; 8]).unwrap_err().status, Status::BadLength);
        let mut bad = [0.0; 9];
        bad[4] = f64::NAN;
        assert_eq!(meas.push(&bad).unwrap_err().status, Status::InvalidArgument);
        let mut batch = vec![0.0; 18];
        batch[12] = f64::INFINITY;
        assert!(meas.push_batch(&batch).is_err());
        assert!(meas.push_batch(&batch[..17]).is_err());
        assert!(meas.is_empty(), "a rejected batch appends nothing");
        assert!(Measurements::new(1).is_err());
    }

    #[test]
    fn effective_mass_is_exact_on_the_free_propagator() {
        // G̃(t) ∝ cosh(m_p (t − L/2)) on a periodic lattice, any L (also odd and L = 2)
        for l in 2..=9 {
            let m_p = 2.0 * (0.35f64).asinh();
            let g: Vec<f64> = (0..=l / 2).map(|t| 0.7 * (m_p * (t as f64 - l as f64 / 2.0)).cosh()).collect();
            for t in 1..=l / 2 {
                assert!((effective_mass(&g, l, t) - m_p).abs() < 1e-12, "L={l} t={t}");
            }
        }
        // undefined points are NaN
        assert!(effective_mass(&[1.0, 0.2, 0.3, 0.3], 6, 2).is_nan()); // argument < 1
        assert!(effective_mass(&[1.0, 0.5, -0.1, 0.3], 6, 1).is_nan()); // G̃ ≤ 0
        assert!(effective_mass(&[1.0, 0.0, 0.1, 0.3], 6, 1).is_nan());
    }

    /// Exact i.i.d. free-field configurations: φ = C^{1/2} ξ with the circulant square root
    /// of C = ½(−Δ + m²)⁻¹, a(r) = (1/V) Σ_k [2(p̂_k² + m²)]^{−1/2} cos(k·r).
    fn free_field_samples(l: usize, m2: f64, n: usize, seed: u64) -> Vec<f64> {
        let v = l * l;
        let tau = std::f64::consts::TAU;
        let mut a = vec![0.0; v];
        for (r, ar) in a.iter_mut().enumerate() {
            let (r0, r1) = (r / l, r % l);
            for k0 in 0..l {
                for k1 in 0..l {
                    let (q0, q1) = (tau * k0 as f64 / l as f64, tau * k1 as f64 / l as f64);
                    let p2 = 4.0 * ((q0 / 2.0).sin().powi(2) + (q1 / 2.0).sin().powi(2));
                    *ar += (2.0 * (p2 + m2)).powf(-0.5) * (q0 * r0 as f64 + q1 * r1 as f64).cos();
                }
            }
            *ar /= v as f64;
        }
        let mut out = vec![0.0; n * v];
        let mut xi = vec![0.0; v];
        for (i, phi) in out.chunks_exact_mut(v).enumerate() {
            Rng::new(seed, Stream::Sample, i as u64).fill_normal(&mut xi);
            for (x, px) in phi.iter_mut().enumerate() {
                let (x0, x1) = (x / l, x % l);
                *px = xi
                    .iter()
                    .enumerate()
                    .map(|(y, xy)| a[((x0 + l - y / l) % l) * l + (x1 + l - y % l) % l] * xy)
                    .sum();
            }
        }
        out
    }

    /// Exact G̃(t) = (1/(2V)) Σ_{k1} cos(k1 t) / (4 sin²(k1/2) + m²) of the free field.
    fn free_g(l: usize, m2: f64, t: usize) -> f64 {
        let tau = std::f64::consts::TAU;
        (0..l)
            .map(|k| {
                let q = tau * k as f64 / l as f64;
                (q * t as f64).cos() / (4.0 * (q / 2.0).sin().powi(2) + m2)
            })
            .sum::<f64>()
            / (2.0 * (l * l) as f64)
    }

    #[test]
    fn free_field_summary_is_exact_within_errors() {
        let (l, m2, n) = (8, 0.25, 40_000);
        let mut meas = Measurements::new(l).unwrap();
        meas.push_batch(&free_field_samples(l, m2, n, 21)).unwrap();
        let s = summarize(&meas).unwrap();
        let exact_mp = 2.0 * (m2.sqrt() / 2.0).asinh();
        let exact_chi2 = 1.0 / (2.0 * m2);
        println!(
            "free field L={l} m2={m2}: chi2 {:.4} ± {:.4} (exact {exact_chi2}), m_p {:.4} ± {:.4}, plateau {:.4} ± {:.4} (exact {exact_mp:.4}), tau|M| {:.3}, bins {}x{}",
            s.chi2.value, s.chi2.error, s.m_p.value, s.m_p.error, s.m_p_plateau.value, s.m_p_plateau.error, s.tau_int_abs_m, s.n_bins, s.bin_size
        );
        let within = |what: &str, v: f64, e: f64, exact: f64| {
            println!("  {what}: {v:.5} ± {e:.5} exact {exact:.5} ({:+.2} sigma)", (v - exact) / e);
            assert!(e > 0.0 && (v - exact).abs() < 3.0 * e, "{what}: {v} ± {e} vs exact {exact}");
        };
        within("chi2", s.chi2.value, s.chi2.error, exact_chi2);
        within("M", s.m.value, s.m.error, 0.0);
        within("Binder", s.binder.value, s.binder.error, 0.0);
        for (t, g) in s.g.iter().enumerate() {
            within(&format!("G({t})"), g.value, g.error, free_g(l, m2, t));
        }
        for (i, mp) in s.m_p_t.iter().enumerate() {
            within(&format!("m_p({})", i + 1), mp.value, mp.error, exact_mp);
        }
        within("m_p", s.m_p.value, s.m_p.error, exact_mp);
        within("m_p plateau", s.m_p_plateau.value, s.m_p_plateau.error, exact_mp);
        within("L m_p", s.l_m_p.value, s.l_m_p.error, l as f64 * exact_mp);
        within("xi", s.xi.value, s.xi.error, 1.0 / exact_mp);
        assert!((s.tau_int_abs_m - 0.5).abs() < 3.0 * s.abs_m.tau_int_error.max(0.01));
        assert_eq!(s.plateau_start, 1);
        assert_eq!((s.m_p_t.len(), s.g.len()), (4, 5));
        // bins of ⌈4 τ_int(|M|)⌉ with τ_int ≈ ½
        assert!(s.bin_size == 2 || s.bin_size == 3, "bin size {}", s.bin_size);
        assert_eq!(s.n_bins, n / s.bin_size);
        // χ2 = L Σ_{t<L} G̃(t) holds exactly for the sample averages
        let sum_g: f64 = (0..l).map(|t| s.g[t.min(l - t)].value).sum();
        assert!((l as f64 * sum_g - s.chi2.value).abs() < 1e-10);
        // the error of L·m_p and ξ follow from that of m_p (jackknife of a smooth function)
        assert!((s.l_m_p.error - l as f64 * s.m_p.error).abs() < 1e-12);
        assert!((s.xi.error / (s.m_p.error / s.m_p.value.powi(2)) - 1.0).abs() < 0.01);
    }

    /// Equal JSON trees, numbers to a relative 1e-15.
    fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!((x - y).abs() <= 1e-15 * x.abs().max(y.abs()), "{x} vs {y}");
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len());
                x.iter().zip(y).for_each(|(u, v)| assert_json_close(u, v));
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(x.len(), y.len());
                x.iter().for_each(|(k, u)| assert_json_close(u, &y[k]));
            }
            _ => assert_eq!(a, b),
        }
    }

    #[test]
    fn summary_of_an_odd_lattice_and_json_round_trip() {
        let (l, m2) = (5, 0.5);
        let mut meas = Measurements::new(l).unwrap();
        meas.push_batch(&free_field_samples(l, m2, 20_000, 4)).unwrap();
        let s = summarize(&meas).unwrap();
        let exact_mp = 2.0 * (m2.sqrt() / 2.0).asinh();
        for mp in &s.m_p_t {
            assert!((mp.value - exact_mp).abs() < 3.0 * mp.error, "{mp:?} vs {exact_mp}");
        }
        assert_eq!(s.plateau_start, 1);
        // serde_json parses floats to within an ulp (exactly only with its float_roundtrip feature)
        let json = serde_json::to_string(&s).unwrap();
        let back: ChainSummary = serde_json::from_str(&json).unwrap();
        assert_json_close(&serde_json::to_value(&back).unwrap(), &serde_json::to_value(&s).unwrap());
        assert_eq!((back.l, back.n, back.bin_size, back.g.len()), (s.l, s.n, s.bin_size, s.g.len()));
        // NaN survives as null
        let mut with_nan = s.clone();
        with_nan.m_p_t[1].value = f64::NAN;
        let back: ChainSummary = serde_json::from_str(&serde_json::to_string(&with_nan).unwrap()).unwrap();
        assert!(back.m_p_t[1].value.is_nan() && back.m_p_t[0] == s.m_p_t[0]);
        // too short a chain is an error with a message; a constant chain is not
        let mut short = Measurements::new(4).unwrap();
        short.push_batch(&vec![0.5; 16 * 9]).unwrap();
        let e = summarize(&short).unwrap_err();
        assert!(e.message.contains("9 configurations"), "{}", e.message);
        short.push(&[0.5; 16]).unwrap();
        let c = summarize(&short).unwrap();
        assert_eq!((c.chi2.value, c.chi2.error), (0.0, 0.0));
        assert!(c.m_p.value.is_nan());
    }
}
