//! `eqflow train`: reverse-KL training with a progress bar, atomic checkpoints, exact resume,
//! a JSON-lines log beside the output, and Ctrl-C that saves a checkpoint before exiting.

use crate::{check_same_theory, err, progress, theory, Res, Theory};
use clap::Args;
use eqflow::flow::{Architecture, Flow, FlowConfig, Precision};
use eqflow::io;
use eqflow::realnvp::{RealNvp, RealNvpConfig};
use eqflow::train::{Gradient, Schedule, TrainConfig};
use eqflow::AnyFlow;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub theory: Theory,
    /// Train until the flow has done this many steps in total (default 1000 without
    /// --minutes); a resumed run with the same --steps ends where an uninterrupted one would.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Wall-clock budget of this invocation, in minutes.
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Batch size (prior draws per step; default 100).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Base learning rate (default 2e-3).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Steps for a tenfold decay of the learning rate (default 8000).
    #[arg(long)]
    pub decay_steps: Option<f64>,
    /// Gradient accumulation: push the batch through in sequential micro-batches of this many
    /// fields (memory scales with it; default: the whole batch at once)
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Steps of linear learning-rate warm-up (default 0; 100 with --init-from, whose transferred
    /// flow one full-rate Adam step can wreck)
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// Coarse integration early in training: the first --coarse-steps steps use this many RK4
    /// steps (e.g. 18 for the seed architecture's 54; a multiple of d_t − 1 for the hat time
    /// kernel); sampling and the final ESS always use the architecture's
    #[arg(long)]
    pub coarse_ode_steps: Option<usize>,
    /// Training steps integrated with --coarse-ode-steps (default 0: none). With --resume only
    /// together with --restart-schedule, and then counted from the step reached
    #[arg(long)]
    pub coarse_steps: Option<u64>,
    /// RK4 steps N_t of a new flow (default: the architecture's, 54 seed, 50 refined). More
    /// steps shrink the discretisation gap of log q, which training can otherwise learn to
    /// exploit (the refined architecture at N_t = 50: see `eqflow gap`)
    #[arg(long)]
    pub ode_steps: Option<usize>,
    /// Number of frequencies n_ω of a new flow (default: the architecture's). With --init-from a
    /// flow with fewer: the new ones start with zero weights (the flow is unchanged until trained)
    #[arg(long)]
    pub frequencies: Option<usize>,
    /// Time-kernel size d_t of a new flow (default: the architecture's, 10 seed, 21 refined).
    /// With --init-from a flow with a coarser kernel (hat: d_t − 1 a multiple of its d_t − 1;
    /// Fourier: at least its size) the kernel is refined exactly, e.g. 10 → 19 or 28
    #[arg(long)]
    pub time_kernel_size: Option<usize>,
    /// Gradient estimator: total (the derivative of the batch loss) or path (drops the score
    /// term, whose variance dominates late in training; about 1.4× the time of a step at L = 6).
    /// With --resume only together with --restart-schedule.
    #[arg(long)]
    pub gradient: Option<String>,
    /// Seed of the initial parameters and every random stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Architecture preset: seed or refined (or the ablations translation-only, non-odd,
    /// translation-only-non-odd), or realnvp (the RealNVP baseline: its reference training,
    /// batch 64 and lr 1e-3, unless --batch/--lr are given).
    #[arg(long, default_value = "seed")]
    pub arch: String,
    /// Compute precision of training: f32 (default, faster) or f64. Proposals, log q and S
    /// are always computed in f64.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Compute backend: cpu, or cuda (the forward and backward passes of each step on GPU 0; Adam and checkpoints on the host).
    #[arg(long, default_value = "cpu")]
    pub backend: String,
    /// Start from a flow trained on a smaller (or the same) lattice, of the same architecture or
    /// a narrower one (see --frequencies, --time-kernel-size): its kernel seeds the same
    /// displacements here, longer-range orbits and new frequencies start at zero.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// With --init-from: dilate the transferred kernel by r = L / L_small (displacement d here
    /// takes the small flow's kernel at d / r, interpolated, times r^-P) beyond --init-keep.
    #[arg(long, value_name = "P")]
    pub init_dilate: Option<f64>,
    /// With --init-dilate: orbits with both folded distances at most this keep the small flow's
    /// kernel at the same displacement (default 0: the on-site term).
    #[arg(long, default_value_t = 0, value_name = "R")]
    pub init_keep: usize,
    /// Continue from this checkpoint (bit for bit as if never stopped).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// With --resume: keep the parameters and Adam's moments but start a new learning-rate
    /// schedule at the step reached, from --lr (required) with --decay-steps and --warmup-steps
    /// (default: the checkpoint's decay, no warm-up), and --batch if given (a larger batch
    /// lowers Adam's noise late in training). For a run whose rate has decayed to nothing while
    /// it still improves; saved with the flow, so later resumes stay bit for bit.
    #[arg(long, requires = "resume")]
    pub restart_schedule: bool,
    /// Minutes between checkpoints (written atomically to --out).
    #[arg(long, default_value_t = 5.0)]
    pub checkpoint_minutes: f64,
    /// Fresh samples for the final ESS estimate.
    #[arg(long, default_value_t = 1000)]
    pub ess_samples: usize,
    /// Output flow file (.safetensors); a JSON-lines log is written beside it (FILE.log.jsonl).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn fresh_flow(a: &TrainArgs) -> Res<AnyFlow> {
    let (l, c) = theory(&a.theory)?;
    if let Some(d) = a.decay_steps {
        if !(d.is_finite() && d > 0.0) {
            return Err(format!("--decay-steps {d}: must be positive"));
        }
    }
    let set_train = |t: &mut TrainConfig| {
        if let Some(b) = a.batch {
            t.batch_size = b;
        }
        if let Some(lr) = a.lr {
            t.learning_rate = lr;
        }
        if let Some(d) = a.decay_steps {
            t.schedule = Schedule::Exponential { decay_steps: d };
        }
        t.micro_batch = a.micro_batch.unwrap_or(0);
        t.warmup_steps = a.warmup_steps.unwrap_or(if a.init_from.is_some() { 100 } else { 0 });
        t.coarse_ode_steps = a.coarse_ode_steps.unwrap_or(0);
        t.coarse_steps = a.coarse_steps.unwrap_or(0);
    };
    let gradient = gradient_arg(a)?;
    if a.coarse_ode_steps.is_some() != a.coarse_steps.is_some() {
        return Err("--coarse-ode-steps and --coarse-steps go together".into());
    }
    if a.coarse_ode_steps == Some(0) {
        return Err("--coarse-ode-steps 0: must be at least 1".into());
    }
    if a.init_dilate.is_some() && a.init_from.is_none() {
        return Err("--init-dilate goes with --init-from".into());
    }
    if a.arch == "realnvp" {
        if a.init_from.is_some() {
            return Err("--init-from: transfer to a larger lattice is for the continuous flow, not RealNVP".into());
        }
        if a.micro_batch.is_some() {
            return Err("--micro-batch: gradient accumulation is for the continuous flow, not RealNVP".into());
        }
        if a.coarse_ode_steps.is_some() || a.ode_steps.is_some() {
            return Err("--coarse-ode-steps, --ode-steps: RealNVP has no ODE".into());
        }
        if a.frequencies.is_some() || a.time_kernel_size.is_some() {
            return Err("--frequencies, --time-kernel-size: options of the continuous flow, not RealNVP".into());
        }
        if gradient == Some(Gradient::Path) {
            return Err("--gradient path is for the continuous flow, not RealNVP".into());
        }
        let mut cfg = RealNvpConfig::new(l, c.m2, c.lambda);
        set_train(&mut cfg.train);
        cfg.seed = a.seed;
        return Ok(RealNvp::new(cfg, a.threads).map_err(err)?.into());
    }
    let mut cfg = FlowConfig::new(l, c.m2, c.lambda);
    cfg.arch = Architecture::preset(&a.arch).map_err(|e| format!("{} (or realnvp)", e.message))?;
    if let Some(n) = a.ode_steps {
        cfg.arch.ode_steps = n;
        cfg.arch.validate().map_err(|e| format!("--ode-steps {n}: {}", e.message))?;
    }
    if let Some(n) = a.frequencies {
        cfg.arch.n_frequencies = n;
        cfg.arch.validate().map_err(|e| format!("--frequencies {n}: {}", e.message))?;
    }
    if let Some(d) = a.time_kernel_size {
        cfg.arch.time_kernel_size = d;
        cfg.arch.validate().map_err(|e| format!("--time-kernel-size {d}: {}", e.message))?;
    }
    cfg.precision = match a.precision.as_str() {
        "f64" => Precision::F64,
        "f32" => Precision::F32,
        p => return Err(format!("unknown precision '{p}' (f64 or f32)")),
    };
    set_train(&mut cfg.train);
    cfg.train.gradient = gradient.unwrap_or_default();
    cfg.seed = a.seed;
    let mut flow = Flow::new(cfg, a.threads).map_err(err)?;
    if let Some(p) = &a.init_from {
        let small = io::load(p, 1).map_err(err)?;
        flow.transfer_from(&small).map_err(|e| format!("--init-from '{}': {}", p.display(), e.message))?;
        if let Some(power) = a.init_dilate {
            flow.dilate_kernel(small.lattice.size(), power, a.init_keep)
                .map_err(|e| format!("--init-dilate: {}", e.message))?;
        }
        eprintln!("initialised from {} (L = {})", p.display(), small.lattice.size());
    }
    Ok(flow.into())
}

