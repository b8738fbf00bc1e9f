//! The paper's comparison on this machine: for each L, train the continuous equivariant flow,
//! its ablations and the RealNVP baseline for the same wall-clock budget, log ESS against wall
//! time, measure the symmetry violation of log q (the paper's Fig. 2), and print a summary.
//!
//! EQFLOW_OUT=out cargo run --release --example study -- [--minutes M] [--threads K]
//!     [--models a,b,...] L...
//! writes out/study_L{L}.csv (model, seconds, step, ESS, spread), out/study_L{L}.svg/.png (ESS
//! against minutes, one curve per model) and prints the summary table (markdown).
//! Models: seed (the continuous flow), translation-only, non-odd, translation-only-non-odd,
//! realnvp. Evaluation time (fresh ESS, symmetry spread) is not charged to the budget.

use eqflow::flow::model::{Samples, StepStats};
use eqflow::flow::{Architecture, Flow, FlowConfig};
use eqflow::realnvp::{RealNvp, RealNvpConfig};
use eqflow::rng::{Rng, Stream};
use eqflow::symmetry::symmetry_stats;
use eqflow::{Couplings, Lattice, Result};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::time::Instant;

enum Model {
    Continuous(Box<Flow>),
    RealNvp(Box<RealNvp>),
}

impl Model {
    fn train_step(&mut self) -> Result<StepStats> {
        match self {
            Model::Continuous(f) => f.train_step(),
            Model::RealNvp(r) => r.train_step(),
        }
    }
    fn sample_eval(&mut self, n: usize, first: u64) -> Result<Samples> {
        match self {
            Model::Continuous(f) => f.sample_at(Stream::Ess, first, n),
            Model::RealNvp(r) => r.sample_at(Stream::Ess, first, n),
        }
    }
    fn log_prob(&mut self, phi: &[f64]) -> Result<Vec<f64>> {
        match self {
            Model::Continuous(f) => f.log_prob(phi),
            Model::RealNvp(r) => r.log_prob(phi),
        }
    }
    fn n_params(&self) -> usize {
        match self {
            Model::Continuous(f) => f.layout.total,
            Model::RealNvp(r) => r.n_params(),
        }
    }
}

/// Acceptance of an independence Metropolis chain fed these proposals in order (SPEC §5).
fn metropolis_acceptance(log_w: &[f64], seed: u64) -> f64 {
    let mut cur = f64::NAN;
    let mut acc = 0usize;
    for (k, &lw) in log_w.iter().enumerate() {
        let accept = lw.is_finite()
            && (cur.is_nan()
                || lw >= cur
                || Rng::new(seed, Stream::Metropolis, k as u64).uniform(0) < (lw - cur).exp());
        if accept {
            cur = lw;
            acc += 1;
        }
    }
    acc as f64 / log_w.len() as f64
}

/// Mean over configurations of the range of log q over their symmetry images.
fn spread(model: &mut Model, lattice: &Lattice, configs: &[f64]) -> f64 {
    match symmetry_stats(|p| model.log_prob(p), lattice, configs) {
        Ok(s) => s.iter().map(|x| x.range).sum::<f64>() / s.len() as f64,
        Err(_) => f64::NAN,
    }
}

struct Curve {
    name: String,
    points: Vec<(f64, f64)>,
}

