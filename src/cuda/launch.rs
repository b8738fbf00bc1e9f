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
pub(crate) const ENTRIES: [(&str, &str, bool); 31] = [
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
    ("train", "eqflow_slot_weights", true),
    ("train", "eqflow_slot_beta", true),
    ("train", "eqflow_conv_backward_input", true),
    ("train", "eqflow_conv_backward_kernel", true),
    ("train", "eqflow_features_backward", true),
    ("train", "eqflow_features_grad", true),
    ("train", "eqflow_outer", true),
    ("train", "eqflow_axpby", true),
    ("train", "eqflow_param_grad", true),
    ("spectral", "eqflow_dft_rows", true),
    ("spectral", "eqflow_dft_cols", true),
    ("spectral", "eqflow_dft_c2r", true),
    ("spectral", "eqflow_spectral_mix", true),
    ("spectral", "eqflow_fft_rows", true),
    ("spectral", "eqflow_fft_cols", true),
    ("spectral", "eqflow_fft_c2r", true),
    ("field", "eqflow_field_stage", true),
    ("field", "eqflow_field_stage_small", true),
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

impl FeatureDims {
    /// The feature rows that `kind` and `linear` make (`n_h` must equal it).
    fn rows(&self) -> usize {
        let per_kind = match self.kind {
            0 => self.n_omega,
            _ => 2 * self.n_omega + 1,
        };
        per_kind + self.linear as usize
    }
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
    let rows = d.rows();
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

/// Sizes of the vector field's parameters and slots, for the training kernels.
#[derive(Debug, Clone, Copy)]
pub struct FieldDims {
    /// Time slots (2 N_t + 1).
    pub n_slots: usize,
    /// Convolution channels n_c.
    pub n_c: usize,
    /// Feature rows n_h.
    pub n_h: usize,
    /// Time channels n_tc.
    pub n_tc: usize,
    /// Displacement orbits.
    pub n_orb: usize,
    /// Lattice side.
    pub l: usize,
}

/// wt (n_c × V) of slot `slot`, and w0[slot] (of n_slots × n_c), from the parameters W
/// (f64) and K'(t_s) (n_slots × n_tc, f64).
#[allow(clippy::too_many_arguments)]
pub(crate) fn slot_weights<L: Launcher, R: Elem>(
    dev: &L,
    w: &L::Buf<f64>,
    kp: &L::Buf<f64>,
    orbit_of: &L::Buf<u32>,
    wt: &mut L::Buf<R>,
    w0: &mut L::Buf<R>,
    slot: usize,
    d: FieldDims,
) -> Result<()> {
    let v = d.l * d.l;
    need::<L, _>("w", w, d.n_orb * d.n_tc * d.n_c)?;
    need::<L, _>("kp", kp, d.n_slots * d.n_tc)?;
    need::<L, _>("orbit_of", orbit_of, v)?;
    need::<L, _>("wt", wt, d.n_c * v)?;
    need::<L, _>("w0", w0, d.n_slots * d.n_c)?;
    if slot >= d.n_slots {
        return Err(Error::new(Status::Internal, format!("slot_weights: slot {slot} of {}", d.n_slots)));
    }
    let a = SlotWeightsArgs {
        w: ptr(dev, w),
        kp: ptr(dev, kp),
        orbit_of: ptr(dev, orbit_of),
        wt: ptr_mut(dev, wt),
        w0: ptr_mut(dev, w0),
        slot: slot as u32,
        n_c: u32_of("n_c", d.n_c)?,
        n_tc: u32_of("n_tc", d.n_tc)?,
        v: u32_of("v", v)?,
    };
    launch(dev, 13, Some(R::SUFFIX), blocks(d.n_c * v)?, BLOCK, a)
}

/// β (n_h) of one slot from its wt and the mixing F̃ (n_c × n_h), if any.
pub(crate) fn slot_beta<L: Launcher, R: Elem>(
    dev: &L,
    wt: &L::Buf<R>,
    f: Option<&L::Buf<R>>,
    beta: &mut L::Buf<R>,
    d: FieldDims,
) -> Result<()> {
    let v = d.l * d.l;
    need::<L, _>("wt", wt, d.n_c * v)?;
    if let Some(f) = f {
        need::<L, _>("f", f, d.n_c * d.n_h)?;
    } else if d.n_h != d.n_c {
        return Err(Error::new(Status::Internal, "slot_beta: without mixing n_h must equal n_c"));
    }
    need::<L, _>("beta", beta, d.n_h)?;
    let a = SlotBetaArgs {
        wt: ptr(dev, wt),
        f: f.map_or(0, |f| ptr(dev, f)),
        beta: ptr_mut(dev, beta),
        n_c: u32_of("n_c", d.n_c)?,
        n_h: u32_of("n_h", d.n_h)?,
        v: u32_of("v", v)?,
        pad0: 0,
    };
    launch(dev, 14, Some(R::SUFFIX), blocks(d.n_h)?, BLOCK, a)
}

/// The convolution's backward pass at one slot: a (n × n_c × V) = Wᵀ k̄, and
/// wbar[slot] (f64, n_slots × n_c × V) += Σ_b k̄ ⋆ g.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward<L: Launcher, R: Elem>(
    dev: &L,
    w: &L::Buf<R>,
    kbar: &L::Buf<R>,
    g: &L::Buf<R>,
    a_out: &mut L::Buf<R>,
    wbar: &mut L::Buf<f64>,
    n: usize,
    slot: usize,
    d: FieldDims,
) -> Result<()> {
    let (v, n_c) = (d.l * d.l, d.n_c);
    need::<L, _>("w", w, n_c * v)?;
    need::<L, _>("kbar", kbar, n * v)?;
    need::<L, _>("g", g, n * n_c * v)?;
    need::<L, _>("a", a_out, n * n_c * v)?;
    need::<L, _>("wbar", wbar, d.n_slots * n_c * v)?;
    if slot >= d.n_slots {
        return Err(Error::new(Status::Internal, format!("conv_backward: slot {slot} of {}", d.n_slots)));
    }
    let args = ConvBackwardArgs {
        w: ptr(dev, w),
        kbar: ptr(dev, kbar),
        g: ptr(dev, g),
        a: ptr_mut(dev, a_out),
        wbar: ptr_mut(dev, wbar),
        n: u32_of("n", n)?,
        l: u32_of("l", d.l)?,
        n_c: u32_of("n_c", n_c)?,
        slot: slot as u32,
    };
    launch(dev, 15, Some(R::SUFFIX), blocks(n * n_c * v)?, BLOCK, args)?;
    launch(dev, 16, Some(R::SUFFIX), blocks(n_c * v)?, BLOCK, args)
}

/// Buffers of the features' backward pass at one stage point.
pub(crate) struct FeaturesBackward<'a, L: Launcher, R: Elem> {
    /// The stage point (n × V).
    pub u: &'a L::Buf<R>,
    /// ω.
    pub omega: &'a L::Buf<R>,
    /// h and h' of u (n × n_h × V).
    pub h: &'a L::Buf<R>,
    /// h'.
    pub hp: &'a L::Buf<R>,
    /// h̄ (n × n_h × V).
    pub hbar: &'a L::Buf<R>,
    /// The slot's β (n_h).
    pub beta: &'a L::Buf<R>,
}