fn resumed_flow(a: &TrainArgs, path: &std::path::Path) -> Res<AnyFlow> {
    let mut f = AnyFlow::load(path, a.threads).map_err(err)?;
    f.set_threads(a.threads).map_err(err)?;
    // the micro-batch may change on another machine: it changes the gradient only by rounding
    if let Some(m) = a.micro_batch {
        if f.kind() == eqflow::FlowKind::RealNvp {
            return Err("--micro-batch: gradient accumulation is for the continuous flow, not RealNVP".into());
        }
        f.train_config_mut().micro_batch = m;
    }
    check_same_theory(&a.theory, f.lattice_size(), &f.couplings(), &format!("checkpoint '{}'", path.display()))?;
    if a.restart_schedule {
        restart_schedule(a, &mut f)?;
    }
    let schedule_flags = !a.restart_schedule;
    for (flag, given) in [
        ("--batch", a.batch.is_some() && schedule_flags),
        ("--lr", a.lr.is_some() && schedule_flags),
        ("--decay-steps", a.decay_steps.is_some() && schedule_flags),
        ("--warmup-steps", a.warmup_steps.is_some() && schedule_flags),
        ("--gradient", a.gradient.is_some() && schedule_flags),
        ("--coarse-ode-steps", a.coarse_ode_steps.is_some() && schedule_flags),
        ("--coarse-steps", a.coarse_steps.is_some() && schedule_flags),
        ("--ode-steps", a.ode_steps.is_some()),
        ("--frequencies", a.frequencies.is_some()),
        ("--time-kernel-size", a.time_kernel_size.is_some()),
    ] {
        if given {
            return Err(format!(
                "{flag} cannot change when resuming (the checkpoint keeps its settings; a new learning-rate \
                 schedule: --restart-schedule --lr X)"
            ));
        }
    }
    Ok(f)
}

