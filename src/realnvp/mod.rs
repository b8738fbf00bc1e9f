//! The RealNVP baseline (SPEC §7; Albergo et al. 2021, arXiv 2101.08176): 16
//! checkerboard-masked affine coupling layers, each with a periodic 3×3 CNN
//! (1 → 8 → 8 → 2 channels, LeakyReLU between, tanh on s and t), a standard normal prior,
//! an exact inverse (so log q of any configuration is exact) and a hand-written backward
//! pass of the reverse-KL loss. f64 throughout.
//!
//! Unlike the continuous flow it is not equivariant: the checkerboard masks and the
//! unconstrained 3×3 kernels break translations by an odd number of sites and D4, and the
//! biases break Z2 (see `crate::symmetry` to measure it).

mod cnn;
mod coupling;
mod file;
mod model;
mod network;

pub use file::{from_slice, load, save, to_vec, REALNVP_FORMAT_VERSION};
pub use model::{ParamGroup, RealNvp, RealNvpConfig};
