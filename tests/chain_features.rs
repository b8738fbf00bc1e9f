//! Chain features for production codes: bounded streaming measurements, the Z2 flip update,
//! and checkpoints that continue bit for bit.

mod common;
use common::*;
use eqflow::error::{Result, Status};
use eqflow::flow::{CustomAction, Flow};
use eqflow::mcmc::checkpoint;
use eqflow::mcmc::metropolis::Chain;
use eqflow::Lattice;
use std::sync::Arc;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("eqflow-chain-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn checkpoint_continues_bit_for_bit() {
    let flow = random_flow(4, small_arch(false), 0.3, 5);
    let mut straight = Chain::new(&flow, 7);
    straight.set_flip(true);
    straight.step(700).unwrap();

    let mut first = Chain::new(&flow, 7);
    first.set_flip(true);
    first.step(300).unwrap();
    let path = tmp("a.chain");
    checkpoint::save(&first, &path).unwrap();
    drop(first);
    let mut resumed: Chain = checkpoint::load(&path, 2).unwrap();
    assert!(resumed.flip());
    resumed.step(400).unwrap();

    assert_eq!(resumed.stats(), straight.stats());
    let (a, b) = (resumed.state().unwrap(), straight.state().unwrap());
    assert_eq!(a.phi, b.phi);
    assert_eq!(a.log_q.to_bits(), b.log_q.to_bits());
    assert_eq!(a.action.to_bits(), b.action.to_bits());
    assert_eq!(resumed.measurements(), straight.measurements());
    let (sa, sb) = (resumed.observables().unwrap(), straight.observables().unwrap());
    assert_eq!(serde_json::to_string(&sa).unwrap(), serde_json::to_string(&sb).unwrap());

    // corrupt and wrong files are typed errors, never panics
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 7, bytes.len() / 2, bytes.len() - 1] {
        let e = checkpoint::from_slice::<Flow>(&bytes[..cut], 1).err().expect("truncated file must fail");
        assert_eq!(e.status, Status::BadFile, "cut {cut}: {}", e.message);
    }
    let flow_file = tmp("flow.safetensors");
    eqflow::io::save(&flow, &flow_file).unwrap();
    let e = checkpoint::load::<Flow>(&flow_file, 1).err().unwrap();
    assert!(e.message.contains("not an eqflow chain checkpoint"), "{}", e.message);
    assert_eq!(checkpoint::load::<Flow>(&tmp("missing"), 1).err().unwrap().status, Status::Io);
    // flipping one byte inside the measurement tensor's header lengths is caught
    let mut bad = bytes.clone();
    let at = String::from_utf8_lossy(&bad).find("chain.measurements").unwrap();
    bad[at + 6] = b'X';
    assert!(checkpoint::from_slice::<Flow>(&bad, 1).is_err());
}

#[test]
fn measurements_stay_bounded_for_long_chains() {
    let flow = random_flow(3, small_arch(false), 0.2, 2);
    let mut chain = Chain::new(&flow, 1);
    chain.step(200_000).unwrap();
    let m = chain.measurements();
    assert_eq!(m.n_measured(), 200_000);
    // 2^16 records at most: 200 000 steps are stored as records of 4
    assert_eq!(m.record_size(), 4);
    assert!(m.n_records() <= 1 << 16);
    let s = chain.observables().unwrap();
    assert!(s.chi2.error > 0.0 && s.chi2.error.is_finite());
    assert!(s.tau_int_abs_m > 0.3, "tau_int in configurations: {}", s.tau_int_abs_m);
    chain.reset_measurements();
    assert!(chain.observables().is_err());
}

/// φ⁴ of the flow's couplings plus a magnetic field h Σ φ: not even in φ, so flips are
/// sometimes rejected.
struct Tilted {
    action: eqflow::Action,
    h: f64,
}