fn gradient_arg(a: &TrainArgs) -> Res<Option<Gradient>> {
    match a.gradient.as_deref() {
        None => Ok(None),
        Some("total") => Ok(Some(Gradient::Total)),
        Some("path") => Ok(Some(Gradient::Path)),
        Some(g) => Err(format!("unknown --gradient '{g}' (total or path)")),
    }
}

/// `--restart-schedule`: a new schedule from the step reached; parameters and Adam stay.
fn restart_schedule(a: &TrainArgs, f: &mut AnyFlow) -> Res<()> {
    let lr = a.lr.ok_or("--restart-schedule needs --lr (the new base learning rate)")?;
    let step = f.steps_done();
    let t = f.train_config_mut();
    t.restart(step, lr, a.decay_steps, a.warmup_steps.unwrap_or(0))
        .map_err(|e| format!("--restart-schedule: {}", e.message))?;
    if let Some(g) = gradient_arg(a)? {
        if g == Gradient::Path && f.kind() == eqflow::FlowKind::RealNvp {
            return Err("--gradient path is for the continuous flow, not RealNVP".into());
        }
        f.train_config_mut().gradient = g;
    }
    // a coarse integration for the next S steps (e.g. a fine-tuning stage at half the N_t)
    match (a.coarse_ode_steps, a.coarse_steps) {
        (None, None) => {}
        (Some(0), _) => return Err("--coarse-ode-steps 0: must be at least 1".into()),
        (Some(n), Some(steps)) => {
            if f.kind() == eqflow::FlowKind::RealNvp {
                return Err("--coarse-ode-steps: RealNVP has no ODE".into());
            }
            let t = f.train_config_mut();
            t.coarse_ode_steps = n;
            t.coarse_steps = step.saturating_add(steps);
        }
        _ => return Err("--coarse-ode-steps and --coarse-steps go together".into()),
    }
    let t = f.train_config_mut();
    if let Some(b) = a.batch {
        // training draws are indexed by (step, position in the batch): any batch size continues
        if b == 0 || b >= 1 << 24 {
            return Err(format!("--batch {b}: must be between 1 and 2^24 - 1"));
        }
        t.batch_size = b;
    }
    let coarse = match t.coarse_steps > step && t.coarse_ode_steps > 0 {
        true => format!(", N_t = {} until step {}", t.coarse_ode_steps, t.coarse_steps),
        false => String::new(),
    };
    eprintln!(
        "new learning-rate schedule from step {step}: lr {lr} ({:?}, warm-up {}), batch {}, {:?} gradient{coarse}",
        t.schedule, t.warmup_steps, t.batch_size, t.gradient
    );
    Ok(())
}

