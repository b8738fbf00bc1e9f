//! Exact gradients of the reverse-KL loss of the *discretised* flow (SPEC §4):
//! back-propagation through the RK4 steps, recomputing each step's stages from the
//! stored step-start state (memory N_t × nb × V per chunk, not 4·N_t × ...). The forward and
//! backward passes are separate so that the action and its force, which a host may supply as
//! a callback, are evaluated between them on the calling thread.

use super::ode::{combine, div_increment, forward, stages_upto, Stages};
use super::vector_field::{VectorField, Work};
use crate::real::Real;

/// What the forward pass of one chunk keeps for back-propagation.
pub struct Tape<R: Real> {
    /// The prior draws (nb × V).
    pub z: Vec<R>,
    /// The state at the start of every step (N_t × nb × V).
    pub store: Vec<R>,
    /// φ(1) (nb × V).
    pub phi: Vec<R>,
    /// log q of each field.
    pub log_q: Vec<f64>,
    /// The score ∇_φ log q at φ(1) (nb × V), when the forward pass was asked for it (path
    /// gradients); empty otherwise.
    pub score: Vec<R>,
}

/// log r(z) of a standard normal prior on V sites.
pub fn log_prior<R: Real>(z: &[R]) -> f64 {
    let v = z.len() as f64;
    -0.5 * z.iter().map(|&x| x.f64() * x.f64()).sum::<f64>() - 0.5 * v * (2.0 * std::f64::consts::PI).ln()
}

/// Integrates a chunk of prior draws forward, keeping what back-propagation needs.
pub fn forward_tape<R: Real>(field: &VectorField<R>, z: Vec<R>, w: &mut Work<R>) -> Tape<R> {
    let v = field.lattice.volume();
    let nb = z.len() / v;
    let mut store = Vec::new();
    let mut phi = vec![R::zero(); nb * v];
    let mut neg_div = vec![0.0; nb];
    forward(field, &z, &mut phi, &mut neg_div, Some(&mut store), w);
    let log_q = (0..nb).map(|b| log_prior(&z[b * v..(b + 1) * v]) + neg_div[b]).collect();
    Tape { z, store, phi, log_q, score: Vec::new() }
}

/// As [`forward_tape`], also integrating the score a(t) = ∇_φ log q_t(φ(t)) along each
/// trajectory, from a(0) = ∇ log r(z) = −z by the same RK4 steps as the field:
///
/// ```text
/// da/dt = −(∂f/∂φ)ᵀ a − ∇_φ (∇·f),
/// ```
///
/// each stage's right-hand side one vector-Jacobian product of the vector field (k̄ = a,
/// d̄ = 1), so the pass costs about a forward and a backward pass. The result is the score of
/// the continuous flow integrated by RK4: it differs from the gradient of the discrete map's
/// log q by O(h⁴), like the discretisation gap (`flow::gap`). One feature bank in `w` is
/// enough (`VectorField::work`): each stage's product follows its evaluation.
pub fn forward_tape_score<R: Real>(field: &VectorField<R>, z: Vec<R>, w: &mut Work<R>) -> Tape<R> {
    let v = field.lattice.volume();
    let len = z.len();
    let nb = len / v;
    let n_steps = field.arch.ode_steps;
    let h = 1.0 / n_steps as f64;
    let hr = R::of(h);
    let coef = [R::zero(), R::of(0.5) * hr, R::of(0.5) * hr, hr];
    let mut store = Vec::with_capacity(n_steps * len);
    let mut st = Stages::new(nb, v);
    let mut cur = z.clone();
    let mut a: Vec<R> = z.iter().map(|&x| -x).collect();
    let mut ai = vec![R::zero(); len];
    let mut m: [Vec<R>; 4] = std::array::from_fn(|_| vec![R::zero(); len]);
    let ones = vec![1.0; nb];
    let mut neg_div = vec![0.0; nb];
    let mut next = vec![R::zero(); len];
    for n in 0..n_steps {
        store.extend_from_slice(&cur);
        let slots = [2 * n, 2 * n + 1, 2 * n + 1, 2 * n + 2];
        for i in 0..4 {
            if i == 0 {
                st.u[0].copy_from_slice(&cur);
                ai.copy_from_slice(&a);
            } else {
                for (((u, &p), &k), (x, (&a0, &mp))) in
                    st.u[i].iter_mut().zip(&cur).zip(&st.k[i - 1]).zip(ai.iter_mut().zip(a.iter().zip(&m[i - 1])))
                {
                    *u = p + coef[i] * k;
                    *x = a0 + coef[i] * mp;
                }
            }
            let bank = VectorField::bank_for(w, i);
            field.eval(slots[i], &st.u[i], &mut st.k[i], &mut st.d[i], w, bank);
            // right after eval the bank holds this stage's features
            let mi = &mut m[i];
            mi.iter_mut().for_each(|x| *x = R::zero());
            field.vjp(slots[i], &st.u[i], &ai, &ones, mi, None, w, bank, false);
            mi.iter_mut().for_each(|x| *x = -*x);
        }
        combine(hr, &cur, &st, &mut next);
        std::mem::swap(&mut cur, &mut next);
        let h6 = hr / R::of(6.0);
        let two = R::of(2.0);
        for (j, x) in a.iter_mut().enumerate() {
            *x = *x + h6 * (m[0][j] + two * m[1][j] + two * m[2][j] + m[3][j]);
        }
        for (b, nd) in neg_div.iter_mut().enumerate() {
            *nd -= div_increment(h, &st, b);
        }
    }
    let log_q = (0..nb).map(|b| log_prior(&z[b * v..(b + 1) * v]) + neg_div[b]).collect();
    Tape { z, store, phi: cur, log_q, score: a }
}

