//! Reweighting estimators from independent flow samples (SPEC §5): ⟨O⟩ ≈ Σ w O / Σ w with
//! jackknife errors, log Z, and reweighting to a nearby quartic coupling λ' = λ + Δλ.
//!
//! Samples are independent, so there is no autocorrelation: the error of a function f of
//! reweighted means (a ratio of means itself) is the jackknife's over blocks of samples, which
//! for a single mean agrees with the delta method's Var(R) ≈ (1/N) · mean[w̃² (O − R)²]
//! (w̃ = w / mean(w)) to O(1/B), and, unlike the delta method's central differences, does not
//! step out of f's domain where f is steep (effective masses near ratio 1).
//! All weights are handled relative to the largest log-weight (no overflow).

use serde::{Deserialize, Serialize};

use crate::error::{check_len, Error, Result};
use crate::flow::model::Samples;
use crate::observables::measurements::{P_ABS_M, P_CT, P_M, P_M2, P_M4};
use crate::observables::{effective_mass, Measurements};

/// A value with its error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValueError {
    /// The estimate.
    pub value: f64,
    /// Its statistical error (jackknife over blocks of samples).
    pub error: f64,
}

/// Reweighted estimates from n independent flow samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reweighted {
    /// Number of samples.
    pub n: usize,
    /// The ESS fraction of the weights used (after any shift of λ).
    pub ess: f64,
    /// Its jackknife error ([`ess_with_error`]); NaN in JSON written before it existed.
    #[serde(default = "nan")]
    pub ess_error: f64,
    /// log Z of the target (Z = ∫ e^{−S}), from log mean w.
    pub log_z: ValueError,
    /// ⟨M⟩.
    pub m: ValueError,
    /// ⟨|M|⟩.
    pub abs_m: ValueError,
    /// χ2 = V (⟨M²⟩ − ⟨M⟩²).
    pub chi2: ValueError,
    /// The Binder cumulant 1 − ⟨M⁴⟩ / (3 ⟨M²⟩²).
    pub binder: ValueError,
    /// L · m_p (headline m_p, SPEC §6; NaN where undefined).
    pub l_m_p: ValueError,
    /// m_p(t) for t = 1..=⌊L/2⌋ (index t − 1); NaN where the reweighted correlator ratio
    /// (G̃(t−1) + G̃(t+1)) / (2 G̃(t)) is ≤ 1 (or is ≤ 1 without one of the jackknife's blocks
    /// of samples): the headline L·m_p is then NaN too, and these say which t need more samples.
    pub m_p_t: Vec<ValueError>,
}

impl Reweighted {
    /// The t (1..=⌊L/2⌋) whose m_p(t) is undefined (NaN).
    pub fn undefined_m_p_t(&self) -> Vec<usize> {
        crate::observables::undefined_t(self.m_p_t.iter().map(|m| (m.value, m.error)))
    }
}

/// Normalised weights w̃ = w / mean(w) and log mean w, from log-weights.
fn normalised(log_w: &[f64]) -> Result<(Vec<f64>, f64)> {
    if log_w.len() < 2 {
        return Err(Error::invalid(format!("reweighting: {} samples; at least 2 are needed", log_w.len())));
    }
    if let Some(i) = log_w.iter().position(|x| x.is_nan() || *x == f64::INFINITY) {
        return Err(Error::non_finite(format!("reweighting: log-weight {i} is {}", log_w[i])));
    }
    let max = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return Err(Error::non_finite("reweighting: every weight is zero"));
    }
    let w: Vec<f64> = log_w.iter().map(|x| (x - max).exp()).collect();
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    Ok((w.iter().map(|x| x / mean).collect(), max + mean.ln()))
}

/// log Z = log mean w with its error √((mean w̃² − 1)/N) (relative error of mean w).
pub fn log_z(log_w: &[f64]) -> Result<ValueError> {
    let (w, lz) = normalised(log_w)?;
    let n = w.len() as f64;
    let m2 = w.iter().map(|x| x * x).sum::<f64>() / n;
    Ok(ValueError { value: lz, error: ((m2 - 1.0).max(0.0) / n).sqrt() })
}

