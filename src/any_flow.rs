//! Either flow type behind one value: the equivariant continuous flow or the RealNVP
//! baseline. The C ABI holds one of these, so every sampler, observable, file and callback
//! works with both; files say which type they hold.

use crate::conventions::Conventions;
use crate::error::{Error, Result, Status};
use crate::flow::model::{Samples, StepStats};
use crate::flow::{CustomAction, Flow};
use crate::io::{serialize, write_atomic, FlowFile, Meta, Tensors};
use crate::mcmc::proposal::Proposal;
use crate::realnvp::RealNvp;
use safetensors::SafeTensors;
use std::path::Path;
use std::sync::Arc;

/// The flow types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// The equivariant continuous normalizing flow (SPEC §3).
    Continuous,
    /// The RealNVP baseline (SPEC §7).
    RealNvp,
}

/// A flow of either type (one per handle: the size difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
pub enum AnyFlow {
    /// The equivariant continuous flow.
    Continuous(Flow),
    /// RealNVP.
    RealNvp(RealNvp),
}

/// Runs the same expression on whichever flow is inside.
macro_rules! each {
    ($s:expr, $f:ident => $e:expr) => {
        match $s {
            AnyFlow::Continuous($f) => $e,
            AnyFlow::RealNvp($f) => $e,
        }
    };
}

impl AnyFlow {
    /// Which type this is.
    pub fn kind(&self) -> FlowKind {
        match self {
            AnyFlow::Continuous(_) => FlowKind::Continuous,
            AnyFlow::RealNvp(_) => FlowKind::RealNvp,
        }
    }
    /// A frozen copy: later training of `self` does not change it.
    pub fn snapshot(&self) -> Self {
        self.frozen()
    }
    /// The continuous flow, if this is one.
    pub fn as_continuous_mut(&mut self) -> Option<&mut Flow> {
        match self {
            AnyFlow::Continuous(f) => Some(f),
            AnyFlow::RealNvp(_) => None,
        }
    }
    /// Conventions of fields crossing the C ABI.
    pub fn conventions(&self) -> Conventions {
        match self {
            AnyFlow::Continuous(f) => f.config.conventions,
            AnyFlow::RealNvp(f) => f.config.conventions,
        }
    }
    /// Lattice side L.
    pub fn lattice_size(&self) -> usize {
        each!(self, f => f.lattice.size())
    }
    /// Sites V = L².
    pub fn volume(&self) -> usize {
        each!(self, f => f.volume())
    }
    /// The couplings (m², λ) of the built-in target action.
    pub fn couplings(&self) -> crate::action::Couplings {
        each!(self, f => f.action.couplings)
    }
    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        match self {
            AnyFlow::Continuous(f) => f.layout.total,
            AnyFlow::RealNvp(f) => f.n_params(),
        }
    }
    /// Worker threads.
    pub fn threads(&self) -> usize {
        each!(self, f => f.threads())
    }
    /// The training settings.
    pub fn train_config(&self) -> &crate::train::TrainConfig {
        each!(self, f => &f.config.train)
    }
    /// The training settings, to change (e.g. the micro-batch on another machine).
    pub fn train_config_mut(&mut self) -> &mut crate::train::TrainConfig {
        each!(self, f => &mut f.config.train)
    }
    /// A one-line description of the architecture.
    pub fn describe(&self) -> String {
        match self {
            AnyFlow::Continuous(f) => format!("continuous flow, {:?} compute", f.config.precision),
            AnyFlow::RealNvp(f) => {
                format!("RealNVP, {} layers, {} hidden channels", f.config.n_layers, f.config.hidden)
            }
        }
    }
    /// Training steps done.
    pub fn steps_done(&self) -> u64 {
        each!(self, f => f.steps_done)
    }
    /// One reverse-KL training step.
    pub fn train_step(&mut self) -> Result<StepStats> {
        each!(self, f => f.train_step())
    }
    /// `n` fresh samples (advancing the sample stream).
    pub fn sample(&mut self, n: usize) -> Result<Samples> {
        each!(self, f => f.sample(n))
    }
    /// `n` samples keyed by (seed, sample stream, first + i): the proposals a chain with this
    /// seed draws as its proposals first..first + n. Advances nothing.
    pub fn sample_keyed(&mut self, seed: u64, first: u64, n: usize) -> Result<Samples> {
        each!(self, f => f.sample_keyed(seed, first, n))
    }
    /// ESS of `n` fresh samples from a separate stream.
    pub fn ess(&mut self, n: usize) -> Result<f64> {
        each!(self, f => f.ess(n))
    }
    /// ESS of `n` ≥ 2 fresh samples (those of [`Self::ess`]) with its jackknife error.
    pub fn ess_estimate(&mut self, n: usize) -> Result<crate::reweight::ValueError> {
        each!(self, f => f.ess_estimate(n))
    }
    /// Sets the number of worker threads (0: all cores).
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        each!(self, f => f.set_threads(threads))
    }
    /// Serialises the flow (safetensors with JSON metadata).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let (named, meta) = self.tensors()?;
        serialize(&named, meta)
    }
    /// Saves atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(&self.to_vec()?, path)
    }
    /// Loads a flow of either type saved by `save`, `eqflow::io::save` or
    /// `eqflow::realnvp::save`.
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::new(Status::Io, format!("load '{}': {e}", path.display())))?;
        Self::from_slice(&bytes, threads)
            .map_err(|e| Error::new(e.status, format!("load '{}': {}", path.display(), e.message)))
    }
    /// Deserialises a flow of either type.
    pub fn from_slice(bytes: &[u8], threads: usize) -> Result<Self> {
        let bad = |m: String| Error::bad_file(m);
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let meta = meta.metadata().clone().ok_or_else(|| bad("no eqflow metadata".into()))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("tensors: {e}")))?;
        Self::from_tensors(&st, &meta, threads)
    }
}

