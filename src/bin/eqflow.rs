//! The `eqflow` command: train a flow, sample with it, and compare with HMC.

use clap::{Args, Parser, Subcommand};
use eqflow::action::{Action, Couplings};
use eqflow::flow::{Architecture, Flow, FlowConfig, Precision};
use eqflow::mcmc::hmc::{Hmc, HmcParams};
use eqflow::mcmc::metropolis::Chain;
use eqflow::observables::{summarize, ChainSummary, Measurements};
use eqflow::{io, Lattice};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "eqflow",
    version,
    about = "Equivariant continuous flows for 2D phi^4: train, sample, compare with HMC"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a flow by reverse KL and save it.
    Train(TrainArgs),
    /// Run a flow Metropolis chain and print observables with errors.
    Sample(SampleArgs),
    /// Run the reference HMC sampler and print the same observables.
    Hmc(HmcArgs),
}

#[derive(Args, Clone)]
struct Theory {
    /// The paper's couplings for a lattice size: L6, L8, L10, L12, L14, L20, L32, L64.
    #[arg(long)]
    preset: Option<String>,
    /// Lattice side L.
    #[arg(long)]
    lattice: Option<usize>,
    /// Bare mass squared.
    #[arg(long, allow_hyphen_values = true)]
    m2: Option<f64>,
    /// Quartic coupling.
    #[arg(long, allow_hyphen_values = true)]
    lambda: Option<f64>,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    theory: Theory,
    /// Training steps (default 1000 unless --minutes is given).
    #[arg(long)]
    steps: Option<u64>,
    /// Wall-clock budget in minutes.
    #[arg(long)]
    minutes: Option<f64>,
    /// Batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Architecture preset: seed or refined.
    #[arg(long, default_value = "seed")]
    arch: String,
    /// Compute precision of training: f32 (default, faster) or f64. Proposals, log q and S
    /// are always computed in f64.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Continue from this checkpoint instead of starting fresh.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Minutes between checkpoints.
    #[arg(long, default_value_t = 5.0)]
    checkpoint_minutes: f64,
    /// Output flow file (.safetensors); a JSON-lines training log is written beside it.
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SampleArgs {
    /// The flow file.
    #[arg(long)]
    flow: PathBuf,
    /// Metropolis steps.
    #[arg(long, default_value_t = 20000)]
    n: u64,
    /// Chain seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct HmcArgs {
    #[command(flatten)]
    theory: Theory,
    /// Trajectories (after thermalisation).
    #[arg(long, default_value_t = 20000)]
    n: u64,
    /// Leapfrog step size (tuned to 80% acceptance if not given).
    #[arg(long)]
    step_size: Option<f64>,
    /// Leapfrog steps per trajectory.
    #[arg(long, default_value_t = 10)]
    n_leapfrog: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

type Res<T> = std::result::Result<T, String>;

fn err(e: eqflow::Error) -> String {
    e.message
}

/// Seed Table 1 (SPEC §2): (L, χ2, L·m_p, acceptance %, ESS %).
const TABLE1: [(usize, f64, f64, f64, f64); 4] = [
    (6, 1.06, 3.98, 96.0, 99.0),
    (12, 4.12, 3.99, 91.0, 97.0),
    (20, 10.57, 4.05, 82.0, 90.0),
    (32, 25.34, 4.05, 66.0, 66.0),
];

fn theory(t: &Theory) -> Res<(usize, Couplings)> {
    if let Some(p) = &t.preset {
        let l: usize = p
            .strip_prefix('L')
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("unknown preset '{p}' (known: L6, L8, L10, L12, L14, L20, L32, L64)"))?;
        let c = Couplings::preset(l)
            .ok_or_else(|| format!("unknown preset '{p}' (known: L6, L8, L10, L12, L14, L20, L32, L64)"))?;
        return Ok((l, c));
    }
    let (l, m2, lam) = match (t.lattice, t.m2, t.lambda) {
        (Some(l), Some(m2), Some(lam)) => (l, m2, lam),
        _ => return Err("give --preset, or all of --lattice, --m2 and --lambda".into()),
    };
    Lattice::new(l).map_err(err)?;
    Ok((l, Couplings::new(m2, lam).map_err(err)?))
}

fn reference(l: usize, c: &Couplings) -> Option<(usize, f64, f64, f64, f64)> {
    let p = Couplings::preset(l)?;
    if p != *c {
        return None;
    }
    TABLE1.iter().copied().find(|r| r.0 == l)
}

fn log_line(log: &mut Option<std::fs::File>, v: serde_json::Value) {
    if let Some(f) = log {
        let _ = writeln!(f, "{v}");
    }
}

fn train(a: TrainArgs) -> Res<serde_json::Value> {
    let mut flow = match &a.resume {
        Some(p) => {
            let mut f = io::load(p, a.threads).map_err(err)?;
            f.set_threads(a.threads).map_err(err)?;
            f
        }
        None => {
            let (l, c) = theory(&a.theory)?;
            let mut cfg = FlowConfig::new(l, c.m2, c.lambda);
            cfg.arch = Architecture::preset(&a.arch).map_err(err)?;
            cfg.precision = match a.precision.as_str() {
                "f64" => Precision::F64,
                "f32" => Precision::F32,
                p => return Err(format!("unknown precision '{p}' (f64 or f32)")),
            };
            if let Some(b) = a.batch {
                cfg.train.batch_size = b;
            }
            if let Some(lr) = a.lr {
                cfg.train.learning_rate = lr;
            }
            cfg.seed = a.seed;
            Flow::new(cfg, a.threads).map_err(err)?
        }
    };
    let steps = a.steps.unwrap_or(if a.minutes.is_some() { u64::MAX } else { 1000 });
    let budget = a.minutes.map(|m| m * 60.0).unwrap_or(f64::INFINITY);
    let log_path = PathBuf::from(format!("{}.log.jsonl", a.out.display()));
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).ok();
    let start = Instant::now();
    let mut last_ckpt = Instant::now();
    let mut last_print = Instant::now();
    let mut last = None;
    let first_step = flow.steps_done;
    eprintln!(
        "training L = {}, m2 = {}, lambda = {} ({} parameters, batch {}, {:?} compute)",
        flow.lattice.size(),
        flow.action.couplings.m2,
        flow.action.couplings.lambda,
        flow.layout.total,
        flow.config.train.batch_size,
        flow.config.precision
    );
    let mut done = 0;
    while done < steps && start.elapsed().as_secs_f64() < budget {
        let s = match flow.train_step() {
            Ok(s) => s,
            Err(e) => {
                io::save(&flow, &a.out).map_err(err)?;
                return Err(format!("{} (last good flow saved to {})", e.message, a.out.display()));
            }
        };
        done += 1;
        let secs = start.elapsed().as_secs_f64();
        log_line(&mut log, json!({"step": s.step, "seconds": secs, "loss": s.loss, "ess": s.ess, "lr": s.lr}));
        if last_print.elapsed().as_secs_f64() > 2.0 || done == steps {
            eprintln!(
                "step {:6}  loss {:9.4}  batch ESS {:.3}  {:.2} steps/s",
                s.step,
                s.loss,
                s.ess,
                (s.step - first_step) as f64 / secs
            );
            last_print = Instant::now();
        }
        if last_ckpt.elapsed().as_secs_f64() > a.checkpoint_minutes * 60.0 {
            io::save(&flow, &a.out).map_err(err)?;
            last_ckpt = Instant::now();
        }
        last = Some(s);
    }
    io::save(&flow, &a.out).map_err(err)?;
    let ess = flow.ess(1000).map_err(err)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "saved {} after {} steps in {:.1} s; ESS on 1000 fresh samples: {:.4}",
        a.out.display(),
        flow.steps_done,
        secs,
        ess
    );
    Ok(json!({
        "flow": a.out, "log": log_path, "steps_done": flow.steps_done, "seconds": secs,
        "loss": last.map(|s| s.loss), "ess": ess,
    }))
}

