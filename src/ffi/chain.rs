//! `eqflow_chain`: an independence Metropolis chain with flow proposals.

use super::boundary::{
    arg_out_array, arg_ref, arg_vec, boundary, boundary_void, check_versioned_out, give, lock, mul, take, write_out,
    write_versioned, Versioned,
};
use super::context::{eqflow_context, threads_of};
use super::flow::eqflow_flow;
use super::flow::path_arg;
use super::hmc::{eqflow_observables, summary};
use super::status::eqflow_status;
use crate::any_flow::AnyFlow;
use crate::error::{Error, Result, Status};
use crate::mcmc::checkpoint;
use crate::mcmc::metropolis::Chain;
use std::ffi::c_char;
use std::mem::size_of;
use std::sync::Mutex;

/// An independence Metropolis chain over a frozen snapshot of a flow: training the flow
/// afterwards does not change the chain's proposals.
///
/// Thread safety: one thread at a time. A call made while another thread is inside a call
/// on the same chain returns `EQFLOW_STATUS_BUSY` (104); different chains (even over the
/// same flow) may run in different threads at once. After an internal panic the chain is
/// poisoned (`EQFLOW_STATUS_POISONED`, 109); free it.
pub struct eqflow_chain {
    pub(crate) inner: Mutex<Chain<AnyFlow>>,
    pub(crate) volume: usize,
}

impl eqflow_chain {
    pub(crate) fn new(chain: Chain<AnyFlow>) -> Self {
        let volume = chain.measurements().l() * chain.measurements().l();
        eqflow_chain { inner: Mutex::new(chain), volume }
    }
}

/// Counters of a chain. Set `struct_size = sizeof(eqflow_chain_stats)` before the call;
/// fields are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eqflow_chain_stats {
    /// `sizeof(eqflow_chain_stats)` as compiled by the caller.
    pub struct_size: usize,
    /// Flow proposals made so far.
    pub proposed: u64,
    /// Flow proposals accepted so far.
    pub accepted: u64,
    /// accepted / proposed (NaN before the first proposal).
    pub acceptance: f64,
    /// Proposals rejected because their log q or S was not finite.
    pub non_finite: u64,
    /// Z2 flips proposed (see `eqflow_chain_set_flip`).
    pub flips_proposed: u64,
    /// Z2 flips accepted.
    pub flips_accepted: u64,
    /// Steps measured into the chain's observables since creation or the last reset.
    pub measured: u64,
}

unsafe impl Versioned for eqflow_chain_stats {
    const OLD_SIZES: &'static [usize] = &[std::mem::offset_of!(eqflow_chain_stats, non_finite)];
    const NAME: &'static str = "eqflow_chain_stats";
}

unsafe fn chain_ref<'a>(chain: *const eqflow_chain) -> Result<&'a eqflow_chain> {
    arg_ref(chain, "chain")
}

/// Creates a chain over a frozen snapshot of `flow` with its own random stream `seed`. The
/// chain has no state until the first `eqflow_chain_step` (whose first proposal is always
/// accepted) or `eqflow_chain_set_state`. On success `*out` holds a new chain for
/// `eqflow_chain_free`. A continuous flow made in a CUDA context gives a chain whose
/// proposals are pushed through the flow on the device (the same chain up to rounding; with
/// a host action set, on the CPU).
///
/// # Safety
/// `flow` is a valid flow; `out` writable storage.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_new(
    flow: *mut eqflow_flow,
    seed: u64,
    out: *mut *mut eqflow_chain,
) -> eqflow_status {
    boundary("eqflow_chain_new", || {
        let f: &eqflow_flow = arg_ref(flow, "flow")?;
        let out = super::boundary::arg_out(out, "out")?;
        let guard = lock(&f.inner, "flow")?;
        let mut chain = Chain::new(&*guard, seed);
        // a continuous flow in a CUDA context pushes the chain's proposals on the device
        if let (Some(dev), AnyFlow::Continuous(flow)) = (&f.cuda, &*guard) {
            if !flow.has_custom_action() {
                chain.set_pusher(Some(Box::new(crate::cuda::CudaFlow::new(flow, dev.clone())?)));
            }
        }
        drop(guard);
        give(out, eqflow_chain::new(chain));
        Ok(())
    })
}

/// Frees a chain; NULL is a no-op.
///
/// # Safety
/// `chain` is NULL or a chain from `eqflow_chain_new` not freed before and not in use.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_free(chain: *mut eqflow_chain) {
    boundary_void("eqflow_chain_free", || take(chain))
}

fn stats_of(c: &Chain<AnyFlow>) -> eqflow_chain_stats {
    let s = c.stats();
    eqflow_chain_stats {
        struct_size: size_of::<eqflow_chain_stats>(),
        proposed: s.proposed,
        accepted: s.accepted,
        acceptance: s.acceptance(),
        non_finite: s.non_finite,
        flips_proposed: s.flips_proposed,
        flips_accepted: s.flips_accepted,
        measured: c.measurements().n_measured(),
    }
}