/// ū (n × V) of the features, and β̄[slot] (f64, n_slots × n_h) += d̄ Σ h', ω̄ (f64) += ….
#[allow(clippy::too_many_arguments)]
pub(crate) fn features_backward<L: Launcher, R: Elem>(
    dev: &L,
    b: FeaturesBackward<'_, L, R>,
    ubar: &mut L::Buf<R>,
    beta_bar: &mut L::Buf<f64>,
    omega_bar: &mut L::Buf<f64>,
    dbar: f64,
    slot: usize,
    fd: FeatureDims,
    n_slots: usize,
) -> Result<()> {
    let (n, v, n_h, n_w) = (fd.n, fd.v, fd.n_h, fd.n_omega);
    need::<L, _>("u", b.u, n * v)?;
    need::<L, _>("omega", b.omega, n_w)?;
    for (what, x) in [("h", b.h), ("hp", b.hp), ("hbar", b.hbar)] {
        need::<L, _>(what, x, n * n_h * v)?;
    }
    need::<L, _>("beta", b.beta, n_h)?;
    need::<L, _>("ubar", ubar, n * v)?;
    need::<L, _>("beta_bar", beta_bar, n_slots * n_h)?;
    need::<L, _>("omega_bar", omega_bar, n_w)?;
    if slot >= n_slots {
        return Err(Error::new(Status::Internal, format!("features_backward: slot {slot} of {n_slots}")));
    }
    let a = FeaturesBackwardArgs {
        u: ptr(dev, b.u),
        omega: ptr(dev, b.omega),
        h: ptr(dev, b.h),
        hp: ptr(dev, b.hp),
        hbar: ptr(dev, b.hbar),
        beta: ptr(dev, b.beta),
        ubar: ptr_mut(dev, ubar),
        beta_bar: ptr_mut(dev, beta_bar),
        omega_bar: ptr_mut(dev, omega_bar),
        dbar,
        n: u32_of("n", n)?,
        v: u32_of("v", v)?,
        n_omega: u32_of("n_omega", n_w)?,
        n_h: u32_of("n_h", n_h)?,
        kind: fd.kind,
        slot: slot as u32,
    };
    launch(dev, 17, Some(R::SUFFIX), blocks(n * v)?, BLOCK, a)?;
    launch(dev, 18, Some(R::SUFFIX), u32_of("blocks", n_h + n_w)?, REDUCE_BLOCK, a)
}

