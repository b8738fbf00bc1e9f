//! The RealNVP baseline (SPEC §7): gradients against finite differences, exact inversion,
//! the log-det against the dense Jacobian, broken (and kept) symmetries, determinism
//! across thread counts, training, and input validation.

mod common;
use common::*;
use eqflow::flow::Flow;
use eqflow::lattice::{Lattice, Symmetry, D4};
use eqflow::realnvp::{RealNvp, RealNvpConfig};
use eqflow::rng::Stream;
use eqflow::symmetry::{symmetry_spread, symmetry_stats};
use eqflow::Status;

fn config(l: usize, n_layers: usize, seed: u64) -> RealNvpConfig {
    let mut c = RealNvpConfig::new(l, -4.0, 6.975);
    c.n_layers = n_layers;
    c.seed = seed;
    c
}

fn flow(l: usize, n_layers: usize, seed: u64) -> RealNvp {
    RealNvp::new(config(l, n_layers, seed), 1).unwrap()
}

fn log_prior(z: &[f64]) -> f64 {
    -0.5 * z.iter().map(|x| x * x).sum::<f64>() - 0.5 * z.len() as f64 * (2.0 * std::f64::consts::PI).ln()
}

/// The loss mean_b [log q + S] of fixed prior draws, by the forward map only.
fn loss(f: &RealNvp, z: &[f64]) -> f64 {
    let s = f.push_forward(z).unwrap();
    s.log_q.iter().zip(&s.action).map(|(q, a)| q + a).sum::<f64>() / s.log_q.len() as f64
}

/// A central difference `central(h)` at decreasing steps, returning the first that agrees with
/// the next to 1e-7 (relative): the maps are piecewise smooth (LeakyReLU), and a step that
/// straddles a kink is off by up to ~1e-2, so it is detected and a smaller step used.
fn stable_fd(mut central: impl FnMut(f64) -> Vec<f64>) -> Vec<f64> {
    let hs = [1e-5, 2.7e-6, 7.3e-7, 1.9e-7];
    let mut prev = central(hs[0]);
    for &h in &hs[1..] {
        let next = central(h);
        let scale = prev.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
        if prev.iter().zip(&next).all(|(a, b)| (a - b).abs() <= 1e-7 * scale) {
            return prev;
        }
        prev = next;
    }
    prev
}

/// ∂L/∂θ_i by stable central differences.
fn fd(f: &mut RealNvp, z: &[f64], i: usize) -> f64 {
    let p0 = f.params().to_vec();
    let d = stable_fd(|h| {
        let mut p = p0.clone();
        p[i] = p0[i] + h;
        f.set_params(&p).unwrap();
        let lp = loss(f, z);
        p[i] = p0[i] - h;
        f.set_params(&p).unwrap();
        let lm = loss(f, z);
        vec![(lp - lm) / (2.0 * h)]
    });
    f.set_params(&p0).unwrap();
    d[0]
}

#[test]
fn gradient_matches_finite_differences_in_every_group() {
    // L = 4 with the reference width; odd L = 3 (the checkerboard does not close) with h = 3
    for (l, n_layers, hidden) in [(4, 4, 8), (3, 2, 3)] {
        let mut c = config(l, n_layers, 3);
        c.hidden = hidden;
        let mut f = RealNvp::new(c, 1).unwrap();
        let v = l * l;
        // two chunks (CHUNK = 8) so the ordered reduction is exercised too
        let z = noise(11 * v, 7);
        let (loss_value, _, g) = f.loss_and_grad_of(&z).unwrap();
        assert!((loss_value - loss(&f, &z)).abs() < 1e-12 * loss_value.abs());
        let mut worst = 0.0f64;
        for grp in f.param_groups() {
            let r = grp.range.clone();
            // up to 5 entries spread over the group; the error relative to the group's largest
            let idx: Vec<usize> = (0..5).map(|k| r.start + k * (r.len() - 1) / 4).collect();
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for &i in &idx {
                let d = fd(&mut f, &z, i);
                num = num.max((d - g[i]).abs());
                den = den.max(g[i].abs());
            }
            let rel = num / den;
            worst = worst.max(rel);
            assert!(den > 1e-6, "group {grp:?}: gradient vanishes ({den:e})");
            assert!(rel < 1e-6, "group {grp:?}: relative error {rel:e}");
        }
        println!(
            "L = {l}, n_layers = {n_layers}, h = {hidden}: worst relative gradient error over the groups {worst:.2e}"
        );
    }
}

