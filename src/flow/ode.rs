//! RK4 integration of the field and its log-density (SPEC §3.3): forward (z → φ),
//! the exact inverse of the discrete forward map, and plain backward RK4 integration.

use super::vector_field::{VectorField, Work};
use crate::error::{Error, Result, Status};
use crate::real::Real;

/// Stage buffers for one chunk.
pub struct Stages<R: Real> {
    /// Stage points u_1..u_4.
    pub u: [Vec<R>; 4],
    /// Stage slopes k_1..k_4.
    pub k: [Vec<R>; 4],
    /// Stage divergences d_1..d_4.
    pub d: [Vec<f64>; 4],
}

impl<R: Real> Stages<R> {
    /// Buffers for `nb` fields of volume `v`.
    pub fn new(nb: usize, v: usize) -> Self {
        let z = || vec![R::zero(); nb * v];
        let zd = || vec![0.0; nb];
        Stages { u: [z(), z(), z(), z()], k: [z(), z(), z(), z()], d: [zd(), zd(), zd(), zd()] }
    }
}

/// Evaluates the four RK4 stages of step `n` from `phi` (nb × V). With `back` the step
/// runs backwards in time, from t_{n+1} to t_n (for the plain backward integration).
pub fn stages<R: Real>(field: &VectorField<R>, n: usize, phi: &[R], st: &mut Stages<R>, w: &mut Work<R>, back: bool) {
    stages_upto(field, n, phi, st, w, back, 4)
}

/// The first `count` stages only (back-propagation needs the points u_1..u_4, so k_4 can be skipped).
pub fn stages_upto<R: Real>(
    field: &VectorField<R>,
    n: usize,
    phi: &[R],
    st: &mut Stages<R>,
    w: &mut Work<R>,
    back: bool,
    count: usize,
) {
    let n_steps = field.arch.ode_steps;
    let h = R::of(if back { -1.0 } else { 1.0 } / n_steps as f64);
    let half = h * R::of(0.5);
    let len = phi.len();
    let (s0, s1, s2) = if back { (2 * n + 2, 2 * n + 1, 2 * n) } else { (2 * n, 2 * n + 1, 2 * n + 2) };
    st.u[0][..len].copy_from_slice(phi);
    let slots = [s0, s1, s1, s2];
    let coef = [R::zero(), half, half, h];
    for i in 0..4 {
        if i == count {
            // the point u_count is still wanted, its slope is not
            let (prev, cur) = st.u.split_at_mut(i);
            let _ = prev;
            for ((u, &p), &k) in cur[0][..len].iter_mut().zip(phi).zip(&st.k[i - 1][..len]) {
                *u = p + coef[i] * k;
            }
            return;
        }
        if i > 0 {
            let (prev, cur) = st.u.split_at_mut(i);
            let _ = prev;
            let kprev = &st.k[i - 1];
            for ((u, &p), &k) in cur[0][..len].iter_mut().zip(phi).zip(&kprev[..len]) {
                *u = p + coef[i] * k;
            }
        }
        let (u, k, d) = (&st.u[i], &mut st.k[i], &mut st.d[i]);
        let bank = VectorField::bank_for(w, i);
        field.eval(slots[i], &u[..len], &mut k[..len], d, w, bank);
    }
}

/// The RK4 increment h/6 (k1 + 2k2 + 2k3 + k4) added to `base`, into `out`; returns nothing.
/// Used identically by the forward map and its inverse.
#[inline]
pub fn combine<R: Real>(h: R, base: &[R], st: &Stages<R>, out: &mut [R]) {
    let h6 = h / R::of(6.0);
    let two = R::of(2.0);
    for (i, o) in out.iter_mut().enumerate() {
        *o = base[i] + h6 * (st.k[0][i] + two * st.k[1][i] + two * st.k[2][i] + st.k[3][i]);
    }
}

/// The divergence increment h/6 (d1 + 2d2 + 2d3 + d4) of field b.
#[inline]
pub fn div_increment<R: Real>(h: f64, st: &Stages<R>, b: usize) -> f64 {
    h / 6.0 * (st.d[0][b] + 2.0 * st.d[1][b] + 2.0 * st.d[2][b] + st.d[3][b])
}

