//! Throughput table (issue: seconds per training step, samples with log q per second, peak
//! memory) for several lattice sizes, both presets, f64 and f32, total and path gradients.
//! Each configuration runs in a child process so its peak memory (VmHWM) is its own.
//!
//! cargo bench --bench throughput -- [--sizes 6,12,32] [--batch 100] [--threads 2] [--presets seed,refined]
//!     [--precisions f64,f32] [--gradients total,path]

use eqflow::flow::{Architecture, Flow, FlowConfig, Precision};
use eqflow::train::Gradient;
use std::process::Command;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(f64::NAN, |k| k / 1024.0)
}

/// CPU seconds used by this process so far (user + system, all threads): on a loaded
/// machine, with one worker thread, this is close to what an idle machine's wall clock shows.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes a plain struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn arg(args: &[String], flag: &str, default: &str) -> String {
    args.iter().position(|a| a == flag).map(|i| args[i + 1].clone()).unwrap_or_else(|| default.to_string())
}

/// One configuration: prints "s_per_step samples_per_s peak_mib cpu_s_per_step cpu_samples_per_s".
fn child(l: usize, preset: &str, prec: &str, gradient: &str, batch: usize, threads: usize) {
    let c = eqflow::Couplings::preset(l).unwrap_or(eqflow::Couplings { m2: -4.0, lambda: 5.0 });
    let mut cfg = FlowConfig::new(l, c.m2, c.lambda);
    cfg.arch = Architecture::preset(preset).unwrap();
    let p = if prec == "f32" { Precision::F32 } else { Precision::F64 };
    cfg.precision = p;
    cfg.sample_precision = p;
    cfg.train.batch_size = batch;
    cfg.train.gradient = if gradient == "path" { Gradient::Path } else { Gradient::Total };
    let mut f = Flow::new(cfg, threads).unwrap();
    f.train_step().unwrap(); // warm-up, and W ≠ 0
    let steps = if l <= 12 { 3 } else { 1 };
    let (t, c) = (Instant::now(), cpu_seconds());
    for _ in 0..steps {
        f.train_step().unwrap();
    }
    let step = t.elapsed().as_secs_f64() / steps as f64;
    let cpu_step = (cpu_seconds() - c) / steps as f64;
    let n = if l <= 12 {
        800
    } else if l <= 32 {
        64
    } else {
        16
    };
    let (t, c) = (Instant::now(), cpu_seconds());
    f.sample(n).unwrap();
    let sps = n as f64 / t.elapsed().as_secs_f64();
    let cpu_sps = n as f64 / (cpu_seconds() - c);
    println!("{step} {sps} {} {cpu_step} {cpu_sps}", peak_rss_mib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let a = &args[i + 1..];
        child(a[0].parse().unwrap(), &a[1], &a[2], &a[3], a[4].parse().unwrap(), a[5].parse().unwrap());
        return;
    }
    let sizes: Vec<usize> = arg(&args, "--sizes", "6,12,32").split(',').map(|s| s.parse().unwrap()).collect();
    let presets = arg(&args, "--presets", "seed,refined");
    let batch: usize = arg(&args, "--batch", "100").parse().unwrap();
    let threads: usize = arg(&args, "--threads", "2").parse().unwrap();
    let precisions = arg(&args, "--precisions", "f64,f32");
    let gradients = arg(&args, "--gradients", "total,path");
    println!("batch {batch}, {threads} threads, N_t per preset (seed 54, refined 50); samples include log q (f64 accumulation)");
    println!(
        "| L | preset | precision | gradient | s / training step | samples with log q / s | peak MiB | CPU s / step | samples / CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().unwrap();
    for &l in &sizes {
        for preset in presets.split(',') {
            for prec in precisions.split(',') {
                for g in gradients.split(',') {
                    let out = Command::new(&exe)
                        .args(["--child", &l.to_string(), preset, prec, g, &batch.to_string(), &threads.to_string()])
                        .output()
                        .expect("child");
                    let s = String::from_utf8_lossy(&out.stdout);
                    let v: Vec<f64> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                    if v.len() == 5 {
                        println!(
                            "| {l} | {preset} | {prec} | {g} | {:.3} | {:.1} | {:.0} | {:.3} | {:.1} |",
                            v[0], v[1], v[2], v[3], v[4]
                        );
                    } else {
                        println!(
                            "| {l} | {preset} | {prec} | {g} | failed: {} | | |",
                            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
                        );
                    }
                }
            }
        }
    }
}
