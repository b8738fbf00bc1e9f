//! `eqflow_flow`: a flow with its target action and optimiser state.

use super::boundary::{
    arg_out, arg_out_array, arg_ref, arg_vec, boundary, boundary_void, check_versioned_out, give, lock, mul,
    read_versioned, take, write_out, write_versioned, Versioned,
};
use super::context::{backend_of, eqflow_context, init_prefix};
use super::status::eqflow_status;
use crate::action::Couplings;
use crate::any_flow::AnyFlow;
use crate::conventions::{Conventions, FieldLayout, Hopping};
use crate::error::{Error, Result};
use crate::flow::model::Samples;
use crate::flow::{Architecture, FeatureKind, Flow, FlowConfig, KernelSymmetry, Precision};
use crate::mcmc::proposal::Proposal;
use crate::realnvp::{RealNvp, RealNvpConfig};
use crate::rng::Stream;
use crate::train::TrainConfig;
use std::ffi::{c_char, CStr};
use std::mem::size_of;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Architecture preset: the seed paper's (hat kernel d_t = 10, 50 sines, N_t = 54).
pub const EQFLOW_ARCH_SEED: i32 = 0;
/// Architecture preset: the follow-up's (Fourier kernel 21, 49 sines + linear, mixing 20, N_t = 50).
pub const EQFLOW_ARCH_REFINED: i32 = 1;
/// `symmetry`/`features` value: take the preset's.
pub const EQFLOW_FROM_PRESET: i32 = 0;
/// Kernel tied over D4 orbits: the full lattice symmetry.
pub const EQFLOW_SYMMETRY_FULL: i32 = 1;
/// Kernel per displacement: translations only.
pub const EQFLOW_SYMMETRY_TRANSLATIONS: i32 = 2;
/// Odd features sin(ω φ): Z2-equivariant.
pub const EQFLOW_FEATURES_ODD: i32 = 1;
/// sin, cos and a constant: not Z2-equivariant.
pub const EQFLOW_FEATURES_NON_ODD: i32 = 2;
/// Double precision throughout.
pub const EQFLOW_PRECISION_F64: i32 = 0;
/// Single precision for fields and convolutions (log q, S and losses stay double).
pub const EQFLOW_PRECISION_F32: i32 = 1;
/// Field layout: index(x0, x1) = x0*L + x1 (C order; the default).
pub const EQFLOW_LAYOUT_X1_FASTEST: i32 = 0;
/// Field layout: index(x0, x1) = x1*L + x0 (Fortran order).
pub const EQFLOW_LAYOUT_X0_FASTEST: i32 = 1;
/// Field layout: the ceil(V/2) even sites ((x0 + x1) even) first, then the odd sites, each
/// group in x1-fastest order; for even L, index = (x0*L + x1)/2 (+ V/2 for odd sites).
pub const EQFLOW_LAYOUT_EVEN_ODD: i32 = 2;
/// Couplings given as (m², λ) of S = Σ (∂φ)² + m² φ² + λ φ⁴ (the default).
pub const EQFLOW_COUPLINGS_STANDARD: i32 = 0;
/// Couplings given in the hopping form (κ, λ̃) of S = Σ[−2κ Σ_μ ϕ_x ϕ_{x+μ} + ϕ_x² + λ̃(ϕ_x² − 1)²]:
/// fields crossing the ABI are ϕ = φ/√κ, log q is that of ϕ (log q(φ) + (V/2) log κ) and S is
/// the hopping-form action (S(φ) + V λ̃).
pub const EQFLOW_COUPLINGS_HOPPING: i32 = 1;
/// Flow type: the equivariant continuous normalizing flow (the default).
pub const EQFLOW_FLOW_CONTINUOUS: i32 = 0;
/// Flow type: the RealNVP baseline (SPEC §7).
pub const EQFLOW_FLOW_REALNVP: i32 = 1;
/// Gradient estimator: the total derivative of the batch loss (the default).
pub const EQFLOW_GRADIENT_TOTAL: i32 = 0;
/// Gradient estimator: the path gradient (the score term dropped; lower variance late in
/// training; continuous flows, on either backend).
pub const EQFLOW_GRADIENT_PATH: i32 = 1;

/// A flow, its target φ⁴ action and its optimiser state.
///
/// Thread safety: one thread at a time. A call made while another thread is inside a call
/// on the same flow returns `EQFLOW_STATUS_BUSY` (104) without waiting; different flows may
/// be used from different threads at once. After an internal panic (`EQFLOW_STATUS_PANIC`)
/// the flow is poisoned: later calls return `EQFLOW_STATUS_POISONED` (109); free it.
pub struct eqflow_flow {
    pub(crate) inner: Mutex<AnyFlow>,
    pub(crate) volume: usize,
    /// The device of a flow made in a CUDA context: training steps, samples, the ESS and the
    /// proposals of its chains run there (log q of given configurations, reweighting's
    /// action terms and the chains' decisions stay on the CPU). Device objects are made per call from the flow's parameters, so nothing on
    /// the device can go stale.
    pub(crate) cuda: Option<Arc<crate::cuda::Device>>,
}

