//! The `eqflow` command: train a flow, sample with it, compare with HMC, reweight, and plot.
//!
//! Human-readable output goes to stderr; with `--json` stdout carries exactly one JSON object.
//! Errors are one line on stderr ("eqflow: error: ...") and exit code 2; an interrupted
//! training (Ctrl-C) saves a checkpoint and exits with 130.

mod gap;
mod npy;
mod report;
mod sample;
mod train;

use clap::{Args, Parser, Subcommand};
use eqflow::action::Couplings;
use eqflow::observables::ChainSummary;
use eqflow::Lattice;
use std::process::ExitCode;

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
    /// Train a flow by reverse KL and save it (checkpoints, resumable, Ctrl-C safe).
    Train(Box<train::TrainArgs>),
    /// Run a flow Metropolis chain and print observables with errors.
    Sample(sample::SampleArgs),
    /// Run the reference HMC sampler and print the same observables.
    Hmc(sample::HmcArgs),
    /// Reweight independent flow samples (to the flow's target or a nearby lambda).
    Reweight(sample::ReweightArgs),
    /// Plot training curves, correlators, the magnetisation and log-weights (SVG and PNG).
    Report(report::ReportArgs),
    /// Measure the discretisation gap of log q (exact log-det of the discrete map, small L).
    Gap(gap::GapArgs),
}

/// The theory: a preset or explicit (L, m², λ).
#[derive(Args, Clone, Default)]
pub struct Theory {
    /// The paper's couplings for a lattice size: L6, L8, L10, L12, L14, L20, L32, L64.
    #[arg(long)]
    pub preset: Option<String>,
    /// Lattice side L.
    #[arg(long)]
    pub lattice: Option<usize>,
    /// Bare mass squared.
    #[arg(long, allow_hyphen_values = true)]
    pub m2: Option<f64>,
    /// Quartic coupling.
    #[arg(long, allow_hyphen_values = true)]
    pub lambda: Option<f64>,
}

impl Theory {
    fn given(&self) -> bool {
        self.preset.is_some() || self.lattice.is_some() || self.m2.is_some() || self.lambda.is_some()
    }
}

pub type Res<T> = std::result::Result<T, String>;

pub fn err(e: eqflow::Error) -> String {
    e.message
}

/// Seed Table 1 (SPEC §2): (L, χ2, L·m_p, acceptance %, ESS %).
pub const TABLE1: [(usize, f64, f64, f64, f64); 4] = [
    (6, 1.06, 3.98, 96.0, 99.0),
    (12, 4.12, 3.99, 91.0, 97.0),
    (20, 10.57, 4.05, 82.0, 90.0),
    (32, 25.34, 4.05, 66.0, 66.0),
];

const PRESETS: &str = "L6, L8, L10, L12, L14, L20, L32, L64";

/// (L, couplings) of a theory argument group.
pub fn theory(t: &Theory) -> Res<(usize, Couplings)> {
    if let Some(p) = &t.preset {
        if t.lattice.is_some() || t.m2.is_some() || t.lambda.is_some() {
            return Err(format!("--preset {p} fixes L, m2 and lambda; do not also give --lattice/--m2/--lambda"));
        }
        let unknown = || format!("unknown preset '{p}' (known: {PRESETS})");
        let l: usize = p.strip_prefix('L').and_then(|s| s.parse().ok()).ok_or_else(unknown)?;
        let c = Couplings::preset(l).ok_or_else(unknown)?;
        return Ok((l, c));
    }
    let (l, m2, lam) = match (t.lattice, t.m2, t.lambda) {
        (Some(l), Some(m2), Some(lam)) => (l, m2, lam),
        _ => return Err("give --preset, or all of --lattice, --m2 and --lambda".into()),
    };
    Lattice::new(l).map_err(err)?;
    Ok((l, Couplings::new(m2, lam).map_err(err)?))
}