impl CustomAction for Tilted {
    fn evaluate(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()> {
        self.action.action_batch(phi, action)?;
        let v = self.action.lattice.volume();
        for (s, p) in action.iter_mut().zip(phi.chunks(v)) {
            *s += self.h * p.iter().sum::<f64>();
        }
        if let Some(f) = force {
            self.action.force_batch(phi, f)?;
            f.iter_mut().for_each(|x| *x += self.h);
        }
        Ok(())
    }
}

fn mean_m(chain: &mut Chain, n: u64) -> (f64, f64) {
    chain.step(n).unwrap();
    let s = chain.observables().unwrap();
    (s.m.value, s.m.error)
}

#[test]
fn flip_update_is_exact_and_free() {
    // an even action: every proposed flip is accepted, about half the steps propose one,
    // and a flip negates the state
    let flow = random_flow(2, small_arch(false), 0.3, 3);
    let mut chain = Chain::new(&flow, 11);
    chain.set_flip(true);
    let mut prev: Option<Vec<f64>> = None;
    let mut negated = 0;
    let (mut proposed_before, mut steps) = (0, 0u64);
    chain
        .run(4000, |st, accepted| {
            if let (Some(p), false) = (&prev, accepted) {
                if st.phi.iter().zip(p).all(|(a, b)| *a == -*b) {
                    negated += 1;
                }
            }
            prev = Some(st.phi.clone());
            steps += 1;
            proposed_before = steps;
        })
        .unwrap();
    let s = chain.stats();
    assert_eq!(s.flips_accepted, s.flips_proposed);
    assert!((s.flips_proposed as f64 - 2000.0).abs() < 5.0 * 1000f64.sqrt(), "{}", s.flips_proposed);
    assert!(negated > 100, "rejected steps followed by a flip: {negated}");

    // a tilted action: with the flip on, the chain must still sample e^{-S'} (⟨M⟩ ≠ 0);
    // a flip accepted blindly would pull ⟨M⟩ to 0
    let action = eqflow::Action::new(Lattice::new(2).unwrap(), flow.action.couplings);
    let mut tilted = flow.snapshot();
    tilted.set_custom_action(Some(Arc::new(Tilted { action, h: 0.4 })));
    let n = 60_000;
    let mut plain = Chain::new(&tilted, 21);
    let (m0, e0) = mean_m(&mut plain, n);
    let mut flipping = Chain::new(&tilted, 22);
    flipping.set_flip(true);
    let (m1, e1) = mean_m(&mut flipping, n);
    let st = flipping.stats();
    eprintln!(
        "tilted: <M> plain {m0:.4}({e0:.4}), with flips {m1:.4}({e1:.4}); flips accepted {}/{}",
        st.flips_accepted, st.flips_proposed
    );
    assert!(m1.abs() > 8.0 * e1 && m0.abs() > 4.0 * e0, "the tilt must make <M> clearly non-zero");
    assert!((m0 - m1).abs() < 4.0 * (e0 * e0 + e1 * e1).sqrt());
    assert!(st.flips_accepted < st.flips_proposed && st.flips_accepted > 0);
}

#[test]
fn reweighting_to_a_nearby_lambda_matches_hmc() {
    use eqflow::mcmc::hmc::{Hmc, HmcParams};
    use eqflow::observables::{summarize, Measurements};
    let l = 2;
    let mut flow = random_flow(l, small_arch(false), 0.3, 4);
    let c = flow.action.couplings;
    let samples = flow.sample(60_000).unwrap();
    for dl in [0.0, 1.5] {
        let r = eqflow::reweight::reweight_samples(&samples, l, dl).unwrap();
        let action =
            eqflow::Action::new(Lattice::new(l).unwrap(), eqflow::Couplings::new(c.m2, c.lambda + dl).unwrap());
        let mut hmc = Hmc::new(action, HmcParams { step_size: 0.15, n_leapfrog: 8, seed: 9 }, None).unwrap();
        let mut meas = Measurements::new(l).unwrap();
        for _ in 0..500 {
            hmc.trajectory().unwrap();
        }
        for _ in 0..60_000 {
            hmc.trajectory().unwrap();
            meas.push(hmc.state()).unwrap();
        }
        let h = summarize(&meas).unwrap();
        eprintln!(
            "dλ = {dl}: reweighted <|M|> {:.4}({:.4}) chi2 {:.4}({:.4}) ESS {:.3}; HMC <|M|> {:.4}({:.4}) chi2 {:.4}({:.4})",
            r.abs_m.value, r.abs_m.error, r.chi2.value, r.chi2.error, r.ess, h.abs_m.value, h.abs_m.error,
            h.chi2.value, h.chi2.error
        );
        for (a, b) in [(r.abs_m, &h.abs_m), (r.chi2, &h.chi2)] {
            assert!((a.value - b.value).abs() < 4.0 * (a.error.powi(2) + b.error.powi(2)).sqrt());
        }
    }
}

#[test]
fn a_checkpoint_with_a_host_action_needs_it_set_again() {
    let flow = random_flow(3, small_arch(false), 0.3, 6);
    let tilted = || {
        let action = eqflow::Action::new(Lattice::new(3).unwrap(), flow.action.couplings);
        Arc::new(Tilted { action, h: 0.3 }) as Arc<dyn CustomAction>
    };
    let mut straight = Chain::new(&flow, 3);
    straight.set_custom_action(Some(tilted()));
    straight.step(400).unwrap();
    let mut first = Chain::new(&flow, 3);
    first.set_custom_action(Some(tilted()));
    first.step(150).unwrap();
    let path = tmp("host.chain");
    checkpoint::save(&first, &path).unwrap();
    let mut resumed: Chain = checkpoint::load(&path, 1).unwrap();
    let e = resumed.step(1).expect_err("a chain without its host action must refuse to step");
    assert_eq!(e.status, Status::InvalidArgument);
    assert!(e.message.contains("host action"), "{}", e.message);
    resumed.set_custom_action(Some(tilted()));
    resumed.step(250).unwrap();
    assert_eq!(resumed.state().unwrap().phi, straight.state().unwrap().phi);
    assert_eq!(resumed.stats(), straight.stats());
}

#[test]
fn keyed_samples_are_the_chains_proposals() {
    // sample_keyed(seed, k, ·) draws what a chain with that seed proposes at step k (flips draw
    // from their own stream): every accepted state is the keyed sample of its step, and the
    // samples after the chain's last proposal are new draws
    let mut flow = random_flow(2, small_arch(false), 0.3, 5);
    let (seed, n) = (7u64, 400u64);
    let keyed = flow.sample_keyed(seed, 0, n as usize + 5).unwrap();
    let v = flow.volume();
    let mut chain = Chain::new(&flow, seed);
    chain.set_flip(true);
    let (mut k, mut checked) = (0usize, 0);
    chain
        .run(n, |st, accepted| {
            if accepted {
                let want = &keyed.phi[k * v..(k + 1) * v];
                let flipped = st.phi.iter().zip(want).all(|(a, b)| *a == -*b);
                assert!(st.phi == want || flipped, "accepted state of step {k} is not keyed sample {k}");
                checked += 1;
            }
            k += 1;
        })
        .unwrap();
    assert!(checked > 5, "only {checked} accepted steps");
    assert_eq!(chain.stats().proposed, n);
    let after = flow.sample_keyed(seed, n, 5).unwrap();
    assert_eq!(after.phi, keyed.phi[n as usize * v..]);
    // another seed, other draws; the flow's own stream is a third one
    assert_ne!(flow.sample_keyed(seed + 1, 0, 1).unwrap().phi, keyed.phi[..v]);
    assert_ne!(flow.sample(1).unwrap().phi, keyed.phi[..v]);
}

#[test]
fn ess_estimate_is_the_ess_of_the_same_samples_with_an_error() {
    let mut flow = random_flow(3, small_arch(false), 0.2, 4);
    let e = flow.ess_estimate(300).unwrap();
    let plain = flow.ess(300).unwrap();
    assert!((e.value - plain).abs() < 1e-12 * plain, "{} vs {plain}", e.value);
    assert!(e.value > 0.0 && e.value <= 1.0 && e.error > 0.0 && e.error.is_finite(), "{e:?}");
    assert_eq!(flow.ess_estimate(1).unwrap_err().status, Status::InvalidArgument);
}
