//! Exact gradients of the discretised reverse-KL loss against central finite differences.

mod common;
use common::*;
use eqflow::flow::conv::ConvMethod;
use eqflow::flow::{FeatureKind, KernelSymmetry};

fn check(l: usize, mut arch: eqflow::flow::Architecture, label: &str) {
    arch.ode_steps = 4;
    let mut f = random_flow(l, arch, 0.3, 7);
    let v = l * l;
    let z = noise(3 * v, 11);
    let (_, _, grad) = f.loss_and_grad_of(&z).unwrap();
    let p0 = f.params().to_vec();
    let mut worst = 0.0f64;
    for (name, range) in f.layout.groups() {
        let gnorm = range.clone().map(|i| grad[i] * grad[i]).sum::<f64>().sqrt();
        assert!(gnorm > 0.0, "{label}: gradient of group {name} is identically zero");
        for i in range {
            let h = 1e-5 * (1.0 + p0[i].abs());
            let mut p = p0.clone();
            p[i] = p0[i] + h;
            f.set_params(&p).unwrap();
            let lp = f.loss_and_grad_of(&z).unwrap().0;
            p[i] = p0[i] - h;
            f.set_params(&p).unwrap();
            let lm = f.loss_and_grad_of(&z).unwrap().0;
            let fd = (lp - lm) / (2.0 * h);
            // relative to the group's gradient scale, so tiny components are not judged alone
            let err = (fd - grad[i]).abs() / (grad[i].abs() + 1e-3 * gnorm);
            worst = worst.max(err);
            assert!(err < 1e-6, "{label} {name}[{i}]: analytic {} vs finite difference {fd} (rel {err:e})", grad[i]);
        }
    }
    f.set_params(&p0).unwrap();
    eprintln!("{label}: worst relative gradient error {worst:e}");
}

#[test]
fn gradients_seed_architecture_even_and_odd_lattice() {
    for l in [4, 3] {
        for sym in [KernelSymmetry::Full, KernelSymmetry::Translations] {
            let mut a = small_arch(false);
            a.symmetry = sym;
            check(l, a, &format!("seed L={l} {sym:?}"));
        }
    }
}

#[test]
fn gradients_refined_architecture_with_mixing() {
    for l in [4, 3] {
        for sym in [KernelSymmetry::Full, KernelSymmetry::Translations] {
            let mut a = small_arch(true);
            a.symmetry = sym;
            check(l, a, &format!("refined L={l} {sym:?}"));
        }
    }
}

#[test]
fn gradients_non_odd_features() {
    let mut a = small_arch(false);
    a.features = FeatureKind::NonOdd;
    a.linear_feature = true;
    check(4, a, "non-odd L=4");
}

/// The path gradient is the total gradient without the score term: for a batch z with
/// fields x = Φ_θ(z), G_total − G_path = (1/n) Σ_b ∂_θ log q_θ(x_b) at fixed x_b, which is
/// computed here by central differences of `log_prob` (the inverse map) along random
/// directions, one per parameter group and one over all. The path gradient integrates the
/// score of the continuous flow, exact up to O(h⁴): N_t = 24 keeps that below the tolerance.
fn check_path(l: usize, mut arch: eqflow::flow::Architecture, conv: ConvMethod, label: &str) {
    arch.ode_steps = 24;
    let mut f = random_flow_with(l, arch, conv, 0.3, 7);
    let v = l * l;
    let n = 3;
    let z = noise(n * v, 11);
    let (loss_t, s_t, g_total) = f.loss_and_grad_of(&z).unwrap();
    f.config.train.gradient = eqflow::train::Gradient::Path;
    let (loss_p, s_p, g_path) = f.loss_and_grad_of(&z).unwrap();
    // the same forward pass: fields, log q and the loss bit for bit
    assert_eq!(s_t.phi, s_p.phi, "{label}: fields");
    assert_eq!(s_t.log_q, s_p.log_q, "{label}: log q");
    assert_eq!(loss_t, loss_p);
    assert_ne!(g_total, g_path, "{label}: the estimators must differ away from q = p");
    let p0 = f.params().to_vec();
    let mut groups: Vec<(String, std::ops::Range<usize>)> =
        f.layout.groups().into_iter().map(|(name, r)| (name.to_string(), r)).collect();
    groups.push(("all".into(), 0..p0.len()));
    for (gi, (name, range)) in groups.into_iter().enumerate() {
        let dir = noise(p0.len(), 100 + gi as u64);
        let d: Vec<f64> = (0..p0.len()).map(|i| if range.contains(&i) { dir[i] } else { 0.0 }).collect();
        let dot = |g: &[f64]| g.iter().zip(&d).map(|(a, b)| a * b).sum::<f64>();
        let eps = 1e-5;
        let mut lp = |sign: f64| {
            let p: Vec<f64> = p0.iter().zip(&d).map(|(p, d)| p + sign * eps * d).collect();
            f.set_params(&p).unwrap();
            f.log_prob(&s_t.phi).unwrap().iter().sum::<f64>() / n as f64
        };
        let score_term = (lp(1.0) - lp(-1.0)) / (2.0 * eps);
        let (dt, dp) = (dot(&g_total), dot(&g_path));
        let err = (dt - dp - score_term).abs() / score_term.abs();
        eprintln!("{label} {name}: total {dt:.6e}, path {dp:.6e}, score term {score_term:.6e}, rel err {err:.1e}");
        assert!(score_term.abs() > 1e-8, "{label} {name}: the score term vanishes, the check is empty");
        assert!(err < 1e-4, "{label} {name}: total − path = {} but the score term is {score_term}", dt - dp);
    }
    f.set_params(&p0).unwrap();
}

#[test]
fn path_gradient_is_the_total_gradient_without_the_score_term() {
    check_path(3, small_arch(false), ConvMethod::Dense, "seed L=3");
    check_path(4, small_arch(true), ConvMethod::Dense, "refined L=4");
    let mut a = small_arch(false);
    a.features = FeatureKind::NonOdd;
    a.linear_feature = true;
    check_path(4, a, ConvMethod::Dense, "non-odd L=4");
    // the FFT convolutions and the orbit contraction (the score integration uses their
    // input-only VJPs)
    check_path(4, small_arch(true), ConvMethod::Fft, "refined L=4, FFT");
    check_path(6, small_arch(false), ConvMethod::Fft, "seed L=6, FFT");
    check_path(5, small_arch(false), ConvMethod::Orbit, "seed L=5, orbit");
}
