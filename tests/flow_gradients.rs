//! Exact gradients of the discretised reverse-KL loss against central finite differences.

mod common;
use common::*;
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