fn draw_curves<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    l: usize,
    curves: &[Curve],
    minutes: f64,
) -> std::result::Result<(), String> {
    let e = |x: &dyn std::fmt::Debug| format!("{x:?}");
    let colors = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut c = ChartBuilder::on(&root)
        .caption(format!("ESS against training time, L = {l}"), ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..minutes, 0.0..1.0)
        .map_err(|x| e(&x))?;
    c.configure_mesh().x_desc("minutes of training").y_desc("ESS").draw().map_err(|x| e(&x))?;
    for (k, cv) in curves.iter().enumerate() {
        let col = colors[k % colors.len()];
        c.draw_series(LineSeries::new(cv.points.clone(), col.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(cv.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

fn plot(path: &std::path::Path, l: usize, curves: &[Curve], minutes: f64) -> std::result::Result<(), String> {
    for font in ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"] {
        if let Ok(b) = std::fs::read(font) {
            let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(b.into_boxed_slice()));
            break;
        }
    }
    let svg = path.with_extension("svg");
    let png = path.with_extension("png");
    draw_curves(SVGBackend::new(&svg, (900, 550)).into_drawing_area(), l, curves, minutes)?;
    draw_curves(BitMapBackend::new(&png, (900, 550)).into_drawing_area(), l, curves, minutes)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        let v = args[i + 1].clone();
        args.drain(i..i + 2);
        Some(v)
    };
    let minutes: f64 = take("--minutes").map_or(3.0, |v| v.parse().expect("--minutes"));
    let threads: usize = take("--threads").map_or(1, |v| v.parse().expect("--threads"));
    let models: Vec<String> = take("--models")
        .unwrap_or("seed,translation-only,non-odd,translation-only-non-odd,realnvp".into())
        .split(',')
        .map(String::from)
        .collect();
    let sizes: Vec<usize> =
        if args.is_empty() { vec![6, 12] } else { args.iter().map(|a| a.parse().expect("L")).collect() };
    let out_dir = std::path::PathBuf::from(std::env::var("EQFLOW_OUT").unwrap_or_else(|_| "out".into()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut table = String::from(
        "| L | model | parameters | steps | ms / step | final ESS | acceptance | symmetry spread of log q |\n|---|---|---|---|---|---|---|---|\n",
    );
    for &l in &sizes {
        let c = Couplings::preset(l).unwrap_or(Couplings { m2: -4.0, lambda: 6.0 });
        let lattice = Lattice::new(l).unwrap();
        let mut csv = String::from("model,seconds,step,ess,spread\n");
        let mut curves = Vec::new();
        for name in &models {
            let mut model = if name == "realnvp" {
                let mut cfg = RealNvpConfig::new(l, c.m2, c.lambda);
                cfg.seed = 1;
                Model::RealNvp(Box::new(RealNvp::new(cfg, threads).unwrap()))
            } else {
                let mut cfg = FlowConfig::new(l, c.m2, c.lambda);
                cfg.arch = Architecture::preset(name).unwrap();
                cfg.seed = 1;
                Model::Continuous(Box::new(Flow::new(cfg, threads).unwrap()))
            };
            let budget = minutes * 60.0;
            let (mut trained, mut step) = (0.0, 0u64);
            let mut next_eval = 0.0;
            let mut points = Vec::new();
            let n_eval = 500;
            while trained < budget {
                if trained >= next_eval {
                    let s = model.sample_eval(n_eval, step << 20).unwrap();
                    let ess = eqflow::train::ess(&s.log_weights());
                    // the spread on a few of the model's own samples (cheap for RealNVP, an exact
                    // inversion per image for the continuous flow: only at the start and the end)
                    let sp = if name == "realnvp" || step == 0 {
                        spread(&mut model, &lattice, &s.phi[..2 * l * l])
                    } else {
                        f64::NAN
                    };
                    writeln!(csv, "{name},{trained},{step},{ess},{sp}").unwrap();
                    eprintln!("L={l} {name}: {:.1} min, step {step}, ESS {ess:.3}, spread {sp:.3e}", trained / 60.0);
                    points.push((trained / 60.0, ess));
                    next_eval += budget / 12.0;
                }
                let t = Instant::now();
                if let Err(e) = model.train_step() {
                    eprintln!("L={l} {name}: step {step} failed: {} (continuing)", e.message);
                }
                trained += t.elapsed().as_secs_f64();
                step += 1;
            }
            let s = model.sample_eval(4000, u64::MAX >> 8).unwrap();
            let lw = s.log_weights();
            let ess = eqflow::train::ess(&lw);
            let acc = metropolis_acceptance(&lw, 5);
            let sp = spread(&mut model, &lattice, &s.phi[..2 * l * l]);
            writeln!(csv, "{name},{trained},{step},{ess},{sp}").unwrap();
            points.push((trained / 60.0, ess));
            eprintln!("L={l} {name}: final ESS {ess:.3}, acceptance {acc:.3}, spread {sp:.3e}");
            writeln!(
                table,
                "| {l} | {name} | {} | {step} | {:.0} | {ess:.3} | {acc:.3} | {sp:.2e} |",
                model.n_params(),
                1000.0 * trained / step as f64
            )
            .unwrap();
            curves.push(Curve { name: name.clone(), points });
        }
        std::fs::write(out_dir.join(format!("study_L{l}.csv")), &csv).unwrap();
        if let Err(e) = plot(&out_dir.join(format!("study_L{l}")), l, &curves, minutes) {
            eprintln!("plot failed: {e}");
        }
        eprintln!("{table}");
    }
    println!("{table}");
    println!("(equal training wall-clock per model, {minutes} min, {threads} thread(s); ESS on 4000 fresh samples;");
    println!(" acceptance of an independence Metropolis chain over them; spread = mean over 2 samples of");
    println!(" max − min of log q over the 16·L² symmetry images, lattice group × flip)");
}
