//! Independence Metropolis–Hastings with flow proposals (SPEC §5, seed Algorithm 1).
//!
//! Propose φ' ~ q, accept with probability min(1, exp[(−S(φ') − log q(φ')) − (−S(φ) − log q(φ))]);
//! on rejection the chain repeats φ. The chain holds a frozen snapshot of the flow, so training
//! the flow afterwards does not change the proposal density of a running chain.

use super::proposal::Proposal;
use crate::error::{check_len, Error, Result, Status};
use crate::flow::Flow;
use crate::observables::{summarize, ChainSummary, Measurements};
use crate::rng::{Rng, Stream};

/// Proposals drawn (and pushed through the flow in parallel) per batch.
pub const PROPOSAL_BATCH: usize = 256;

/// Counters of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct ChainStats {
    /// Proposals made.
    pub proposed: u64,
    /// Proposals accepted.
    pub accepted: u64,
    /// Proposals rejected because their log q or S was not finite.
    pub non_finite: u64,
    /// Z2 flips φ → −φ proposed (with the flip update on: about half the steps).
    #[serde(default)]
    pub flips_proposed: u64,
    /// Z2 flips accepted (all of them for an action even in φ).
    #[serde(default)]
    pub flips_accepted: u64,
}

impl ChainStats {
    /// accepted / proposed (NaN before the first proposal).
    pub fn acceptance(&self) -> f64 {
        self.accepted as f64 / self.proposed as f64
    }
}

/// The current state of a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The configuration (V).
    pub phi: Vec<f64>,
    /// Its log q.
    pub log_q: f64,
    /// Its action S.
    pub action: f64,
}

/// An independence Metropolis chain over a frozen flow. Every step's state is measured on
/// the fly into bounded [`Measurements`] (M, |M|, M², M⁴, C̃(t)), so chains of any length run
/// in fixed memory; [`Chain::observables`] analyses them.
pub struct Chain<F: Proposal = Flow> {
    pub(crate) flow: F,
    pub(crate) seed: u64,
    pub(crate) state: Option<State>,
    pub(crate) stats: ChainStats,
    pub(crate) flip: bool,
    pub(crate) measurements: Measurements,
    /// Restored from a checkpoint made with a host action, which files cannot hold: it must
    /// be set again before the chain evaluates any action.
    pub(crate) needs_action: bool,
    /// Pushes the proposals through the flow elsewhere (a GPU), if set.
    pub(crate) pusher: Option<Box<dyn Push>>,
}

/// Pushes prior draws through a chain's flow somewhere else than the flow itself (a GPU):
/// fields, log q and S of each draw, as the flow's own `push_forward` gives them up to
/// rounding. The chain keeps drawing z (host RNG, by proposal index), deciding and measuring;
/// log q of external states and the flip's action terms stay with the flow.
pub trait Push: Send {
    /// Fields, log q and S of prior draws z (n × V).
    fn push_forward(&mut self, z: &[f64]) -> Result<crate::flow::model::Samples>;
}

impl<F: Proposal> Chain<F> {
    /// Replaces the chain's action by a host action (None: the built-in φ⁴ action). A chain
    /// restored from a checkpoint made with a host action needs it set again before stepping.
    /// A host action cannot run on a device: setting one drops the chain's pusher (proposals
    /// are then pushed by the flow itself).
    pub fn set_custom_action(&mut self, action: Option<std::sync::Arc<dyn crate::flow::CustomAction>>) {
        if action.is_some() {
            self.pusher = None;
        }
        self.flow.set_custom_action(action);
        self.needs_action = false;
    }

    /// Pushes the proposals through `pusher` (a GPU copy of the chain's flow) instead of the
    /// flow; None: back to the flow. The chain's results are the same up to rounding.
    pub fn set_pusher(&mut self, pusher: Option<Box<dyn Push>>) {
        self.pusher = pusher;
    }

    /// Whether a pusher pushes the proposals.
    pub fn has_pusher(&self) -> bool {
        self.pusher.is_some()
    }

    /// A chain over a frozen snapshot of `flow` (the continuous flow or RealNVP), with its own
    /// random stream `seed`.
    pub fn new(flow: &F, seed: u64) -> Self {
        let measurements = Measurements::new(flow.lattice_size()).expect("the flow's lattice is valid");
        Chain {
            flow: flow.frozen(),
            seed,
            state: None,
            stats: ChainStats::default(),
            flip: false,
            measurements,
            needs_action: false,
            pusher: None,
        }
    }
    fn check_action(&self) -> Result<()> {
        if self.needs_action {
            return Err(Error::invalid(
                "this chain was saved while it used a host action, which files do not hold: set the action \
                 again (Chain::set_custom_action / eqflow_chain_set_action) before using the chain",
            ));
        }
        Ok(())
    }

