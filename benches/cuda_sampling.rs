//! CUDA sampler vs CPU flow: seconds to draw n samples with log q and S, and the largest
//! differences of the two (the GPU result against the CPU oracle), for a few lattice sizes
//! in f64 and f32. Without a CUDA driver or device it says so and exits 0.
//!
//! cargo bench --bench cuda_sampling -- [--sizes 6,8,12] [--n 256] [--threads 0]

use eqflow::cuda::{CudaFlow, Device};
use eqflow::flow::{Architecture, Flow, FlowConfig, Precision};
use eqflow::rng::Stream;
use std::time::Instant;

fn arg(args: &[String], flag: &str, default: &str) -> String {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.into())
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(f64::MIN_POSITIVE);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max(if x.is_finite() { (x - y).abs() } else { f64::INFINITY })) / scale
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = arg(&args, "--sizes", "6,8,12").split(',').map(|s| s.parse().expect("--sizes")).collect();
    let n: usize = arg(&args, "--n", "256").parse().expect("--n");
    let threads: usize = arg(&args, "--threads", "0").parse().expect("--threads");
    let device = match Device::new(0) {
        Ok(d) => d,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    println!("device 0: {} (compute {:?})", device.name().unwrap_or_default(), device.compute_capability().ok());
    println!("| L | precision | n | CPU s | GPU s | CPU/GPU | rel. err phi | rel. err log q |");
    println!("|---|---|---|---|---|---|---|---|");
    for &l in &sizes {
        for precision in [Precision::F64, Precision::F32] {
            let mut c = FlowConfig::new(l, -4.0, 6.0);
            c.arch = Architecture::seed();
            c.sample_precision = precision;
            c.seed = 1;
            let mut flow = Flow::new(c, threads).expect("flow");
            // random weights: W = 0 is the identity map
            let mut p = flow.params().to_vec();
            let w = flow.layout.w.clone();
            let mut r = vec![0.0; w.len()];
            eqflow::rng::Rng::new(5, Stream::Init, 1).fill_normal(&mut r);
            let scale = 0.3 / ((flow.layout.n_c * flow.volume()) as f64).sqrt();
            for (i, x) in w.zip(&r) {
                p[i] = x * scale;
            }
            flow.set_params(&p).expect("params");
            let t0 = Instant::now();
            let cpu = flow.sample_at(Stream::Sample, 0, n).expect("CPU samples");
            let t_cpu = t0.elapsed().as_secs_f64();
            let cuda = match CudaFlow::new(&flow, device.clone()) {
                Ok(c) => c,
                Err(e) => {
                    println!("| {l} | {precision:?} | {n} | {t_cpu:.3} | error: {e} | | | |");
                    continue;
                }
            };
            // the first call loads the modules; time the second
            let _ = cuda.sample_at(Stream::Sample, 0, 1.min(n));
            let t0 = Instant::now();
            let gpu = cuda.sample_at(Stream::Sample, 0, n);
            let t_gpu = t0.elapsed().as_secs_f64();
            match gpu {
                Ok(g) => println!(
                    "| {l} | {precision:?} | {n} | {t_cpu:.3} | {t_gpu:.3} | {:.1} | {:.1e} | {:.1e} |",
                    t_cpu / t_gpu,
                    max_rel(&g.phi, &cpu.phi),
                    max_rel(&g.log_q, &cpu.log_q)
                ),
                Err(e) => println!("| {l} | {precision:?} | {n} | {t_cpu:.3} | error: {e} | | | |"),
            }
        }
    }
}
