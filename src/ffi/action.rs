//! A host-supplied action: lattice codes with their own conventions train the flow against
//! their own S and ∂S/∂φ, given as a C callback.

use super::boundary::{boundary, lock};
use super::chain::eqflow_chain;
use super::flow::{eqflow_flow, flow_ref};
use super::status::eqflow_status;
use crate::conventions::Conventions;
use crate::error::{Error, Result, Status};
use crate::flow::CustomAction;
use crate::mcmc::proposal::Proposal;
use std::ffi::c_void;
use std::sync::Arc;

/// A host action: for `n_fields` fields of `volume` sites each (`phi`: n_fields·volume numbers,
/// in the flow's layout and variables), write S of each field into `action[0..n_fields]` and, when `force` is not NULL,
/// ∂S/∂φ into `force[0..n_fields·volume]`. Return 0 on success; any other value makes the
/// eqflow call that needed it fail with `EQFLOW_STATUS_CALLBACK` and change nothing.
///
/// It is called only on the thread that called into eqflow (never from eqflow's worker
/// threads), once per batch, and never concurrently for one flow or its chains.
pub type eqflow_action_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        n_fields: usize,
        volume: usize,
        phi: *const f64,
        action: *mut f64,
        force: *mut f64,
    ) -> i32,
>;

struct HostAction {
    f: unsafe extern "C" fn(*mut c_void, usize, usize, *const f64, *mut f64, *mut f64) -> i32,
    user: *mut c_void,
    l: usize,
    conventions: Conventions,
}

// SAFETY: the callback and its user data are only used on the thread that called into eqflow
// (the flow evaluates the action between its parallel sections, on the calling thread), and
// a flow or chain handle is used by one thread at a time (BUSY otherwise), as documented.
unsafe impl Send for HostAction {}
unsafe impl Sync for HostAction {}

impl CustomAction for HostAction {
    fn evaluate(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()> {
        let n = action.len();
        let v = self.l * self.l;
        let c = &self.conventions;
        // the host sees its own layout and variables
        let user_phi = c.from_internal(self.l, phi)?;
        let mut user_force = force.as_ref().map(|f| vec![0.0; f.len()]);
        let fp = user_force.as_mut().map_or(std::ptr::null_mut(), |f| f.as_mut_ptr());
        // SAFETY: phi holds n·volume numbers, action n, force (if not NULL) n·volume.
        let rc = unsafe { (self.f)(self.user, n, v, user_phi.as_ptr(), action.as_mut_ptr(), fp) };
        if rc != 0 {
            return Err(Error::new(Status::Callback, format!("the host action returned {rc}")));
        }
        action.iter_mut().for_each(|s| *s = c.action_to_internal(v, *s));
        if let (Some(f), Some(uf)) = (force, user_force) {
            f.copy_from_slice(&c.force_to_internal(self.l, &uf)?);
        }
        Ok(())
    }
}

/// Makes the flow train, propose and accept against a host-supplied action instead of the
/// built-in φ⁴ action (SPEC §2); `action = NULL` restores the built-in one. Chains created
/// afterwards use it too; `user_data` is passed back to every call and must stay valid while
/// the flow or any chain created from it may call it.
///
/// # Safety
/// `flow` is a valid flow; `action`, if not NULL, is a function following the contract of
/// [`eqflow_action_fn`].
#[no_mangle]
pub unsafe extern "C" fn eqflow_flow_set_action(
    flow: *mut eqflow_flow,
    action: eqflow_action_fn,
    user_data: *mut c_void,
) -> eqflow_status {
    boundary("eqflow_flow_set_action", || {
        let f = flow_ref(flow)?;
        let mut g = lock(&f.inner, "flow")?;
        let (l, conventions) = (g.lattice_size(), g.conventions());
        g.set_custom_action(
            action.map(|f| Arc::new(HostAction { f, user: user_data, l, conventions }) as Arc<dyn CustomAction>),
        );
        Ok(())
    })
}

/// Sets (or, with `action = NULL`, removes) the host action of a chain, as
/// `eqflow_flow_set_action` does for a flow. Needed after `eqflow_chain_load` of a chain saved
/// while it used a host action (files cannot hold code): until then such a chain returns
/// `EQFLOW_STATUS_INVALID_ARGUMENT` from every step. Fields passed to the callback follow the
/// chain's flow conventions.
///
/// # Safety
/// `chain` is a valid chain; `action`, if not NULL, follows the contract of [`eqflow_action_fn`].
#[no_mangle]
pub unsafe extern "C" fn eqflow_chain_set_action(
    chain: *mut eqflow_chain,
    action: eqflow_action_fn,
    user_data: *mut c_void,
) -> eqflow_status {
    boundary("eqflow_chain_set_action", || {
        let c: &eqflow_chain = super::boundary::arg_ref(chain, "chain")?;
        let mut g = lock(&c.inner, "chain")?;
        let (l, conventions) = (g.flow().lattice_size(), g.flow().conventions());
        g.set_custom_action(
            action.map(|f| Arc::new(HostAction { f, user: user_data, l, conventions }) as Arc<dyn CustomAction>),
        );
        Ok(())
    })
}
