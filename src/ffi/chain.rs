//! `eqflow_chain`: an independence Metropolis chain with flow proposals.

use super::boundary::{
    arg_out_array, arg_ref, arg_vec, boundary, boundary_void, check_versioned_out, give, lock, mul, take, write_out,
    write_versioned, Versioned,
};
use super::flow::eqflow_flow;
use super::status::eqflow_status;
use crate::error::{Error, Result, Status};
use crate::mcmc::metropolis::Chain;
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
    pub(crate) inner: Mutex<Chain>,
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
}

unsafe impl Versioned for eqflow_chain_stats {
    const V1_SIZE: usize = size_of::<eqflow_chain_stats>();
    const NAME: &'static str = "eqflow_chain_stats";
}

unsafe fn chain_ref<'a>(chain: *const eqflow_chain) -> Result<&'a eqflow_chain> {
    arg_ref(chain, "chain")
}

/// Creates a chain over a frozen snapshot of `flow` with its own random stream `seed`. The
/// chain has no state until the first `eqflow_chain_step` (whose first proposal is always
/// accepted) or `eqflow_chain_set_state`. On success `*out` holds a new chain for
/// `eqflow_chain_free`.
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
        let chain = Chain::new(&guard, seed);
        drop(guard);
        give(out, eqflow_chain { inner: Mutex::new(chain) });
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

/// Runs `n_steps` Metropolis steps. After step i the chain's field goes to
/// `phi_out[i*V .. (i+1)*V]` (`phi_out_len` >= n_steps*V, or NULL with 0) and whether its
/// proposal was accepted to `accepted[i]` (0/1; `accepted_len` >= n_steps, or NULL with 0).
/// `out_stats` (NULL allowed) receives the chain's running counters. Nothing is written on
/// failure.
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
        let c = chain_ref(chain)?;
        let mut c = lock(&c.inner, "chain")?;
        let v = c.flow().volume();
        let phi_out = arg_out_array(phi_out, phi_out_len, mul(n_steps, v, "n_steps × V")?, "phi_out")?;
        let accepted = arg_out_array(accepted, accepted_len, n_steps, "accepted")?;
        let stats_out = check_versioned_out(out_stats, "out_stats")?;
        let mut phis = Vec::new();
        let mut flags = Vec::new();
        c.run(n_steps as u64, |st, a| {
            if phi_out.is_some() {
                phis.extend_from_slice(&st.phi);
            }
            flags.push(a as u8);
        })?;
        write_out(phi_out, &phis);
        write_out(accepted, &flags);
        let s = c.stats();
        write_versioned(
            stats_out,
            eqflow_chain_stats {
                struct_size: size_of::<eqflow_chain_stats>(),
                proposed: s.proposed,
                accepted: s.accepted,
                acceptance: s.acceptance(),
            },
        );
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
        let st = c.state().ok_or_else(|| {
            Error::invalid("argument 'chain' has no state yet (call eqflow_chain_step or eqflow_chain_set_state)")
        })?;
        write_out(phi, &st.phi);
        write_out(log_q, &[st.log_q]);
        write_out(action, &[st.action]);
        Ok(())
    })
}