impl eqflow_flow {
    pub(crate) fn new(flow: AnyFlow) -> Self {
        eqflow_flow { volume: flow.volume(), inner: Mutex::new(flow), cuda: None }
    }

    /// A flow on the context's backend: CUDA flows must be continuous flows.
    pub(crate) fn on(flow: AnyFlow, cuda: Option<Arc<crate::cuda::Device>>) -> Result<Self> {
        if cuda.is_some() && !matches!(flow, AnyFlow::Continuous(_)) {
            return Err(Error::invalid(
                "a CUDA context: the RealNVP baseline runs on the CPU only (use an EQFLOW_BACKEND_CPU context)",
            ));
        }
        Ok(eqflow_flow { cuda, ..eqflow_flow::new(flow) })
    }
}

/// n samples of the flow's sample stream (advancing it), on the device for CUDA flows.
pub(crate) fn draw(flow: &mut AnyFlow, cuda: Option<&Arc<crate::cuda::Device>>, n: usize) -> Result<Samples> {
    match (cuda, flow.as_continuous_mut()) {
        (Some(d), Some(f)) => {
            let s = crate::cuda::CudaFlow::new(f, d.clone())?.sample_at(Stream::Sample, f.samples_drawn, n)?;
            f.samples_drawn += n as u64;
            Ok(s)
        }
        _ => flow.sample(n),
    }
}

/// Parameters of `eqflow_flow_new`. Initialise with `eqflow_flow_params_init`; fields are
/// only ever appended. The preset `architecture` is applied first; then `n_frequencies`,
/// `time_kernel_size`, `ode_steps`, `symmetry` and `features` override it where > 0
/// (0, their default, keeps the preset's value).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eqflow_flow_params {
    /// `sizeof(eqflow_flow_params)` as compiled by the caller.
    pub struct_size: usize,
    /// Lattice side L >= 2 (default 8); fields hold V = L*L sites, x1 fastest.
    pub lattice_size: i32,
    /// m² of S = Σ (∂φ)² + m² φ² + λ φ⁴ (default -4).
    pub m2: f64,
    /// λ >= 0 (default 6.008, the L = 8 benchmark).
    pub lambda: f64,
    /// Number of frequencies n_ω; 0: the preset's.
    pub n_frequencies: i32,
    /// Time kernel size d_t; 0: the preset's.
    pub time_kernel_size: i32,
    /// RK4 steps N_t (a multiple of d_t − 1 for the hat kernel); 0: the preset's.
    pub ode_steps: i32,
    /// `EQFLOW_SYMMETRY_FULL`, `EQFLOW_SYMMETRY_TRANSLATIONS` or 0 (the preset's).
    pub symmetry: i32,
    /// `EQFLOW_FEATURES_ODD`, `EQFLOW_FEATURES_NON_ODD` or 0 (the preset's).
    pub features: i32,
    /// Prior draws per training step (default 100).
    pub batch_size: i32,
    /// Adam's base learning rate (default 2e-3).
    pub learning_rate: f64,
    /// Seed of the initial parameters and of every random stream of the flow (default 0).
    pub seed: u64,
    /// `EQFLOW_ARCH_SEED` (default) or `EQFLOW_ARCH_REFINED`.
    pub architecture: i32,
    /// Compute precision of training: `EQFLOW_PRECISION_F32` (default; gradients are noisy
    /// anyway and f32 is faster) or `EQFLOW_PRECISION_F64`. Proposals and log q are computed
    /// in double precision.
    pub precision: i32,
    /// Site order of every field buffer of this flow and its chains: `EQFLOW_LAYOUT_*`
    /// (default `EQFLOW_LAYOUT_X1_FASTEST`). Saved with the flow.
    pub layout: i32,
    /// `EQFLOW_COUPLINGS_STANDARD` (default: `m2`, `lambda`) or `EQFLOW_COUPLINGS_HOPPING`
    /// (`kappa`, `lambda_tilde`; `m2` and `lambda` are then ignored).
    pub couplings_form: i32,
    /// Hopping parameter κ > 0 (hopping form only; default: the m² = −4 point of `lambda`).
    pub kappa: f64,
    /// λ̃ of the hopping form (default 0.5, the m² = −4 line).
    pub lambda_tilde: f64,
    /// `EQFLOW_FLOW_CONTINUOUS` (default: the equivariant continuous flow) or
    /// `EQFLOW_FLOW_REALNVP` (the RealNVP baseline of Albergo et al.: 16 checkerboard affine
    /// couplings, 3×3 CNNs 1 → 8 → 8 → 2, Adam β = (0.9, 0.999), constant rate). For RealNVP
    /// the continuous flow's architecture fields must be 0 (`architecture` and `precision` must
    /// hold valid values but are not used); lattice, couplings, conventions, batch size, learning rate, warm-up and seed
    /// apply to both. Saved with the flow: `eqflow_flow_load` restores either type.
    pub flow_type: i32,
    /// Steps of linear learning-rate warm-up at the start of training (default 0). Use ~100
    /// when fine-tuning a flow set by `eqflow_flow_init_from`: Adam's first full-rate steps
    /// can wreck a transferred flow.
    pub warmup_steps: i32,
    /// Gradient accumulation (version 4): each training step pushes its batch through in
    /// sequential micro-batches of this many fields (0, the default: the whole batch at once).
    /// Memory scales with the micro-batch; the gradient is the whole batch's up to rounding.
    pub micro_batch: i32,
    /// Coarse integration early in training (version 4): the first `coarse_steps` training
    /// steps integrate with `coarse_ode_steps` RK4 steps instead of the architecture's N_t
    /// (0, the default: never). Sampling and log q always use the architecture's N_t. With the
    /// seed preset use a multiple of 9 (d_t − 1), e.g. 18.
    pub coarse_ode_steps: i32,
    /// Training steps integrated with `coarse_ode_steps` (default 0).
    pub coarse_steps: i32,
}

