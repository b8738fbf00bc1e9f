//! Every untyped kernel launch of the library, behind typed functions. Each function checks
//! the lengths of the buffers it is given against the sizes it passes to the kernel, builds
//! the kernel's argument struct (src/cuda/args.rs) and launches on the device's stream.

use super::args::*;
use super::device::{driver_error, guard, Device};
use super::Elem;
use crate::error::{Error, Result, Status};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};

/// Threads per block of the site-parallel kernels.
const BLOCK: u32 = 256;
/// Threads per block of the per-field reductions (ACTION_THREADS, DENSITY_THREADS in the .cu files).
const REDUCE_BLOCK: u32 = 256;

/// (file, entry point, typed): the kernels launched here; typed ones have _f32 and _f64 variants.
pub(crate) const ENTRIES: [(&str, &str, bool); 13] = [
    ("rng", "eqflow_philox_words", false),
    ("rng", "eqflow_prior_normal", true),
    ("rng", "eqflow_uniform", false),
    ("action", "eqflow_action", true),
    ("action", "eqflow_force", true),
    ("features", "eqflow_features", true),
    ("features", "eqflow_mix", true),
    ("conv", "eqflow_conv_direct", true),
    ("density", "eqflow_divergence", true),
    ("density", "eqflow_log_prior", true),
    ("rk4", "eqflow_rk4_point", true),
    ("rk4", "eqflow_rk4_combine", true),
    ("metropolis", "eqflow_metropolis", false),
];

/// Plain data the kernels read and write (f32, f64, i32, u32).
pub trait Pod: DeviceRepr + ValidAsZeroBits + Default + Copy + Unpin + Send + Sync + 'static {}
impl Pod for f32 {}
impl Pod for f64 {}
impl Pod for i32 {}
impl Pod for u32 {}

/// What runs the kernels: the CUDA device ([`Device`]), or, in the tests, the host emulation
/// of the same CUDA C (`super::emulate`). The typed launch functions below are written once
/// over it, so the emulation checks their argument structs and launch geometry too.
pub trait Launcher {
    /// A buffer of T where the kernels can reach it.
    type Buf<T: Pod>;
    /// Its length in elements.
    fn buf_len<T: Pod>(b: &Self::Buf<T>) -> usize;
    /// Its address as a kernel argument, for reading.
    fn addr<T: Pod>(&self, b: &Self::Buf<T>) -> u64;
    /// Its address as a kernel argument, for writing.
    fn addr_mut<T: Pod>(&self, b: &mut Self::Buf<T>) -> u64;
    /// n zeros (at least one element, so that every buffer has an address).
    fn alloc_zeros<T: Pod>(&self, n: usize) -> Result<Self::Buf<T>>;
    /// A copy of host data.
    fn upload<T: Pod>(&self, x: &[T]) -> Result<Self::Buf<T>>;
    /// The contents.
    fn download<T: Pod>(&self, b: &Self::Buf<T>) -> Result<Vec<T>>;
    /// Launches `name` (an entry point of kernels/`file`.cu) with `grid` × `block` threads
    /// and its one argument struct.
    fn launch_kernel<A: DeviceRepr>(&self, file: &str, name: &str, grid: u32, block: u32, args: A) -> Result<()>;
}

