//! Reproduces seed Table 1 (SPEC §2): for each L, train a flow for a wall-clock budget, run a
//! flow Metropolis chain and an HMC chain of comparable cost, and print one table next to the
//! paper's numbers.
//!
//! EQFLOW_OUT=out cargo run --release --example reproduce_table1 -- [--minutes M] [--proposals N]
//!     [--coarse-fraction F] [--decay D] [--threads K] [--load 1] [--init-from-L S] L...
//! writes out/train_L*.csv (ESS against wall time), out/flow_L*.safetensors and the table.
//! (default: L = 6 12, 10 minutes of training each, 1e5 proposals)

use eqflow::action::Action;
use eqflow::flow::{Flow, FlowConfig};
use eqflow::mcmc::hmc::{Hmc, HmcParams};
use eqflow::mcmc::metropolis::Chain;
use eqflow::observables::{summarize, ChainSummary, Measurements};
use eqflow::reweight::reweight_samples;
use eqflow::train::Schedule;
use eqflow::{Couplings, Lattice};
use std::time::Instant;

const TABLE1: [(usize, f64, f64, f64, f64); 4] = [
    (6, 1.06, 3.98, 96.0, 99.0),
    (12, 4.12, 3.99, 91.0, 97.0),
    (20, 10.57, 4.05, 82.0, 90.0),
    (32, 25.34, 4.05, 66.0, 66.0),
];