fn nan() -> f64 {
    f64::NAN
}

/// The ESS fraction (Σ w)² / (N Σ w²) of log-weights with its jackknife error over
/// B = min(N, [`JACKKNIFE_BLOCKS`]) consecutive blocks of samples (leave one block out:
/// √((B − 1)/B Σ_k (ESS_k − mean)²)). Where a few heavy weights set the ESS the error is
/// itself uncertain (it is then as large as the ESS, or larger, on a rerun): the honest
/// summary of such an ESS is its order of magnitude.
pub fn ess_with_error(log_w: &[f64]) -> Result<ValueError> {
    let (w, _) = normalised(log_w)?;
    let n = w.len();
    let b = n.min(JACKKNIFE_BLOCKS);
    let mut bw = vec![(0.0, 0.0, 0usize); b];
    for (k, blk) in bw.iter_mut().enumerate() {
        for x in &w[k * n / b..(k + 1) * n / b] {
            blk.0 += x;
            blk.1 += x * x;
            blk.2 += 1;
        }
    }
    let (s1, s2): (f64, f64) = bw.iter().fold((0.0, 0.0), |(a, c), blk| (a + blk.0, c + blk.1));
    let value = s1 * s1 / (n as f64 * s2);
    let ek: Vec<f64> = bw.iter().map(|&(a, c, m)| (s1 - a) * (s1 - a) / ((n - m) as f64 * (s2 - c))).collect();
    let bf = b as f64;
    let mean = ek.iter().sum::<f64>() / bf;
    let var = (bf - 1.0) / bf * ek.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    Ok(ValueError { value, error: var.sqrt() })
}

/// Leave-one-out blocks of the jackknife of [`reweight_derived`] (fewer with fewer samples).
pub const JACKKNIFE_BLOCKS: usize = 100;

/// f of the reweighted means of several observables (each of length N, one value per sample),
/// with its jackknife error: the samples in B = min(N, [`JACKKNIFE_BLOCKS`]) consecutive blocks,
/// f of the reweighted means without block k for each k, and the error
/// √((B − 1)/B Σ_k (f_k − f̄)²). The value is f of the means of all samples. Where f is not
/// finite at the means or at any leave-one-out means (an effective mass whose correlator ratio
/// is ≤ 1 there), value and error are NaN.
pub fn reweight_derived(log_w: &[f64], series: &[&[f64]], f: &dyn Fn(&[f64]) -> f64) -> Result<ValueError> {
    let (w, _) = normalised(log_w)?;
    let n = w.len();
    for (k, s) in series.iter().enumerate() {
        check_len(&format!("reweighting: observable {k}"), s.len(), n)?;
        crate::error::check_finite(&format!("reweighting: observable {k}"), s)?;
    }
    let nan = ValueError { value: f64::NAN, error: f64::NAN };
    let na = series.len();
    let b = n.min(JACKKNIFE_BLOCKS);
    // per block: Σ w and Σ w O_a, summed in sample order
    let mut bw = vec![0.0; b];
    let mut bwo = vec![0.0; b * na];
    for k in 0..b {
        for i in k * n / b..(k + 1) * n / b {
            bw[k] += w[i];
            for (a, s) in series.iter().enumerate() {
                bwo[k * na + a] += w[i] * s[i];
            }
        }
    }
    let tw: f64 = bw.iter().sum();
    let two: Vec<f64> = (0..na).map(|a| (0..b).map(|k| bwo[k * na + a]).sum()).collect();
    let value = f(&two.iter().map(|x| x / tw).collect::<Vec<_>>());
    if !value.is_finite() {
        return Ok(nan);
    }
    let mut means = vec![0.0; na];
    let mut fk = Vec::with_capacity(b);
    for k in 0..b {
        let rest = tw - bw[k];
        for (a, m) in means.iter_mut().enumerate() {
            *m = (two[a] - bwo[k * na + a]) / rest;
        }
        let v = f(&means);
        if !v.is_finite() {
            return Ok(nan);
        }
        fk.push(v);
    }
    let bf = b as f64;
    let mean = fk.iter().sum::<f64>() / bf;
    let var = (bf - 1.0) / bf * fk.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    Ok(ValueError { value, error: var.sqrt() })
}