/// fbar (f64, n_c × n_h) += Σ_b a_b h_bᵀ.
#[allow(clippy::too_many_arguments)]
pub(crate) fn outer<L: Launcher, R: Elem>(
    dev: &L,
    a_in: &L::Buf<R>,
    h: &L::Buf<R>,
    fbar: &mut L::Buf<f64>,
    n: usize,
    v: usize,
    n_c: usize,
    n_h: usize,
) -> Result<()> {
    need::<L, _>("a", a_in, n * n_c * v)?;
    need::<L, _>("h", h, n * n_h * v)?;
    need::<L, _>("fbar", fbar, n_c * n_h)?;
    let a = OuterArgs {
        a: ptr(dev, a_in),
        h: ptr(dev, h),
        fbar: ptr_mut(dev, fbar),
        n: u32_of("n", n)?,
        v: u32_of("v", v)?,
        n_c: u32_of("n_c", n_c)?,
        n_h: u32_of("n_h", n_h)?,
    };
    launch(dev, 19, Some(R::SUFFIX), blocks(n_c * n_h)?, BLOCK, a)
}

/// y = α x + β y over `len` elements (β = 0 overwrites y).
pub(crate) fn axpby<L: Launcher, R: Elem>(
    dev: &L,
    x: &L::Buf<R>,
    y: &mut L::Buf<R>,
    alpha: f64,
    beta: f64,
    len: usize,
) -> Result<()> {
    need::<L, _>("x", x, len)?;
    need::<L, _>("y", y, len)?;
    let a = AxpbyArgs { x: ptr(dev, x), y: ptr_mut(dev, y), alpha, beta, len: len as u64, x64: 0, pad0: 0 };
    launch(dev, 20, Some(R::SUFFIX), blocks(len)?, BLOCK, a)
}

