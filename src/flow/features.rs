//! Site-wise features h_j(φ) of the field, their derivatives, and their backward pass (SPEC §3.1–3.2).
//!
//! Rows j of h for one field (each of length V):
//! - odd:     sin(ω_b φ) for b < n_ω, then φ if the linear feature is on;
//! - non-odd: sin(ω_b φ), then cos(ω_b φ), then the constant 1, then φ if linear.

use super::config::FeatureKind;
use crate::real::Real;

/// The feature definition: kind, frequencies and the linear feature.
#[derive(Debug, Clone)]
pub struct Features<R: Real> {
    /// Odd or non-odd.
    pub kind: FeatureKind,
    /// Frequencies ω_b.
    pub omega: Vec<R>,
    /// Whether the last row is φ itself.
    pub linear: bool,
}

impl<R: Real> Features<R> {
    /// Number of rows n_h.
    pub fn n_rows(&self) -> usize {
        let n = self.omega.len();
        (match self.kind {
            FeatureKind::Odd => n,
            FeatureKind::NonOdd => 2 * n + 1,
        }) + self.linear as usize
    }

    /// h and h' = dh/dφ of one field `u` (length V) into `h`, `hp` (n_h × V each).
    /// `cos` (n_ω × V) keeps cos(ω_b u) for the backward pass.
    pub fn eval(&self, u: &[R], h: &mut [R], hp: &mut [R], cos: &mut [R]) {
        let v = u.len();
        let n = self.omega.len();
        for (b, &w) in self.omega.iter().enumerate() {
            let arg = &mut hp[b * v..(b + 1) * v];
            for (a, &x) in arg.iter_mut().zip(u) {
                *a = w * x;
            }
            R::sincos(arg, &mut h[b * v..(b + 1) * v], &mut cos[b * v..(b + 1) * v]);
            // h' of sin(ωu) is ω cos(ωu)
            for (p, &c) in arg.iter_mut().zip(&cos[b * v..(b + 1) * v]) {
                *p = w * c;
            }
        }
        let mut row = n;
        if self.kind == FeatureKind::NonOdd {
            for b in 0..n {
                let w = self.omega[b];
                let (hs, hc) = h.split_at_mut((n + b) * v);
                let (ps, pc) = hp.split_at_mut((n + b) * v);
                hc[..v].copy_from_slice(&cos[b * v..(b + 1) * v]);
                // d/du cos(ωu) = −ω sin(ωu)
                for (p, &s) in pc[..v].iter_mut().zip(&hs[b * v..(b + 1) * v]) {
                    *p = -w * s;
                }
                let _ = ps;
            }
            row = 2 * n;
            h[row * v..(row + 1) * v].fill(R::one());
            hp[row * v..(row + 1) * v].fill(R::zero());
            row += 1;
        }
        if self.linear {
            h[row * v..(row + 1) * v].copy_from_slice(u);
            hp[row * v..(row + 1) * v].fill(R::one());
        }
    }

    /// Backward pass of one field. Given hbar = ∂L/∂h (n_h × V), the divergence weights
    /// β_j (the divergence is Σ_j β_j Σ_x h'_j) and its cotangent `dbar`, accumulates
    /// ∂L/∂u into `ubar`, ∂L/∂ω into `omega_bar`, and d̄·Σ_x h'_j into `beta_bar`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        u: &[R],
        h: &[R],
        hp: &[R],
        cos: &[R],
        hbar: &[R],
        beta: &[R],
        dbar: f64,
        ubar: &mut [R],
        omega_bar: &mut [f64],
        beta_bar: &mut [f64],
    ) {
        let v = u.len();
        let n = self.omega.len();
        let db = R::of(dbar);
        let rows = self.n_rows();
        // ū += Σ_j h̄_j h'_j, and β̄_j += d̄ Σ_x h'_j
        for j in 0..rows {
            let (hb, p) = (&hbar[j * v..(j + 1) * v], &hp[j * v..(j + 1) * v]);
            let mut sp = R::zero();
            for ((ub, &a), &b) in ubar.iter_mut().zip(hb).zip(p) {
                *ub = *ub + a * b;
                sp = sp + b;
            }
            beta_bar[j] += dbar * sp.f64();
        }
        for b in 0..n {
            let w = self.omega[b];
            let (s, c) = (&h[b * v..(b + 1) * v], &cos[b * v..(b + 1) * v]);
            // sine row: h'' = −ω² sin; ∂h/∂ω = u cos; ∂h'/∂ω = cos − ω u sin
            let hb = &hbar[b * v..(b + 1) * v];
            let kb = db * beta[b];
            let (mut g1, mut g2) = (R::zero(), R::zero());
            for x in 0..v {
                ubar[x] = ubar[x] - kb * w * w * s[x];
                g1 = g1 + hb[x] * u[x] * c[x];
                g2 = g2 + (c[x] - w * u[x] * s[x]);
            }
            omega_bar[b] += g1.f64() + (kb * g2).f64();
            if self.kind == FeatureKind::NonOdd {
                // cosine row: h'' = −ω² cos; ∂h/∂ω = −u sin; ∂h'/∂ω = −sin − ω u cos
                let hb = &hbar[(n + b) * v..(n + b + 1) * v];
                let kb = db * beta[n + b];
                let (mut g1, mut g2) = (R::zero(), R::zero());
                for x in 0..v {
                    ubar[x] = ubar[x] - kb * w * w * c[x];
                    g1 = g1 - hb[x] * u[x] * s[x];
                    g2 = g2 - (s[x] + w * u[x] * c[x]);
                }
                omega_bar[b] += g1.f64() + (kb * g2).f64();
            }
        }
    }
}