unsafe impl Versioned for eqflow_flow_params {
    const OLD_SIZES: &'static [usize] = &[
        std::mem::offset_of!(eqflow_flow_params, layout),
        std::mem::offset_of!(eqflow_flow_params, flow_type),
        std::mem::offset_of!(eqflow_flow_params, micro_batch),
    ];
    const NAME: &'static str = "eqflow_flow_params";
}

impl Default for eqflow_flow_params {
    fn default() -> Self {
        let c = Couplings::preset(8).unwrap_or(Couplings { m2: -4.0, lambda: 6.008 });
        let t = TrainConfig::default();
        eqflow_flow_params {
            struct_size: size_of::<Self>(),
            lattice_size: 8,
            m2: c.m2,
            lambda: c.lambda,
            n_frequencies: 0,
            time_kernel_size: 0,
            ode_steps: 0,
            symmetry: EQFLOW_FROM_PRESET,
            features: EQFLOW_FROM_PRESET,
            batch_size: t.batch_size as i32,
            learning_rate: t.learning_rate,
            seed: 0,
            architecture: EQFLOW_ARCH_SEED,
            precision: match FlowConfig::new(8, -4.0, 1.0).precision {
                Precision::F64 => EQFLOW_PRECISION_F64,
                Precision::F32 => EQFLOW_PRECISION_F32,
            },
            layout: EQFLOW_LAYOUT_X1_FASTEST,
            couplings_form: EQFLOW_COUPLINGS_STANDARD,
            kappa: (0.5 / c.lambda).sqrt(),
            lambda_tilde: 0.5,
            flow_type: EQFLOW_FLOW_CONTINUOUS,
            warmup_steps: 0,
            micro_batch: 0,
            coarse_ode_steps: 0,
            coarse_steps: 0,
        }
    }
}

/// Statistics of `eqflow_flow_train`. Set `struct_size = sizeof(eqflow_train_stats)` before
/// the call (e.g. `eqflow_train_stats st = { sizeof st };`); fields are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eqflow_train_stats {
    /// `sizeof(eqflow_train_stats)` as compiled by the caller.
    pub struct_size: usize,
    /// Training steps done by the flow in total (including earlier calls).
    pub steps_done: u64,
    /// The reverse-KL loss E[log q + S] of the last step's batch, in the internal φ variables
    /// of SPEC §2 whatever the flow's conventions (it differs from the hopping-form value by a
    /// constant).
    pub loss: f64,
    /// The effective sample size fraction (0..1] of the last step's batch.
    pub ess: f64,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
}

unsafe impl Versioned for eqflow_train_stats {
    const OLD_SIZES: &'static [usize] = &[];
    const NAME: &'static str = "eqflow_train_stats";
}

/// The flow a parameter struct describes, computing with `threads` threads.
pub(crate) fn flow_of(p: &eqflow_flow_params, threads: usize) -> Result<AnyFlow> {
    let c = config_of(p)?;
    match p.flow_type {
        EQFLOW_FLOW_CONTINUOUS => Ok(Flow::new(c, threads)?.into()),
        EQFLOW_FLOW_REALNVP => {
            for (name, v) in [
                ("n_frequencies", p.n_frequencies),
                ("time_kernel_size", p.time_kernel_size),
                ("ode_steps", p.ode_steps),
                ("symmetry", p.symmetry),
                ("features", p.features),
                ("micro_batch", p.micro_batch),
                ("coarse_ode_steps", p.coarse_ode_steps),
                ("coarse_steps", p.coarse_steps),
            ] {
                if v != 0 {
                    return Err(Error::invalid(format!(
                        "argument 'p': {name} = {v} describes the continuous flow; it must be 0 with EQFLOW_FLOW_REALNVP"
                    )));
                }
            }
            let mut r = RealNvpConfig::new(c.lattice_size, c.couplings.m2, c.couplings.lambda);
            r.conventions = c.conventions;
            r.train.batch_size = c.train.batch_size;
            r.train.learning_rate = c.train.learning_rate;
            r.train.warmup_steps = c.train.warmup_steps;
            r.seed = c.seed;
            Ok(RealNvp::new(r, threads)?.into())
        }
        t => Err(Error::invalid(format!("argument 'p': flow_type = {t} is not an EQFLOW_FLOW_*"))),
    }
}

