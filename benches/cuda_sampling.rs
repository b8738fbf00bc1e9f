//! CUDA sampler vs CPU flow: seconds to draw n samples with log q and S, and the largest
//! differences of the two (the GPU result against the CPU oracle), for a few lattice sizes
//! in f64 and f32; then the same for the loss and gradient of a training batch and a whole
//! training step. Without a CUDA driver or device it says so and exits 0.
//!
//! Then, on the device only, the throughput table: for each L of --gpu-sizes, each
//! convolution path and each batch of --gpu-batches, proposals with log q per second (f32,
//! default architecture), seconds per training step (f32; total and path gradients), device
//! memory in use, and the floor of the convolutions alone (their multiply-adds over 60 TFLOP/s
//! fp32).
//!
//! cargo bench --bench cuda_sampling -- [--sizes 6,8,12] [--n 256] [--train-sizes 6,12]
//!     [--batch 100] [--threads 0] [--gpu-sizes 32,64] [--gpu-batches 256,4096]
//!     [--gpu-seconds 20] [--gpu-paths direct,spectral,fused]

use eqflow::cuda::{ConvPath, CudaFlow, CudaTrainer, Device};
use eqflow::flow::{Architecture, Flow, FlowConfig, Precision};
use eqflow::rng::Stream;
use eqflow::train::Gradient;
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
    sampling(&device, &sizes, n, threads);
    let train_sizes: Vec<usize> =
        arg(&args, "--train-sizes", "6,12").split(',').map(|s| s.parse().expect("--train-sizes")).collect();
    let batch: usize = arg(&args, "--batch", "100").parse().expect("--batch");
    training(&device, &train_sizes, batch, threads);
    let gpu_sizes: Vec<usize> =
        arg(&args, "--gpu-sizes", "32,64").split(',').map(|s| s.parse().expect("--gpu-sizes")).collect();
    let gpu_batches: Vec<usize> =
        arg(&args, "--gpu-batches", "256,4096").split(',').map(|s| s.parse().expect("--gpu-batches")).collect();
    let budget: f64 = arg(&args, "--gpu-seconds", "20").parse().expect("--gpu-seconds");
    let paths: Vec<String> = arg(&args, "--gpu-paths", "direct,spectral,fused").split(',').map(String::from).collect();
    throughput(&device, &gpu_sizes, &gpu_batches, budget, &paths);
}

/// Multiply-adds of the convolutions of one field through the flow (4 N_t stages), and of
/// a training step's field (forward, recomputed stages, and a backward pass of about twice
/// the forward's cost).
fn conv_macs(flow: &Flow, path: ConvPath, training: bool) -> f64 {
    let stages = 4.0 * flow.config.arch.ode_steps as f64;
    let one = path.cost(flow.lattice.size(), flow.layout.n_c) as f64 * stages;
    if training {
        4.0 * one
    } else {
        one
    }
}

fn throughput(device: &std::sync::Arc<Device>, sizes: &[usize], batches: &[usize], budget: f64, paths: &[String]) {
    const PEAK: f64 = 60e12; // H200 fp32 FLOP/s without tensor cores
    println!();
    println!("device only, f32, default architecture; floor = the convolutions' 2 x multiply-adds / 60 TFLOP/s");
    println!(
        "| L | conv | batch | proposals/s | s / training step (total / path gradient) | memory in use MiB | floor s / batch | measured / floor |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &l in sizes {
        // the spectral path's stages unfused (five launches of transforms and products, the
        // features written to and read back from memory) and fused (field.cu, one launch)
        for (path, fused) in [(ConvPath::Direct, false), (ConvPath::Spectral, false), (ConvPath::Spectral, true)] {
            let name = if fused { "Fused".to_string() } else { format!("{path:?}") };
            if !paths.iter().any(|p| p.eq_ignore_ascii_case(&name)) {
                continue;
            }
            for &batch in batches {
                let mut flow = random_flow(l, Precision::F32, 1);
                flow.config.train.batch_size = batch;
                let floor = 2.0 * conv_macs(&flow, path, false) * batch as f64 / PEAK;
                // skip what would take far longer than the budget (at 1/4 of the peak)
                if 4.0 * floor > budget {
                    println!("| {l} | {name} | {batch} | skipped: floor {floor:.1} s | | | {floor:.2e} | |");
                    continue;
                }
                let row = (|| -> eqflow::Result<String> {
                    let mut cuda = CudaFlow::with_conv_path(&flow, device.clone(), path)?;
                    cuda.set_fused(fused);
                    if cuda.fused() != fused {
                        return Ok(format!("| {l} | {name} | {batch} | not fused (L too large) | | | | |"));
                    }
                    let _ = cuda.sample_at(Stream::Sample, 0, 1)?;
                    let t0 = Instant::now();
                    cuda.sample_at(Stream::Sample, 0, batch)?;
                    let t_sample = t0.elapsed().as_secs_f64();
                    let mem = device.memory_in_use()? as f64 / (1 << 20) as f64;
                    let train_floor = 2.0 * conv_macs(&flow, path, true) * batch as f64 / PEAK;
                    let t_step = if fused {
                        "(as spectral)".to_string()
                    } else if 4.0 * train_floor > budget {
                        "skipped".to_string()
                    } else {
                        // total, then path gradients (the score integration on top); the forward
                        // pass alone costs about what sampling the batch does
                        let mut times = Vec::new();
                        for gradient in [Gradient::Total, Gradient::Path] {
                            flow.config.train.gradient = gradient;
                            let mut tr = CudaTrainer::with_conv_path(&flow, device.clone(), path)?;
                            tr.train_step(&mut flow)?;
                            let t0 = Instant::now();
                            tr.train_step(&mut flow)?;
                            times.push(format!("{:.4}", t0.elapsed().as_secs_f64()));
                        }
                        times.join(" / ")
                    };
                    Ok(format!(
                        "| {l} | {name} | {batch} | {:.0} | {t_step} | {mem:.0} | {floor:.2e} | {:.1} |",
                        batch as f64 / t_sample,
                        t_sample / floor
                    ))
                })();
                match row {
                    Ok(r) => println!("{r}"),
                    Err(e) => println!("| {l} | {name} | {batch} | error: {e} | | | | |"),
                }
            }
        }
    }
}