pub fn train(a: TrainArgs) -> Res<serde_json::Value> {
    let cuda = crate::is_cuda(&a.backend)?;
    if let Some(m) = a.minutes {
        if !(m.is_finite() && m > 0.0) {
            return Err(format!("--minutes {m}: must be positive"));
        }
    }
    let mut flow = match &a.resume {
        Some(p) => resumed_flow(&a, p)?,
        None => fresh_flow(&a)?,
    };
    // the device trainer: the flow stays the master copy (parameters, Adam, checkpoints)
    let mut device_trainer = match cuda {
        false => None,
        true => {
            let f = flow.as_continuous_mut().ok_or("--backend cuda trains continuous flows only (not RealNVP)")?;
            let dev = eqflow::cuda::Device::new(0).map_err(|e| format!("--backend cuda: {}", e.message))?;
            Some(eqflow::cuda::CudaTrainer::new(f, dev).map_err(|e| format!("--backend cuda: {}", e.message))?)
        }
    };
    let target = a.steps.unwrap_or(if a.minutes.is_some() { u64::MAX } else { 1000 });
    let budget = a.minutes.map(|m| m * 60.0).unwrap_or(f64::INFINITY);
    let log_path = PathBuf::from(format!("{}.log.jsonl", a.out.display()));
    if a.resume.is_some() {
        let dropped = trim_log(&log_path, flow.steps_done())?;
        if dropped > 0 {
            eprintln!(
                "training log: dropped {dropped} line(s) past the checkpoint's step {} (written after its last checkpoint by an invocation that was killed)",
                flow.steps_done()
            );
        }
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open the training log '{}': {e}", log_path.display()))?;
    // seconds already spent on this run (from the log of earlier invocations)
    let earlier = std::fs::read_to_string(&log_path)
        .ok()
        .and_then(|s| s.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()))
        .and_then(|v| v.get("seconds").and_then(|s| s.as_f64()))
        .filter(|_| a.resume.is_some())
        .unwrap_or(0.0);
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    eprintln!(
        "training L = {}, m2 = {}, lambda = {} ({}, {} parameters, batch {}, {} threads)",
        flow.lattice_size(),
        flow.couplings().m2,
        flow.couplings().lambda,
        flow.describe(),
        flow.n_params(),
        flow.train_config().batch_size,
        flow.threads()
    );
    let start = Instant::now();
    let mut last_ckpt = Instant::now();
    let mut last_print = Instant::now();
    let first_step = flow.steps_done();
    let (pb, by_steps) = if target != u64::MAX {
        let pb = progress(target, "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}");
        pb.set_position(flow.steps_done());
        (pb, true)
    } else {
        (progress((budget * 10.0) as u64, "{bar:30} [{elapsed_precise}<{eta_precise}] {msg}"), false)
    };
    let mut running_ess = f64::NAN;
    let mut last = None;
    let mut interrupted = false;
    while flow.steps_done() < target && start.elapsed().as_secs_f64() < budget {
        if INTERRUPTED.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        // the RK4 steps this training step integrates with (coarse integration: fewer)
        let n_t = flow.as_continuous_mut().map(|f| f.training_ode_steps());
        let step = match (&mut device_trainer, flow.as_continuous_mut()) {
            (Some(t), Some(f)) => t.train_step(f),
            _ => flow.train_step(),
        };
        let s = match step {
            Ok(s) => s,
            Err(e) => {
                pb.abandon();
                flow.save(&a.out).map_err(err)?;
                return Err(format!("{} (last good flow saved to {})", e.message, a.out.display()));
            }
        };
        let secs = start.elapsed().as_secs_f64();
        running_ess = if running_ess.is_nan() { s.ess } else { 0.95 * running_ess + 0.05 * s.ess };
        let mut line = json!({"step": s.step, "seconds": earlier + secs, "loss": s.loss, "ess": s.ess, "lr": s.lr});
        if let Some(n) = n_t {
            line["ode_steps"] = n.into();
        }
        writeln!(log, "{line}").map_err(|e| format!("writing the training log: {e}"))?;
        let rate = (s.step - first_step) as f64 / secs;
        let msg = format!("step {}  loss {:.4}  ESS(run) {:.3}  {:.2} steps/s", s.step, s.loss, running_ess, rate);
        if by_steps {
            pb.set_position(s.step);
        } else {
            pb.set_position((secs * 10.0) as u64);
        }
        pb.set_message(msg.clone());
        if pb.is_hidden() && last_print.elapsed().as_secs_f64() > 5.0 {
            eprintln!("{msg}");
            last_print = Instant::now();
        }
        if last_ckpt.elapsed().as_secs_f64() > a.checkpoint_minutes * 60.0 {
            flow.save(&a.out).map_err(err)?;
            last_ckpt = Instant::now();
        }
        last = Some(s);
    }
    pb.finish_and_clear();
    flow.save(&a.out).map_err(err)?;
    let secs = start.elapsed().as_secs_f64();
    if interrupted {
        eprintln!(
            "interrupted after {} steps: checkpoint saved to {} (continue with --resume {})",
            flow.steps_done(),
            a.out.display(),
            a.out.display()
        );
        return Ok(json!({"flow": a.out, "log": log_path, "steps_done": flow.steps_done(), "seconds": secs,
            "interrupted": true}));
    }
    let ess = flow.ess(a.ess_samples.max(1)).map_err(err)?;
    eprintln!(
        "saved {} after {} steps ({} in {:.1} s); ESS on {} fresh samples: {:.4}",
        a.out.display(),
        flow.steps_done(),
        flow.steps_done() - first_step,
        secs,
        a.ess_samples.max(1),
        ess
    );
    let gap = match flow.as_continuous_mut() {
        Some(f) if f.volume() <= GAP_MAX_VOLUME => Some(report_gap(f)?),
        _ => None,
    };
    Ok(json!({
        "flow": a.out, "log": log_path, "steps_done": flow.steps_done(), "seconds": secs,
        "total_seconds": earlier + secs, "loss": last.map(|s| s.loss), "ess": ess, "interrupted": false,
        "lattice": flow.lattice_size(), "m2": flow.couplings().m2, "lambda": flow.couplings().lambda,
        "kind": format!("{:?}", flow.kind()), "gap": gap,
    }))
}