/// ⟨O⟩ = Σ w O / Σ w with its jackknife error.
pub fn reweight_mean(log_w: &[f64], obs: &[f64]) -> Result<ValueError> {
    reweight_derived(log_w, &[obs], &|a| a[0])
}

/// Log-weights for the target with λ + `delta_lambda` instead of λ: log w' = log w − Δλ Σ φ⁴.
pub fn shift_lambda(samples: &Samples, v: usize, delta_lambda: f64) -> Result<Vec<f64>> {
    check_len("shift_lambda: phi", samples.phi.len(), samples.log_q.len() * v)?;
    if !delta_lambda.is_finite() {
        return Err(Error::invalid(format!("shift_lambda: delta_lambda = {delta_lambda} is not finite")));
    }
    Ok(samples
        .log_weights()
        .iter()
        .zip(samples.phi.chunks_exact(v))
        .map(|(lw, p)| lw - delta_lambda * p.iter().map(|x| x.powi(4)).sum::<f64>())
        .collect())
}

/// Every reweighted observable of independent flow samples on an L × L lattice, for the
/// flow's target shifted by Δλ (0: the flow's own target).
pub fn reweight_samples(samples: &Samples, l: usize, delta_lambda: f64) -> Result<Reweighted> {
    let v = l * l;
    let log_w = shift_lambda(samples, v, delta_lambda)?;
    let meas = Measurements::new(l)?;
    let n = log_w.len();
    let n_prim = P_CT + l / 2 + 1;
    let mut prim = vec![Vec::with_capacity(n); n_prim];
    for p in samples.phi.chunks_exact(v) {
        crate::error::check_finite("reweighting: phi", p)?;
        for (s, x) in prim.iter_mut().zip(meas.primaries(p)) {
            s.push(x);
        }
    }
    let vf = v as f64;
    let half = l / 2;
    let one = |k: usize| reweight_mean(&log_w, &prim[k]);
    let mut mp_series: Vec<&[f64]> = vec![&prim[P_M]];
    mp_series.extend((0..=half).map(|t| &prim[P_CT + t][..]));
    let correlator = |a: &[f64]| -> Vec<f64> { a[1..].iter().map(|c| c - a[0] * a[0]).collect() };
    let l_m_p = reweight_derived(&log_w, &mp_series, &|a| {
        let g = correlator(a);
        l as f64 * (1..=half).map(|t| effective_mass(&g, l, t)).sum::<f64>() / half as f64
    })?;
    let m_p_t = (1..=half)
        .map(|t| reweight_derived(&log_w, &mp_series, &|a| effective_mass(&correlator(a), l, t)))
        .collect::<Result<Vec<_>>>()?;
    let e = ess_with_error(&log_w)?;
    Ok(Reweighted {
        n,
        ess: e.value,
        ess_error: e.error,
        log_z: log_z(&log_w)?,
        m: one(P_M)?,
        abs_m: one(P_ABS_M)?,
        chi2: reweight_derived(&log_w, &[&prim[P_M], &prim[P_M2]], &|a| vf * (a[1] - a[0] * a[0]))?,
        binder: reweight_derived(&log_w, &[&prim[P_M2], &prim[P_M4]], &|a| 1.0 - a[1] / (3.0 * a[0] * a[0]))?,
        l_m_p,
        m_p_t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, Stream};
    use crate::train::ess;

    #[test]
    fn gaussian_reweighting_is_exact_within_errors() {
        // proposals N(0, 1), target N(μ, σ²): E[x] = μ, log Z = log(√(2π) σ) for
        // e^{−S} with S = (x − μ)²/(2σ²) and q the standard normal density
        let (mu, sigma, n) = (0.3, 0.8, 200_000);
        let mut x = vec![0.0; n];
        Rng::new(4, Stream::Sample, 0).fill_normal(&mut x);
        let log_q: Vec<f64> = x.iter().map(|x| -0.5 * x * x - 0.5 * std::f64::consts::TAU.ln()).collect();
        let s: Vec<f64> = x.iter().map(|x| (x - mu).powi(2) / (2.0 * sigma * sigma)).collect();
        let log_w: Vec<f64> = s.iter().zip(&log_q).map(|(s, q)| -s - q).collect();
        let m = reweight_mean(&log_w, &x).unwrap();
        let x2: Vec<f64> = x.iter().map(|x| x * x).collect();
        let var = reweight_derived(&log_w, &[&x, &x2], &|a| a[1] - a[0] * a[0]).unwrap();
        let lz = log_z(&log_w).unwrap();
        let exact_lz = (std::f64::consts::TAU.sqrt() * sigma).ln();
        println!(
            "E[x] {:.4}({:.4}) vs {mu}; Var {:.4}({:.4}) vs {}; log Z {:.4}({:.4}) vs {exact_lz:.4}",
            m.value,
            m.error,
            var.value,
            var.error,
            sigma * sigma,
            lz.value,
            lz.error
        );
        assert!((m.value - mu).abs() < 4.0 * m.error && m.error < 0.01);
        assert!((var.value - sigma * sigma).abs() < 4.0 * var.error);
        assert!((lz.value - exact_lz).abs() < 4.0 * lz.error && lz.error < 0.01);
    }

    #[test]
    fn errors_are_calibrated_and_bad_input_is_refused() {
        // the scatter of 200 replicas matches the reported error
        let (mu, n, reps) = (0.5, 2000, 200);
        let mut means = Vec::new();
        let mut errs = Vec::new();
        for r in 0..reps {
            let mut x = vec![0.0; n];
            Rng::new(100 + r, Stream::Sample, 0).fill_normal(&mut x);
            let log_w: Vec<f64> = x.iter().map(|x| -(x - mu).powi(2) / 2.0 + x * x / 2.0).collect();
            let e = reweight_mean(&log_w, &x).unwrap();
            means.push(e.value);
            errs.push(e.error);
        }
        let mbar = means.iter().sum::<f64>() / reps as f64;
        let scatter = (means.iter().map(|m| (m - mbar).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
        let err = errs.iter().sum::<f64>() / reps as f64;
        println!("replica scatter {scatter:.5} vs mean reported error {err:.5}");
        assert!((scatter / err - 1.0).abs() < 0.2);
        assert!(reweight_mean(&[0.0], &[1.0]).is_err());
        assert!(reweight_mean(&[0.0, f64::NAN], &[1.0, 2.0]).is_err());
        assert!(reweight_mean(&[0.0, 0.0], &[1.0]).is_err());
        assert!(reweight_mean(&[f64::NEG_INFINITY, f64::NEG_INFINITY], &[1.0, 1.0]).is_err());
    }

    #[test]
    fn ess_error_is_calibrated_by_replicas() {
        // log-normal weights (log w ~ N(0, σ²)): ESS → e^{−σ²}; the scatter of the ESS over
        // replicas matches the reported jackknife error, and the value is the plain formula's
        let (sig, n, reps) = (0.6, 2000, 200);
        let (mut vals, mut errs) = (Vec::new(), Vec::new());
        for r in 0..reps {
            let mut lw = vec![0.0; n];
            Rng::new(500 + r, Stream::Sample, 0).fill_normal(&mut lw);
            lw.iter_mut().for_each(|x| *x *= sig);
            let e = ess_with_error(&lw).unwrap();
            assert!((e.value - ess(&lw)).abs() < 1e-12);
            vals.push(e.value);
            errs.push(e.error);
        }
        let mean = vals.iter().sum::<f64>() / reps as f64;
        let scatter = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
        let err = errs.iter().sum::<f64>() / reps as f64;
        println!("ESS {mean:.4} (e^-σ² = {:.4}): scatter {scatter:.5} vs reported {err:.5}", (-sig * sig).exp());
        assert!((mean - (-sig * sig).exp()).abs() < 0.01);
        assert!((scatter / err - 1.0).abs() < 0.2);
        assert!(ess_with_error(&[0.0]).is_err());
        assert!(ess_with_error(&[0.0, f64::NAN]).is_err());
        // equal weights: ESS 1 exactly, no spread
        let flat = ess_with_error(&[0.3; 50]).unwrap();
        assert!((flat.value - 1.0).abs() < 1e-12 && flat.error < 1e-12);
    }

    #[test]
    fn jackknife_error_is_the_delta_methods_for_a_mean_and_stays_in_the_domain_near_its_edge() {
        // a single reweighted mean: the jackknife error against the delta method's formula
        let n = 20_000;
        let mut x = vec![0.0; n];
        Rng::new(31, Stream::Sample, 0).fill_normal(&mut x);
        let mut log_w = vec![0.0; n];
        Rng::new(32, Stream::Sample, 0).fill_normal(&mut log_w);
        log_w.iter_mut().for_each(|l| *l *= 0.5);
        let r = reweight_mean(&log_w, &x).unwrap();
        let (w, _) = normalised(&log_w).unwrap();
        let delta = (w.iter().zip(&x).map(|(w, x)| (w * (x - r.value)).powi(2)).sum::<f64>()).sqrt() / n as f64;
        let direct = w.iter().zip(&x).map(|(w, x)| w * x).sum::<f64>() / w.iter().sum::<f64>();
        println!("mean {} ± {} (delta method ± {delta})", r.value, r.error);
        assert!((r.value - direct).abs() < 1e-12);
        assert!((r.error / delta - 1.0).abs() < 0.25, "{} vs {delta}", r.error);
        // acosh of a mean just above 1 (f steep, the domain's edge close, as an effective mass
        // whose correlator ratio is near 1): the delta method's central difference, half a
        // standard error (SE) either side, leaves the domain below 0.5 SE; the jackknife's
        // leave-one-out means lie about SE/√B from the mean, so at 0.4 SE the estimate exists,
        // and only at 0.02 SE do some of them fall below 1 (NaN)
        let z: Vec<f64> = x.iter().map(|v| v - x.iter().sum::<f64>() / n as f64).collect();
        let sd = (z.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
        let se = sd / (n as f64).sqrt();
        let flat = vec![0.0; n];
        for (above, defined) in [(2.2, true), (0.4, true), (0.02, false)] {
            let y: Vec<f64> = z.iter().map(|v| 1.0 + above * se + v).collect();
            let e = reweight_derived(&flat, &[&y], &|a| a[0].acosh()).unwrap();
            println!("acosh at 1 + {above} SE: {} ± {}", e.value, e.error);
            assert_eq!(e.value.is_finite() && e.error.is_finite() && e.error > 0.0, defined, "{above}");
        }
    }

    /// The reweighted G̃(t), t = 0..=⌊L/2⌋, by direct sums (the test oracle): C̃(t) of each
    /// field summed over every site and displacement along both axes, weighted means, minus ⟨M⟩².
    fn direct_correlator(l: usize, phi: &[f64], log_w: &[f64]) -> Vec<f64> {
        let v = l * l;
        let wmax = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = log_w.iter().map(|x| (x - wmax).exp()).collect();
        let wsum: f64 = w.iter().sum();
        let m = phi.chunks_exact(v).zip(&w).map(|(p, w)| w * p.iter().sum::<f64>() / v as f64).sum::<f64>() / wsum;
        (0..=l / 2)
            .map(|t| {
                let c = phi.chunks_exact(v).zip(&w).map(|(p, w)| {
                    let mut sum = 0.0;
                    for (y0, y1, d) in (0..l).flat_map(|a| (0..l).flat_map(move |b| (0..l).map(move |d| (a, b, d)))) {
                        let here = p[y0 * l + y1];
                        sum += here * (p[((y0 + d) % l) * l + (y1 + t) % l] + p[((y0 + t) % l) * l + (y1 + d) % l]);
                    }
                    w * sum / (2.0 * (l * v) as f64)
                });
                c.sum::<f64>() / wsum - m * m
            })
            .collect()
    }

    #[test]
    fn effective_masses_by_t_match_direct_sums_and_name_the_undefined_t() {
        let (l, n, mass) = (6, 3000, 0.7);
        let v = l * l;
        let mut any_undefined = false;
        for free in [true, false] {
            let mut z = vec![0.0; 2 * n * v];
            Rng::new(7, Stream::Sample, free as u64).fill_normal(&mut z);
            // the free field of mass m: Σ_p (a_p cos p·x + b_p sin p·x) / √(V (p̂² + m²)), whose
            // G̃(t) ∝ cosh(m_p (t − L/2)) with m_p = 2 arsinh(m/2) at every t; white noise has
            // G̃(t ≥ 1) ≈ 0 of either sign (m_p(t) mostly undefined)
            let phi: Vec<f64> = if free {
                let tau = std::f64::consts::TAU / l as f64;
                let modes: Vec<(f64, f64, f64)> = (0..v)
                    .map(|k| {
                        let (p0, p1) = (tau * (k / l) as f64, tau * (k % l) as f64);
                        let hat2 = 4.0 * ((p0 / 2.0).sin().powi(2) + (p1 / 2.0).sin().powi(2));
                        (p0, p1, 1.0 / (v as f64 * (hat2 + mass * mass)).sqrt())
                    })
                    .collect();
                z.chunks_exact(2 * v)
                    .flat_map(|ab| {
                        let modes = &modes;
                        (0..v).map(move |x| {
                            let (x0, x1) = ((x / l) as f64, (x % l) as f64);
                            modes
                                .iter()
                                .enumerate()
                                .map(|(k, &(p0, p1, s))| {
                                    s * (ab[k] * (p0 * x0 + p1 * x1).cos() + ab[v + k] * (p0 * x0 + p1 * x1).sin())
                                })
                                .sum::<f64>()
                        })
                    })
                    .collect()
            } else {
                z[..n * v].to_vec()
            };
            let mut log_q = vec![0.0; n];
            Rng::new(8, Stream::Sample, 0).fill_normal(&mut log_q);
            log_q.iter_mut().for_each(|x| *x *= 0.2);
            let samples = Samples { phi: phi.clone(), log_q, action: vec![0.0; n] };
            let r = reweight_samples(&samples, l, 0.0).unwrap();
            let g = direct_correlator(l, &phi, &samples.log_weights());
            assert_eq!(r.m_p_t.len(), l / 2);
            for t in 1..=l / 2 {
                let ratio = (g[t - 1] + g[if t < l / 2 { t + 1 } else { l - t - 1 }]) / (2.0 * g[t]);
                let got = r.m_p_t[t - 1];
                println!("free {free}: t {t}: ratio {ratio:.5}, m_p(t) {:.5} ± {:.5}", got.value, got.error);
                if got.value.is_finite() {
                    assert!((got.value - ratio.acosh()).abs() < 1e-9, "t {t}: {} vs {}", got.value, ratio.acosh());
                    assert!(got.error > 0.0 && got.error.is_finite());
                } else {
                    assert!(r.undefined_m_p_t().contains(&t));
                    any_undefined = true;
                }
                if ratio <= 1.0 {
                    assert!(!got.value.is_finite(), "t {t}: ratio {ratio} ≤ 1 but m_p(t) = {}", got.value);
                }
            }
            let defined = r.undefined_m_p_t().is_empty();
            assert_eq!(defined, r.l_m_p.value.is_finite() && r.l_m_p.error.is_finite());
            if free {
                // every t defined, each m_p(t) and L·m_p consistent with the exact mass
                let exact = 2.0 * (mass / 2.0).asinh();
                assert!(defined, "the free field's m_p(t) must all be defined");
                for m in &r.m_p_t {
                    assert!((m.value - exact).abs() < 5.0 * m.error, "{} ± {} vs {exact}", m.value, m.error);
                }
                let mean = r.m_p_t.iter().map(|m| m.value).sum::<f64>() / (l / 2) as f64;
                assert!((r.l_m_p.value - l as f64 * mean).abs() < 1e-12);
                assert!((r.l_m_p.value - l as f64 * exact).abs() < 5.0 * r.l_m_p.error);
            }
        }
        assert!(any_undefined, "white noise must leave some m_p(t) undefined");
    }
}
