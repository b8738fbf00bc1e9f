use eqflow::flow::{Architecture, Flow, FlowConfig, Precision};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let l: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(6);
    let arch = args.get(2).map(|s| s.as_str()).unwrap_or("seed");
    let prec = if args.get(3).map(|s| s == "f32").unwrap_or(false) { Precision::F32 } else { Precision::F64 };
    let threads: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(2);
    let mut cfg = FlowConfig::new(l, -4.0, 6.975);
    cfg.arch = Architecture::preset(arch).unwrap();
    cfg.precision = prec;
    cfg.conv = match args.get(5).map(|s| s.as_str()) {
        Some("fft") => eqflow::flow::conv::ConvMethod::Fft,
        Some("orbit") => eqflow::flow::conv::ConvMethod::Orbit,
        Some("dense") => eqflow::flow::conv::ConvMethod::Dense,
        _ => eqflow::flow::conv::ConvMethod::Auto,
    };
    let mut f = Flow::new(cfg, threads).unwrap();
    f.train_step().unwrap();
    let t = Instant::now();
    let n = 5;
    for _ in 0..n {
        let s = f.train_step().unwrap();
        eprintln!("{:?}", s);
    }
    println!("L={l} {arch} {prec:?}: {:.3} s/step", t.elapsed().as_secs_f64() / n as f64);
    let t = Instant::now();
    let s = f.sample(400).unwrap();
    println!("sampling: {:.0} samples/s ({})", 400.0 / t.elapsed().as_secs_f64(), s.log_q.len());
}
