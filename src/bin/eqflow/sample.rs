//! `eqflow sample | hmc | reweight`: the flow Metropolis chain, the reference HMC and
//! reweighting, with observables measured on the fly (bounded memory) and optional `.npy`
//! output of configurations.

use crate::npy::{Dtype, NpyWriter};
use crate::{check_same_theory, err, print_summary, print_undefined_m_p, progress, reference, theory, Res, Theory};
use clap::Args;
use eqflow::action::Action;
use eqflow::mcmc::hmc::{Hmc, HmcParams};
use eqflow::mcmc::metropolis::Chain;
use eqflow::observables::{summarize, Measurements};
use eqflow::reweight::{ess_with_error, reweight_samples, Reweighted};
use eqflow::{AnyFlow, Lattice};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Where and how to write configurations.
#[derive(Args, Clone)]
pub struct Output {
    /// Write configurations to this NumPy file (shape (n, L, L), C order = x1 fastest).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write only every k-th configuration.
    #[arg(long, default_value_t = 1)]
    pub every: u64,
    /// Element type of --out: f64, f32 or f16 (f16: 4× smaller, ~3 significant digits).
    #[arg(long, default_value = "f64")]
    pub dtype: String,
}

impl Output {
    fn writer(&self, n: u64, l: usize) -> Res<Option<NpyWriter>> {
        if self.every == 0 {
            return Err("--every 0: must be at least 1".into());
        }
        let dtype = Dtype::parse(&self.dtype)?;
        self.out.as_ref().map(|p| NpyWriter::create(p, dtype, (n / self.every) as usize, l)).transpose()
    }
}