fn print_summary(label: &str, s: &ChainSummary, acc: Option<f64>, ess: Option<f64>, l: usize, c: &Couplings) {
    eprintln!("{label}: {} configurations", s.n);
    if let Some(a) = acc {
        eprintln!("  acceptance      {:.4}", a);
    }
    if let Some(e) = ess {
        eprintln!("  ESS             {:.4}", e);
    }
    eprintln!("  chi2            {:.4} ± {:.4}", s.chi2.value, s.chi2.error);
    eprintln!("  L·m_p           {:.4} ± {:.4}", s.l_m_p.value, s.l_m_p.error);
    eprintln!("  xi              {:.4} ± {:.4}", s.xi.value, s.xi.error);
    eprintln!("  <|M|>           {:.5} ± {:.5}", s.abs_m.value, s.abs_m.error);
    eprintln!("  tau_int |M|     {:.3}", s.tau_int_abs_m);
    eprintln!("  tau_int chi2    {:.3}", s.tau_int_chi2);
    if let Some((_, chi2, lmp, acc, ess)) = reference(l, c) {
        eprintln!("  seed Table 1:   chi2 {chi2}, L·m_p {lmp}, acceptance {acc}%, ESS {ess}%");
    }
}

fn sample(a: SampleArgs) -> Res<serde_json::Value> {
    if a.n < 10 {
        return Err(format!("--n {}: need at least 10 steps for error estimates", a.n));
    }
    let mut flow = io::load(&a.flow, a.threads).map_err(err)?;
    let l = flow.lattice.size();
    let c = flow.action.couplings;
    let start = Instant::now();
    let mut chain = Chain::new(&flow, a.seed);
    let mut meas = Measurements::new(l).map_err(err)?;
    let mut bad = None;
    chain
        .run(a.n, |st, _| {
            if let Err(e) = meas.push(&st.phi) {
                bad.get_or_insert(e);
            }
        })
        .map_err(err)?;
    if let Some(e) = bad {
        return Err(e.message);
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = chain.stats();
    let ess = flow.ess(2000.min(a.n as usize)).map_err(err)?;
    let s = summarize(&meas).map_err(err)?;
    print_summary("flow Metropolis", &s, Some(stats.acceptance()), Some(ess), l, &c);
    if stats.non_finite > 0 {
        eprintln!("  rejected as non-finite (log q or S): {}", stats.non_finite);
    }
    eprintln!("  wall time       {secs:.1} s ({:.0} proposals/s)", a.n as f64 / secs);
    Ok(json!({"acceptance": stats.acceptance(), "ess": ess, "proposed": stats.proposed, "accepted": stats.accepted,
        "non_finite": stats.non_finite, "seconds": secs, "summary": s, "reference": reference(l, &c)}))
}

fn hmc(a: HmcArgs) -> Res<serde_json::Value> {
    let (l, c) = theory(&a.theory)?;
    if a.n < 10 {
        return Err(format!("--n {}: need at least 10 trajectories for error estimates", a.n));
    }
    let action = Action::new(Lattice::new(l).map_err(err)?, c);
    let params = HmcParams { step_size: a.step_size.unwrap_or(0.1), n_leapfrog: a.n_leapfrog, seed: a.seed };
    let mut h = Hmc::new(action, params, None).map_err(err)?;
    let start = Instant::now();
    if a.step_size.is_none() {
        let eps = h.tune_step_size(0.8, 2000).map_err(err)?;
        eprintln!("tuned step size {eps:.4}");
    }
    for _ in 0..1000 {
        h.trajectory().map_err(err)?;
    }
    let mut meas = Measurements::new(l).map_err(err)?;
    let (p0, a0) = (h.proposed(), h.accepted());
    for _ in 0..a.n {
        h.trajectory().map_err(err)?;
        meas.push(h.state()).map_err(err)?;
    }
    let acc = (h.accepted() - a0) as f64 / (h.proposed() - p0) as f64;
    let secs = start.elapsed().as_secs_f64();
    let s = summarize(&meas).map_err(err)?;
    print_summary("HMC", &s, Some(acc), None, l, &c);
    eprintln!("  wall time       {secs:.1} s");
    Ok(
        json!({"acceptance": acc, "seconds": secs, "step_size": h.params().step_size, "summary": s, "reference": reference(l, &c)}),
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (json_out, r) = match cli.cmd {
        Cmd::Train(a) => (a.json, train(a)),
        Cmd::Sample(a) => (a.json, sample(a)),
        Cmd::Hmc(a) => (a.json, hmc(a)),
    };
    match r {
        Ok(v) => {
            if json_out {
                println!("{v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eqflow: error: {e}");
            ExitCode::from(2)
        }
    }
}
