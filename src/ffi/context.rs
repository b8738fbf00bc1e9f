//! `eqflow_context`: the backend, device and thread count that flows are created with.

use super::boundary::{arg_out, arg_ref, boundary, boundary_void, give, read_versioned, take, Versioned};
use super::status::eqflow_status;
use crate::error::{Error, Status};
use std::mem::size_of;

/// The CPU backend (always available).
pub const EQFLOW_BACKEND_CPU: i32 = 0;
/// The CUDA backend: `eqflow_backend_available` returns 1 where a CUDA driver and a device
/// are present. Flows made or loaded in a CUDA context train, sample and estimate their ESS
/// on the device, and their chains push proposals there; log q of given configurations and
/// the chains' decisions run on the CPU; RealNVP flows and `eqflow_chain_load` refuse a CUDA
/// context (see kernels/README.md).
pub const EQFLOW_BACKEND_CUDA: i32 = 1;

/// Where and with how many threads flows compute.
///
/// Thread safety: immutable after creation; one context may be used by any number of
/// threads at once (e.g. to create one flow per thread). Free it only after the flows
/// created from it have been created (flows do not borrow it) and no thread uses it.
pub struct eqflow_context {
    pub(crate) backend: i32,
    pub(crate) device: i32,
    pub(crate) threads: usize,
    /// The open device of a CUDA context.
    pub(crate) cuda: Option<std::sync::Arc<crate::cuda::Device>>,
}

/// Parameters of `eqflow_context_new`. Initialise with `eqflow_context_params_init`;
/// fields are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eqflow_context_params {
    /// `sizeof(eqflow_context_params)` as compiled by the caller.
    pub struct_size: usize,
    /// `EQFLOW_BACKEND_CPU` (default) or `EQFLOW_BACKEND_CUDA`.
    pub backend: i32,
    /// Device ordinal (0; must be 0 for the CPU backend).
    pub device: i32,
    /// Worker threads of each flow created from the context: default 1, 0 = all cores.
    pub threads: i32,
}

unsafe impl Versioned for eqflow_context_params {
    const OLD_SIZES: &'static [usize] = &[];
    const NAME: &'static str = "eqflow_context_params";
}

impl Default for eqflow_context_params {
    fn default() -> Self {
        eqflow_context_params { struct_size: size_of::<Self>(), backend: EQFLOW_BACKEND_CPU, device: 0, threads: 1 }
    }
}

/// Writes the defaults into the first `struct_size` bytes of `*p` (CPU backend, device 0,
/// 1 thread) and sets `p->struct_size = struct_size`. NULL or a `struct_size` below
/// `sizeof(size_t)` is a no-op; a `struct_size` this library does not know is reported by
/// `eqflow_context_new`.
///
/// # Safety
/// `p` is NULL or points to `struct_size` writable bytes.
///
/// Example: `eqflow_context_params cp; eqflow_context_params_init(&cp, sizeof cp);`
#[no_mangle]
pub unsafe extern "C" fn eqflow_context_params_init(p: *mut eqflow_context_params, struct_size: usize) {
    boundary_void("eqflow_context_params_init", || init_prefix(p, struct_size, eqflow_context_params::default()))
}

/// Copies the defaults over the caller's first `struct_size` bytes, then sets struct_size.
pub(crate) unsafe fn init_prefix<T: Versioned>(p: *mut T, struct_size: usize, defaults: T) {
    if p.is_null() || struct_size < size_of::<usize>() || (p as usize) % std::mem::align_of::<T>() != 0 {
        return;
    }
    let n = struct_size.min(size_of::<T>());
    std::ptr::copy_nonoverlapping(&defaults as *const T as *const u8, p as *mut u8, n);
    std::ptr::write(p as *mut usize, struct_size);
}

