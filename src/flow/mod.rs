//! The equivariant continuous flow (SPEC §3): architecture, parameters, vector field,
//! RK4 integration with exact log-densities, and exact gradients.

pub mod config;
pub mod conv;
pub mod features;
pub mod gap;
pub mod grad;
pub mod model;
pub mod ode;
pub mod params;
pub mod time_kernel;
mod transfer;
pub mod vector_field;

pub use config::{Architecture, FeatureKind, KernelSymmetry, OmegaInit, TimeKernelKind};
pub use model::{CustomAction, Flow, FlowConfig, Precision, Samples, StepStats};
