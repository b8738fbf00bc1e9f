//! Helpers shared by the integration tests.
#![allow(dead_code)]

use eqflow::flow::conv::ConvMethod;
use eqflow::flow::{Architecture, Flow, FlowConfig, Precision};
use eqflow::rng::{Rng, Stream};

/// Gaussian noise of length n from a test seed.
pub fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut x = vec![0.0; n];
    Rng::new(seed, Stream::Init, 12345).fill_normal(&mut x);
    x
}

/// A small architecture for fast exact tests.
pub fn small_arch(mixing: bool) -> Architecture {
    let mut a = if mixing { Architecture::refined() } else { Architecture::seed() };
    a.n_frequencies = 3;
    a.time_kernel_size = if mixing { 3 } else { 4 };
    a.ode_steps = 6;
    if mixing {
        a.feature_mixing = Some(2);
        a.time_mixing = Some(2);
    }
    a
}

/// A flow with random (non-zero) parameters of scale `scale` for kernel weights.
pub fn random_flow(l: usize, arch: Architecture, scale: f64, seed: u64) -> Flow {
    random_flow_with(l, arch, ConvMethod::Dense, scale, seed)
}

/// As [`random_flow`], with the convolutions evaluated by `conv`.
#[allow(dead_code)]
pub fn random_flow_with(l: usize, arch: Architecture, conv: ConvMethod, scale: f64, seed: u64) -> Flow {
    let mut cfg = FlowConfig::new(l, -4.0, 6.975);
    cfg.arch = arch;
    cfg.precision = Precision::F64;
    cfg.conv = conv;
    cfg.seed = seed;
    let mut f = Flow::new(cfg, 1).unwrap();
    let mut p = f.params().to_vec();
    let w = noise(p.len(), seed + 1);
    for i in f.layout.w.clone() {
        p[i] = scale * w[i];
    }
    f.set_params(&p).unwrap();
    f
}