/// The continuous flow's configuration a parameter struct describes.
pub(crate) fn config_of(p: &eqflow_flow_params) -> Result<FlowConfig> {
    let bad = |m: String| Err(Error::invalid(format!("argument 'p': {m}")));
    let mut arch = match p.architecture {
        EQFLOW_ARCH_SEED => Architecture::seed(),
        EQFLOW_ARCH_REFINED => Architecture::refined(),
        a => return bad(format!("architecture = {a} is not an EQFLOW_ARCH_*")),
    };
    for (name, v, field) in [
        ("n_frequencies", p.n_frequencies, &mut arch.n_frequencies),
        ("time_kernel_size", p.time_kernel_size, &mut arch.time_kernel_size),
        ("ode_steps", p.ode_steps, &mut arch.ode_steps),
    ] {
        match v {
            v if v < 0 => return bad(format!("{name} = {v} is negative (0 keeps the preset's)")),
            0 => {}
            v => *field = v as usize,
        }
    }
    match p.symmetry {
        EQFLOW_FROM_PRESET => {}
        EQFLOW_SYMMETRY_FULL => arch.symmetry = KernelSymmetry::Full,
        EQFLOW_SYMMETRY_TRANSLATIONS => arch.symmetry = KernelSymmetry::Translations,
        s => return bad(format!("symmetry = {s} is not an EQFLOW_SYMMETRY_* (or 0)")),
    }
    match p.features {
        EQFLOW_FROM_PRESET => {}
        EQFLOW_FEATURES_ODD => arch.features = FeatureKind::Odd,
        EQFLOW_FEATURES_NON_ODD => arch.features = FeatureKind::NonOdd,
        f => return bad(format!("features = {f} is not an EQFLOW_FEATURES_* (or 0)")),
    }
    let precision = match p.precision {
        EQFLOW_PRECISION_F64 => Precision::F64,
        EQFLOW_PRECISION_F32 => Precision::F32,
        x => return bad(format!("precision = {x} is not an EQFLOW_PRECISION_*")),
    };
    if p.lattice_size < 2 {
        return bad(format!("lattice_size = {} must be at least 2", p.lattice_size));
    }
    if p.batch_size <= 0 {
        return bad(format!("batch_size = {} must be positive", p.batch_size));
    }
    for (name, v) in [
        ("warmup_steps", p.warmup_steps),
        ("micro_batch", p.micro_batch),
        ("coarse_ode_steps", p.coarse_ode_steps),
        ("coarse_steps", p.coarse_steps),
    ] {
        if v < 0 {
            return bad(format!("{name} = {v} is negative"));
        }
    }
    if p.coarse_ode_steps > 100_000 {
        return bad(format!("coarse_ode_steps = {} is larger than 100000", p.coarse_ode_steps));
    }
    let layout = match p.layout {
        EQFLOW_LAYOUT_X1_FASTEST => FieldLayout::X1Fastest,
        EQFLOW_LAYOUT_X0_FASTEST => FieldLayout::X0Fastest,
        EQFLOW_LAYOUT_EVEN_ODD => FieldLayout::EvenOdd,
        x => return bad(format!("layout = {x} is not an EQFLOW_LAYOUT_*")),
    };
    let (couplings, hopping) = match p.couplings_form {
        EQFLOW_COUPLINGS_STANDARD => {
            (Couplings::new(p.m2, p.lambda).map_err(|e| Error::invalid(format!("argument 'p': {}", e.message)))?, None)
        }
        EQFLOW_COUPLINGS_HOPPING => {
            let h = Hopping { kappa: p.kappa, lambda_tilde: p.lambda_tilde };
            (h.couplings().map_err(|e| Error::invalid(format!("argument 'p' (hopping form): {}", e.message)))?, Some(h))
        }
        x => return bad(format!("couplings_form = {x} is not an EQFLOW_COUPLINGS_*")),
    };
    let mut c = FlowConfig::new(p.lattice_size as usize, couplings.m2, couplings.lambda);
    c.conventions = Conventions::new(layout, hopping);
    c.arch = arch;
    c.train.batch_size = p.batch_size as usize;
    c.train.learning_rate = p.learning_rate;
    c.train.warmup_steps = p.warmup_steps as u64;
    c.train.micro_batch = p.micro_batch as usize;
    c.train.coarse_ode_steps = p.coarse_ode_steps as usize;
    c.train.coarse_steps = p.coarse_steps as u64;
    c.precision = precision;
    c.seed = p.seed;
    Ok(c)
}