/// y (R) = (R)(α x) for f64 x (the scaled force as the cotangent of φ(1)).
pub(crate) fn scale_from_f64<L: Launcher, R: Elem>(
    dev: &L,
    x: &L::Buf<f64>,
    y: &mut L::Buf<R>,
    alpha: f64,
    len: usize,
) -> Result<()> {
    need::<L, _>("x", x, len)?;
    need::<L, _>("y", y, len)?;
    let a = AxpbyArgs { x: ptr(dev, x), y: ptr_mut(dev, y), alpha, beta: 0.0, len: len as u64, x64: 1, pad0: 0 };
    launch(dev, 20, Some(R::SUFFIX), blocks(len)?, BLOCK, a)
}

/// F̄ (f64) and F̃ (R) of a mixed architecture.
pub(crate) type Mixing<'a, L, R> = (&'a <L as Launcher>::Buf<f64>, &'a <L as Launcher>::Buf<R>);

/// The accumulated cotangents of one backward pass, and where the parameter gradient goes.
pub(crate) struct ParamGrad<'a, L: Launcher, R: Elem> {
    /// W̄_t of every slot (f64, n_slots × n_c × V).
    pub wbar: &'a L::Buf<f64>,
    /// β̄ of every slot (f64, n_slots × n_h).
    pub beta_bar: &'a L::Buf<f64>,
    /// F̄ (f64, n_c × n_h) and F̃ (R), when features are mixed.
    pub mixing: Option<Mixing<'a, L, R>>,
    /// W_t[c][0] of every slot (R, n_slots × n_c).
    pub w0: &'a L::Buf<R>,
    /// Orbit CSR: start (n_orb + 1) and sites (V).
    pub orbit_start: &'a L::Buf<u32>,
    /// Sites of each orbit.
    pub orbit_sites: &'a L::Buf<u32>,
    /// The orbit of displacement 0.
    pub orbit0: usize,
    /// The parameters W (f64).
    pub w: &'a L::Buf<f64>,
    /// K'(t_s) (f64, n_slots × n_tc).
    pub kp: &'a L::Buf<f64>,
}

/// ∂L/∂W (n_orb × n_tc × n_c), ∂L/∂K' per slot (n_slots × n_tc) and ∂L/∂F (n_c × n_h, if mixed).
pub(crate) fn param_grad<L: Launcher, R: Elem>(
    dev: &L,
    p: ParamGrad<'_, L, R>,
    wo_bar: &mut L::Buf<f64>,
    gw: &mut L::Buf<f64>,
    kp_bar: &mut L::Buf<f64>,
    gf: Option<&mut L::Buf<f64>>,
    d: FieldDims,
) -> Result<()> {
    let (v, ns, n_c, n_h) = (d.l * d.l, d.n_slots, d.n_c, d.n_h);
    need::<L, _>("wbar", p.wbar, ns * n_c * v)?;
    need::<L, _>("beta_bar", p.beta_bar, ns * n_h)?;
    need::<L, _>("w0", p.w0, ns * n_c)?;
    need::<L, _>("orbit_start", p.orbit_start, d.n_orb + 1)?;
    need::<L, _>("orbit_sites", p.orbit_sites, v)?;
    need::<L, _>("w", p.w, d.n_orb * d.n_tc * n_c)?;
    need::<L, _>("kp", p.kp, ns * d.n_tc)?;
    need::<L, _>("wo_bar", wo_bar, ns * d.n_orb * n_c)?;
    need::<L, _>("gw", gw, d.n_orb * d.n_tc * n_c)?;
    need::<L, _>("kp_bar", kp_bar, ns * d.n_tc)?;
    let (fbar, f, gf_ptr) = match (p.mixing, gf) {
        (Some((fbar, f)), Some(gf)) => {
            need::<L, _>("fbar", fbar, n_c * n_h)?;
            need::<L, _>("f", f, n_c * n_h)?;
            need::<L, _>("gf", gf, n_c * n_h)?;
            (ptr(dev, fbar), ptr(dev, f), ptr_mut(dev, gf))
        }
        (None, None) if n_h == n_c => (0, 0, 0),
        _ => return Err(Error::new(Status::Internal, "param_grad: mixing buffers and gf must come together")),
    };
    let mut a = ParamGradArgs {
        wbar: ptr(dev, p.wbar),
        beta_bar: ptr(dev, p.beta_bar),
        fbar,
        f,
        w0: ptr(dev, p.w0),
        orbit_start: ptr(dev, p.orbit_start),
        orbit_sites: ptr(dev, p.orbit_sites),
        w: ptr(dev, p.w),
        kp: ptr(dev, p.kp),
        wo_bar: ptr_mut(dev, wo_bar),
        gw: ptr_mut(dev, gw),
        kp_bar: ptr_mut(dev, kp_bar),
        gf: gf_ptr,
        n_slots: u32_of("n_slots", ns)?,
        n_orb: u32_of("n_orb", d.n_orb)?,
        n_tc: u32_of("n_tc", d.n_tc)?,
        n_c: u32_of("n_c", n_c)?,
        n_h: u32_of("n_h", n_h)?,
        v: u32_of("v", v)?,
        orbit0: u32_of("orbit0", p.orbit0)?,
        phase: 0,
    };
    launch(dev, 21, Some(R::SUFFIX), blocks(ns * d.n_orb * n_c)?, BLOCK, a)?;
    a.phase = 1;
    let total = d.n_orb * d.n_tc * n_c + ns * d.n_tc + if f != 0 { n_c * n_h } else { 0 };
    launch(dev, 21, Some(R::SUFFIX), blocks(total)?, BLOCK, a)
}

