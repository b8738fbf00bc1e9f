//! `eqflow_hmc`: the reference HMC sampler for the φ⁴ action, and `eqflow_observables`:
//! the chain observables of SPEC §6 with autocorrelation-aware errors, for C users.

use super::boundary::{
    arg_out, arg_out_array, arg_ref, arg_vec, boundary, boundary_void, check_versioned_out, give, lock, mul,
    read_versioned, take, write_out, write_versioned, Versioned,
};
use super::context::init_prefix;
use super::status::eqflow_status;
use crate::action::{Action, Couplings};
use crate::error::Error;
use crate::lattice::Lattice;
use crate::mcmc::hmc::{Hmc, HmcParams};
use crate::observables::{summarize, Measurements};
use std::mem::size_of;
use std::sync::Mutex;

/// An HMC chain for the φ⁴ action (leapfrog, exact accept/reject), the independent reference
/// for flow chains.
///
/// Thread safety: one thread at a time (a concurrent call returns `EQFLOW_STATUS_BUSY`).
pub struct eqflow_hmc {
    inner: Mutex<Hmc>,
}

/// Parameters of `eqflow_hmc_new`. Initialise with `eqflow_hmc_params_init`; fields are only
/// ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eqflow_hmc_params {
    /// `sizeof(eqflow_hmc_params)` as compiled by the caller.
    pub struct_size: usize,
    /// Lattice side L (default 8).
    pub lattice_size: i32,
    /// Bare mass squared m² (default −4).
    pub m2: f64,
    /// Quartic coupling λ (default 6.008, the L = 8 preset).
    pub lambda: f64,
    /// Leapfrog step size (default 0.1).
    pub step_size: f64,
    /// Leapfrog steps per trajectory (default 10).
    pub n_leapfrog: i32,
    /// Seed of the momenta and accept/reject stream.
    pub seed: u64,
}

unsafe impl Versioned for eqflow_hmc_params {
    const OLD_SIZES: &'static [usize] = &[];
    const NAME: &'static str = "eqflow_hmc_params";
}

impl Default for eqflow_hmc_params {
    fn default() -> Self {
        eqflow_hmc_params {
            struct_size: size_of::<Self>(),
            lattice_size: 8,
            m2: -4.0,
            lambda: 6.008,
            step_size: 0.1,
            n_leapfrog: 10,
            seed: 0,
        }
    }
}

/// Fills `*p` with defaults and sets `p->struct_size = struct_size`. NULL is a no-op.
///
/// # Safety
/// `p` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn eqflow_hmc_params_init(p: *mut eqflow_hmc_params, struct_size: usize) {
    boundary_void("eqflow_hmc_params_init", || init_prefix(p, struct_size, eqflow_hmc_params::default()))
}

/// Creates an HMC chain starting from `initial` (V numbers), or from φ = 0 when `initial` is
/// NULL with `initial_len` 0. On success `*out` holds a chain for `eqflow_hmc_free`.
///
/// # Safety
/// `p` points to an initialised `eqflow_hmc_params`; `initial` to `initial_len` doubles or NULL.
#[no_mangle]
pub unsafe extern "C" fn eqflow_hmc_new(
    p: *const eqflow_hmc_params,
    initial: *const f64,
    initial_len: usize,
    out: *mut *mut eqflow_hmc,
) -> eqflow_status {
    boundary("eqflow_hmc_new", || {
        let p = read_versioned(p, eqflow_hmc_params::default(), "p")?;
        let out = arg_out(out, "out")?;
        if p.lattice_size < 2 || p.n_leapfrog < 1 {
            return Err(Error::invalid(format!(
                "argument 'p': lattice_size = {}, n_leapfrog = {} (need >= 2 and >= 1)",
                p.lattice_size, p.n_leapfrog
            )));
        }
        let lattice = Lattice::new(p.lattice_size as usize)?;
        let action = Action::new(lattice, Couplings::new(p.m2, p.lambda)?);
        let init =
            if initial.is_null() && initial_len == 0 { None } else { Some(arg_vec(initial, initial_len, "initial")?) };
        let params = HmcParams { step_size: p.step_size, n_leapfrog: p.n_leapfrog as usize, seed: p.seed };
        let hmc = Hmc::new(action, params, init.as_deref())?;
        give(out, eqflow_hmc { inner: Mutex::new(hmc) });
        Ok(())
    })
}

/// Frees an HMC chain; NULL is a no-op.
///
/// # Safety
/// `hmc` is NULL or a chain from `eqflow_hmc_new` not freed before and not in use.
#[no_mangle]
pub unsafe extern "C" fn eqflow_hmc_free(hmc: *mut eqflow_hmc) {
    boundary_void("eqflow_hmc_free", || take(hmc))
}

/// Runs `n` trajectories. Optional outputs: the state after each (`phi_out`, n·V), the accept
/// flags (`accepted`, n) and the acceptance rate of all trajectories so far.
///
/// # Safety
/// `hmc` is a valid chain; each non-NULL output points to as many elements as its length says.
#[no_mangle]
pub unsafe extern "C" fn eqflow_hmc_run(
    hmc: *mut eqflow_hmc,
    n: usize,
    phi_out: *mut f64,
    phi_out_len: usize,
    accepted: *mut u8,
    accepted_len: usize,
    out_acceptance: *mut f64,
) -> eqflow_status {
    boundary("eqflow_hmc_run", || {
        let h: &eqflow_hmc = arg_ref(hmc, "hmc")?;
        let mut g = lock(&h.inner, "hmc")?;
        let v = g.state().len();
        let phi_o = if phi_out.is_null() && phi_out_len == 0 {
            None
        } else {
            arg_out_array(phi_out, phi_out_len, mul(n, v, "n × V")?, "phi_out")?
        };
        let acc_o = if accepted.is_null() && accepted_len == 0 {
            None
        } else {
            arg_out_array(accepted, accepted_len, n, "accepted")?
        };
        let mut phis = Vec::with_capacity(if phi_o.is_some() { n * v } else { 0 });
        let mut flags = Vec::with_capacity(n);
        for _ in 0..n {
            flags.push(g.trajectory()? as u8);
            if phi_o.is_some() {
                phis.extend_from_slice(g.state());
            }
        }
        write_out(phi_o, &phis);
        write_out(acc_o, &flags);
        if !out_acceptance.is_null() {
            *arg_out(out_acceptance, "out_acceptance")? = g.acceptance();
        }
        Ok(())
    })
}