pub(crate) unsafe fn flow_ref<'a>(flow: *const eqflow_flow) -> Result<&'a eqflow_flow> {
    arg_ref(flow, "flow")
}

pub(crate) unsafe fn path_arg(path: *const c_char) -> Result<PathBuf> {
    let p = arg_ref(path, "path")?;
    let bytes = CStr::from_ptr(p).to_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid("argument 'path' is empty"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes).map(PathBuf::from).map_err(|_| Error::invalid("argument 'path' is not UTF-8"))
    }
}

/// Writes the defaults into the first `struct_size` bytes of `*p` and sets
/// `p->struct_size = struct_size`: L = 8, m² = −4, λ = 6.008, the seed architecture
/// (architecture fields 0 = from the preset), batch 100, learning rate 2e-3, seed 0, f32
/// training compute, the continuous flow, no warm-up.
/// NULL or a `struct_size` below `sizeof(size_t)` is a no-op.
///
/// # Safety
/// `p` is NULL or points to `struct_size` writable bytes.
///
/// Example: `eqflow_flow_params fp; eqflow_flow_params_init(&fp, sizeof fp); fp.lattice_size = 6;`
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_params_init(p: *mut eqflow_flow_params, struct_size: usize) {
    boundary_void("eqflow_flow_params_init", || init_prefix(p, struct_size, eqflow_flow_params::default()))
}

/// Creates a flow (the identity map, W = 0, with ω drawn from `p->seed`) that computes with
/// the context's threads. On success `*out` holds a new flow for `eqflow_flow_free`.
/// Errors: NULL arguments (101), a wrong `struct_size` (103), invalid fields (100).
///
/// # Safety
/// `ctx` and `p` point to valid objects; `out` to writable storage.
///
/// Thread safety: may be called from any thread; `ctx` may be shared.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_new(
    ctx: *const eqflow_context,
    p: *const eqflow_flow_params,
    out: *mut *mut eqflow_flow,
) -> eqflow_status {
    boundary("eqflow_flow_new", || {
        let (threads, cuda) = backend_of(ctx)?;
        let p = read_versioned(p, eqflow_flow_params::default(), "p")?;
        let out = arg_out(out, "out")?;
        give(out, eqflow_flow::on(flow_of(&p, threads)?, cuda)?);
        Ok(())
    })
}

/// Frees a flow; NULL is a no-op. Chains made from it stay valid (they hold a snapshot).
///
/// # Safety
/// `flow` is NULL or a flow from this library not freed before and not in use.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_free(flow: *mut eqflow_flow) {
    boundary_void("eqflow_flow_free", || take(flow))
}

/// The number of lattice sites V = L*L: every field is V doubles. Never BUSY.
///
/// # Safety
/// `flow` is a valid flow; `out_volume` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_lattice_volume(flow: *const eqflow_flow, out_volume: *mut usize) -> eqflow_status {
    boundary("eqflow_flow_lattice_volume", || {
        let f = flow_ref(flow)?;
        let out = arg_out(out_volume, "out_volume")?;
        *out = f.volume;
        Ok(())
    })
}

/// Runs `n_steps` >= 1 Adam steps of reverse-KL training, each on a fresh batch. `out_stats`
/// may be NULL; otherwise its `struct_size` must be set. A non-finite loss or gradient stops
/// the run with `EQFLOW_STATUS_NON_FINITE` (300), the parameters left at the last good step.
///
/// # Safety
/// `flow` is a valid flow; `out_stats` is NULL or points to an `eqflow_train_stats`.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_train(
    flow: *mut eqflow_flow,
    n_steps: u64,
    out_stats: *mut eqflow_train_stats,
) -> eqflow_status {
    boundary("eqflow_flow_train", || {
        let f = flow_ref(flow)?;
        let out = check_versioned_out(out_stats, "out_stats")?;
        if n_steps == 0 {
            return Err(Error::invalid("argument 'n_steps' = 0 (must be at least 1)"));
        }
        let cuda = f.cuda.clone();
        let mut f = lock(&f.inner, "flow")?;
        let t0 = std::time::Instant::now();
        let mut last = None;
        match (cuda, f.as_continuous_mut()) {
            (Some(d), Some(flow)) => {
                let mut t = crate::cuda::CudaTrainer::new(flow, d)?;
                for _ in 0..n_steps {
                    last = Some(t.train_step(flow)?);
                }
            }
            _ => {
                for _ in 0..n_steps {
                    last = Some(f.train_step()?);
                }
            }
        }
        let s = last.expect("n_steps >= 1");
        let stats = eqflow_train_stats {
            struct_size: size_of::<eqflow_train_stats>(),
            steps_done: f.steps_done(),
            loss: s.loss,
            ess: s.ess,
            seconds: t0.elapsed().as_secs_f64(),
        };
        write_versioned(out, stats);
        Ok(())
    })
}

