//! The CUDA backend (issue 5, first slice): CUDA C kernels from `kernels/`, embedded as
//! PTX, loaded and launched at run time through the driver API, which is itself loaded at
//! run time (`cudarc` with dynamic loading). One build runs on GPU and CPU-only machines:
//! without a driver or a device every entry returns [`Status::NoDevice`](crate::Status)
//! and the host process carries on.
//!
//! - [`device`]: the driver-presence guard, the device's primary context and one stream,
//!   the module cache (PTX first, NVRTC compilation of the embedded source as fallback).
//! - [`args`]: `#[repr(C)]` mirrors of `kernels/eqflow_kernel_args.h`.
//! - [`conv`]: the vector field's convolution, by direct sums or in Fourier space (FFTs per
//!   line where L is a power of two up to 64, DFTs otherwise), chosen by operation count.
//! - `launch`: every untyped kernel launch, behind typed functions written once over a
//!   `Launcher` (the device, or the host emulation in the tests).
//! - [`twin`]: the CPU twin of every kernel, built from the CPU code it reproduces; the
//!   oracle of the GPU tests.
//! - [`sampler`]: [`CudaFlow`], push-forward of prior draws on the device (sampling
//!   direction: proposals, log q, S), with its kernel sequence written once over an
//!   executor that runs either the kernels or their twins.
//! - [`train`]: [`CudaTrainer`], the loss and exact gradient of training batches on the
//!   device (Adam on the host).
//! - `emulate` (tests only): the kernels compiled for the host and run through the same
//!   launch code, so they are tested without a GPU.
//!
//! Status: nothing here has run on a GPU yet. What is verified without one: the PTX
//! assembles for sm_70/80/90, the no-device paths, the struct mirrors, and, on the host
//! emulation of the kernels, every kernel against its twin, the sampler (by both convolution
//! paths) against `Flow::push_forward`, a chain whose proposals go through it against the
//! CPU chain, and the training gradient and steps against the CPU's.

pub mod args;
pub mod conv;
pub mod device;
#[cfg(test)]
mod emulate;
pub(crate) mod launch;
pub mod sampler;
pub mod train;
pub mod twin;

#[cfg(test)]
mod tests;

pub use conv::ConvPath;
pub use device::{available, Device};
pub use sampler::CudaFlow;
pub use train::CudaTrainer;

/// The element types of the kernels' bulk data (f32 and f64 entry points).
pub trait Elem: crate::real::Real + launch::Pod {
    /// The suffix of the kernels' entry points for this type: "f32" or "f64".
    const SUFFIX: &'static str;
}

impl Elem for f32 {
    const SUFFIX: &'static str = "f32";
}

impl Elem for f64 {
    const SUFFIX: &'static str = "f64";
}