    /// Turns the Z2 global flip update on or off: after each Metropolis step, with probability
    /// ½, propose φ → −φ and accept it with min(1, e^{S(φ) − S(−φ)}) (always, for an action
    /// even in φ). It is exact (a deterministic involution, symmetric) and free for the
    /// Z2-equivariant flow, whose log q is even; for a non-odd flow log q(−φ) is recomputed.
    pub fn set_flip(&mut self, on: bool) {
        self.flip = on;
    }
    /// Whether the flip update is on.
    pub fn flip(&self) -> bool {
        self.flip
    }
    /// The measurements accumulated so far (one per step).
    pub fn measurements(&self) -> &Measurements {
        &self.measurements
    }
    /// Forgets the accumulated measurements (e.g. after thermalisation); counters stay.
    pub fn reset_measurements(&mut self) {
        self.measurements.clear();
    }
    /// The observables of every step measured so far, with Γ-method/jackknife errors.
    /// Errors: fewer than 10 measured steps.
    pub fn observables(&self) -> Result<ChainSummary> {
        summarize(&self.measurements)
    }
    /// The frozen flow.
    pub fn flow(&mut self) -> &mut F {
        &mut self.flow
    }
    /// Counters.
    pub fn stats(&self) -> ChainStats {
        self.stats
    }
    /// The current state (None before the first step or `set_state`).
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// Makes `phi` (from the host's own update, e.g. HMC) the current state; its log q is
    /// computed by inverting the discrete flow, the same function as for sampled states.
    pub fn set_state(&mut self, phi: &[f64]) -> Result<()> {
        self.check_action()?;
        let v = self.flow.volume();
        check_len("chain set_state: phi", phi.len(), v)?;
        crate::error::check_finite("chain set_state: phi", phi)?;
        let log_q = self.flow.log_prob(phi)?[0];
        let mut s = [0.0];
        self.flow.evaluate_action(phi, &mut s, None)?;
        let action = s[0];
        if !log_q.is_finite() || !action.is_finite() {
            return Err(Error::new(Status::NonFinite, format!("chain set_state: log q = {log_q}, S = {action}")));
        }
        self.state = Some(State { phi: phi.to_vec(), log_q, action });
        Ok(())
    }

    /// Runs `n` Metropolis steps, calling `visit(state, accepted)` after each.
    pub fn run(&mut self, n: u64, mut visit: impl FnMut(&State, bool)) -> Result<()> {
        self.check_action()?;
        let v = self.flow.volume();
        let mut done = 0u64;
        while done < n {
            let m = (n - done).min(PROPOSAL_BATCH as u64) as usize;
            let first = self.stats.proposed;
            let mut z = vec![0.0; m * v];
            for (i, zi) in z.chunks_mut(v).enumerate() {
                Rng::new(self.seed, Stream::Sample, first + i as u64).fill_normal(zi);
            }
            let prop = match &mut self.pusher {
                Some(p) => p.push_forward(&z)?,
                None => self.flow.push_forward(&z)?,
            };
            if prop.log_q.len() != m || prop.action.len() != m || prop.phi.len() != m * v {
                return Err(Error::new(Status::Internal, "chain: the pusher returned the wrong number of proposals"));
            }
            for i in 0..m {
                let k = first + i as u64;
                let (lq, s) = (prop.log_q[i], prop.action[i]);
                self.stats.proposed += 1;
                let accept = if !lq.is_finite() || !s.is_finite() {
                    self.stats.non_finite += 1;
                    false
                } else {
                    match &self.state {
                        None => true,
                        Some(cur) => {
                            let log_ratio = (-s - lq) - (-cur.action - cur.log_q);
                            let u = Rng::new(self.seed, Stream::Metropolis, k).uniform(0);
                            log_ratio >= 0.0 || u < log_ratio.exp()
                        }
                    }
                };
                if accept {
                    self.stats.accepted += 1;
                    self.state = Some(State { phi: prop.phi[i * v..(i + 1) * v].to_vec(), log_q: lq, action: s });
                }
                if self.flip && self.state.is_some() {
                    self.flip_update(k)?;
                }
                match &self.state {
                    Some(st) => {
                        self.measurements.push(&st.phi)?;
                        visit(st, accept)
                    }
                    None => {
                        return Err(Error::new(
                            Status::NonFinite,
                            "chain: the first proposal had a non-finite log q or action and there is no state",
                        ))
                    }
                }
            }
            done += m as u64;
        }
        Ok(())
    }

    /// The Z2 flip update of step `k` on the current state.
    fn flip_update(&mut self, k: u64) -> Result<()> {
        if Rng::new(self.seed, Stream::Flip, k).uniform(0) >= 0.5 {
            return Ok(());
        }
        self.stats.flips_proposed += 1;
        let cur = self.state.as_ref().expect("checked by the caller");
        let neg: Vec<f64> = cur.phi.iter().map(|x| -x).collect();
        let mut s = [0.0];
        self.flow.evaluate_action(&neg, &mut s, None)?;
        let log_ratio = cur.action - s[0];
        let u = Rng::new(self.seed, Stream::Flip, k).uniform(1);
        if !(s[0].is_finite() && (log_ratio >= 0.0 || u < log_ratio.exp())) {
            return Ok(());
        }
        let log_q = if self.flow.log_q_is_even() { cur.log_q } else { self.flow.log_prob(&neg)?[0] };
        self.stats.flips_accepted += 1;
        self.state = Some(State { phi: neg, log_q, action: s[0] });
        Ok(())
    }

    /// Runs `n` steps, keeping only the streamed measurements and counters.
    pub fn step_quietly(&mut self, n: u64) -> Result<()> {
        self.run(n, |_, _| {})
    }

    /// Runs `n` steps and returns the accept flags.
    pub fn step(&mut self, n: u64) -> Result<Vec<bool>> {
        let mut flags = Vec::with_capacity(n as usize);
        self.run(n, |_, a| flags.push(a))?;
        Ok(flags)
    }
}
