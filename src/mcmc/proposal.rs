//! What a Metropolis chain needs of a flow: proposals with exact log q, log q of any
//! configuration, and the action. Implemented by the continuous flow and by RealNVP, so every
//! sampler and observable works with both.

use crate::error::Result;
use crate::flow::model::Samples;
use crate::flow::{CustomAction, FeatureKind, Flow};
use crate::realnvp::RealNvp;
use std::sync::Arc;

/// A flow that can serve as the proposal of an independence Metropolis chain.
pub trait Proposal: Send {
    /// A frozen copy for a chain: later training of `self` does not change it.
    fn frozen(&self) -> Self
    where
        Self: Sized;
    /// Lattice side L.
    fn lattice_size(&self) -> usize;
    /// Sites V = L².
    fn volume(&self) -> usize {
        self.lattice_size() * self.lattice_size()
    }
    /// Fields, log q and S of prior draws z (n × V).
    fn push_forward(&mut self, z: &[f64]) -> Result<Samples>;
    /// log q of arbitrary configurations (n × V).
    fn log_prob(&mut self, phi: &[f64]) -> Result<Vec<f64>>;
    /// S (and, if asked, ∂S/∂φ) of fields (n × V).
    fn evaluate_action(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()>;
    /// Whether log q(−φ) = log q(φ) exactly by construction (Z2-equivariant flows).
    fn log_q_is_even(&self) -> bool;
    /// Whether a host action replaces the built-in one.
    fn has_custom_action(&self) -> bool;
    /// Replaces the built-in action by a host action (None: back to φ⁴).
    fn set_custom_action(&mut self, action: Option<Arc<dyn CustomAction>>);
}

impl Proposal for Flow {
    fn frozen(&self) -> Self {
        self.snapshot()
    }
    fn lattice_size(&self) -> usize {
        self.lattice.size()
    }
    fn push_forward(&mut self, z: &[f64]) -> Result<Samples> {
        Flow::push_forward(self, z)
    }
    fn log_prob(&mut self, phi: &[f64]) -> Result<Vec<f64>> {
        Flow::log_prob(self, phi)
    }
    fn evaluate_action(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()> {
        Flow::evaluate_action(self, phi, action, force)
    }
    fn log_q_is_even(&self) -> bool {
        self.config.arch.features == FeatureKind::Odd
    }
    fn has_custom_action(&self) -> bool {
        Flow::has_custom_action(self)
    }
    fn set_custom_action(&mut self, action: Option<Arc<dyn CustomAction>>) {
        Flow::set_custom_action(self, action)
    }
}

impl Proposal for RealNvp {
    fn frozen(&self) -> Self {
        self.snapshot()
    }
    fn lattice_size(&self) -> usize {
        self.lattice.size()
    }
    fn push_forward(&mut self, z: &[f64]) -> Result<Samples> {
        RealNvp::push_forward(self, z)
    }
    fn log_prob(&mut self, phi: &[f64]) -> Result<Vec<f64>> {
        RealNvp::log_prob(self, phi)
    }
    fn evaluate_action(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()> {
        RealNvp::evaluate_action(self, phi, action, force)
    }
    fn log_q_is_even(&self) -> bool {
        false
    }
    fn has_custom_action(&self) -> bool {
        RealNvp::has_custom_action(self)
    }
    fn set_custom_action(&mut self, action: Option<Arc<dyn CustomAction>>) {
        RealNvp::set_custom_action(self, action)
    }
}