/// Samples in the flow's boundary conventions: (fields, log q, S).
pub(crate) fn to_user(flow: &AnyFlow, s: &Samples) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let c = flow.conventions();
    let v = flow.volume();
    Ok((
        c.from_internal(flow.lattice_size(), &s.phi)?,
        s.log_q.iter().map(|q| c.log_q_to_user(v, *q)).collect(),
        s.action.iter().map(|x| c.action_to_user(v, *x)).collect(),
    ))
}

/// The body of the sampling functions, for field buffers of type `T`.
#[allow(clippy::too_many_arguments)]
unsafe fn sample_into<T: Copy>(
    flow: *mut eqflow_flow,
    n: usize,
    phi: *mut T,
    phi_len: usize,
    log_q: *mut f64,
    log_q_len: usize,
    action: *mut f64,
    action_len: usize,
    convert: impl Fn(f64) -> T,
) -> Result<()> {
    let f = flow_ref(flow)?;
    let cuda = f.cuda.clone();
    let mut f = lock(&f.inner, "flow")?;
    let nv = mul(n, f.volume(), "n × V")?;
    let phi = arg_out_array(phi, phi_len, nv, "phi")?;
    let log_q = arg_out_array(log_q, log_q_len, n, "log_q")?;
    let action = arg_out_array(action, action_len, n, "action")?;
    let s = draw(&mut f, cuda.as_ref(), n)?;
    let (p, q, a) = to_user(&f, &s)?;
    let p: Vec<T> = p.into_iter().map(convert).collect();
    write_out(phi, &p);
    write_out(log_q, &q);
    write_out(action, &a);
    Ok(())
}

/// Draws `n` independent samples from the flow (advancing its sample stream): fields into
/// `phi` (n*V doubles, field after field, in the flow's layout), log q into `log_q` (n) and
/// the action S into `action` (n). Each output may be NULL with length 0 when not wanted;
/// buffers may be longer than needed. Nothing is written on failure; a request whose memory
/// exceeds what the machine has returns `EQFLOW_STATUS_OUT_OF_MEMORY`.
///
/// # Safety
/// Each non-NULL buffer holds at least its stated length.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_sample(
    flow: *mut eqflow_flow,
    n: usize,
    phi: *mut f64,
    phi_len: usize,
    log_q: *mut f64,
    log_q_len: usize,
    action: *mut f64,
    action_len: usize,
) -> eqflow_status {
    boundary("eqflow_flow_sample", || sample_into(flow, n, phi, phi_len, log_q, log_q_len, action, action_len, |x| x))
}

/// `eqflow_flow_sample` with single-precision field buffers (half the memory; log q and S
/// stay double and are those of the double-precision fields). A float field must not be fed
/// back as a chain state where its exact log q matters: it is a rounded configuration.
///
/// # Safety
/// Each non-NULL buffer holds at least its stated length.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_sample_float(
    flow: *mut eqflow_flow,
    n: usize,
    phi: *mut f32,
    phi_len: usize,
    log_q: *mut f64,
    log_q_len: usize,
    action: *mut f64,
    action_len: usize,
) -> eqflow_status {
    boundary("eqflow_flow_sample_float", || {
        sample_into(flow, n, phi, phi_len, log_q, log_q_len, action, action_len, |x| x as f32)
    })
}

/// log q of `phi_len / V` given fields (`phi_len` a positive multiple of V) into `log_q`
/// (at least phi_len / V doubles). Fields must be finite.
///
/// # Safety
/// `phi` holds `phi_len` doubles; `log_q` holds `log_q_len`.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_log_prob(
    flow: *mut eqflow_flow,
    phi: *const f64,
    phi_len: usize,
    log_q: *mut f64,
    log_q_len: usize,
) -> eqflow_status {
    boundary("eqflow_flow_log_prob", || {
        let f = flow_ref(flow)?;
        let mut f = lock(&f.inner, "flow")?;
        let v = f.volume();
        if phi_len == 0 || phi_len % v != 0 {
            return Err(Error::new(
                crate::error::Status::BadLength,
                format!("argument 'phi_len' = {phi_len} is not a positive multiple of V = {v}"),
            ));
        }
        let n = phi_len / v;
        let phi = arg_vec(phi, phi_len, "phi")?;
        let out = arg_out_array(log_q, log_q_len, n, "log_q")?
            .ok_or_else(|| Error::new(crate::error::Status::NullPointer, "argument 'log_q' is NULL".to_string()))?;
        crate::error::check_finite("argument 'phi'", &phi)?;
        let c = f.conventions();
        let phi = c.to_internal(f.lattice_size(), &phi)?;
        let lq: Vec<f64> = f.log_prob(&phi)?.iter().map(|q| c.log_q_to_user(v, *q)).collect();
        write_out(Some(out), &lq);
        Ok(())
    })
}