#[derive(Args)]
pub struct SampleArgs {
    /// The flow file.
    #[arg(long)]
    pub flow: PathBuf,
    /// Metropolis steps.
    #[arg(long, default_value_t = 20000)]
    pub n: u64,
    /// Chain seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Add the Z2 flip update φ → −φ after each step (exact, free).
    #[arg(long)]
    pub flip: bool,
    /// Independent samples for the reweighting estimates (0: none), drawn with the chain's seed
    /// after its proposals.
    #[arg(long, default_value_t = 5000)]
    pub reweight: usize,
    /// Integrate a continuous flow's vector field with this many RK4 steps instead of its own
    /// N_t (more steps: a smaller discretisation gap of log q; see `eqflow gap`).
    #[arg(long)]
    pub ode_steps: Option<usize>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where the proposals are computed: cpu, or cuda (each block of proposals pushed through
    /// the flow on GPU 0, prior draws by proposal index as on the CPU; the chain's decisions,
    /// flips and measurements, the ESS and the reweighting samples on the host).
    #[arg(long, default_value = "cpu")]
    pub backend: String,
    #[command(flatten)]
    pub output: Output,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct HmcArgs {
    #[command(flatten)]
    pub theory: Theory,
    /// Trajectories (after thermalisation).
    #[arg(long, default_value_t = 20000)]
    pub n: u64,
    /// Thermalisation trajectories.
    #[arg(long, default_value_t = 1000)]
    pub thermalise: u64,
    /// Leapfrog step size (tuned to 80% acceptance if not given).
    #[arg(long)]
    pub step_size: Option<f64>,
    /// Leapfrog steps per trajectory.
    #[arg(long, default_value_t = 10)]
    pub n_leapfrog: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub output: Output,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ReweightArgs {
    /// The flow file.
    #[arg(long)]
    pub flow: PathBuf,
    /// Independent samples.
    #[arg(long, default_value_t = 20000)]
    pub n: usize,
    /// Reweight to λ + DELTA instead of the flow's λ.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub delta_lambda: f64,
    /// Theory to check the flow against (optional).
    #[command(flatten)]
    pub theory: Theory,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn print_reweighted(r: &Reweighted, delta_lambda: f64) {
    eprintln!(
        "reweighting {} independent flow samples (λ + {delta_lambda}): ESS {:.4} ± {:.4}",
        r.n, r.ess, r.ess_error
    );
    eprintln!("  log Z           {:.4} ± {:.4}", r.log_z.value, r.log_z.error);
    eprintln!("  chi2            {:.4} ± {:.4}", r.chi2.value, r.chi2.error);
    eprintln!("  L·m_p           {:.4} ± {:.4}", r.l_m_p.value, r.l_m_p.error);
    print_undefined_m_p(&r.undefined_m_p_t(), r.m_p_t.len(), "jackknife blocks");
    eprintln!("  <|M|>           {:.5} ± {:.5}", r.abs_m.value, r.abs_m.error);
    eprintln!("  Binder U        {:.5} ± {:.5}", r.binder.value, r.binder.error);
}

const BLOCK: u64 = 1024;

pub fn sample(a: SampleArgs) -> Res<serde_json::Value> {
    if a.n < 10 {
        return Err(format!("--n {}: need at least 10 steps for error estimates", a.n));
    }
    let mut flow = AnyFlow::load(&a.flow, a.threads).map_err(err)?;
    if let Some(n) = a.ode_steps {
        flow.as_continuous_mut()
            .ok_or("--ode-steps: only the continuous flow integrates an ODE")?
            .set_ode_steps(n)
            .map_err(err)?;
    }
    let l = flow.lattice_size();
    let c = flow.couplings();
    let mut writer = a.output.writer(a.n, l)?;
    let start = Instant::now();
    let mut chain = Chain::new(&flow, a.seed);
    chain.set_flip(a.flip);
    match (crate::is_cuda(&a.backend)?, &flow) {
        (false, _) => {}
        (true, AnyFlow::Continuous(f)) => {
            let cuda = |e: eqflow::Error| format!("--backend cuda: {}", e.message);
            let dev = eqflow::cuda::Device::new(0).map_err(cuda)?;
            chain.set_pusher(Some(Box::new(eqflow::cuda::CudaFlow::new(f, dev).map_err(cuda)?)));
        }
        (true, AnyFlow::RealNvp(_)) => return Err("--backend cuda samples continuous flows only (not RealNVP)".into()),
    }
    let pb = progress(a.n, "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}");
    let mut done = 0u64;
    let mut write_err = None;
    while done < a.n {
        let m = BLOCK.min(a.n - done);
        let mut k = done;
        chain
            .run(m, |st, _| {
                k += 1;
                if let Some(w) = writer.as_mut() {
                    if k % a.output.every == 0 {
                        if let Err(e) = w.write(&st.phi) {
                            write_err.get_or_insert(e);
                        }
                    }
                }
            })
            .map_err(err)?;
        if let Some(e) = write_err.take() {
            return Err(e);
        }
        done += m;
        pb.set_position(done);
        pb.set_message(format!("acceptance {:.3}", chain.stats().acceptance()));
    }
    pb.finish_and_clear();
    if let Some(w) = writer {
        w.finish()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = chain.stats();
    // ESS of fresh samples keyed by the chain's seed, after the chain's proposals and the
    // reweighting batch below: a new --seed gives new samples (and an independent estimate)
    let fresh = flow.sample_keyed(a.seed, stats.proposed + a.reweight as u64, 2000.min(a.n as usize)).map_err(err)?;
    let ess_est = ess_with_error(&fresh.log_weights()).map_err(err)?;
    drop(fresh);
    let ess = ess_est.value;
    let s = chain.observables().map_err(err)?;
    print_summary("flow Metropolis", &s, Some(stats.acceptance()), Some(ess_est), l, &c);
    if stats.non_finite > 0 {
        eprintln!("  rejected as non-finite (log q or S): {}", stats.non_finite);
    }
    if a.flip {
        eprintln!("  Z2 flips        {} of {} accepted", stats.flips_accepted, stats.flips_proposed);
    }
    eprintln!("  wall time       {secs:.1} s ({:.0} proposals/s)", a.n as f64 / secs);
    let rw = if a.reweight >= 2 {
        // the chain's own seed, the proposal indices after its last: independent of the chain's
        // proposals, and a new --seed gives new samples
        let samples = flow.sample_keyed(a.seed, stats.proposed, a.reweight).map_err(err)?;
        let r = reweight_samples(&samples, l, 0.0).map_err(err)?;
        print_reweighted(&r, 0.0);
        Some(r)
    } else {
        None
    };
    if let Some(p) = &a.output.out {
        eprintln!("  configurations  {} ({} every {})", p.display(), a.output.dtype, a.output.every);
    }
    Ok(json!({"lattice": l, "m2": c.m2, "lambda": c.lambda, "acceptance": stats.acceptance(), "ess": ess,
        "ess_error": ess_est.error,
        "stats": stats, "seconds": secs, "proposals_per_second": a.n as f64 / secs, "summary": s,
        "reweighted": rw, "reference": reference(l, &c), "out": a.output.out}))
}

pub fn hmc(a: HmcArgs) -> Res<serde_json::Value> {
    let (l, c) = theory(&a.theory)?;
    if a.n < 10 {
        return Err(format!("--n {}: need at least 10 trajectories for error estimates", a.n));
    }
    let action = Action::new(Lattice::new(l).map_err(err)?, c);
    let params = HmcParams { step_size: a.step_size.unwrap_or(0.1), n_leapfrog: a.n_leapfrog, seed: a.seed };
    let mut h = Hmc::new(action, params, None).map_err(err)?;
    let mut writer = a.output.writer(a.n, l)?;
    let start = Instant::now();
    if a.step_size.is_none() {
        let eps = h.tune_step_size(0.8, 2000).map_err(err)?;
        eprintln!("tuned step size {eps:.4}");
    }
    for _ in 0..a.thermalise {
        h.trajectory().map_err(err)?;
    }
    let mut meas = Measurements::new(l).map_err(err)?;
    let (p0, a0) = (h.proposed(), h.accepted());
    let pb = progress(a.n, "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}");
    for k in 1..=a.n {
        h.trajectory().map_err(err)?;
        meas.push(h.state()).map_err(err)?;
        if let Some(w) = writer.as_mut() {
            if k % a.output.every == 0 {
                w.write(h.state())?;
            }
        }
        if k % BLOCK == 0 {
            pb.set_position(k);
        }
    }
    pb.finish_and_clear();
    if let Some(w) = writer {
        w.finish()?;
    }
    let acc = (h.accepted() - a0) as f64 / (h.proposed() - p0) as f64;
    let secs = start.elapsed().as_secs_f64();
    let s = summarize(&meas).map_err(err)?;
    print_summary("HMC", &s, Some(acc), None, l, &c);
    eprintln!("  wall time       {secs:.1} s");
    Ok(json!({"lattice": l, "m2": c.m2, "lambda": c.lambda, "acceptance": acc, "seconds": secs,
        "step_size": h.params().step_size, "summary": s, "reference": reference(l, &c), "out": a.output.out}))
}

pub fn reweight(a: ReweightArgs) -> Res<serde_json::Value> {
    if a.n < 2 {
        return Err(format!("--n {}: need at least 2 samples", a.n));
    }
    let mut flow = AnyFlow::load(&a.flow, a.threads).map_err(err)?;
    let l = flow.lattice_size();
    let c = flow.couplings();
    check_same_theory(&a.theory, l, &c, &format!("flow '{}'", a.flow.display()))?;
    let start = Instant::now();
    let samples = flow.sample(a.n).map_err(err)?;
    let r = reweight_samples(&samples, l, a.delta_lambda).map_err(err)?;
    print_reweighted(&r, a.delta_lambda);
    let secs = start.elapsed().as_secs_f64();
    eprintln!("  wall time       {secs:.1} s");
    Ok(json!({"lattice": l, "m2": c.m2, "lambda": c.lambda + a.delta_lambda, "delta_lambda": a.delta_lambda,
        "seconds": secs, "reweighted": r}))
}