/// The spectrum length (R elements: (re, im) pairs) of `m` real l × l arrays (spectral.cu).
pub(crate) fn spectrum_len(m: usize, l: usize) -> usize {
    2 * m * l * (l / 2 + 1)
}

/// Whether spectral.cu transforms lines of length l by FFT (a power of two up to FFT_MAX = 64)
/// rather than by per-output sums.
pub(crate) fn fft_ok(l: usize) -> bool {
    l.is_power_of_two() && (2..=64).contains(&l)
}

/// (entry, threads) of a pass: the FFT form (one thread per line of `lines`) where it applies,
/// else the DFT form (one thread per output of `outputs`).
fn pass(dft: usize, fft: usize, l: usize, outputs: usize, lines: usize) -> Result<(usize, u32)> {
    if fft_ok(l) {
        Ok((fft, blocks(lines)?))
    } else {
        Ok((dft, blocks(outputs)?))
    }
}

fn spectral_args<L: Launcher, R: Elem>(dev: &L, tw: &L::Buf<R>, m: usize, l: usize) -> Result<SpectralArgs> {
    need::<L, _>("tw", tw, 2 * l)?;
    Ok(SpectralArgs { tw: ptr(dev, tw), m: u32_of("m", m)?, l: u32_of("l", l)?, ..SpectralArgs::default() })
}

/// out (m spectra) = the transforms along the rows of x (m real l × l arrays).
pub(crate) fn dft_rows<L: Launcher, R: Elem>(
    dev: &L,
    tw: &L::Buf<R>,
    x: &L::Buf<R>,
    out: &mut L::Buf<R>,
    m: usize,
    l: usize,
) -> Result<()> {
    need::<L, _>("x", x, m * l * l)?;
    need::<L, _>("out", out, spectrum_len(m, l))?;
    let a = SpectralArgs { input: ptr(dev, x), out: ptr_mut(dev, out), ..spectral_args(dev, tw, m, l)? };
    let (entry, grid) = pass(22, 26, l, spectrum_len(m, l) / 2, m * l)?;
    launch(dev, entry, Some(R::SUFFIX), grid, BLOCK, a)
}