/// Copies the current state (V numbers) into `phi`.
///
/// # Safety
/// `hmc` is a valid chain; `phi` points to `phi_len` writable doubles.
#[no_mangle]
pub unsafe extern "C" fn eqflow_hmc_state(hmc: *const eqflow_hmc, phi: *mut f64, phi_len: usize) -> eqflow_status {
    boundary("eqflow_hmc_state", || {
        let h: &eqflow_hmc = arg_ref(hmc, "hmc")?;
        let g = lock(&h.inner, "hmc")?;
        let out = arg_out_array(phi, phi_len, g.state().len(), "phi")?;
        write_out(out, g.state());
        Ok(())
    })
}

/// Replaces the current state by `phi` (V finite numbers).
///
/// # Safety
/// `hmc` is a valid chain; `phi` points to `phi_len` doubles.
#[no_mangle]
pub unsafe extern "C" fn eqflow_hmc_set_state(hmc: *mut eqflow_hmc, phi: *const f64, phi_len: usize) -> eqflow_status {
    boundary("eqflow_hmc_set_state", || {
        let h: &eqflow_hmc = arg_ref(hmc, "hmc")?;
        let mut g = lock(&h.inner, "hmc")?;
        let phi = arg_vec(phi, phi_len, "phi")?;
        g.set_state(&phi)
    })
}

/// Observables of a chain (SPEC §6), each with its error: Γ-method (Wolff) for primary and
/// derived means, binned jackknife for the effective mass. Set `struct_size` before the call.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct eqflow_observables {
    /// `sizeof(eqflow_observables)` as compiled by the caller.
    pub struct_size: usize,
    /// Configurations used.
    pub n: u64,
    /// ⟨|M|⟩.
    pub abs_m: f64,
    /// Its error.
    pub abs_m_err: f64,
    /// χ2 = V(⟨M²⟩ − ⟨M⟩²).
    pub chi2: f64,
    /// Its error.
    pub chi2_err: f64,
    /// L·m_p (m_p: mean of the effective masses m_p(t), t = 1..L/2).
    pub l_m_p: f64,
    /// Its error.
    pub l_m_p_err: f64,
    /// ξ = 1/m_p.
    pub xi: f64,
    /// Its error.
    pub xi_err: f64,
    /// Binder cumulant U = 1 − ⟨M⁴⟩/(3⟨M²⟩²).
    pub binder: f64,
    /// Its error.
    pub binder_err: f64,
    /// Integrated autocorrelation time of |M| (½ for independent data).
    pub tau_int_abs_m: f64,
    /// Integrated autocorrelation time of χ2.
    pub tau_int_chi2: f64,
}

unsafe impl Versioned for eqflow_observables {
    const OLD_SIZES: &'static [usize] = &[];
    const NAME: &'static str = "eqflow_observables";
}

/// Observables with errors of a chain of `n` ≥ 10 consecutive configurations (`phi`, n·V,
/// V = L²) on an L × L lattice, into `*out`.
///
/// # Safety
/// `phi` points to `phi_len` doubles; `out` to an `eqflow_observables` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn eqflow_observables_compute(
    lattice_size: i32,
    phi: *const f64,
    phi_len: usize,
    out: *mut eqflow_observables,
) -> eqflow_status {
    boundary("eqflow_observables_compute", || {
        let out = check_versioned_out(out, "out")?
            .ok_or_else(|| Error::new(crate::error::Status::NullPointer, "argument 'out' is NULL"))?;
        if lattice_size < 2 {
            return Err(Error::invalid(format!("argument 'lattice_size' = {lattice_size} (need >= 2)")));
        }
        let v = (lattice_size as usize) * (lattice_size as usize);
        if phi_len % v != 0 {
            return Err(Error::length("argument 'phi_len' (a multiple of V)", phi_len, (phi_len / v + 1) * v));
        }
        let phi = arg_vec(phi, phi_len, "phi")?;
        let mut m = Measurements::new(lattice_size as usize)?;
        m.push_batch(&phi)?;
        let s = summarize(&m)?;
        write_versioned(Some(out), summary(&s));
        Ok(())
    })
}

pub(crate) fn summary(s: &crate::observables::ChainSummary) -> eqflow_observables {
    eqflow_observables {
        struct_size: size_of::<eqflow_observables>(),
        n: s.n as u64,
        abs_m: s.abs_m.value,
        abs_m_err: s.abs_m.error,
        chi2: s.chi2.value,
        chi2_err: s.chi2.error,
        l_m_p: s.l_m_p.value,
        l_m_p_err: s.l_m_p.error,
        xi: s.xi.value,
        xi_err: s.xi.error,
        binder: s.binder.value,
        binder_err: s.binder.error,
        tau_int_abs_m: s.tau_int_abs_m,
        tau_int_chi2: s.tau_int_chi2,
    }
}