/// Lattices up to 12 × 12 get the discretisation gap of log q measured after training (a few
/// seconds); larger ones can ask `eqflow gap`.
const GAP_MAX_VOLUME: usize = 144;

/// Spread of the gap above which sampling should integrate more finely.
const GAP_SPREAD_WARN: f64 = 1e-3;

/// The gap at 4 fresh prior points, printed with a warning when its spread is large: training
/// can learn to exploit the integrator (a loss below −log Z), which only finer integration
/// at sampling time (`--ode-steps`) undoes.
fn report_gap(f: &eqflow::flow::Flow) -> Res<serde_json::Value> {
    let v = f.volume();
    let mut z = vec![0.0; 4 * v];
    for (i, zi) in z.chunks_mut(v).enumerate() {
        eqflow::rng::Rng::new(f.config.seed, eqflow::rng::Stream::Init, (1 << 40) + i as u64).fill_normal(zi);
    }
    let g = eqflow::flow::gap::log_det_gap(f, &z, 1e-5).map_err(err)?;
    let n_t = f.config.arch.ode_steps;
    eprintln!("discretisation gap of log q (N_t = {n_t}, 4 points): mean {:+.2e}, spread {:.2e}", g.mean(), g.spread());
    if g.spread() > GAP_SPREAD_WARN {
        eprintln!(
            "warning: the gap varies by {:.1e} between configurations, which biases Metropolis: sample with \
             --ode-steps {} or more (check with eqflow gap --ode-steps)",
            g.spread(),
            4 * n_t
        );
    }
    Ok(json!({"ode_steps": n_t, "mean": g.mean(), "spread": g.spread(), "max_deviation": g.max_deviation()}))
}

/// Drops the lines of a training log whose step lies past `steps_done`: an invocation killed
/// between checkpoints logged steps that its checkpoint does not hold, and the resumed run
/// repeats them (bit for bit). Rewrites the log atomically; returns how many lines went.
fn trim_log(path: &std::path::Path, steps_done: u64) -> Result<usize, String> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(0) };
    let past = |l: &str| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
            .is_some_and(|s| s > steps_done)
    };
    let kept: Vec<&str> = text.lines().filter(|l| !past(l)).collect();
    let dropped = text.lines().count() - kept.len();
    if dropped > 0 {
        let tmp = path.with_extension("jsonl.tmp");
        let mut body = kept.join("\n");
        if !body.is_empty() {
            body.push('\n');
        }
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot rewrite the training log '{}': {e}", path.display()))?;
    }
    Ok(dropped)
}