/// out (m spectra) = the transforms along the columns of x (m spectra), e^{−…} or, if
/// `inverse`, e^{+…} (unnormalised).
pub(crate) fn dft_cols<L: Launcher, R: Elem>(
    dev: &L,
    tw: &L::Buf<R>,
    x: &L::Buf<R>,
    out: &mut L::Buf<R>,
    m: usize,
    l: usize,
    inverse: bool,
) -> Result<()> {
    need::<L, _>("x", x, spectrum_len(m, l))?;
    need::<L, _>("out", out, spectrum_len(m, l))?;
    let a = SpectralArgs {
        input: ptr(dev, x),
        out: ptr_mut(dev, out),
        mode: inverse as u32,
        ..spectral_args(dev, tw, m, l)?
    };
    let (entry, grid) = pass(23, 27, l, spectrum_len(m, l) / 2, m * (l / 2 + 1))?;
    launch(dev, entry, Some(R::SUFFIX), grid, BLOCK, a)
}

/// Where the real inverse transform along the rows goes.
pub(crate) enum RealOut<'a, L: Launcher, R: Elem> {
    /// Written to this buffer (m × l² elements).
    Write(&'a mut L::Buf<R>),
    /// Added (in f64) to elements offset.. of this buffer.
    Add(&'a mut L::Buf<f64>, usize),
}

/// scale × the real inverse transforms along the rows of x (m half spectra).
pub(crate) fn dft_c2r<L: Launcher, R: Elem>(
    dev: &L,
    tw: &L::Buf<R>,
    x: &L::Buf<R>,
    out: RealOut<'_, L, R>,
    m: usize,
    l: usize,
    scale: f64,
) -> Result<()> {
    need::<L, _>("x", x, spectrum_len(m, l))?;
    let (out, offset, mode) = match out {
        RealOut::Write(o) => {
            need::<L, _>("out", o, m * l * l)?;
            (ptr_mut(dev, o), 0, 0)
        }
        RealOut::Add(o, offset) => {
            need::<L, _>("out", o, offset + m * l * l)?;
            (ptr_mut(dev, o), offset as u64, 1)
        }
    };
    let a = SpectralArgs { input: ptr(dev, x), out, scale, offset, mode, ..spectral_args(dev, tw, m, l)? };
    let (entry, grid) = pass(24, 28, l, m * l * l, m * l)?;
    launch(dev, entry, Some(R::SUFFIX), grid, BLOCK, a)
}

/// The products of spectra (spectral.cu `eqflow_spectral_mix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpectralMix {
    /// out[b] = Σ_c w[c] x[b][c] (w: n_c spectra, x: n n_c, out: n).
    Forward,
    /// out[b][c] = conj(w[c]) x[b] (w: n_c, x: n, out: n n_c).
    Input,
    /// out[c] = Σ_b w[b] conj(x[b][c]) (w: n, x: n n_c, out: n_c).
    Kernel,
}

/// The products of spectra of n fields and n_c channels at every frequency.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spectral_mix<L: Launcher, R: Elem>(
    dev: &L,
    mode: SpectralMix,
    w: &L::Buf<R>,
    x: &L::Buf<R>,
    out: &mut L::Buf<R>,
    n: usize,
    l: usize,
    n_c: usize,
) -> Result<()> {
    let (nw, nx, no) = match mode {
        SpectralMix::Forward => (n_c, n * n_c, n),
        SpectralMix::Input => (n_c, n, n * n_c),
        SpectralMix::Kernel => (n, n * n_c, n_c),
    };
    need::<L, _>("w", w, spectrum_len(nw, l))?;
    need::<L, _>("x", x, spectrum_len(nx, l))?;
    need::<L, _>("out", out, spectrum_len(no, l))?;
    let a = SpectralArgs {
        input: ptr(dev, x),
        out: ptr_mut(dev, out),
        w: ptr(dev, w),
        m: u32_of("n", n)?,
        l: u32_of("l", l)?,
        n_c: u32_of("n_c", n_c)?,
        mode: mode as u32,
        ..SpectralArgs::default()
    };
    launch(dev, 25, Some(R::SUFFIX), blocks(spectrum_len(no, l) / 2)?, BLOCK, a)
}