/// Checks that theory arguments, if given, describe the flow's theory.
pub fn check_same_theory(t: &Theory, l: usize, c: &Couplings, what: &str) -> Res<()> {
    if !t.given() {
        return Ok(());
    }
    let (l2, c2) = theory(t)?;
    if l2 != l || c2 != *c {
        return Err(format!(
            "{what} is for L = {l}, m2 = {}, lambda = {}, but the arguments say L = {l2}, m2 = {}, lambda = {}",
            c.m2, c.lambda, c2.m2, c2.lambda
        ));
    }
    Ok(())
}

/// The seed's Table 1 row for a preset theory.
pub fn reference(l: usize, c: &Couplings) -> Option<(usize, f64, f64, f64, f64)> {
    let p = Couplings::preset(l)?;
    if p != *c {
        return None;
    }
    TABLE1.iter().copied().find(|r| r.0 == l)
}

/// Prints a chain's observables to stderr.
pub fn print_summary(
    label: &str,
    s: &ChainSummary,
    acc: Option<f64>,
    ess: Option<eqflow::reweight::ValueError>,
    l: usize,
    c: &Couplings,
) {
    eprintln!("{label}: {} configurations", s.n_measured.max(s.n as u64));
    if let Some(a) = acc {
        eprintln!("  acceptance      {:.4}", a);
    }
    if let Some(e) = ess {
        eprintln!("  ESS             {:.4} ± {:.4} (fresh samples)", e.value, e.error);
    }
    eprintln!("  chi2            {:.4} ± {:.4}", s.chi2.value, s.chi2.error);
    eprintln!("  L·m_p           {:.4} ± {:.4}", s.l_m_p.value, s.l_m_p.error);
    print_undefined_m_p(&s.undefined_m_p_t(), s.m_p_t.len(), "jackknife bins");
    eprintln!("  xi              {:.4} ± {:.4}", s.xi.value, s.xi.error);
    eprintln!("  <|M|>           {:.5} ± {:.5}", s.abs_m.value, s.abs_m.error);
    eprintln!("  Binder U        {:.5} ± {:.5}", s.binder.value, s.binder.error);
    eprintln!("  tau_int |M|     {:.3} ± {:.3}", s.tau_int_abs_m, s.abs_m.tau_int_error);
    eprintln!("  tau_int chi2    {:.3} ± {:.3}", s.tau_int_chi2, s.chi2.tau_int_error);
    if let Some((_, chi2, lmp, acc, ess)) = reference(l, c) {
        eprintln!("  seed Table 1:   chi2 {chi2}, L·m_p {lmp}, acceptance {acc}%, ESS {ess}%");
    }
}

/// `--backend`: false for cpu, true for cuda.
pub fn is_cuda(backend: &str) -> Res<bool> {
    match backend {
        "cpu" => Ok(false),
        "cuda" => Ok(true),
        b => Err(format!("unknown backend '{b}' (cpu or cuda)")),
    }
}

/// The t whose m_p(t) is undefined (so that L·m_p is NaN), if any, and why, on stderr.
pub fn print_undefined_m_p(undefined: &[usize], n_t: usize, estimate: &str) {
    if !undefined.is_empty() {
        eprintln!(
            "  (m_p(t) undefined at t = {undefined:?} of 1..={n_t}: the correlator ratio (G(t-1) + G(t+1)) / (2 G(t)) \
             is not clearly above 1 in the estimate or its {estimate}; more statistics are needed for L·m_p)"
        );
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, template: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // one line: clap's first line, without the usage block
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("eqflow: error: {first} (see eqflow --help)");
            return ExitCode::from(2);
        }
    };
    let (json_out, r) = match cli.cmd {
        Cmd::Train(a) => (a.json, train::train(*a)),
        Cmd::Sample(a) => (a.json, sample::sample(a)),
        Cmd::Hmc(a) => (a.json, sample::hmc(a)),
        Cmd::Reweight(a) => (a.json, sample::reweight(a)),
        Cmd::Report(a) => (a.json, report::report(a)),
        Cmd::Gap(a) => (a.json, gap::gap(a)),
    };
    match r {
        Ok(v) => {
            if json_out {
                println!("{v}");
            }
            if v.get("interrupted").and_then(|x| x.as_bool()) == Some(true) {
                return ExitCode::from(130);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eqflow: error: {}", e.lines().next().unwrap_or("failed"));
            ExitCode::from(2)
        }
    }
}