impl Launcher for Device {
    type Buf<T: Pod> = CudaSlice<T>;
    fn buf_len<T: Pod>(b: &CudaSlice<T>) -> usize {
        b.len()
    }
    fn addr<T: Pod>(&self, b: &CudaSlice<T>) -> u64 {
        b.device_ptr(&self.stream).0
    }
    fn addr_mut<T: Pod>(&self, b: &mut CudaSlice<T>) -> u64 {
        b.device_ptr_mut(&self.stream).0
    }
    fn alloc_zeros<T: Pod>(&self, n: usize) -> Result<CudaSlice<T>> {
        let bytes = n.max(1) * std::mem::size_of::<T>();
        guard("CUDA alloc", Status::Device, || {
            self.stream
                .alloc_zeros(n.max(1))
                .map_err(|e| Error::new(Status::OutOfMemory, format!("CUDA: allocating {bytes} bytes failed: {e:?}")))
        })
    }
    fn upload<T: Pod>(&self, x: &[T]) -> Result<CudaSlice<T>> {
        if x.is_empty() {
            return self.alloc_zeros(1);
        }
        guard("CUDA upload", Status::Device, || self.stream.clone_htod(x).map_err(|e| driver_error("cuMemcpyHtoD", e)))
    }
    fn download<T: Pod>(&self, b: &CudaSlice<T>) -> Result<Vec<T>> {
        guard("CUDA download", Status::Device, || {
            self.stream.clone_dtoh(b).map_err(|e| driver_error("cuMemcpyDtoH", e))
        })
    }
    fn launch_kernel<A: DeviceRepr>(&self, file: &str, name: &str, grid: u32, block: u32, args: A) -> Result<()> {
        let f = self.function(file, name)?;
        let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
        guard("CUDA launch", Status::Device, || {
            // SAFETY: `args` is the #[repr(C)] mirror of the entry point's only parameter, and the
            // launch functions below checked that every buffer it points to holds what the sizes
            // in it promise.
            unsafe { self.stream.launch_builder(&f).arg(&args).launch(cfg) }
                .map(|_| ())
                .map_err(|e| driver_error(&format!("cuLaunchKernel({name})"), e))
        })
    }
}

fn ptr<L: Launcher, T: Pod>(dev: &L, s: &L::Buf<T>) -> u64 {
    dev.addr(s)
}

fn ptr_mut<L: Launcher, T: Pod>(dev: &L, s: &mut L::Buf<T>) -> u64 {
    dev.addr_mut(s)
}

fn need<L: Launcher, T: Pod>(what: &str, s: &L::Buf<T>, len: usize) -> Result<()> {
    if L::buf_len(s) < len {
        return Err(Error::new(
            Status::Internal,
            format!("kernel launch: buffer {what} has {} < {len} elements", L::buf_len(s)),
        ));
    }
    Ok(())
}

fn blocks(total: usize) -> Result<u32> {
    let b = total.div_ceil(BLOCK as usize).max(1);
    u32::try_from(b)
        .ok()
        .filter(|&b| b < 1 << 31)
        .ok_or_else(|| Error::new(Status::Internal, format!("kernel launch: {total} threads is too many for one grid")))
}

fn u32_of(what: &str, x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::invalid(format!("kernel launch: {what} = {x} exceeds 2^32 - 1")))
}

/// Launches entry `entry` (with the `R` suffix if typed) with `grid` × `block` threads.
fn launch<L: Launcher, A: DeviceRepr>(
    dev: &L,
    entry: usize,
    suffix: Option<&str>,
    grid: u32,
    block: u32,
    args: A,
) -> Result<()> {
    let (file, name, typed) = ENTRIES[entry];
    debug_assert_eq!(typed, suffix.is_some());
    let name = match suffix {
        Some(s) => format!("{name}_{s}"),
        None => name.to_string(),
    };
    dev.launch_kernel(file, &name, grid, block, args)
}

/// Raw Philox words of sub-counters 0..count of (seed, stream, index) into `out` (4·count).
#[cfg_attr(not(test), allow(dead_code))] // the bit-exactness test of rng.cu
pub(crate) fn philox_words<L: Launcher>(
    dev: &L,
    out: &mut L::Buf<u32>,
    seed: u64,
    stream: u32,
    index: u64,
    count: usize,
) -> Result<()> {
    need::<L, _>("out", out, 4 * count)?;
    let a = PhiloxArgs { out: ptr_mut(dev, out), seed, index, stream, count: u32_of("count", count)? };
    launch(dev, 0, None, blocks(count)?, BLOCK, a)
}