#[test]
fn gradient_matches_finite_differences_at_full_depth() {
    let mut f = flow(4, 16, 4);
    assert_eq!(f.n_params(), 16 * (8 * 10 + 8 * 73 + 2 * 73));
    let z = noise(9 * 16, 8);
    let (_, _, g) = f.loss_and_grad_of(&z).unwrap();
    let groups = f.param_groups();
    let mut worst = 0.0f64;
    for grp in [&groups[0], &groups[1], &groups[6 * 8 + 2], &groups[6 * 15 + 4], &groups[6 * 15 + 5]] {
        for i in [grp.range.start, grp.range.end - 1] {
            let d = fd(&mut f, &z, i);
            let rel = (d - g[i]).abs() / g[i].abs();
            worst = worst.max(rel);
            assert!(rel < 1e-6, "{grp:?} entry {i}: fd {d} vs {}", g[i]);
        }
    }
    println!("n_layers = 16: worst relative gradient error {worst:.2e}");
}

#[test]
fn inverse_is_exact() {
    for (l, seed) in [(6, 1), (5, 2), (3, 3)] {
        let f = flow(l, 16, seed);
        let v = l * l;
        let z = noise(13 * v, 10 + seed);
        let s = f.push_forward(&z).unwrap();
        let (z2, lq) = f.invert_with_log_prob(&s.phi).unwrap();
        let dz = z.iter().zip(&z2).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let dq = s.log_q.iter().zip(&lq).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let lp = f.log_prob(&s.phi).unwrap();
        assert_eq!(lp, lq);
        assert_eq!(f.invert(&s.phi).unwrap(), z2);
        println!("L = {l}: max |z − Φ⁻¹(Φ(z))| = {dz:.2e}, max |Δ log q| = {dq:.2e}");
        assert!(dz < 1e-12 && dq < 1e-10, "L = {l}: {dz:e} {dq:e}");
        // and the flow is far from the identity at initialisation
        let moved = z.iter().zip(&s.phi).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 0.1);
    }
}

/// log|det A| by LU with partial pivoting.
fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut ld = 0.0;
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().partial_cmp(&a[j * n + c].abs()).unwrap()).unwrap();
        if p != c {
            for k in 0..n {
                a.swap(c * n + k, p * n + k);
            }
        }
        let d = a[c * n + c];
        ld += d.abs().ln();
        for r in c + 1..n {
            let m = a[r * n + c] / d;
            for k in c..n {
                a[r * n + k] -= m * a[c * n + k];
            }
        }
    }
    ld
}

#[test]
fn log_det_matches_dense_jacobian() {
    let l = 4;
    let v = l * l;
    let f = flow(l, 16, 5);
    let mut worst = 0.0f64;
    for b in 0..3 {
        let z = noise(v, 20 + b);
        let base = f.push_forward(&z).unwrap();
        // J[i][j] = ∂φ_i/∂z_j by central differences, column by column
        let mut jac = vec![0.0; v * v];
        for j in 0..v {
            let col = stable_fd(|h| {
                let mut zp = z.clone();
                zp[j] += h;
                let fp = f.push_forward(&zp).unwrap().phi;
                zp[j] = z[j] - h;
                let fm = f.push_forward(&zp).unwrap().phi;
                fp.iter().zip(&fm).map(|(a, b)| (a - b) / (2.0 * h)).collect()
            });
            for i in 0..v {
                jac[i * v + j] = col[i];
            }
        }
        let ld = log_abs_det(jac, v);
        let want = log_prior(&z) - ld;
        let err = (base.log_q[0] - want).abs();
        worst = worst.max(err);
        assert!(err < 1e-7, "field {b}: log q {} vs log r − log|det J| {want}", base.log_q[0]);
        assert!(ld.abs() > 0.1, "the map should not be volume-preserving at init: {ld}");
    }
    println!("max |log q − (log r − log|det J_fd|)| = {worst:.2e}");
}

