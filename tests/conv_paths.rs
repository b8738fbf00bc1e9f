//! The convolution methods (dense GEMM, orbit contraction, FFT) give the same flow: samples,
//! log q and gradients, against each other and so against the direct sum they are each
//! unit-tested on.

mod common;
use common::*;
use eqflow::flow::conv::ConvMethod;
use eqflow::flow::KernelSymmetry;

#[test]
fn all_methods_agree_on_samples_log_q_and_gradients() {
    for (l, sym, mixing) in
        [(5, KernelSymmetry::Full, false), (6, KernelSymmetry::Translations, true), (4, KernelSymmetry::Full, true)]
    {
        let mut arch = small_arch(mixing);
        arch.symmetry = sym;
        let v = l * l;
        let z = noise(3 * v, 77);
        let mut results = Vec::new();
        for m in [ConvMethod::Dense, ConvMethod::Orbit, ConvMethod::Fft] {
            let mut f = random_flow(l, arch.clone(), 0.4, 13);
            f.config.conv = m;
            f.set_precision(eqflow::flow::Precision::F64, eqflow::flow::Precision::F64);
            let s = f.push_forward(&z).unwrap();
            let (loss, _, g) = f.loss_and_grad_of(&z).unwrap();
            results.push((m, s, loss, g));
        }
        let (_, s0, l0, g0) = &results[0];
        let gscale = g0.iter().map(|x| x.abs()).fold(0.0, f64::max);
        for (m, s, loss, g) in &results[1..] {
            let dphi = s.phi.iter().zip(&s0.phi).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let dq = s.log_q.iter().zip(&s0.log_q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let dg = g.iter().zip(g0).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(dphi < 1e-12 && dq < 1e-10, "L={l} {m:?}: φ {dphi:e}, log q {dq:e}");
            assert!((loss - l0).abs() < 1e-10 * l0.abs().max(1.0), "L={l} {m:?}: loss");
            assert!(dg < 1e-10 * gscale, "L={l} {m:?}: gradient {dg:e} of {gscale:e}");
        }
    }
}