/// Integrates a chunk z (nb × V) forward: φ(1) into `phi`, and −∫ ∇·f dt into `neg_div`.
/// If `store` is given, the state at the start of every step is kept there (N_t × nb × V).
pub fn forward<R: Real>(
    field: &VectorField<R>,
    z: &[R],
    phi: &mut [R],
    neg_div: &mut [f64],
    mut store: Option<&mut Vec<R>>,
    w: &mut Work<R>,
) {
    let v = field.lattice.volume();
    let nb = z.len() / v;
    let n_steps = field.arch.ode_steps;
    let h = 1.0 / n_steps as f64;
    let mut st = Stages::new(nb, v);
    let mut cur = z.to_vec();
    neg_div[..nb].iter_mut().for_each(|x| *x = 0.0);
    if let Some(s) = store.as_deref_mut() {
        s.clear();
        s.reserve(n_steps * nb * v);
    }
    for n in 0..n_steps {
        if let Some(s) = store.as_deref_mut() {
            s.extend_from_slice(&cur);
        }
        stages(field, n, &cur, &mut st, w, false);
        combine(R::of(h), &cur, &st, &mut phi[..nb * v]);
        for (b, nd) in neg_div.iter_mut().enumerate().take(nb) {
            *nd -= div_increment(h, &st, b);
        }
        cur.copy_from_slice(&phi[..nb * v]);
    }
    if n_steps == 0 {
        phi[..nb * v].copy_from_slice(z);
    }
}

/// Inverts the discrete forward map: finds z with Φ(z) = φ by solving each step
/// Ψ_n(u) = u + h/6 Σ c_i k_i(u) = φ_{n+1} by fixed-point iteration, started from one
/// backward RK4 step, until the update is below `tol` (absolute, per site).
/// Returns the maximum number of iterations any step needed.
pub fn invert<R: Real>(field: &VectorField<R>, phi: &[R], z: &mut [R], tol: f64, w: &mut Work<R>) -> Result<usize> {
    let v = field.lattice.volume();
    let nb = phi.len() / v;
    let n_steps = field.arch.ode_steps;
    let h = 1.0 / n_steps as f64;
    let mut st = Stages::new(nb, v);
    let mut target = phi.to_vec();
    let mut u = vec![R::zero(); nb * v];
    let mut next = vec![R::zero(); nb * v];
    let mut worst = 0;
    for n in (0..n_steps).rev() {
        // initial guess: one RK4 step backwards in time from φ_{n+1}
        stages(field, n, &target, &mut st, w, true);
        combine(R::of(-h), &target, &st, &mut u);
        let mut it = 0;
        loop {
            it += 1;
            // u ← φ_{n+1} − h/6 Σ c_i k_i(u)
            stages(field, n, &u, &mut st, w, false);
            combine(R::of(h), &u, &st, &mut next);
            let mut delta = 0.0f64;
            for i in 0..nb * v {
                let resid = next[i] - target[i];
                let new = u[i] - resid;
                delta = delta.max((new - u[i]).abs().f64());
                u[i] = new;
            }
            if !delta.is_finite() {
                return Err(Error::new(Status::NonFinite, format!("inverse flow: non-finite value at step {n}")));
            }
            if delta <= tol {
                break;
            }
            if it >= 200 {
                return Err(Error::new(
                    Status::NoConvergence,
                    format!(
                        "inverse flow: step {n} did not converge to {tol:e} in 200 iterations (last update {delta:e})"
                    ),
                ));
            }
        }
        worst = worst.max(it);
        target.copy_from_slice(&u);
    }
    z[..nb * v].copy_from_slice(&target);
    Ok(worst)
}

/// Plain RK4 integration backwards in time from φ(1) to φ(0) (not the exact inverse of the
/// discrete map: its distance from z measures the integrator's O(h⁴) error).
pub fn backward_rk4<R: Real>(field: &VectorField<R>, phi: &[R], z: &mut [R], w: &mut Work<R>) {
    let v = field.lattice.volume();
    let nb = phi.len() / v;
    let n_steps = field.arch.ode_steps;
    let h = 1.0 / n_steps as f64;
    let mut st = Stages::new(nb, v);
    let mut cur = phi.to_vec();
    for n in (0..n_steps).rev() {
        stages(field, n, &cur, &mut st, w, true);
        combine(R::of(-h), &cur, &st, &mut z[..nb * v]);
        cur.copy_from_slice(&z[..nb * v]);
    }
}
