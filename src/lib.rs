//! eqflow: equivariant continuous normalizing flows for 2D φ⁴ lattice field theory.
#![deny(missing_docs)]

pub mod action;
pub mod any_flow;
pub mod conventions;
pub mod cuda;
pub mod error;
pub mod ffi;
pub mod flow;
pub mod io;
pub mod lattice;
pub mod mcmc;
pub mod memory;
pub mod observables;
pub mod reweight;
pub mod rng;

pub use action::{Action, Couplings};
pub use any_flow::{AnyFlow, FlowKind};
pub use error::{Error, Result, Status};
pub use lattice::Lattice;
pub mod real;
pub mod realnvp;
pub mod simd;
pub mod sincos;
pub mod symmetry;
pub mod train;