#[test]
fn breaks_the_lattice_group_but_keeps_checkerboard_translations() {
    let l = 4;
    let v = l * l;
    let lat = Lattice::new(l).unwrap();
    let f = flow(l, 16, 6);
    let configs = noise(3 * v, 30);
    let stats = symmetry_stats(|p| f.log_prob(p), &lat, &configs).unwrap();
    // with the flip averaged out (log q(φ) + log q(−φ) is Z2-invariant) the spread is the
    // lattice group's alone
    let z2_even = |p: &[f64]| {
        let a = f.log_prob(p)?;
        let m: Vec<f64> = p.iter().map(|x| -x).collect();
        let b = f.log_prob(&m)?;
        Ok(a.iter().zip(&b).map(|(x, y)| x + y).collect())
    };
    let lattice_only = symmetry_spread(z2_even, &lat, &configs).unwrap();
    for (s, g) in stats.iter().zip(&lattice_only) {
        println!(
            "RealNVP L = 4: spread {:.3} (std {:.3}) over {} images; lattice group alone {g:.3}",
            s.range, s.std, s.images
        );
        assert_eq!(s.images, 16 * v);
        assert!(s.range > 1e-3 && *g > 1e-3);
    }
    // translations by (s0, s1) with s0 + s1 even map each checkerboard to itself, and the
    // periodic convolutions commute with them: log q is invariant up to rounding
    let g0 = D4 { swap: false, neg0: false, neg1: false };
    let base = f.log_prob(&configs).unwrap();
    let mut dq = 0.0f64;
    for shift in [(1, 1), (2, 0), (0, 2), (3, 1), (2, 2)] {
        let s = Symmetry { g: g0, shift, flip: false };
        let moved: Vec<f64> = configs.chunks(v).flat_map(|c| lat.transform(s, c)).collect();
        let q = f.log_prob(&moved).unwrap();
        dq = dq.max(q.iter().zip(&base).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
    }
    println!("checkerboard-preserving translations: max |Δ log q| = {dq:.2e}");
    assert!(dq < 1e-11);
    // an odd shift exchanges the masks, and the 3×3 kernels are not D4-symmetric (a reflection
    // and the transposition keep both masks): none of these is a symmetry of q
    for (g, shift) in [
        (g0, (1, 0)),
        (D4 { swap: true, neg0: false, neg1: false }, (0, 0)),
        (D4 { swap: false, neg0: true, neg1: false }, (0, 0)),
    ] {
        let s = Symmetry { g, shift, flip: false };
        let moved: Vec<f64> = configs.chunks(v).flat_map(|c| lat.transform(s, c)).collect();
        let q = f.log_prob(&moved).unwrap();
        let d = q.iter().zip(&base).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d > 1e-3, "{s:?}: max |Δ log q| = {d:e}");
    }
}

#[test]
fn continuous_flow_is_invariant_under_the_same_measure() {
    let l = 4;
    let lat = Lattice::new(l).unwrap();
    let mut f: Flow = random_flow(l, small_arch(false), 0.5, 21);
    let configs = noise(2 * l * l, 31);
    let s = symmetry_stats(|p| f.log_prob(p), &lat, &configs).unwrap();
    for s in &s {
        println!("continuous flow L = 4: spread {:.2e} (std {:.2e}) over {} images", s.range, s.std, s.images);
        assert!(s.range < 1e-9);
    }
}

#[test]
fn same_seed_same_results_for_any_thread_count() {
    let cfg = config(4, 4, 9);
    let mut a = RealNvp::new(cfg.clone(), 1).unwrap();
    let mut b = RealNvp::new(cfg, 2).unwrap();
    assert_eq!(a.params(), b.params());
    for _ in 0..3 {
        let (sa, sb) = (a.train_step().unwrap(), b.train_step().unwrap());
        assert_eq!(sa, sb);
    }
    assert_eq!(a.params(), b.params());
    let (x, y) = (a.sample(37).unwrap(), b.sample(37).unwrap());
    assert_eq!(x, y);
    // sample_at keys noise by index: a subrange equals the slice of a longer draw
    let long = a.sample_at(Stream::Sample, 100, 20).unwrap();
    let part = b.sample_at(Stream::Sample, 105, 9).unwrap();
    assert_eq!(&long.phi[5 * 16..14 * 16], &part.phi[..]);
    assert_eq!(&long.log_q[5..14], &part.log_q[..]);
    assert_eq!(a.ess(50).unwrap(), b.ess(50).unwrap());
    // a snapshot is frozen
    let snap = a.snapshot();
    a.train_step().unwrap();
    assert_ne!(snap.params(), a.params());
    assert_eq!(snap.params(), b.params());
    // initialisation: PyTorch's bounds 1/√(cin·9), and another seed differs
    let fresh = RealNvp::new(config(4, 4, 9), 1).unwrap();
    for grp in fresh.param_groups() {
        let fan_in = if grp.conv == 0 { 9.0 } else { 72.0 };
        let bound = 1.0 / f64::sqrt(fan_in);
        let p = &fresh.params()[grp.range.clone()];
        let m = p.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(m <= bound && (grp.bias || m > 0.7 * bound), "{grp:?}: max {m} bound {bound}");
    }
    assert_ne!(flow(4, 4, 10).params(), fresh.params());
}

