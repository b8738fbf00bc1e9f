//! `eqflow gap`: the discretisation gap of a continuous flow's log q at fresh prior points
//! (`eqflow::flow::gap`): how far the integrated divergence is from the exact log-det of the
//! discrete map, and how much that varies over configurations (what biases Metropolis),
//! next to the spread of the log-weights it competes with.

use crate::{err, Res};
use clap::Args;
use eqflow::flow::gap::log_det_gap;
use eqflow::rng::{Rng, Stream};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct GapArgs {
    /// The flow file (a continuous flow).
    #[arg(long)]
    pub flow: PathBuf,
    /// Prior points (each costs 2V + 1 push-forwards and an LU of V × V).
    #[arg(long, default_value_t = 10)]
    pub n: usize,
    /// Integrate the flow's vector field with this many RK4 steps instead of its own N_t
    /// (the trained field is continuous in time: more steps, a smaller gap).
    #[arg(long)]
    pub ode_steps: Option<usize>,
    /// Central-difference step of the Jacobian.
    #[arg(long, default_value_t = 1e-5)]
    pub h: f64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn gap(a: GapArgs) -> Res<serde_json::Value> {
    if a.n < 2 {
        return Err(format!("--n {}: need at least 2 points for a spread", a.n));
    }
    let mut flow = eqflow::io::load(&a.flow, a.threads).map_err(err)?;
    if let Some(n) = a.ode_steps {
        flow.set_ode_steps(n).map_err(err)?;
    }
    let v = flow.volume();
    let start = Instant::now();
    // fresh points of their own stream, not the training or sampling draws
    let mut z = vec![0.0; a.n * v];
    for (i, zi) in z.chunks_mut(v).enumerate() {
        Rng::new(flow.config.seed, Stream::Init, (1 << 40) + i as u64).fill_normal(zi);
    }
    let g = log_det_gap(&flow, &z, a.h).map_err(err)?;
    // the log-weights −S − log q of the same points, for scale
    let lw = &g.log_w;
    let mean_lw = lw.iter().sum::<f64>() / lw.len() as f64;
    let sd_lw = (lw.iter().map(|x| (x - mean_lw).powi(2)).sum::<f64>() / (lw.len() - 1) as f64).sqrt();
    let secs = start.elapsed().as_secs_f64();
    let l = flow.lattice.size();
    eprintln!("discretisation gap of log q: L = {l}, N_t = {}, {} prior points", flow.config.arch.ode_steps, a.n);
    eprintln!("  mean gap            {:+.3e}  (∫div − log|det J|: a constant offset is harmless)", g.mean());
    eprintln!("  spread of the gap   {:.3e}  (standard deviation over points: biases Metropolis)", g.spread());
    eprintln!("  max |gap − mean|    {:.3e}", g.max_deviation());
    eprintln!("  spread of log w     {sd_lw:.3e}  (−S − log q, for scale)");
    eprintln!("  wall time           {secs:.1} s");
    Ok(json!({"lattice": l, "ode_steps": flow.config.arch.ode_steps, "n": a.n, "h": a.h,
        "integrated": g.integrated, "exact": g.exact, "mean_gap": g.mean(), "spread": g.spread(),
        "max_deviation": g.max_deviation(), "log_w_spread": sd_lw, "seconds": secs}))
}