/// Whether a backend's device is present on this machine: 1 yes, 0 no (unknown backends: 0).
/// The CPU backend is always available; CUDA when the CUDA driver (libcuda.so.1, loaded at
/// run time: the library itself never needs it) reports at least one device.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn eqflow_backend_available(backend: i32) -> i32 {
    let available = || match backend {
        EQFLOW_BACKEND_CPU => true,
        EQFLOW_BACKEND_CUDA => crate::cuda::available(),
        _ => false,
    };
    // never a panic across the boundary, even from a broken driver
    std::panic::catch_unwind(available).unwrap_or(false) as i32
}

/// Creates a context. On success `*out` holds a new context, to be freed with
/// `eqflow_context_free`; on failure `*out` is not written.
/// Errors: NULL `p` or `out` (101), a wrong `struct_size` (103), an unknown backend, a
/// device other than 0 on the CPU, a CUDA device ordinal beyond the devices present or
/// threads < 0 (100), the CUDA backend without a CUDA driver or device (200, no device).
/// A CUDA context opens the device's primary context (shared with the CUDA runtime).
///
/// # Safety
/// `p` points to an initialised `eqflow_context_params`; `out` to writable storage.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub unsafe extern "C" fn eqflow_context_new(
    p: *const eqflow_context_params,
    out: *mut *mut eqflow_context,
) -> eqflow_status {
    boundary("eqflow_context_new", || {
        let p = read_versioned(p, eqflow_context_params::default(), "p")?;
        let out = arg_out(out, "out")?;
        let device = match p.backend {
            EQFLOW_BACKEND_CPU => {
                if p.device != 0 {
                    return Err(Error::invalid(format!(
                        "argument 'p': device = {} on the CPU backend (must be 0)",
                        p.device
                    )));
                }
                None
            }
            EQFLOW_BACKEND_CUDA => {
                let ordinal = usize::try_from(p.device)
                    .map_err(|_| Error::invalid(format!("argument 'p': CUDA device = {} (must be >= 0)", p.device)))?;
                let d = crate::cuda::Device::new(ordinal).map_err(|e| {
                    Error::new(e.status, format!("argument 'p': backend EQFLOW_BACKEND_CUDA: {}", e.message))
                })?;
                Some(d)
            }
            b => return Err(Error::invalid(format!("argument 'p': backend = {b} is not an EQFLOW_BACKEND_*"))),
        };
        if !(0..=4096).contains(&p.threads) {
            return Err(Error::invalid(format!(
                "argument 'p': threads = {} (must be 0..=4096, 0 = all cores)",
                p.threads
            )));
        }
        give(out, eqflow_context { backend: p.backend, device: p.device, threads: p.threads as usize, cuda: device });
        Ok(())
    })
}

/// Frees a context; NULL is a no-op. Flows created from it stay valid.
///
/// # Safety
/// `ctx` is NULL or a context from `eqflow_context_new` not freed before and not in use.
#[no_mangle]
pub unsafe extern "C" fn eqflow_context_free(ctx: *mut eqflow_context) {
    boundary_void("eqflow_context_free", || take(ctx))
}

/// The context's thread count (checked reference), for objects that run on the CPU only:
/// chains loaded from a file refuse a CUDA context with `NoDevice` and a message saying so.
pub(crate) unsafe fn threads_of(ctx: *const eqflow_context) -> crate::error::Result<usize> {
    let c = arg_ref(ctx, "ctx")?;
    if c.backend == EQFLOW_BACKEND_CUDA {
        return Err(Error::new(
            Status::NoDevice,
            "argument 'ctx': a CUDA context: chains of the C API run on the CPU (make the chain from a \
             flow, or use an EQFLOW_BACKEND_CPU context)",
        ));
    }
    debug_assert!(c.backend == EQFLOW_BACKEND_CPU && c.device == 0);
    Ok(c.threads)
}

/// The context's thread count and, for a CUDA context, its device (checked reference).
pub(crate) unsafe fn backend_of(
    ctx: *const eqflow_context,
) -> crate::error::Result<(usize, Option<std::sync::Arc<crate::cuda::Device>>)> {
    let c = arg_ref(ctx, "ctx")?;
    Ok((c.threads, c.cuda.clone()))
}