struct Row {
    sampler: &'static str,
    ess: f64,
    acc: f64,
    s: ChainSummary,
    secs: f64,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str, default: f64| -> f64 {
        match args.iter().position(|a| a == flag) {
            Some(i) => {
                let v = args[i + 1].parse().expect("number");
                args.drain(i..i + 2);
                v
            }
            None => default,
        }
    };
    let minutes = take("--minutes", 10.0);
    let proposals = take("--proposals", 1e5) as u64;
    // train the first part of the budget with a third of the RK4 steps: the parameters define a
    // continuous ODE, so the coarse flow is a good start for the fine one at a third of the cost
    let coarse = take("--coarse-fraction", 0.6);
    let threads = take("--threads", 0.0) as usize;
    // with --load 1, skip training and use out/flow_L*.safetensors from an earlier run
    let load = take("--load", 0.0) > 0.0;
    // the learning rate falls by this factor over the training budget (exponential decay,
    // its rate set from the speed of the first steps)
    let decay = take("--decay", 10.0);
    // with --init-from-L S, the flow for L starts from out/flow_L{S}.safetensors (transfer)
    let init_from = take("--init-from-L", 0.0) as usize;
    let out_dir = std::path::PathBuf::from(std::env::var("EQFLOW_OUT").unwrap_or_else(|_| "out".into()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let sizes: Vec<usize> =
        if args.is_empty() { vec![6, 12] } else { args.iter().map(|a| a.parse().expect("L")).collect() };
    let mut out = String::new();
    let mut rw_lines =
        String::from("| L | estimator | n | ESS | χ2 | L·m_p | log Z | wall s |\n|---|---|---|---|---|---|---|---|\n");
    out += "| L | sampler | train min | ESS | acceptance | n | χ2 | L·m_p | τ_int |M| | τ_int χ2 | wall s | indep. samples/s | paper χ2 | paper L·m_p | paper acc | paper ESS |\n";
    out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for &l in &sizes {
        let c = Couplings::preset(l).expect("preset L");
        let mut cfg = FlowConfig::new(l, c.m2, c.lambda);
        cfg.seed = 1;
        let flow_path = out_dir.join(format!("flow_L{l}.safetensors"));
        let (mut flow, train_min) = if load {
            let f = eqflow::io::load(&flow_path, threads).unwrap();
            let m = std::fs::read_to_string(out_dir.join(format!("train_L{l}.csv")))
                .ok()
                .and_then(|c| c.lines().last().and_then(|x| x.split(',').nth(1)).and_then(|x| x.parse::<f64>().ok()))
                .map_or(f64::NAN, |secs| secs / 60.0);
            (f, m)
        } else {
            let mut flow = Flow::new(cfg, threads).unwrap();
            if init_from > 0 {
                let small = eqflow::io::load(&out_dir.join(format!("flow_L{init_from}.safetensors")), 1).unwrap();
                flow.transfer_from(&small).unwrap();
                eprintln!(
                    "L={l}: initialised from L = {init_from}: ESS {:.3} before training",
                    flow.ess(1000).unwrap()
                );
            }
            let fine_steps = flow.config.arch.ode_steps;
            flow.set_ode_steps(fine_steps / 3).unwrap();
            let t0 = Instant::now();
            let mut step = 0;
            let mut csv = String::from("step,seconds,ode_steps,loss,batch_ess,fresh_ess\n");
            let mut last_eval = f64::NEG_INFINITY;
            let budget = minutes * 60.0;
            while t0.elapsed().as_secs_f64() < budget {
                let secs = t0.elapsed().as_secs_f64();
                if step == 10 && decay > 1.0 {
                    // expected steps: coarse part at the measured speed, fine part ~3× slower
                    let per_step = secs / 10.0;
                    let expected = coarse * budget / per_step + (1.0 - coarse) * budget / (3.0 * per_step);
                    let decay_steps = expected / decay.log10();
                    flow.config.train.schedule = Schedule::Exponential { decay_steps };
                    eprintln!("L={l}: ~{expected:.0} steps expected; lr decays tenfold every {decay_steps:.0} steps");
                }
                if secs > coarse * minutes * 60.0 && flow.config.arch.ode_steps != fine_steps {
                    flow.set_ode_steps(fine_steps).unwrap();
                }
                let s = flow.train_step().unwrap();
                step += 1;
                let mut fresh = String::new();
                if secs - last_eval > minutes * 6.0 {
                    last_eval = secs;
                    let e = flow.ess(500).unwrap();
                    fresh = format!("{e}");
                    eprintln!(
                        "L={l} step {step} loss {:.4} batch ESS {:.3} fresh ESS {e:.3} ({secs:.0} s)",
                        s.loss, s.ess
                    );
                }
                csv += &format!("{step},{secs},{},{},{},{fresh}\n", flow.config.arch.ode_steps, s.loss, s.ess);
            }
            flow.set_ode_steps(fine_steps).unwrap();
            std::fs::write(out_dir.join(format!("train_L{l}.csv")), &csv).unwrap();
            eqflow::io::save(&flow, &flow_path).unwrap();
            let train_min = t0.elapsed().as_secs_f64() / 60.0;
            eprintln!("L={l}: trained {step} steps in {train_min:.1} min");
            (flow, train_min)
        };
        let ess = flow.ess(4000).unwrap();
        eprintln!("L={l}: ESS {ess:.3} on 4000 fresh samples");

        let t1 = Instant::now();
        // measurements stream into the chain's bounded records
        let mut chain = Chain::new(&flow, 7);
        chain.step_quietly(proposals).unwrap();
        let flow_secs = t1.elapsed().as_secs_f64();
        let flow_row = Row {
            sampler: "flow",
            ess,
            acc: chain.stats().acceptance(),
            s: chain.observables().unwrap(),
            secs: flow_secs,
        };
        // reweighting independent samples (no chain): the same physics, jackknife errors
        let t_rw = Instant::now();
        let rw = reweight_samples(&flow.sample(proposals.min(50_000) as usize).unwrap(), l, 0.0).unwrap();
        rw_lines +=
            &format!(
            "| {l} | reweighted flow samples | {} | {:.3} | {:.4} ± {:.4} | {:.3} ± {:.3} | {:.4} ± {:.4} | {:.0} |\n",
            rw.n, rw.ess, rw.chi2.value, rw.chi2.error, rw.l_m_p.value, rw.l_m_p.error, rw.log_z.value,
            rw.log_z.error, t_rw.elapsed().as_secs_f64()
        );

        // HMC for the same wall-clock time
        let action = Action::new(Lattice::new(l).unwrap(), c);
        let mut hmc = Hmc::new(action, HmcParams { step_size: 0.1, n_leapfrog: 10, seed: 3 }, None).unwrap();
        let t2 = Instant::now();
        hmc.tune_step_size(0.8, 2000).unwrap();
        for _ in 0..1000 {
            hmc.trajectory().unwrap();
        }
        let mut hm = Measurements::new(l).unwrap();
        let (p0, a0) = (hmc.proposed(), hmc.accepted());
        while t2.elapsed().as_secs_f64() < flow_secs || hm.len() < 1000 {
            hmc.trajectory().unwrap();
            hm.push(hmc.state()).unwrap();
        }
        let hacc = (hmc.accepted() - a0) as f64 / (hmc.proposed() - p0) as f64;
        let hmc_row = Row {
            sampler: "HMC",
            ess: f64::NAN,
            acc: hacc,
            s: summarize(&hm).unwrap(),
            secs: t2.elapsed().as_secs_f64(),
        };
        let paper = TABLE1.iter().find(|r| r.0 == l).copied();
        for r in [flow_row, hmc_row] {
            let p =
                |f: fn(&(usize, f64, f64, f64, f64)) -> f64| paper.map(|x| format!("{}", f(&x))).unwrap_or("–".into());
            let indep = r.s.n as f64 / (2.0 * r.s.tau_int_abs_m) / r.secs;
            out += &format!(
                "| {l} | {} | {} | {} | {:.3} | {} | {:.4} ± {:.4} | {:.3} ± {:.3} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {} | {}% | {}% |\n",
                r.sampler,
                if r.sampler == "flow" { format!("{train_min:.1}") } else { "–".into() },
                if r.ess.is_nan() { "–".into() } else { format!("{:.3}", r.ess) },
                r.acc,
                r.s.n,
                r.s.chi2.value,
                r.s.chi2.error,
                r.s.l_m_p.value,
                r.s.l_m_p.error,
                r.s.tau_int_abs_m,
                r.s.tau_int_chi2,
                r.secs,
                indep,
                p(|x| x.1),
                p(|x| x.2),
                p(|x| x.3),
                p(|x| x.4),
            );
        }
        eprintln!("{out}");
    }
    println!("{out}");
    println!("(HMC ran for the flow chain's wall time; measurements of both chains stream into bounded");
    println!(" records; independent samples/s = n / (2 τ_int(|M|)) / wall time)\n");
    println!("{rw_lines}");
}