/// Back-propagates through a chunk's RK4 steps: given φ̄ = ∂L/∂φ(1) (nb × V) and the weight
/// of log q in the loss, accumulates ∂L/∂θ into `grad`.
pub fn backward<R: Real>(
    field: &VectorField<R>,
    tape: &Tape<R>,
    phibar: &[R],
    weight: f64,
    grad: &mut [f64],
    w: &mut Work<R>,
) {
    let v = field.lattice.volume();
    let nb = tape.phi.len() / v;
    let n_steps = field.arch.ode_steps;
    let h = 1.0 / n_steps as f64;
    let store = &tape.store;
    let mut phibar = phibar.to_vec();
    // ℓ̄ = weight; the divergence enters log q with coefficient −h/6 · c_i
    let c = [1.0, 2.0, 2.0, 1.0];
    let hr = R::of(h);
    let h6 = R::of(h / 6.0);
    let mut st = Stages::new(nb, v);
    let mut acc = vec![R::zero(); nb * v];
    let mut kbar = vec![R::zero(); nb * v];
    let mut ubar = vec![R::zero(); nb * v];
    let mut dbar = vec![0.0; nb];
    for n in (0..n_steps).rev() {
        let start = &store[n * nb * v..(n + 1) * nb * v];
        stages_upto(field, n, start, &mut st, w, false, 3);
        acc.copy_from_slice(&phibar);
        let slots = [2 * n, 2 * n + 1, 2 * n + 1, 2 * n + 2];
        // stage i's point is u_i = φ_n + a_i·h·k_{i−1}, a = (0, ½, ½, 1)
        let a_next = [R::of(0.5), R::of(0.5), R::one()];
        let mut carry: Option<usize> = None; // whether ū of stage i+1 feeds k̄_i
        for i in (0..4).rev() {
            for (kb, &pb) in kbar.iter_mut().zip(&phibar) {
                *kb = h6 * R::of(c[i]) * pb;
            }
            if let Some(j) = carry {
                let coef = a_next[j - 1] * hr;
                for (kb, &ub) in kbar.iter_mut().zip(&ubar) {
                    *kb = *kb + coef * ub;
                }
            }
            dbar.iter_mut().for_each(|d| *d = -h / 6.0 * c[i] * weight);
            ubar.iter_mut().for_each(|u| *u = R::zero());
            // stages 1–3 were just evaluated: their features are in their banks if cached
            let bank = VectorField::bank_for(w, i);
            let fresh = i == 3 || !VectorField::caches_stages(w);
            field.vjp(slots[i], &st.u[i], &kbar, &dbar, &mut ubar, Some(&mut *grad), w, bank, fresh);
            for (a, &ub) in acc.iter_mut().zip(&ubar) {
                *a = *a + ub;
            }
            carry = Some(i);
        }
        phibar.copy_from_slice(&acc);
    }
}
