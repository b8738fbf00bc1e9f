//! The device: a guard around the dynamically loaded driver, the GPU's primary context (so
//! the library coexists with codes that use the CUDA runtime on the same device), one
//! stream, and the kernel modules, loaded on first use and cached.
//!
//! cudarc panics when it cannot load a library, so every entry first asks whether the
//! library can be loaded at all, and runs inside `catch_unwind` as a second guard: the
//! library never aborts the host process for want of a driver.

use crate::error::{Error, Result, Status};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// The PTX ISA version of kernels/ptx/ (NVRTC 12.4): drivers of CUDA 12.4 (R550) and newer load it.
pub const PTX_ISA: &str = "8.4 (CUDA 12.4)";

/// Runs `f`, turning a panic (a library cudarc failed to load) into an error with `status`.
pub(crate) fn guard<T>(what: &str, status: Status, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            Err(Error::new(status, format!("{what}: {msg}")))
        }
    }
}

/// A driver-API failure as an error naming the call.
pub(crate) fn driver_error(what: &str, e: DriverError) -> Error {
    Error::new(Status::Device, format!("{what}: {e:?}"))
}

/// Whether the CUDA driver library (libcuda.so.1) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library's candidate names.
    catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false)
}

/// Whether NVRTC (libnvrtc.so) can be loaded, for the run-time compilation fallback.
pub fn nvrtc_present() -> bool {
    // SAFETY: as for `driver_present`.
    catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

/// The number of CUDA devices; `NoDevice` without a driver or when cuInit fails.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(Error::new(
            Status::NoDevice,
            "CUDA backend: no CUDA driver (libcuda.so.1 could not be loaded; is this a GPU machine?)",
        ));
    }
    guard("CUDA backend", Status::NoDevice, || {
        cudarc::driver::result::init()
            .map_err(|e| Error::new(Status::NoDevice, format!("CUDA backend: cuInit failed: {e:?}")))?;
        let n = CudaContext::device_count()
            .map_err(|e| Error::new(Status::NoDevice, format!("CUDA backend: cuDeviceGetCount failed: {e:?}")))?;
        Ok(n.max(0) as usize)
    })
}

/// Whether the CUDA backend can run here: a driver and at least one device.
pub fn available() -> bool {
    matches!(device_count(), Ok(n) if n > 0)
}

/// The driver's CUDA version as (major, minor), if a driver is loaded.
pub fn driver_version() -> Option<(i32, i32)> {
    if !driver_present() {
        return None;
    }
    let mut v = 0;
    // SAFETY: writes one int; the library is present (checked above).
    let ok = catch_unwind(AssertUnwindSafe(|| unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }))
        .map(|r| r == cudarc::driver::sys::CUresult::CUDA_SUCCESS)
        .unwrap_or(false);
    ok.then_some((v / 1000, v % 1000 / 10))
}

/// NVRTC's version as (major, minor), if NVRTC can be loaded.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_present() {
        return None;
    }
    let (mut a, mut b) = (0, 0);
    // SAFETY: writes two ints; the library is present (checked above).
    let ok = catch_unwind(AssertUnwindSafe(|| unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut a, &mut b) }))
        .map(|r| r == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS)
        .unwrap_or(false);
    ok.then_some((a, b))
}

/// One kernel source file: its name, CUDA C source and checked-in PTX.
pub(crate) struct Source {
    pub name: &'static str,
    pub cu: &'static str,
    pub ptx: &'static str,
}

macro_rules! sources {
    ($($n:literal),*) => {
        [$(Source {
            name: $n,
            cu: include_str!(concat!("../../kernels/", $n, ".cu")),
            ptx: include_str!(concat!("../../kernels/ptx/", $n, ".ptx")),
        }),*]
    };
}

/// Every kernel file, embedded.
pub(crate) const SOURCES: [Source; 10] =
    sources!("rng", "action", "features", "conv", "density", "rk4", "metropolis", "train", "spectral", "field");

/// The argument header, embedded (substituted into the sources for NVRTC).
pub(crate) const HEADER: &str = include_str!("../../kernels/eqflow_kernel_args.h");

/// A kernel source with the argument header pasted in place of its #include.
pub(crate) fn standalone_source(cu: &str) -> String {
    cu.replace("#include \"eqflow_kernel_args.h\"", HEADER)
}

/// A CUDA device in use: its primary context, one stream and the loaded modules.
///
/// Thread safety: `Device` is `Send + Sync`; launches from several threads go to the one
/// stream in the order they are made (the sampler serialises its own work).
pub struct Device {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("ordinal", &self.ordinal).finish()
    }
}