/// The effective sample size fraction (0..1] of `n_samples` >= 1 fresh samples (a stream
/// separate from training and `eqflow_flow_sample`), into `*out_ess`.
///
/// # Safety
/// `flow` is a valid flow; `out_ess` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_ess(flow: *mut eqflow_flow, n_samples: usize, out_ess: *mut f64) -> eqflow_status {
    boundary("eqflow_flow_ess", || {
        let f = flow_ref(flow)?;
        let out = arg_out(out_ess, "out_ess")?;
        if n_samples == 0 {
            return Err(Error::invalid("argument 'n_samples' = 0 (must be at least 1)"));
        }
        let cuda = f.cuda.clone();
        let mut f = lock(&f.inner, "flow")?;
        let e = match (cuda, f.as_continuous_mut()) {
            (Some(d), Some(flow)) => {
                let s =
                    crate::cuda::CudaFlow::new(flow, d)?.sample_at(Stream::Ess, flow.steps_done << 24, n_samples)?;
                crate::train::ess(&s.log_weights())
            }
            _ => f.ess(n_samples)?,
        };
        *out = e;
        Ok(())
    })
}

/// Saves the flow (parameters, optimiser state, counters) to `path` atomically
/// (safetensors with JSON metadata).
///
/// # Safety
/// `flow` is a valid flow; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_save(flow: *const eqflow_flow, path: *const c_char) -> eqflow_status {
    boundary("eqflow_flow_save", || {
        let f = flow_ref(flow)?;
        let path = path_arg(path)?;
        let f = lock(&f.inner, "flow")?;
        f.save(&path)
    })
}

/// Loads a flow saved by `eqflow_flow_save`, computing with the context's threads.
/// On success `*out` holds a new flow for `eqflow_flow_free`. Errors: 105 (cannot read),
/// 106 (not an eqflow file, or a newer format).
///
/// # Safety
/// `ctx` is a valid context; `path` a NUL-terminated string; `out` writable storage.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_load(
    ctx: *const eqflow_context,
    path: *const c_char,
    out: *mut *mut eqflow_flow,
) -> eqflow_status {
    boundary("eqflow_flow_load", || {
        let (threads, cuda) = backend_of(ctx)?;
        let path = path_arg(path)?;
        let out = arg_out(out, "out")?;
        give(out, eqflow_flow::on(AnyFlow::load(&path, threads)?, cuda)?);
        Ok(())
    })
}

/// Reweighted estimates from independent flow samples (SPEC §5): ⟨O⟩ = Σ w O / Σ w with
/// jackknife errors (no autocorrelation: the samples are independent), log Z, and the ESS
/// of the weights. Observables are of φ in the (m², λ) convention of SPEC §2. Set
/// `struct_size` before the call; fields are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eqflow_reweighted {
    /// `sizeof(eqflow_reweighted)` as compiled by the caller.
    pub struct_size: usize,
    /// Samples used.
    pub n: u64,
    /// ESS fraction of the weights.
    pub ess: f64,
    /// log Z of the target, Z = ∫ dφ e^{−S(φ)}.
    pub log_z: f64,
    /// Its error.
    pub log_z_err: f64,
    /// ⟨M⟩.
    pub m: f64,
    /// Its error.
    pub m_err: f64,
    /// ⟨|M|⟩.
    pub abs_m: f64,
    /// Its error.
    pub abs_m_err: f64,
    /// χ2 = V(⟨M²⟩ − ⟨M⟩²).
    pub chi2: f64,
    /// Its error.
    pub chi2_err: f64,
    /// Binder cumulant 1 − ⟨M⁴⟩/(3⟨M²⟩²).
    pub binder: f64,
    /// Its error.
    pub binder_err: f64,
    /// L·m_p; NaN (and its error NaN) where the reweighted correlator makes m_p(t) undefined at
    /// some t, in the estimate or one of its jackknife blocks: more samples are needed.
    pub l_m_p: f64,
    /// Its error.
    pub l_m_p_err: f64,
    /// The jackknife error of `ess` (appended: a caller compiled before it passes the older
    /// `struct_size` and gets every field up to `l_m_p_err`).
    pub ess_err: f64,
}

unsafe impl Versioned for eqflow_reweighted {
    const OLD_SIZES: &'static [usize] = &[std::mem::offset_of!(eqflow_reweighted, ess_err)];
    const NAME: &'static str = "eqflow_reweighted";
}