/// Runs `n_steps` steps writing the field after every `every`-th step (steps every−1,
/// 2·every−1, …) in the flow's conventions and the accept flag of every step.
#[allow(clippy::too_many_arguments)]
unsafe fn run_chain(
    chain: *mut eqflow_chain,
    n_steps: usize,
    every: usize,
    phi_out: *mut f64,
    phi_out_len: usize,
    accepted: *mut u8,
    accepted_len: usize,
    out_stats: *mut eqflow_chain_stats,
) -> Result<()> {
    let c = chain_ref(chain)?;
    let mut c = lock(&c.inner, "chain")?;
    let v = c.flow().volume();
    let n_saved = n_steps.checked_div(every).unwrap_or(0);
    let phi_out = arg_out_array(phi_out, phi_out_len, mul(n_saved, v, "saved fields × V")?, "phi_out")?;
    let accepted = arg_out_array(accepted, accepted_len, n_steps, "accepted")?;
    let stats_out = check_versioned_out(out_stats, "out_stats")?;
    let mut phis = Vec::new();
    if phi_out.is_some() {
        crate::memory::reserve(&mut phis, n_saved * v, "fields to return")?;
    }
    let mut flags = Vec::new();
    let mut k = 0usize;
    c.run(n_steps as u64, |st, a| {
        k += 1;
        if phi_out.is_some() && k % every == 0 {
            phis.extend_from_slice(&st.phi);
        }
        if accepted.is_some() {
            flags.push(a as u8);
        }
    })?;
    let conv = c.flow().conventions();
    write_out(phi_out, &conv.from_internal(c.flow().lattice_size(), &phis)?);
    write_out(accepted, &flags);
    write_versioned(stats_out, stats_of(&c));
    Ok(())
}

/// Runs `n_steps` Metropolis steps. After step i the chain's field goes to
/// `phi_out[i*V .. (i+1)*V]` (`phi_out_len` >= n_steps*V, or NULL with 0) and whether its
/// proposal was accepted to `accepted[i]` (0/1; `accepted_len` >= n_steps, or NULL with 0).
/// `out_stats` (NULL allowed) receives the chain's running counters. Every step is measured
/// into the chain's observables (`eqflow_chain_observables`). Nothing is written on failure.
///
/// # Safety
/// Each non-NULL buffer holds at least its stated length.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_step(
    chain: *mut eqflow_chain,
    n_steps: usize,
    phi_out: *mut f64,
    phi_out_len: usize,
    accepted: *mut u8,
    accepted_len: usize,
    out_stats: *mut eqflow_chain_stats,
) -> eqflow_status {
    boundary("eqflow_chain_step", || {
        run_chain(chain, n_steps, 1, phi_out, phi_out_len, accepted, accepted_len, out_stats)
    })
}

/// Runs `n_steps` Metropolis steps in bounded memory: observables accumulate on the fly
/// (`eqflow_chain_observables`), and only every `save_every`-th field is returned (after steps
/// save_every−1, 2·save_every−1, …: `n_steps / save_every` fields into `phi_out`, which may be
/// NULL with length 0, as must it when `save_every` is 0, meaning no fields).
///
/// # Safety
/// `phi_out` holds `phi_out_len` doubles (or is NULL with 0).
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_run(
    chain: *mut eqflow_chain,
    n_steps: usize,
    save_every: usize,
    phi_out: *mut f64,
    phi_out_len: usize,
    out_stats: *mut eqflow_chain_stats,
) -> eqflow_status {
    boundary("eqflow_chain_run", || {
        if save_every == 0 && !phi_out.is_null() {
            return Err(Error::invalid("argument 'save_every' = 0 (no fields) but 'phi_out' is not NULL"));
        }
        run_chain(chain, n_steps, save_every, phi_out, phi_out_len, std::ptr::null_mut(), 0, out_stats)
    })
}

/// The number of lattice sites V = L*L of the chain's fields. Never BUSY.
///
/// # Safety
/// `chain` is a valid chain; `out_volume` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_lattice_volume(
    chain: *const eqflow_chain,
    out_volume: *mut usize,
) -> eqflow_status {
    boundary("eqflow_chain_lattice_volume", || {
        let c = chain_ref(chain)?;
        let out = super::boundary::arg_out(out_volume, "out_volume")?;
        *out = c.volume;
        Ok(())
    })
}

/// Turns the Z2 global flip update on (`on` != 0) or off: after each Metropolis step, with
/// probability ½, φ → −φ is proposed and accepted with min(1, e^{S(φ) − S(−φ)}) (always for
/// an action even in φ). Exact and free for the Z2-equivariant flow. Off by default.
///
/// # Safety
/// `chain` is a valid chain.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_set_flip(chain: *mut eqflow_chain, on: i32) -> eqflow_status {
    boundary("eqflow_chain_set_flip", || {
        let c = chain_ref(chain)?;
        lock(&c.inner, "chain")?.set_flip(on != 0);
        Ok(())
    })
}

