//! The analysis of a chain: estimates with Γ-method and jackknife errors (SPEC §6).

use super::measurements::{P_ABS_M, P_CT, P_M, P_M2, P_M4};
use super::*;

fn one() -> usize {
    1
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
    /// Configurations per stored record (1 unless the chain outgrew the record bound; then
    /// Γ-method windows count records, while τ_int is always in configurations).
    #[serde(default = "one")]
    pub record_size: usize,
    /// Configurations measured, including an incomplete last record not analysed.
    #[serde(default)]
    pub n_measured: u64,
}

/// G̃ at any t from its values at t = 0..=⌊L/2⌋, by periodicity and reflection.
fn g_periodic(g: &[f64], l: usize, t: usize) -> f64 {
    let t = t % l;
    g[t.min(l - t)]
}

/// The t (counting from 1) of the (value, error) pairs where either is not finite: for a list
/// of m_p(t), t = 1..=⌊L/2⌋, the t at which the effective mass is undefined.
pub fn undefined_t(estimates: impl IntoIterator<Item = (f64, f64)>) -> Vec<usize> {
    (1..).zip(estimates).filter(|(_, (v, e))| !v.is_finite() || !e.is_finite()).map(|(t, _)| t).collect()
}

impl ChainSummary {
    /// The t (1..=⌊L/2⌋) whose m_p(t) is undefined (NaN), which makes L·m_p NaN.
    pub fn undefined_m_p_t(&self) -> Vec<usize> {
        undefined_t(self.m_p_t.iter().map(|m| (m.value, m.error)))
    }
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
    let n_rec = m.n_records();
    if n_rec < MIN_CONFIGURATIONS {
        return Err(Error::invalid(format!(
            "summarize: {} configurations measured ({n_rec} complete records); at least {MIN_CONFIGURATIONS} are needed for errors",
            m.n_measured()
        )));
    }
    let l = m.l();
    let v = (l * l) as f64;
    let half = l / 2;
    let record = m.record_size();
    // a Γ-method estimate over the records of the primaries `prims`, with τ_int (and its
    // error) converted to configurations when records hold several: τ = N σ² / (2 Var_config)
    let estimate = |prims: &[usize], f: &dyn Fn(&[f64]) -> f64| -> Result<(Estimate, f64)> {
        let series: Vec<&[f64]> = prims.iter().map(|&k| m.primary(k)).collect();
        let (mut e, grad) = derived_with_gradient(&series, f)?;
        let tau_records = e.tau_int;
        if record > 1 && e.error.is_finite() {
            let g: Vec<(usize, f64)> = prims.iter().copied().zip(grad).collect();
            let var = m.projected_variance(&g);
            let tau = if var > 0.0 { n as f64 * e.error * e.error / (2.0 * var) } else { 0.5 };
            e.tau_int_error *= tau / e.tau_int;
            e.tau_int = tau;
        }
        Ok((e, tau_records))
    };
    let ct = |t: usize| P_CT + t;

    let (mag, _) = estimate(&[P_M], &|a| a[0])?;
    let (abs_m, abs_m_tau_records) = estimate(&[P_ABS_M], &|a| a[0])?;
    let (chi2, _) = estimate(&[P_M, P_M2], &|a| v * (a[1] - a[0] * a[0]))?;
    let g = (0..=half).map(|t| Ok(estimate(&[P_M, ct(t)], &|a| a[1] - a[0] * a[0])?.0)).collect::<Result<Vec<_>>>()?;
    let (binder, _) = estimate(&[P_M2, P_M4], &|a| 1.0 - a[1] / (3.0 * a[0] * a[0]))?;

    // the m_p family from one jackknife over [M, C̃(0), …, C̃(⌊L/2⌋)] (bins of records)
    let plateau_start = ((l as f64 / 6.0).round() as usize).clamp(1, half);
    let mut series: Vec<&[f64]> = vec![m.m()];
    series.extend((0..=half).map(|t| m.ctilde(t)));
    let bin_records = bin_size_for(n_rec, abs_m_tau_records);
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
    let jk = jackknife_multi("summarize", &series, bin_records, n_out, &mp_family)?;
    let bin_size = bin_records * record;

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
        n_bins: n_rec / bin_records,
        record_size: record,
        n_measured: m.n_measured(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;
    use crate::observables::tests::normals;
    use crate::rng::{Rng, Stream};

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
    fn undefined_t_counts_from_one() {
        let est = [(0.3, 0.01), (f64::NAN, f64::NAN), (0.2, f64::INFINITY), (0.25, 0.02)];
        assert_eq!(undefined_t(est), vec![2, 3]);
        assert!(undefined_t([(0.1, 0.1)]).is_empty());
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

    #[test]
    fn binned_records_give_the_unbinned_analysis() {
        // AR(1) fields (a = 0.9 on every site): τ_int of M is 9.5 configurations
        let (l, n, a) = (4, 40_000, 0.9);
        let v = l * l;
        let mut exact = Measurements::new(l).unwrap();
        let mut binned = Measurements::with_max_records(l, 512).unwrap();
        let mut phi = vec![0.0; v];
        let mut xi = vec![0.0; v];
        for i in 0..n {
            Rng::new(21, Stream::Sample, i as u64).fill_normal(&mut xi);
            for (p, x) in phi.iter_mut().zip(&xi) {
                *p = if i == 0 { *x } else { a * *p + (1.0f64 - a * a).sqrt() * x };
            }
            exact.push(&phi).unwrap();
            binned.push(&phi).unwrap();
        }
        assert_eq!(binned.record_size(), 128);
        let (e, b) = (summarize(&exact).unwrap(), summarize(&binned).unwrap());
        println!(
            "exact: chi2 {:.4} ± {:.4} tau {:.2}; binned (records of {}): chi2 {:.4} ± {:.4} tau {:.2}; |M| tau {:.2} vs {:.2}",
            e.chi2.value, e.chi2.error, e.chi2.tau_int, b.record_size, b.chi2.value, b.chi2.error, b.chi2.tau_int,
            e.tau_int_abs_m, b.tau_int_abs_m
        );
        for (x, y) in [(&e.m, &b.m), (&e.abs_m, &b.abs_m), (&e.chi2, &b.chi2), (&e.g[1], &b.g[1])] {
            assert!((x.value - y.value).abs() < 3.0 * x.error, "{} vs {}", x.value, y.value);
            assert!((y.error / x.error - 1.0).abs() < 0.25, "error {} vs {}", y.error, x.error);
            assert!((y.tau_int / x.tau_int - 1.0).abs() < 0.3, "tau {} vs {}", y.tau_int, x.tau_int);
        }
        assert!((b.m.tau_int - 9.5).abs() < 2.0, "tau M {}", b.m.tau_int);
        assert!((b.chi2.tau_int - 1.81 / 0.38).abs() < 1.0, "tau chi2 {}", b.chi2.tau_int);
        assert_eq!(b.n, 39_936);
        assert_eq!(b.n_measured, 40_000);
        assert_eq!(b.bin_size % 128, 0);
    }
}