/// A seed-architecture flow at side l with random W (W = 0 is the identity map).
fn random_flow(l: usize, precision: Precision, threads: usize) -> Flow {
    let mut c = FlowConfig::new(l, -4.0, 6.0);
    c.arch = Architecture::seed();
    c.sample_precision = precision;
    c.precision = precision;
    c.seed = 1;
    let mut flow = Flow::new(c, threads).expect("flow");
    let mut p = flow.params().to_vec();
    let w = flow.layout.w.clone();
    let mut r = vec![0.0; w.len()];
    eqflow::rng::Rng::new(5, Stream::Init, 1).fill_normal(&mut r);
    let scale = 0.3 / ((flow.layout.n_c * flow.volume()) as f64).sqrt();
    for (i, x) in w.zip(&r) {
        p[i] = x * scale;
    }
    flow.set_params(&p).expect("params");
    flow
}

fn training(device: &std::sync::Arc<Device>, sizes: &[usize], batch: usize, threads: usize) {
    println!();
    println!(
        "| L | precision | batch | CPU s (loss+grad) | GPU s (loss+grad) | CPU/GPU | rel. err grad | GPU s / step |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &l in sizes {
        for precision in [Precision::F64, Precision::F32] {
            let mut flow = random_flow(l, precision, threads);
            flow.config.train.batch_size = batch;
            let v = l * l;
            let mut z = vec![0.0; batch * v];
            for (i, zi) in z.chunks_mut(v).enumerate() {
                eqflow::rng::Rng::new(1, Stream::Train, i as u64).fill_normal(zi);
            }
            let t0 = Instant::now();
            let (_, _, cpu) = flow.loss_and_grad_of(&z).expect("CPU gradient");
            let t_cpu = t0.elapsed().as_secs_f64();
            let mut tr = match CudaTrainer::new(&flow, device.clone()) {
                Ok(t) => t,
                Err(e) => {
                    println!("| {l} | {precision:?} | {batch} | {t_cpu:.3} | error: {e} | | | |");
                    continue;
                }
            };
            let _ = tr.loss_and_grad_of(&z[..v]);
            let t0 = Instant::now();
            let gpu = tr.loss_and_grad_of(&z);
            let t_gpu = t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            let steps = 3;
            let stepped = (0..steps).try_for_each(|_| tr.train_step(&mut flow).map(|_| ()));
            let t_step = t0.elapsed().as_secs_f64() / steps as f64;
            match (gpu, stepped) {
                (Ok((_, _, g)), Ok(())) => println!(
                    "| {l} | {precision:?} | {batch} | {t_cpu:.3} | {t_gpu:.3} | {:.1} | {:.1e} | {t_step:.3} |",
                    t_cpu / t_gpu,
                    max_rel(&g, &cpu)
                ),
                (Err(e), _) | (_, Err(e)) => {
                    println!("| {l} | {precision:?} | {batch} | {t_cpu:.3} | error: {e} | | | |")
                }
            }
        }
    }
}

fn sampling(device: &std::sync::Arc<Device>, sizes: &[usize], n: usize, threads: usize) {
    println!("| L | precision | n | CPU s | GPU s | CPU/GPU | rel. err phi | rel. err log q |");
    println!("|---|---|---|---|---|---|---|---|");
    for &l in sizes {
        for precision in [Precision::F64, Precision::F32] {
            let mut flow = random_flow(l, precision, threads);
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