impl Device {
    /// Opens device `ordinal` (its primary context). `NoDevice` without a driver or device,
    /// `InvalidArgument` for an ordinal beyond the device count.
    pub fn new(ordinal: usize) -> Result<Arc<Device>> {
        let n = device_count()?;
        if n == 0 {
            return Err(Error::new(Status::NoDevice, "CUDA backend: the driver reports no CUDA device"));
        }
        if ordinal >= n {
            return Err(Error::invalid(format!("CUDA device {ordinal}: only {n} device(s) present")));
        }
        guard("CUDA backend", Status::Device, || {
            let ctx = CudaContext::new(ordinal).map_err(|e| driver_error("cuDevicePrimaryCtxRetain", e))?;
            // One stream does all the work: no cross-stream events needed.
            // SAFETY: called before any allocation on this context by this library.
            unsafe { ctx.disable_event_tracking() };
            let stream = ctx.default_stream();
            Ok(Arc::new(Device { ordinal, ctx, stream, modules: Mutex::new(HashMap::new()) }))
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's name, e.g. "NVIDIA H200".
    pub fn name(&self) -> Result<String> {
        guard("CUDA device name", Status::Device, || self.ctx.name().map_err(|e| driver_error("cuDeviceGetName", e)))
    }

    /// The device's compute capability (major, minor).
    pub fn compute_capability(&self) -> Result<(i32, i32)> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        guard("CUDA device attributes", Status::Device, || {
            let a = |x| self.ctx.attribute(x).map_err(|e| driver_error("cuDeviceGetAttribute", e));
            Ok((
                a(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                a(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ))
        })
    }

    /// Bytes of device memory in use (by every process on the device): total − free.
    pub fn memory_in_use(&self) -> Result<usize> {
        guard("CUDA memory info", Status::Device, || {
            let (free, total) = self.ctx.mem_get_info().map_err(|e| driver_error("cuMemGetInfo", e))?;
            Ok(total.saturating_sub(free))
        })
    }

    /// Waits for all work on the stream.
    pub fn synchronize(&self) -> Result<()> {
        guard("CUDA synchronize", Status::Device, || {
            self.stream.synchronize().map_err(|e| driver_error("cuStreamSynchronize", e))
        })
    }

    /// The module of kernel file `name`, loaded on first use: the embedded PTX, or, if the
    /// driver rejects it, the embedded source compiled by NVRTC for this device.
    pub(crate) fn module(&self, name: &str) -> Result<Arc<CudaModule>> {
        let mut cache = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(name) {
            return Ok(m.clone());
        }
        let src = SOURCES
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::new(Status::Internal, format!("no kernel file {name}")))?;
        let m = guard("CUDA module", Status::Device, || {
            match self.ctx.load_module(cudarc::nvrtc::Ptx::from_src(src.ptx)) {
                Ok(m) => Ok(m),
                Err(ptx_err) => self.compile_fallback(src, ptx_err),
            }
        })?;
        cache.insert(src.name, m.clone());
        Ok(m)
    }

    /// NVRTC fallback for a module whose PTX the driver rejected.
    fn compile_fallback(&self, src: &Source, ptx_err: DriverError) -> Result<Arc<CudaModule>> {
        let driver = driver_version().map_or("unknown".into(), |(a, b)| format!("{a}.{b}"));
        let why = format!(
            "kernels/{}: the driver (CUDA {driver}) rejected the embedded PTX (ISA {PTX_ISA}): {ptx_err:?}",
            src.name
        );
        let Some((na, nb)) = nvrtc_version() else {
            return Err(Error::new(
                Status::Device,
                format!("{why}; NVRTC fallback unavailable (libnvrtc could not be loaded)"),
            ));
        };
        let (major, minor) = self.compute_capability()?;
        let arch = nvrtc_arch(major * 10 + minor, na);
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(arch),
            options: vec!["--std=c++17".into()],
            name: Some(format!("{}.cu", src.name)),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(standalone_source(src.cu), opts).map_err(|e| {
            Error::new(Status::Device, format!("{why}; NVRTC {na}.{nb} fallback failed to compile it: {e:?}"))
        })?;
        self.ctx.load_module(ptx).map_err(|e| {
            Error::new(
                Status::Device,
                format!("{why}; the PTX of NVRTC {na}.{nb} fallback ({arch}) was rejected too: {e:?}"),
            )
        })
    }

    /// The kernel `function` of file `file`.
    pub(crate) fn function(&self, file: &str, function: &str) -> Result<CudaFunction> {
        let m = self.module(file)?;
        guard("CUDA function", Status::Device, || {
            m.load_function(function).map_err(|e| driver_error(&format!("cuModuleGetFunction({function})"), e))
        })
    }
}

/// The virtual architecture NVRTC compiles for on a device of compute capability `cc` (10 ×
/// major + minor): the newest listed one the device has, and never older than NVRTC
/// `nvrtc_major` accepts (CUDA 13 dropped compute_70 and compute_72). A 'static name, as
/// NVRTC's options want.
pub(crate) fn nvrtc_arch(cc: i32, nvrtc_major: i32) -> &'static str {
    const ARCHS: [(i32, &str); 8] = [
        (90, "compute_90"),
        (89, "compute_89"),
        (87, "compute_87"),
        (86, "compute_86"),
        (80, "compute_80"),
        (75, "compute_75"),
        (72, "compute_72"),
        (70, "compute_70"),
    ];
    let oldest = if nvrtc_major >= 13 { 75 } else { 70 };
    ARCHS.iter().find(|a| a.0 <= cc.max(oldest)).map_or("compute_70", |a| a.1)
}