/// z (n × v) = standard normals of (seed, stream, first + i).
pub(crate) fn prior_normal<L: Launcher, R: Elem>(
    dev: &L,
    z: &mut L::Buf<R>,
    seed: u64,
    stream: u32,
    first: u64,
    n: usize,
    v: usize,
) -> Result<()> {
    need::<L, _>("z", z, n * v)?;
    let a = PriorArgs { z: ptr_mut(dev, z), seed, first, stream, n: u32_of("n", n)?, v: u32_of("v", v)?, pad0: 0 };
    launch(dev, 1, Some(R::SUFFIX), blocks(n * v.div_ceil(2))?, BLOCK, a)
}

/// u[i] = uniform(k) of (seed, stream, first + i), i < n.
pub(crate) fn uniform<L: Launcher>(
    dev: &L,
    u: &mut L::Buf<f64>,
    seed: u64,
    stream: u32,
    first: u64,
    k: u32,
    n: usize,
) -> Result<()> {
    need::<L, _>("u", u, n)?;
    let a = UniformArgs { u: ptr_mut(dev, u), seed, first, stream, k, n: u32_of("n", n)?, pad0: 0 };
    launch(dev, 2, None, blocks(n)?, BLOCK, a)
}

/// S (n, f64) of n fields of side l.
pub(crate) fn action<L: Launcher, R: Elem>(
    dev: &L,
    phi: &L::Buf<R>,
    out: &mut L::Buf<f64>,
    m2: f64,
    lambda: f64,
    n: usize,
    l: usize,
) -> Result<()> {
    action_kernel(dev, phi, out, m2, lambda, n, l, false)
}

/// ∂S/∂φ (n × l², f64) of n fields of side l.
#[cfg_attr(not(test), allow(dead_code))] // for training on the device (not yet wired)
pub(crate) fn force<L: Launcher, R: Elem>(
    dev: &L,
    phi: &L::Buf<R>,
    out: &mut L::Buf<f64>,
    m2: f64,
    lambda: f64,
    n: usize,
    l: usize,
) -> Result<()> {
    action_kernel(dev, phi, out, m2, lambda, n, l, true)
}

/// The action (one block per field, reduced) or its force (one thread per site): the same
/// argument struct, kernels 3 and 4.
#[allow(clippy::too_many_arguments)]
fn action_kernel<L: Launcher, R: Elem>(
    dev: &L,
    phi: &L::Buf<R>,
    out: &mut L::Buf<f64>,
    m2: f64,
    lambda: f64,
    n: usize,
    l: usize,
    force: bool,
) -> Result<()> {
    need::<L, _>("phi", phi, n * l * l)?;
    need::<L, _>("out", out, if force { n * l * l } else { n })?;
    let a =
        ActionArgs { phi: ptr(dev, phi), out: ptr_mut(dev, out), m2, lambda, n: u32_of("n", n)?, l: u32_of("l", l)? };
    match force {
        false => launch(dev, 3, Some(R::SUFFIX), u32_of("n", n.max(1))?, REDUCE_BLOCK, a),
        true => launch(dev, 4, Some(R::SUFFIX), blocks(n * l * l)?, BLOCK, a),
    }
}

/// Sizes of the feature kernels.
#[derive(Debug, Clone, Copy)]
pub struct FeatureDims {
    /// Fields.
    pub n: usize,
    /// Sites per field.
    pub v: usize,
    /// Frequencies.
    pub n_omega: usize,
    /// Feature rows.
    pub n_h: usize,
    /// 0 odd, 1 non-odd.
    pub kind: u32,
    /// Linear feature.
    pub linear: bool,
}