/// Threads per block of field.cu at side l (even): a multiple of 32 at which every row pair
/// (x0, k1 < ⌈h/2⌉) and every column pair (k0 < l/2, k1) of a channel has a thread in one round,
/// or in two where that would take more than `FIELD_MAX_THREADS` = 1024 (l > 56); h = l/2 + 1.
/// (A fixed 256 left half the threads idle in the second round at L = 32: 288 and 272 pairs.)
pub(crate) fn field_threads(l: usize) -> u32 {
    let h = l / 2 + 1;
    let work = (l * h.div_ceil(2)).max(l / 2 * h).max(1);
    let rounds = work.div_ceil(1024);
    (work.div_ceil(rounds).div_ceil(32) * 32) as u32
}

/// The side up to which field.cu's `_small` entry points apply (`FIELD_SMALL_LMAX`).
pub(crate) const FIELD_SMALL_LMAX: usize = 32;

/// The largest side field.cu fuses in R (`FIELD_LMAX_F32`, `FIELD_LMAX_F64`: its shared
/// memory holds one channel of an l × l field and its row transforms).
pub(crate) fn field_lmax<R: Elem>() -> usize {
    if std::mem::size_of::<R>() == 4 {
        64
    } else {
        44
    }
}

/// The inputs of one fused stage of field.cu besides the fields.
pub(crate) struct FieldStage<'a, L: Launcher, R: Elem> {
    /// cos, sin(2πj/l) (2 l).
    pub tw: &'a L::Buf<R>,
    /// The frequencies ω.
    pub omega: &'a L::Buf<R>,
    /// W's spectrum at the stage's time slot (n_h spectra, as `dft_cols` leaves them).
    pub spectrum: &'a L::Buf<R>,
    /// The divergence weights β of the slot (n_h).
    pub beta: &'a L::Buf<R>,
}

/// k (n × v) = Σ_j W_j ∗ h_j(u) and div (n) = Σ_j β_j Σ_x h'_j(u_x) of fields u, fused
/// (field.cu; no feature mixing: the convolution's channels are the feature rows; l even).
pub(crate) fn field_stage<L: Launcher, R: Elem>(
    dev: &L,
    s: FieldStage<'_, L, R>,
    u: &L::Buf<R>,
    k: &mut L::Buf<R>,
    div: &mut L::Buf<f64>,
    l: usize,
    d: FeatureDims,
) -> Result<()> {
    let rows = d.rows();
    if l * l != d.v || l % 2 != 0 || l > field_lmax::<R>() || d.n_h == 0 || rows != d.n_h {
        return Err(Error::new(
            Status::Internal,
            format!(
                "field stage: l = {l}, v = {}, n_h = {} ({rows} rows; l at most {})",
                d.v,
                d.n_h,
                field_lmax::<R>()
            ),
        ));
    }
    need::<L, _>("u", u, d.n * d.v)?;
    need::<L, _>("k", k, d.n * d.v)?;
    need::<L, _>("div", div, d.n)?;
    need::<L, _>("tw", s.tw, 2 * l)?;
    need::<L, _>("omega", s.omega, d.n_omega)?;
    need::<L, _>("spectrum", s.spectrum, spectrum_len(d.n_h, l))?;
    need::<L, _>("beta", s.beta, d.n_h)?;
    let a = FieldStageArgs {
        u: ptr(dev, u),
        omega: ptr(dev, s.omega),
        spectrum: ptr(dev, s.spectrum),
        beta: ptr(dev, s.beta),
        tw: ptr(dev, s.tw),
        k: ptr_mut(dev, k),
        div: ptr_mut(dev, div),
        n: u32_of("n", d.n)?,
        l: u32_of("l", l)?,
        n_omega: u32_of("n_omega", d.n_omega)?,
        n_h: u32_of("n_h", d.n_h)?,
        kind: d.kind,
        linear: d.linear as u32,
    };
    if d.n == 0 {
        return Ok(());
    }
    let entry = if l <= FIELD_SMALL_LMAX { 30 } else { 29 };
    launch(dev, entry, Some(R::SUFFIX), u32_of("n", d.n)?, field_threads(l), a)
}