/// Draws `n_samples` >= 2 independent samples (advancing the flow's sample stream) and
/// reweights them to the flow's target with λ replaced by λ + `delta_lambda` (0: the flow's
/// own target), into `*out`: log w = −S − log q − Δλ Σ φ⁴.
///
/// # Safety
/// `flow` is a valid flow; `out` points to an `eqflow_reweighted` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_reweight(
    flow: *mut eqflow_flow,
    n_samples: usize,
    delta_lambda: f64,
    out: *mut eqflow_reweighted,
) -> eqflow_status {
    boundary("eqflow_flow_reweight", || {
        let f = flow_ref(flow)?;
        let out = check_versioned_out(out, "out")?
            .ok_or_else(|| Error::new(crate::error::Status::NullPointer, "argument 'out' is NULL"))?;
        if n_samples < 2 {
            return Err(Error::invalid(format!("argument 'n_samples' = {n_samples} (need at least 2)")));
        }
        let cuda = f.cuda.clone();
        let mut f = lock(&f.inner, "flow")?;
        let s = draw(&mut f, cuda.as_ref(), n_samples)?;
        let r = crate::reweight::reweight_samples(&s, f.lattice_size(), delta_lambda)?;
        write_versioned(
            Some(out),
            eqflow_reweighted {
                struct_size: size_of::<eqflow_reweighted>(),
                n: r.n as u64,
                ess: r.ess,
                log_z: r.log_z.value,
                log_z_err: r.log_z.error,
                m: r.m.value,
                m_err: r.m.error,
                abs_m: r.abs_m.value,
                abs_m_err: r.abs_m.error,
                chi2: r.chi2.value,
                chi2_err: r.chi2.error,
                binder: r.binder.value,
                binder_err: r.binder.error,
                l_m_p: r.l_m_p.value,
                l_m_p_err: r.l_m_p.error,
                ess_err: r.ess_error,
            },
        );
        Ok(())
    })
}

/// Starts a new learning-rate schedule at the training step `flow` has reached, keeping its
/// parameters and Adam's moments (for a long run whose rate has decayed to nothing while it
/// still improves): base rate `learning_rate` > 0, a tenfold decay every `decay_steps` steps
/// (0 keeps the flow's schedule; otherwise > 0), `warmup_steps` of linear warm-up. Saved with
/// the flow, so a saved and reloaded flow continues bit for bit.
///
/// # Safety
/// `flow` is a valid flow.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_restart_schedule(
    flow: *mut eqflow_flow,
    learning_rate: f64,
    decay_steps: f64,
    warmup_steps: u64,
) -> eqflow_status {
    boundary("eqflow_flow_restart_schedule", || {
        let f = flow_ref(flow)?;
        let mut f = lock(&f.inner, "flow")?;
        let step = f.steps_done();
        let decay = if decay_steps == 0.0 { None } else { Some(decay_steps) };
        f.train_config_mut().restart(step, learning_rate, decay, warmup_steps)
    })
}

/// Chooses how `flow`'s training steps estimate the gradient: `EQFLOW_GRADIENT_TOTAL` (the
/// default) or `EQFLOW_GRADIENT_PATH` (continuous flows, in either context). Saved with the
/// flow.
///
/// # Safety
/// `flow` is a valid flow.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_set_gradient(flow: *mut eqflow_flow, gradient: i32) -> eqflow_status {
    boundary("eqflow_flow_set_gradient", || {
        let f = flow_ref(flow)?;
        let mut f = lock(&f.inner, "flow")?;
        let g = match gradient {
            EQFLOW_GRADIENT_TOTAL => crate::train::Gradient::Total,
            EQFLOW_GRADIENT_PATH => crate::train::Gradient::Path,
            g => {
                return Err(Error::invalid(format!(
                    "argument 'gradient' = {g} (EQFLOW_GRADIENT_TOTAL 0 or EQFLOW_GRADIENT_PATH 1)"
                )))
            }
        };
        if g == crate::train::Gradient::Path && f.kind() == crate::FlowKind::RealNvp {
            return Err(Error::invalid("EQFLOW_GRADIENT_PATH is for continuous flows, not RealNVP"));
        }
        f.train_config_mut().gradient = g;
        Ok(())
    })
}

/// Sets `flow`'s parameters from `small`, a flow trained on a lattice no larger than `flow`'s
/// (transfer to a larger lattice: each displacement orbit of the small lattice seeds the same
/// orbit, longer-range orbits start at zero), of the same architecture or a narrower one: fewer
/// frequencies (the new ones start with zero weights) or a coarser time kernel (hat: `flow`'s
/// size minus 1 a multiple of `small`'s size minus 1; Fourier: no smaller), which `flow`
/// represents exactly. The optimiser state is left as it is.
///
/// # Safety
/// `flow` and `small` are valid, distinct flows.
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_init_from(flow: *mut eqflow_flow, small: *const eqflow_flow) -> eqflow_status {
    boundary("eqflow_flow_init_from", || {
        let f = flow_ref(flow)?;
        let s: &eqflow_flow = arg_ref(small, "small")?;
        if std::ptr::eq(f, s) {
            return Err(Error::invalid("arguments 'flow' and 'small' are the same flow"));
        }
        let small = lock(&s.inner, "small")?.snapshot();
        let not_continuous =
            || Error::invalid("eqflow_flow_init_from: transfer needs two continuous flows (not RealNVP)");
        let AnyFlow::Continuous(small) = small else { return Err(not_continuous()) };
        lock(&f.inner, "flow")?.as_continuous_mut().ok_or_else(not_continuous)?.transfer_from(&small)
    })
}