#[test]
fn training_raises_the_ess() {
    // the double well at L = 4; 3× the reference learning rate keeps the test short (at 1e-3
    // the ESS reaches ~0.1 after 1000 steps and ~0.4 after 4000)
    let l = 4;
    let mut cfg = config(l, 16, 11);
    cfg.couplings.lambda = 8.0;
    cfg.train.learning_rate = 3e-3;
    let mut f = RealNvp::new(cfg, 1).unwrap();
    let n = 4096;
    let before = f.ess(n).unwrap();
    let t0 = std::time::Instant::now();
    let steps = 400;
    let mut losses = Vec::new();
    for _ in 0..steps {
        losses.push(f.train_step().unwrap().loss);
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3 / steps as f64;
    let after = f.ess(n).unwrap();
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (l0, l1) = (mean(&losses[..20]), mean(&losses[steps - 20..]));
    println!("L = 4, m² = −4, λ = 8: ESS {before:.4} → {after:.4} after {steps} steps ({ms:.1} ms/step); loss {l0:.3} → {l1:.3}");
    assert!(before < 0.01, "untrained ESS {before}");
    assert!(after > 0.05 && after > 20.0 * before, "ESS {before} → {after}");
    assert!(l1 < l0 - 10.0, "loss {l0} → {l1}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut f = flow(4, 2, 12);
    let v = 16;
    let bad_len = vec![0.0; v + 3];
    assert_eq!(f.log_prob(&bad_len).unwrap_err().status, Status::BadLength);
    assert_eq!(f.log_prob(&[]).unwrap_err().status, Status::BadLength);
    assert_eq!(f.invert(&bad_len).unwrap_err().status, Status::BadLength);
    assert_eq!(f.push_forward(&bad_len).unwrap_err().status, Status::BadLength);
    assert_eq!(f.loss_and_grad_of(&bad_len).unwrap_err().status, Status::BadLength);
    assert_eq!(f.loss_and_grad_of(&[]).unwrap_err().status, Status::BadLength);
    let mut nan = vec![0.5; 2 * v];
    nan[20] = f64::NAN;
    assert_eq!(f.log_prob(&nan).unwrap_err().status, Status::InvalidArgument);
    nan[20] = f64::INFINITY;
    assert_eq!(f.invert(&nan).unwrap_err().status, Status::InvalidArgument);
    assert_eq!(f.push_forward(&nan).unwrap_err().status, Status::InvalidArgument);
    let n = f.n_params();
    assert_eq!(f.set_params(&vec![0.0; n - 1]).unwrap_err().status, Status::BadLength);
    let mut p = f.params().to_vec();
    p[3] = f64::NAN;
    assert_eq!(f.set_params(&p).unwrap_err().status, Status::InvalidArgument);
    assert_eq!(f.ess(0).unwrap_err().status, Status::InvalidArgument);
    assert!(f.sample(0).unwrap().phi.is_empty());
    assert_eq!(f.sample_at(Stream::Sample, 0, usize::MAX / 2).unwrap_err().status, Status::OutOfMemory);
    for bad in [
        RealNvpConfig::new(1, -4.0, 7.0),
        RealNvpConfig::new(4, -4.0, -1.0),
        RealNvpConfig::new(4, f64::NAN, 1.0),
        RealNvpConfig { n_layers: 0, ..RealNvpConfig::new(4, -4.0, 7.0) },
        RealNvpConfig { hidden: 0, ..RealNvpConfig::new(4, -4.0, 7.0) },
    ] {
        assert_eq!(RealNvp::new(bad, 1).err().unwrap().status, Status::InvalidArgument);
    }
    let mut c = RealNvpConfig::new(4, -4.0, 7.0);
    c.train.batch_size = 0;
    assert!(RealNvp::new(c.clone(), 1).is_err());
    c.train.batch_size = 8;
    c.train.learning_rate = f64::NAN;
    assert!(RealNvp::new(c, 1).is_err());
    // the configuration round-trips through JSON
    let c = RealNvpConfig::new(6, -4.0, 6.975);
    let back: RealNvpConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    // wild but finite parameters still give finite proposals (s, t are tanh-bounded)
    let wild: Vec<f64> = noise(n, 13).iter().map(|x| 1e3 * x).collect();
    f.set_params(&wild).unwrap();
    let s = f.sample(16).unwrap();
    assert!(s.phi.iter().all(|x| x.is_finite()) && s.log_q.iter().all(|x| x.is_finite()));
    // overflowing parameters give non-finite proposals, returned as they are for the caller
    // to reject; training refuses the step and keeps the parameters
    let huge: Vec<f64> = noise(n, 14).iter().map(|x| 1e307 * x).collect();
    f.set_params(&huge).unwrap();
    let s = f.sample(16).unwrap();
    assert_eq!(s.log_q.len(), 16);
    assert!(s.log_q.iter().chain(&s.action).any(|x| !x.is_finite()));
    assert!(f.ess(16).unwrap().is_nan());
    assert_eq!(f.train_step().unwrap_err().status, Status::NonFinite);
    assert_eq!(f.params(), &huge[..]);
}

#[test]
fn realnvp_chains_sample_exactly_and_files_round_trip() {
    use eqflow::mcmc::hmc::{Hmc, HmcParams};
    use eqflow::mcmc::metropolis::Chain;
    use eqflow::observables::{summarize, Measurements};
    let l = 3;
    let mut cfg = RealNvpConfig::new(l, -1.0, 1.0);
    cfg.n_layers = 4;
    cfg.seed = 3;
    cfg.train.learning_rate = 3e-3;
    let mut f = RealNvp::new(cfg, 1).unwrap();
    for _ in 0..300 {
        f.train_step().unwrap();
    }
    // the same chain machinery as the continuous flow: exact up to statistics
    let mut chain = Chain::new(&f, 5);
    chain.set_flip(true); // RealNVP's log q is not even: the flip recomputes it
    chain.step(60_000).unwrap();
    let s = chain.observables().unwrap();
    let action = eqflow::Action::new(eqflow::Lattice::new(l).unwrap(), eqflow::Couplings::new(-1.0, 1.0).unwrap());
    let mut hmc = Hmc::new(action, HmcParams { step_size: 0.2, n_leapfrog: 8, seed: 3 }, None).unwrap();
    let mut meas = Measurements::new(l).unwrap();
    for k in 0..61_000 {
        hmc.trajectory().unwrap();
        if k >= 1000 {
            meas.push(hmc.state()).unwrap();
        }
    }
    let h = summarize(&meas).unwrap();
    eprintln!(
        "RealNVP chain (acceptance {:.3}): chi2 {:.4}({:.4}) <|M|> {:.4}({:.4}); HMC chi2 {:.4}({:.4}) <|M|> {:.4}({:.4})",
        chain.stats().acceptance(), s.chi2.value, s.chi2.error, s.abs_m.value, s.abs_m.error, h.chi2.value,
        h.chi2.error, h.abs_m.value, h.abs_m.error
    );
    for (a, b) in [(&s.chi2, &h.chi2), (&s.abs_m, &h.abs_m)] {
        assert!((a.value - b.value).abs() < 4.0 * (a.error.powi(2) + b.error.powi(2)).sqrt());
    }
    // save / load: the same samples and log q
    let path = std::env::temp_dir().join(format!("eqflow-rnvp-{}.safetensors", std::process::id()));
    eqflow::realnvp::save(&f, &path).unwrap();
    let g = eqflow::realnvp::load(&path, 2).unwrap();
    assert_eq!(g.params(), f.params());
    assert_eq!(g.steps_done, f.steps_done);
    let (a, b) = (
        f.sample_at(eqflow::rng::Stream::Sample, 9, 4).unwrap(),
        g.sample_at(eqflow::rng::Stream::Sample, 9, 4).unwrap(),
    );
    assert_eq!(a.phi, b.phi);
    assert_eq!(a.log_q, b.log_q);
    // a RealNVP file is not a continuous flow, and vice versa
    let e = eqflow::io::load(&path, 1).err().unwrap();
    assert!(e.message.contains("RealNVP"), "{}", e.message);
    let bytes = std::fs::read(&path).unwrap();
    assert!(eqflow::realnvp::from_slice(&bytes[..bytes.len() / 2], 1).is_err());
}
