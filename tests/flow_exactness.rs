//! Exactness of the flow: identity at initialisation, equivariance, the divergence formula,
//! the discrete map's log-determinant, inversion and the RK4 order.

mod common;
use common::*;
use eqflow::flow::conv::ConvMethod;
use eqflow::flow::vector_field::VectorField;
use eqflow::flow::{Architecture, FeatureKind, Flow, FlowConfig, KernelSymmetry};
use eqflow::lattice::{Lattice, Symmetry, D4};

#[test]
fn identity_at_initialisation() {
    for arch in [Architecture::seed(), Architecture::refined()] {
        let mut f = Flow::new(FlowConfig { arch, ..FlowConfig::new(5, -4.0, 6.975) }, 1).unwrap();
        let z = noise(4 * 25, 3);
        let s = f.push_forward(&z).unwrap();
        assert_eq!(s.phi, z, "W = 0 must give φ = z exactly");
        for b in 0..4 {
            let zb = &z[b * 25..(b + 1) * 25];
            let log_r = -0.5 * zb.iter().map(|x| x * x).sum::<f64>() - 12.5 * (2.0 * std::f64::consts::PI).ln();
            assert_eq!(s.log_q[b], log_r);
        }
    }
}

/// Max |log q(g z) − log q(z)| and max |Φ(g z) − g Φ(z)| over random symmetries and flips.
fn symmetry_violation(f: &mut Flow, l: usize, d4_only: bool, flip_only: bool) -> (f64, f64) {
    let lat = Lattice::new(l).unwrap();
    let v = l * l;
    let z = noise(2 * v, 5);
    let base = f.push_forward(&z).unwrap();
    let (mut dq, mut dphi) = (0.0f64, 0.0f64);
    let mut k = 0;
    for g in D4::all() {
        for shift in [(0, 0), (1, 2 % l), (l - 1, 1)] {
            for flip in [false, true] {
                k += 1;
                if (d4_only && flip) || (flip_only && (g != D4::all()[0] || shift != (0, 0))) {
                    continue;
                }
                let s = Symmetry { g, shift, flip };
                let zt: Vec<f64> = z.chunks(v).flat_map(|c| lat.transform(s, c)).collect();
                let out = f.push_forward(&zt).unwrap();
                for b in 0..2 {
                    dq = dq.max((out.log_q[b] - base.log_q[b]).abs());
                    let want = lat.transform(s, &base.phi[b * v..(b + 1) * v]);
                    for (a, w) in out.phi[b * v..(b + 1) * v].iter().zip(&want) {
                        dphi = dphi.max((a - w).abs());
                    }
                }
            }
        }
    }
    assert!(k > 0);
    (dq, dphi)
}

#[test]
fn equivariance_of_map_and_invariance_of_log_q() {
    for l in [4, 5, 6] {
        for arch in [small_arch(false), small_arch(true)] {
            let mut f = random_flow(l, arch, 0.5, 21);
            let (dq, dphi) = symmetry_violation(&mut f, l, false, false);
            assert!(dq < 1e-10 && dphi < 1e-10, "L={l}: log q spread {dq:e}, map {dphi:e}");
        }
    }
}

#[test]
fn ablations_break_the_symmetry_they_drop() {
    // translation-only kernels break D4 (but keep translations and Z2)
    let mut a = small_arch(false);
    a.symmetry = KernelSymmetry::Translations;
    let mut f = random_flow(5, a, 0.5, 22);
    let (dq, _) = symmetry_violation(&mut f, 5, true, false);
    assert!(dq > 1e-4, "translation-only ablation should break D4: spread {dq:e}");
    let (dq_flip, _) = symmetry_violation(&mut f, 5, false, true);
    assert!(dq_flip < 1e-10, "translation-only ablation keeps Z2: {dq_flip:e}");
    // non-odd features break Z2 (but keep the lattice group)
    let mut a = small_arch(false);
    a.features = FeatureKind::NonOdd;
    let mut f = random_flow(5, a, 0.5, 23);
    let (dq, _) = symmetry_violation(&mut f, 5, false, true);
    assert!(dq > 1e-4, "non-odd ablation should break Z2: spread {dq:e}");
    let (dq_lat, _) = symmetry_violation(&mut f, 5, true, false);
    assert!(dq_lat < 1e-10, "non-odd ablation keeps the lattice group: {dq_lat:e}");
}