/// h, h' (n × n_h × v each) of fields u.
pub(crate) fn features<L: Launcher, R: Elem>(
    dev: &L,
    u: &L::Buf<R>,
    omega: &L::Buf<R>,
    h: &mut L::Buf<R>,
    hp: &mut L::Buf<R>,
    d: FeatureDims,
) -> Result<()> {
    let rows = match d.kind {
        0 => d.n_omega,
        _ => 2 * d.n_omega + 1,
    } + d.linear as usize;
    if rows != d.n_h {
        return Err(Error::new(Status::Internal, format!("features: n_h = {} but the kind has {rows} rows", d.n_h)));
    }
    need::<L, _>("u", u, d.n * d.v)?;
    need::<L, _>("omega", omega, d.n_omega)?;
    need::<L, _>("h", h, d.n * d.n_h * d.v)?;
    need::<L, _>("hp", hp, d.n * d.n_h * d.v)?;
    let a = FeaturesArgs {
        u: ptr(dev, u),
        omega: ptr(dev, omega),
        h: ptr_mut(dev, h),
        hp: ptr_mut(dev, hp),
        n: u32_of("n", d.n)?,
        v: u32_of("v", d.v)?,
        n_omega: u32_of("n_omega", d.n_omega)?,
        n_h: u32_of("n_h", d.n_h)?,
        kind: d.kind,
        linear: d.linear as u32,
    };
    launch(dev, 5, Some(R::SUFFIX), blocks(d.n * d.v)?, BLOCK, a)
}

/// g = F̃ h per field (F̃ n_c × n_h).
#[allow(clippy::too_many_arguments)]
pub(crate) fn mix<L: Launcher, R: Elem>(
    dev: &L,
    f: &L::Buf<R>,
    h: &L::Buf<R>,
    g: &mut L::Buf<R>,
    n: usize,
    v: usize,
    n_h: usize,
    n_c: usize,
) -> Result<()> {
    need::<L, _>("f", f, n_c * n_h)?;
    need::<L, _>("h", h, n * n_h * v)?;
    need::<L, _>("g", g, n * n_c * v)?;
    let a = MixArgs {
        f: ptr(dev, f),
        h: ptr(dev, h),
        g: ptr_mut(dev, g),
        n: u32_of("n", n)?,
        v: u32_of("v", v)?,
        n_h: u32_of("n_h", n_h)?,
        n_c: u32_of("n_c", n_c)?,
    };
    launch(dev, 6, Some(R::SUFFIX), blocks(n * n_c * v)?, BLOCK, a)
}

/// out (n × l²) = Σ_c W[c] ∗ g[c] (direct sum).
pub(crate) fn conv_direct<L: Launcher, R: Elem>(
    dev: &L,
    w: &L::Buf<R>,
    g: &L::Buf<R>,
    out: &mut L::Buf<R>,
    n: usize,
    l: usize,
    n_c: usize,
) -> Result<()> {
    let v = l * l;
    need::<L, _>("w", w, n_c * v)?;
    need::<L, _>("g", g, n * n_c * v)?;
    need::<L, _>("out", out, n * v)?;
    let a = ConvArgs {
        w: ptr(dev, w),
        g: ptr(dev, g),
        out: ptr_mut(dev, out),
        n: u32_of("n", n)?,
        l: u32_of("l", l)?,
        n_c: u32_of("n_c", n_c)?,
        pad0: 0,
    };
    launch(dev, 7, Some(R::SUFFIX), blocks(n * v)?, BLOCK, a)
}

/// div (n, f64) = Σ_j β_j Σ_x h'_j.
pub(crate) fn divergence<L: Launcher, R: Elem>(
    dev: &L,
    hp: &L::Buf<R>,
    beta: &L::Buf<R>,
    div: &mut L::Buf<f64>,
    n: usize,
    v: usize,
    n_h: usize,
) -> Result<()> {
    need::<L, _>("hp", hp, n * n_h * v)?;
    need::<L, _>("beta", beta, n_h)?;
    need::<L, _>("div", div, n)?;
    let a = DivergenceArgs {
        hp: ptr(dev, hp),
        beta: ptr(dev, beta),
        div: ptr_mut(dev, div),
        n: u32_of("n", n)?,
        v: u32_of("v", v)?,
        n_h: u32_of("n_h", n_h)?,
        pad0: 0,
    };
    launch(dev, 8, Some(R::SUFFIX), u32_of("n", n.max(1))?, REDUCE_BLOCK, a)
}