/// The observables (SPEC §6) of every step measured so far, with Γ-method/jackknife errors and
/// τ_int in steps, into `*out` (its `struct_size` set). Memory is bounded however long the
/// chain (records merge pairwise beyond 65536). Observables are of φ in the (m², λ)
/// convention of SPEC §2, whatever the flow's boundary conventions.
/// Errors: fewer than 10 measured steps (`EQFLOW_STATUS_INVALID_ARGUMENT`).
///
/// # Safety
/// `chain` is a valid chain; `out` points to an `eqflow_observables`.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_observables(
    chain: *const eqflow_chain,
    out: *mut eqflow_observables,
) -> eqflow_status {
    boundary("eqflow_chain_observables", || {
        let c = chain_ref(chain)?;
        let out = check_versioned_out(out, "out")?
            .ok_or_else(|| Error::new(Status::NullPointer, "argument 'out' is NULL"))?;
        let s = lock(&c.inner, "chain")?.observables()?;
        write_versioned(Some(out), summary(&s));
        Ok(())
    })
}

/// Forgets the measured observables (e.g. after thermalisation from a set state); the
/// counters in `eqflow_chain_stats` are kept.
///
/// # Safety
/// `chain` is a valid chain.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_reset_observables(chain: *mut eqflow_chain) -> eqflow_status {
    boundary("eqflow_chain_reset_observables", || {
        let c = chain_ref(chain)?;
        lock(&c.inner, "chain")?.reset_measurements();
        Ok(())
    })
}

/// Saves the chain (its frozen flow, state, log q, S, random-number counters and measured
/// observables) atomically to `path`; `eqflow_chain_load` continues it bit for bit.
///
/// # Safety
/// `chain` is a valid chain; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_save(chain: *const eqflow_chain, path: *const c_char) -> eqflow_status {
    boundary("eqflow_chain_save", || {
        let c = chain_ref(chain)?;
        let path = path_arg(path)?;
        let c = lock(&c.inner, "chain")?;
        checkpoint::save(&c, &path)
    })
}

/// Loads a chain saved by `eqflow_chain_save`, computing with the context's threads. On
/// success `*out` holds a new chain for `eqflow_chain_free`. Errors: 105 (cannot read), 106
/// (not a chain checkpoint, corrupt, or a newer format).
///
/// # Safety
/// `ctx` is a valid context; `path` a NUL-terminated string; `out` writable storage.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_load(
    ctx: *const eqflow_context,
    path: *const c_char,
    out: *mut *mut eqflow_chain,
) -> eqflow_status {
    boundary("eqflow_chain_load", || {
        let threads = threads_of(ctx)?;
        let path = path_arg(path)?;
        let out = super::boundary::arg_out(out, "out")?;
        let chain = checkpoint::load(&path, threads)?;
        give(out, eqflow_chain::new(chain));
        Ok(())
    })
}

/// Makes `phi` (V doubles, finite; e.g. the result of the caller's own HMC trajectory) the
/// chain's current state; its log q is computed by inverting the flow. The next Metropolis
/// step compares its proposal against this state.
///
/// # Safety
/// `phi` holds `phi_len` doubles.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_set_state(
    chain: *mut eqflow_chain,
    phi: *const f64,
    phi_len: usize,
) -> eqflow_status {
    boundary("eqflow_chain_set_state", || {
        let c = chain_ref(chain)?;
        let mut c = lock(&c.inner, "chain")?;
        let v = c.flow().volume();
        if phi_len != v {
            return Err(Error::new(Status::BadLength, format!("argument 'phi_len' = {phi_len}, expected V = {v}")));
        }
        let phi = arg_vec(phi, phi_len, "phi")?;
        crate::error::check_finite("argument 'phi'", &phi)?;
        let conv = c.flow().conventions();
        let phi = conv.to_internal(c.flow().lattice_size(), &phi)?;
        c.set_state(&phi)
    })
}

/// The chain's current state: its field into `phi` (`phi_len` >= V, or NULL with 0), its
/// log q into `*log_q` and its action into `*action` (each may be NULL). Returns
/// `EQFLOW_STATUS_INVALID_ARGUMENT` before the chain has a state.
///
/// # Safety
/// `phi` holds `phi_len` doubles; `log_q` and `action` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_state(
    chain: *const eqflow_chain,
    phi: *mut f64,
    phi_len: usize,
    log_q: *mut f64,
    action: *mut f64,
) -> eqflow_status {
    boundary("eqflow_chain_state", || {
        let c = chain_ref(chain)?;
        let mut c = lock(&c.inner, "chain")?;
        let v = c.flow().volume();
        let phi = arg_out_array(phi, phi_len, v, "phi")?;
        let log_q = arg_out_array(log_q, (!log_q.is_null()) as usize, 1, "log_q")?;
        let action = arg_out_array(action, (!action.is_null()) as usize, 1, "action")?;
        let st = c.state().cloned().ok_or_else(|| {
            Error::invalid("argument 'chain' has no state yet (call eqflow_chain_step or eqflow_chain_set_state)")
        })?;
        let conv = c.flow().conventions();
        let user_phi = conv.from_internal(c.flow().lattice_size(), &st.phi)?;
        write_out(phi, &user_phi);
        write_out(log_q, &[conv.log_q_to_user(v, st.log_q)]);
        write_out(action, &[conv.action_to_user(v, st.action)]);
        Ok(())
    })
}
