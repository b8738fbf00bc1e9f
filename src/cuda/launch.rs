//! Every untyped kernel launch of the library, behind typed functions. Each function checks
//! the lengths of the buffers it is given against the sizes it passes to the kernel, builds
//! the kernel's argument struct (src/cuda/args.rs) and launches on the device's stream.

use super::args::*;
use super::device::{driver_error, guard, Device};
use super::Elem;
use crate::error::{Error, Result, Status};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg};

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

fn ptr<T>(dev: &Device, s: &CudaSlice<T>) -> u64 {
    s.device_ptr(&dev.stream).0
}

fn ptr_mut<T>(dev: &Device, s: &mut CudaSlice<T>) -> u64 {
    s.device_ptr_mut(&dev.stream).0
}

fn need<T>(what: &str, s: &CudaSlice<T>, len: usize) -> Result<()> {
    if s.len() < len {
        return Err(Error::new(
            Status::Internal,
            format!("kernel launch: buffer {what} has {} < {len} elements", s.len()),
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

/// Launches entry `entry` (with the `R` suffix if typed) of `file` with `grid` × `block` threads.
fn launch<A: DeviceRepr>(
    dev: &Device,
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
    let f = dev.function(file, &name)?;
    let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
    guard("CUDA launch", Status::Device, || {
        // SAFETY: `args` is the #[repr(C)] mirror of the entry point's only parameter, and the
        // caller checked that every buffer it points to holds what the sizes in it promise.
        unsafe { dev.stream.launch_builder(&f).arg(&args).launch(cfg) }
            .map(|_| ())
            .map_err(|e| driver_error(&format!("cuLaunchKernel({name})"), e))
    })
}

/// Raw Philox words of sub-counters 0..count of (seed, stream, index) into `out` (4·count).
#[cfg_attr(not(test), allow(dead_code))] // the bit-exactness test of rng.cu
pub(crate) fn philox_words(
    dev: &Device,
    out: &mut CudaSlice<u32>,
    seed: u64,
    stream: u32,
    index: u64,
    count: usize,
) -> Result<()> {
    need("out", out, 4 * count)?;
    let a = PhiloxArgs { out: ptr_mut(dev, out), seed, index, stream, count: u32_of("count", count)? };
    launch(dev, 0, None, blocks(count)?, BLOCK, a)
}

/// z (n × v) = standard normals of (seed, stream, first + i).
pub(crate) fn prior_normal<R: Elem>(
    dev: &Device,
    z: &mut CudaSlice<R>,
    seed: u64,
    stream: u32,
    first: u64,
    n: usize,
    v: usize,
) -> Result<()> {
    need("z", z, n * v)?;
    let a = PriorArgs { z: ptr_mut(dev, z), seed, first, stream, n: u32_of("n", n)?, v: u32_of("v", v)?, pad0: 0 };
    launch(dev, 1, Some(R::SUFFIX), blocks(n * v.div_ceil(2))?, BLOCK, a)
}

/// u[i] = uniform(k) of (seed, stream, first + i), i < n.
pub(crate) fn uniform(
    dev: &Device,
    u: &mut CudaSlice<f64>,
    seed: u64,
    stream: u32,
    first: u64,
    k: u32,
    n: usize,
) -> Result<()> {
    need("u", u, n)?;
    let a = UniformArgs { u: ptr_mut(dev, u), seed, first, stream, k, n: u32_of("n", n)?, pad0: 0 };
    launch(dev, 2, None, blocks(n)?, BLOCK, a)
}

/// S (n, f64) of n fields of side l.
pub(crate) fn action<R: Elem>(
    dev: &Device,
    phi: &CudaSlice<R>,
    out: &mut CudaSlice<f64>,
    m2: f64,
    lambda: f64,
    n: usize,
    l: usize,
) -> Result<()> {
    action_kernel(dev, phi, out, m2, lambda, n, l, false)
}

/// ∂S/∂φ (n × l², f64) of n fields of side l.
#[cfg_attr(not(test), allow(dead_code))] // for training on the device (not yet wired)
pub(crate) fn force<R: Elem>(
    dev: &Device,
    phi: &CudaSlice<R>,
    out: &mut CudaSlice<f64>,
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
fn action_kernel<R: Elem>(
    dev: &Device,
    phi: &CudaSlice<R>,
    out: &mut CudaSlice<f64>,
    m2: f64,
    lambda: f64,
    n: usize,
    l: usize,
    force: bool,
) -> Result<()> {
    need("phi", phi, n * l * l)?;
    need("out", out, if force { n * l * l } else { n })?;
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
pub(crate) fn features<R: Elem>(
    dev: &Device,
    u: &CudaSlice<R>,
    omega: &CudaSlice<R>,
    h: &mut CudaSlice<R>,
    hp: &mut CudaSlice<R>,
    d: FeatureDims,
) -> Result<()> {
    let rows = match d.kind {
        0 => d.n_omega,
        _ => 2 * d.n_omega + 1,
    } + d.linear as usize;
    if rows != d.n_h {
        return Err(Error::new(Status::Internal, format!("features: n_h = {} but the kind has {rows} rows", d.n_h)));
    }
    need("u", u, d.n * d.v)?;
    need("omega", omega, d.n_omega)?;
    need("h", h, d.n * d.n_h * d.v)?;
    need("hp", hp, d.n * d.n_h * d.v)?;
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
pub(crate) fn mix<R: Elem>(
    dev: &Device,
    f: &CudaSlice<R>,
    h: &CudaSlice<R>,
    g: &mut CudaSlice<R>,
    n: usize,
    v: usize,
    n_h: usize,
    n_c: usize,
) -> Result<()> {
    need("f", f, n_c * n_h)?;
    need("h", h, n * n_h * v)?;
    need("g", g, n * n_c * v)?;
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
pub(crate) fn conv_direct<R: Elem>(
    dev: &Device,
    w: &CudaSlice<R>,
    g: &CudaSlice<R>,
    out: &mut CudaSlice<R>,
    n: usize,
    l: usize,
    n_c: usize,
) -> Result<()> {
    let v = l * l;
    need("w", w, n_c * v)?;
    need("g", g, n * n_c * v)?;
    need("out", out, n * v)?;
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
pub(crate) fn divergence<R: Elem>(
    dev: &Device,
    hp: &CudaSlice<R>,
    beta: &CudaSlice<R>,
    div: &mut CudaSlice<f64>,
    n: usize,
    v: usize,
    n_h: usize,
) -> Result<()> {
    need("hp", hp, n * n_h * v)?;
    need("beta", beta, n_h)?;
    need("div", div, n)?;
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
pub(crate) fn log_prior<R: Elem>(
    dev: &Device,
    z: &CudaSlice<R>,
    out: &mut CudaSlice<f64>,
    n: usize,
    v: usize,
) -> Result<()> {
    need("z", z, n * v)?;
    need("out", out, n)?;
    let a = LogPriorArgs { z: ptr(dev, z), out: ptr_mut(dev, out), n: u32_of("n", n)?, v: u32_of("v", v)? };
    launch(dev, 9, Some(R::SUFFIX), u32_of("n", n.max(1))?, REDUCE_BLOCK, a)
}

/// u = φ + c k over the first `len` elements (c exactly representable in R).
pub(crate) fn rk4_point<R: Elem>(
    dev: &Device,
    phi: &CudaSlice<R>,
    k: &CudaSlice<R>,
    u: &mut CudaSlice<R>,
    c: f64,
    len: usize,
) -> Result<()> {
    need("phi", phi, len)?;
    need("k", k, len)?;
    need("u", u, len)?;
    let a = Rk4PointArgs { phi: ptr(dev, phi), k: ptr(dev, k), u: ptr_mut(dev, u), c, len: len as u64 };
    launch(dev, 10, Some(R::SUFFIX), blocks(len)?, BLOCK, a)
}

/// cur += h/6 (k1 + 2k2 + 2k3 + k4) (n × v), neg_div −= h/6 (d1 + 2d2 + 2d3 + d4) (n).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rk4_combine<R: Elem>(
    dev: &Device,
    cur: &mut CudaSlice<R>,
    k: [&CudaSlice<R>; 4],
    d: [&CudaSlice<f64>; 4],
    neg_div: &mut CudaSlice<f64>,
    h: f64,
    n: usize,
    v: usize,
) -> Result<()> {
    need("cur", cur, n * v)?;
    for (ki, di) in k.iter().zip(&d) {
        need("k", ki, n * v)?;
        need("d", di, n)?;
    }
    need("neg_div", neg_div, n)?;
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
pub(crate) fn metropolis(
    dev: &Device,
    log_q: &CudaSlice<f64>,
    action: &CudaSlice<f64>,
    u: &CudaSlice<f64>,
    state: &mut CudaSlice<i32>,
    accepted: &mut CudaSlice<i32>,
    cur: Option<(f64, f64)>,
    m: usize,
) -> Result<()> {
    for (what, s) in [("log_q", log_q), ("action", action), ("u", u)] {
        need(what, s, m)?;
    }
    need("state", state, m)?;
    need("accepted", accepted, m)?;
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