impl From<Flow> for AnyFlow {
    fn from(f: Flow) -> Self {
        AnyFlow::Continuous(f)
    }
}

impl From<RealNvp> for AnyFlow {
    fn from(f: RealNvp) -> Self {
        AnyFlow::RealNvp(f)
    }
}

impl FlowFile for AnyFlow {
    fn tensors(&self) -> Result<(Tensors, Meta)> {
        each!(self, f => f.tensors())
    }
    fn from_tensors(st: &SafeTensors, meta: &Meta, threads: usize) -> Result<Self> {
        if meta.contains_key("eqflow_realnvp_format") {
            Ok(AnyFlow::RealNvp(RealNvp::from_tensors(st, meta, threads)?))
        } else {
            Ok(AnyFlow::Continuous(Flow::from_tensors(st, meta, threads)?))
        }
    }
}

impl Proposal for AnyFlow {
    fn frozen(&self) -> Self {
        each!(self, f => f.frozen().into())
    }
    fn lattice_size(&self) -> usize {
        each!(self, f => f.lattice.size())
    }
    fn push_forward(&mut self, z: &[f64]) -> Result<Samples> {
        each!(self, f => Proposal::push_forward(f, z))
    }
    fn log_prob(&mut self, phi: &[f64]) -> Result<Vec<f64>> {
        each!(self, f => Proposal::log_prob(f, phi))
    }
    fn evaluate_action(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()> {
        each!(self, f => f.evaluate_action(phi, action, force))
    }
    fn log_q_is_even(&self) -> bool {
        each!(self, f => f.log_q_is_even())
    }
    fn has_custom_action(&self) -> bool {
        each!(self, f => f.has_custom_action())
    }
    fn set_custom_action(&mut self, action: Option<Arc<dyn CustomAction>>) {
        each!(self, f => f.set_custom_action(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowConfig;
    use crate::realnvp::RealNvpConfig;

    #[test]
    fn files_round_trip_and_say_their_type() {
        let c = AnyFlow::from(Flow::new(FlowConfig::new(4, -4.0, 8.0), 1).unwrap());
        let mut r = AnyFlow::from(RealNvp::new(RealNvpConfig::new(4, -4.0, 8.0), 1).unwrap());
        r.train_step().unwrap();
        for f in [c, r] {
            let bytes = f.to_vec().unwrap();
            let mut g = AnyFlow::from_slice(&bytes, 1).unwrap();
            assert_eq!(g.kind(), f.kind());
            assert_eq!(g.steps_done(), f.steps_done());
            let mut f = f;
            let (a, b) = (f.sample(3).unwrap(), g.sample(3).unwrap());
            assert_eq!(a.phi, b.phi);
            assert_eq!(a.log_q, b.log_q);
        }
        assert_eq!(AnyFlow::from_slice(b"not a file", 1).err().unwrap().status, Status::BadFile);
    }
}
