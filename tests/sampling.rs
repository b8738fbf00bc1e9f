//! The flow Metropolis chain samples e^{-S} exactly: checked against the independent HMC
//! sampler on a tiny lattice with a deliberately poor flow; external states get the same log q.

mod common;
use common::*;
use eqflow::action::{Action, Couplings};
use eqflow::mcmc::hmc::{Hmc, HmcParams};
use eqflow::mcmc::metropolis::Chain;
use eqflow::observables::gamma_method;
use eqflow::Lattice;

const TRAIN_STEPS: usize = 80;
const BINS: [f64; 7] = [-1.2, -0.6, -0.3, 0.0, 0.3, 0.6, 1.2];

/// Per-configuration series: mean φ², and indicators of M in each histogram bin.
fn series(phi: &[f64], out: &mut [Vec<f64>]) {
    let v = phi.len() as f64;
    let m = phi.iter().sum::<f64>() / v;
    out[0].push(phi.iter().map(|x| x * x).sum::<f64>() / v);
    for k in 0..BINS.len() - 1 {
        out[k + 1].push(((BINS[k]..BINS[k + 1]).contains(&m)) as u8 as f64);
    }
}

#[test]
fn metropolis_with_a_poor_flow_matches_hmc() {
    let l = 3;
    let couplings = Couplings::new(-1.0, 1.0).unwrap();
    // a deliberately imperfect flow: briefly trained, so its proposals are biased
    // (acceptance well below 1) yet cover e^{-S}; Metropolis must remove the bias
    let mut cfg = eqflow::flow::FlowConfig::new(l, couplings.m2, couplings.lambda);
    cfg.arch = small_arch(false);
    cfg.arch.ode_steps = 3;
    cfg.arch.linear_feature = true;
    cfg.train.learning_rate = 1e-2;
    cfg.train.batch_size = 64;
    let mut flow = eqflow::flow::Flow::new(cfg, 1).unwrap();
    for _ in 0..TRAIN_STEPS {
        flow.train_step().unwrap();
    }
    let mut chain = Chain::new(&flow, 99);
    let n = 120_000;
    let mut fs = vec![Vec::with_capacity(n); BINS.len()];
    chain.run(n as u64, |st, _| series(&st.phi, &mut fs)).unwrap();
    let acc = chain.stats().acceptance();
    assert!(acc < 0.9, "the flow should be imperfect (acceptance {acc})");

    let action = Action::new(Lattice::new(l).unwrap(), couplings);
    let mut hmc = Hmc::new(action, HmcParams { step_size: 0.2, n_leapfrog: 8, seed: 3 }, None).unwrap();
    for _ in 0..1000 {
        hmc.trajectory().unwrap();
    }
    let mut hs = vec![Vec::with_capacity(n); BINS.len()];
    for _ in 0..n {
        hmc.trajectory().unwrap();
        series(hmc.state(), &mut hs);
    }
    for k in 0..BINS.len() {
        let (a, b) = (gamma_method(&fs[k]).unwrap(), gamma_method(&hs[k]).unwrap());
        let sigma = (a.error.powi(2) + b.error.powi(2)).sqrt();
        eprintln!(
            "series {k}: flow chain {:.5}({:.5}) τ={:.2}, HMC {:.5}({:.5}) τ={:.2}",
            a.value, a.error, a.tau_int, b.value, b.error, b.tau_int
        );
        assert!((a.value - b.value).abs() < 4.0 * sigma, "series {k}: {} vs {} (σ = {sigma})", a.value, b.value);
    }
    // power: the flow's raw proposals are biased, so the test would catch a chain that
    // failed to correct them
    let raw = flow.sample(20_000).unwrap();
    let mut rs = vec![Vec::new(); BINS.len()];
    for p in raw.phi.chunks(l * l) {
        series(p, &mut rs);
    }
    let (a, b) = (gamma_method(&rs[0]).unwrap(), gamma_method(&hs[0]).unwrap());
    let sigma = (a.error.powi(2) + b.error.powi(2)).sqrt();
    eprintln!("raw proposals <φ²> {:.5}({:.5}) vs HMC {:.5}", a.value, a.error, b.value);
    assert!((a.value - b.value).abs() > 6.0 * sigma, "the flow is too good for this test to have power");
    eprintln!("flow acceptance {acc:.3}");
}

#[test]
fn external_state_has_the_sampled_log_q() {
    let mut flow = random_flow(5, small_arch(true), 0.6, 8);
    let s = flow.sample(3).unwrap();
    let mut chain = Chain::new(&flow, 1);
    for b in 0..3 {
        chain.set_state(&s.phi[b * 25..(b + 1) * 25]).unwrap();
        let st = chain.state().unwrap();
        assert!((st.log_q - s.log_q[b]).abs() < 1e-10, "{} vs {}", st.log_q, s.log_q[b]);
        assert!((st.action - s.action[b]).abs() < 1e-12);
    }
    assert!(chain.set_state(&[0.0; 24]).is_err());
    assert!(chain.set_state(&[f64::NAN; 25]).is_err());
}

#[test]
fn chain_keeps_its_snapshot_when_the_flow_trains() {
    let mut flow = random_flow(4, small_arch(false), 0.3, 9);
    let mut chain = Chain::new(&flow, 4);
    chain.step(5).unwrap();
    let before = chain.flow().params().to_vec();
    let s0 = chain.state().unwrap().clone();
    flow.train_step().unwrap();
    assert_ne!(flow.params(), &before[..]);
    assert_eq!(chain.flow().params(), &before[..]);
    // the chain's log q of its state is unchanged
    let lq = chain.flow().log_prob(&s0.phi).unwrap()[0];
    assert!((lq - s0.log_q).abs() < 1e-10);
}