#[test]
fn divergence_equals_trace_of_jacobian() {
    for arch in [small_arch(false), small_arch(true)] {
        let l = 4;
        let v = 16;
        let f = random_flow(l, arch, 0.5, 31);
        let field = VectorField::<f64>::new(&f.config.arch, f.lattice, &f.layout, f.params(), ConvMethod::Dense);
        let mut w = field.work(1);
        let u = noise(v, 32);
        for slot in [0, 3, 7] {
            let (mut out, mut div) = (vec![0.0; v], vec![0.0; 1]);
            field.eval(slot, &u, &mut out, &mut div, &mut w, 0);
            let mut trace = 0.0;
            for x in 0..v {
                let h = 1e-5;
                let (mut up, mut um) = (u.clone(), u.clone());
                up[x] += h;
                um[x] -= h;
                let (mut fp, mut fm, mut d) = (vec![0.0; v], vec![0.0; v], vec![0.0; 1]);
                field.eval(slot, &up, &mut fp, &mut d, &mut w, 0);
                field.eval(slot, &um, &mut fm, &mut d, &mut w, 0);
                trace += (fp[x] - fm[x]) / (2.0 * h);
            }
            assert!((trace - div[0]).abs() < 1e-7 * (1.0 + div[0].abs()), "slot {slot}: {trace} vs {}", div[0]);
        }
    }
}

/// log|det| of a dense matrix by LU with partial pivoting.
fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut acc = 0.0;
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| a[i * n + k].abs().partial_cmp(&a[j * n + k].abs()).unwrap()).unwrap();
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
        }
        let piv = a[k * n + k];
        acc += piv.abs().ln();
        for i in k + 1..n {
            let m = a[i * n + k] / piv;
            for j in k..n {
                a[i * n + j] -= m * a[k * n + j];
            }
        }
    }
    acc
}

/// |∫div − log|det J|| of the discrete map at L = 4, for a given number of steps.
fn log_det_gap(n_steps: usize) -> f64 {
    let mut arch = small_arch(true);
    arch.ode_steps = n_steps;
    let mut f = random_flow(4, arch, 1.5, 41);
    let v = 16;
    let z = noise(v, 42);
    let s = f.push_forward(&z).unwrap();
    let log_r = -0.5 * z.iter().map(|x| x * x).sum::<f64>() - 8.0 * (2.0 * std::f64::consts::PI).ln();
    let integrated = log_r - s.log_q[0]; // = ∫ div dt
    let mut jac = vec![0.0; v * v];
    let h = 1e-5;
    for j in 0..v {
        let (mut zp, mut zm) = (z.clone(), z.clone());
        zp[j] += h;
        zm[j] -= h;
        let (pp, pm) = (f.push_forward(&zp).unwrap().phi, f.push_forward(&zm).unwrap().phi);
        for i in 0..v {
            jac[i * v + j] = (pp[i] - pm[i]) / (2.0 * h);
        }
    }
    (integrated - log_abs_det(jac, v)).abs()
}

#[test]
fn discrete_log_det_gap_shrinks_like_h4() {
    let gaps: Vec<(usize, f64)> = [6, 12, 24, 50].iter().map(|&n| (n, log_det_gap(n))).collect();
    for (n, g) in &gaps {
        eprintln!("N_t = {n}: |∫div − log|det J|| = {g:.3e}");
    }
    // from 6 to 12 to 24 steps the gap falls by ~16 each time (allow 8 for pre-asymptotics)
    assert!(gaps[0].1 / gaps[1].1 > 8.0, "{gaps:?}");
    assert!(gaps[1].1 / gaps[2].1 > 8.0, "{gaps:?}");
    assert!(gaps[3].1 < 1e-5, "gap at N_t = 50: {:e}", gaps[3].1);
}

#[test]
fn inverse_is_exact_and_backward_rk4_has_order_four() {
    let mut errs = vec![];
    for n in [5, 10, 20] {
        let mut arch = small_arch(true);
        arch.ode_steps = n;
        let mut f = random_flow(5, arch, 1.0, 51);
        let z = noise(3 * 25, 52);
        let s = f.push_forward(&z).unwrap();
        let zi = f.invert(&s.phi).unwrap();
        let inv_err = z.iter().zip(&zi).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(inv_err < 1e-12, "discrete inverse error {inv_err:e}");
        let lq = f.log_prob(&s.phi).unwrap();
        for (a, b) in lq.iter().zip(&s.log_q) {
            assert!((a - b).abs() < 1e-10, "log_prob of a sampled configuration: {a} vs {b}");
        }
        let zb = f.backward_rk4(&s.phi).unwrap();
        let rk_err = z.iter().zip(&zb).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("N_t = {n}: inverse {inv_err:.2e}, backward RK4 round trip {rk_err:.2e}");
        errs.push(rk_err);
    }
    assert!(errs[0] / errs[1] > 8.0 && errs[1] / errs[2] > 8.0, "backward RK4 error not O(h^4): {errs:?}");
}