/// log r (n, f64) of prior points z (n × v).
pub(crate) fn log_prior<L: Launcher, R: Elem>(
    dev: &L,
    z: &L::Buf<R>,
    out: &mut L::Buf<f64>,
    n: usize,
    v: usize,
) -> Result<()> {
    need::<L, _>("z", z, n * v)?;
    need::<L, _>("out", out, n)?;
    let a = LogPriorArgs { z: ptr(dev, z), out: ptr_mut(dev, out), n: u32_of("n", n)?, v: u32_of("v", v)? };
    launch(dev, 9, Some(R::SUFFIX), u32_of("n", n.max(1))?, REDUCE_BLOCK, a)
}

/// u = φ + c k over the first `len` elements (c exactly representable in R).
pub(crate) fn rk4_point<L: Launcher, R: Elem>(
    dev: &L,
    phi: &L::Buf<R>,
    k: &L::Buf<R>,
    u: &mut L::Buf<R>,
    c: f64,
    len: usize,
) -> Result<()> {
    need::<L, _>("phi", phi, len)?;
    need::<L, _>("k", k, len)?;
    need::<L, _>("u", u, len)?;
    let a = Rk4PointArgs { phi: ptr(dev, phi), k: ptr(dev, k), u: ptr_mut(dev, u), c, len: len as u64 };
    launch(dev, 10, Some(R::SUFFIX), blocks(len)?, BLOCK, a)
}

/// cur += h/6 (k1 + 2k2 + 2k3 + k4) (n × v), neg_div −= h/6 (d1 + 2d2 + 2d3 + d4) (n).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rk4_combine<L: Launcher, R: Elem>(
    dev: &L,
    cur: &mut L::Buf<R>,
    k: [&L::Buf<R>; 4],
    d: [&L::Buf<f64>; 4],
    neg_div: &mut L::Buf<f64>,
    h: f64,
    n: usize,
    v: usize,
) -> Result<()> {
    need::<L, _>("cur", cur, n * v)?;
    for (ki, di) in k.iter().zip(&d) {
        need::<L, _>("k", ki, n * v)?;
        need::<L, _>("d", di, n)?;
    }
    need::<L, _>("neg_div", neg_div, n)?;
    let c = ptr_mut(dev, cur);
    let a = Rk4CombineArgs {
        base: c,
        k1: ptr(dev, k[0]),
        k2: ptr(dev, k[1]),
        k3: ptr(dev, k[2]),
        k4: ptr(dev, k[3]),
        out: c,
        d1: ptr(dev, d[0]),
        d2: ptr(dev, d[1]),
        d3: ptr(dev, d[2]),
        d4: ptr(dev, d[3]),
        neg_div: ptr_mut(dev, neg_div),
        h,
        n: u32_of("n", n)?,
        v: u32_of("v", v)?,
    };
    launch(dev, 11, Some(R::SUFFIX), blocks(n * v)?, BLOCK, a)
}

/// One Metropolis chain over m proposals; `cur` = (log q, S) of the state it has, if any.
#[allow(clippy::too_many_arguments)]
pub(crate) fn metropolis<L: Launcher>(
    dev: &L,
    log_q: &L::Buf<f64>,
    action: &L::Buf<f64>,
    u: &L::Buf<f64>,
    state: &mut L::Buf<i32>,
    accepted: &mut L::Buf<i32>,
    cur: Option<(f64, f64)>,
    m: usize,
) -> Result<()> {
    for (what, s) in [("log_q", log_q), ("action", action), ("u", u)] {
        need::<L, _>(what, s, m)?;
    }
    need::<L, _>("state", state, m)?;
    need::<L, _>("accepted", accepted, m)?;
    let (cur_log_q, cur_action) = cur.unwrap_or((0.0, 0.0));
    let a = MetropolisArgs {
        log_q: ptr(dev, log_q),
        action: ptr(dev, action),
        u: ptr(dev, u),
        state: ptr_mut(dev, state),
        accepted: ptr_mut(dev, accepted),
        cur_log_q,
        cur_action,
        m: u32_of("m", m)?,
        has_state: cur.is_some() as i32,
    };
    launch(dev, 12, None, 1, 1, a)
}
