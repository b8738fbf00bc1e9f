//! The user's conventions at the library boundary: the order of sites in a field buffer and
//! the hopping form of the couplings (SPEC §1–2).
//!
//! Internally every field is φ in the (m², λ) convention, x1 fastest. A flow may be created
//! with other conventions; then every field that crosses the C ABI (samples, log q inputs,
//! chain states, custom-action callbacks) is converted, and log q and S are those of the
//! user's variables:
//!
//! - layouts, for a site x = (x0, x1) of an L × L lattice:
//!   - `X1Fastest` (default, C order): index = x0·L + x1;
//!   - `X0Fastest` (Fortran order): index = x1·L + x0;
//!   - `EvenOdd` (checkerboard): first the ⌈V/2⌉ even sites ((x0 + x1) even), then the odd
//!     ones, each group in x1-fastest order: index = (x0·L + x1) div 2 for even sites when L
//!     is even (in general: the rank of the site among its parity class in x1-fastest order),
//!     plus ⌈V/2⌉ for odd sites;
//! - hopping form S = Σ_x[−2κ Σ_μ ϕ_x ϕ_{x+μ̂} + ϕ_x² + λ̃(ϕ_x² − 1)²]: φ = √κ ϕ, so
//!   log q(ϕ) = log q(φ) + (V/2) log κ and S_hop(ϕ) = S(φ) + V λ̃ (the constant of (ϕ² − 1)²).

use serde::{Deserialize, Serialize};

use crate::action::Couplings;
use crate::error::{Error, Result};

/// The order of the sites of a field in a user buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FieldLayout {
    /// index = x0·L + x1 (C order; the internal layout).
    #[default]
    X1Fastest,
    /// index = x1·L + x0 (Fortran order).
    X0Fastest,
    /// Even sites first, then odd sites, each in x1-fastest order.
    EvenOdd,
}

/// The hopping-form couplings a flow was created with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hopping {
    /// The hopping parameter κ > 0.
    pub kappa: f64,
    /// The quartic coupling λ̃ of (ϕ² − 1)².
    pub lambda_tilde: f64,
}

impl Hopping {
    /// The (m², λ) couplings of the same theory.
    pub fn couplings(&self) -> Result<Couplings> {
        Couplings::from_hopping(self.kappa, self.lambda_tilde)
    }
}

/// A flow's boundary conventions (default: the internal ones, no conversion).
///
/// The standard form is stored as κ = 1, λ̃ = 0, for which every conversion below is exactly the
/// identity, so no conversion reads a value that was never set (an `Option`'s empty payload is
/// uninitialised memory, and an optimised build may evaluate `ln κ` on it before it branches).
/// Saved flows keep the `{layout, hopping: null | {kappa, lambda_tilde}}` form.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredConventions", into = "StoredConventions")]
pub struct Conventions {
    /// Site order of user buffers.
    pub layout: FieldLayout,
    hopping: Hopping,
    hopping_form: bool,
}

/// [`Conventions`] as saved with a flow.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct StoredConventions {
    layout: FieldLayout,
    hopping: Option<Hopping>,
}

impl From<StoredConventions> for Conventions {
    fn from(s: StoredConventions) -> Self {
        Conventions::new(s.layout, s.hopping)
    }
}

impl From<Conventions> for StoredConventions {
    fn from(c: Conventions) -> Self {
        StoredConventions { layout: c.layout, hopping: c.hopping() }
    }
}

impl Default for Conventions {
    fn default() -> Self {
        Conventions::new(FieldLayout::default(), None)
    }
}

impl Conventions {
    /// Conventions with a site order and, if given, hopping-form variables ϕ instead of φ.
    pub fn new(layout: FieldLayout, hopping: Option<Hopping>) -> Self {
        let standard = Hopping { kappa: 1.0, lambda_tilde: 0.0 };
        Conventions { layout, hopping: hopping.unwrap_or(standard), hopping_form: hopping.is_some() }
    }

    /// The hopping-form couplings, if the flow uses hopping-form variables.
    pub fn hopping(&self) -> Option<Hopping> {
        self.hopping_form.then_some(self.hopping)
    }

    /// Whether fields cross the boundary unchanged.
    pub fn is_identity(&self) -> bool {
        self.layout == FieldLayout::X1Fastest && !self.hopping_form
    }

    /// perm[u] = the internal index of the site at user index u.
    pub fn permutation(&self, l: usize) -> Vec<usize> {
        let v = l * l;
        match self.layout {
            FieldLayout::X1Fastest => (0..v).collect(),
            FieldLayout::X0Fastest => (0..v).map(|u| (u % l) * l + u / l).collect(),
            FieldLayout::EvenOdd => {
                let even = (0..v).filter(|i| (i / l + i % l) % 2 == 0);
                let odd = (0..v).filter(|i| (i / l + i % l) % 2 == 1);
                even.chain(odd).collect()
            }
        }
    }

    fn scale(&self) -> f64 {
        self.hopping.kappa.sqrt()
    }

    /// User fields (n·V, user layout and variables) to internal φ (x1 fastest).
    pub fn to_internal(&self, l: usize, user: &[f64]) -> Result<Vec<f64>> {
        self.convert(l, user, true)
    }

    /// Internal φ fields (n·V) to the user's layout and variables.
    pub fn from_internal(&self, l: usize, internal: &[f64]) -> Result<Vec<f64>> {
        self.convert(l, internal, false)
    }

    fn convert(&self, l: usize, x: &[f64], inward: bool) -> Result<Vec<f64>> {
        let v = l * l;
        if x.len() % v != 0 {
            return Err(Error::length("fields (a multiple of V)", x.len(), (x.len() / v + 1) * v));
        }
        if self.is_identity() {
            return Ok(x.to_vec());
        }
        let perm = self.permutation(l);
        let s = if inward { self.scale() } else { 1.0 / self.scale() };
        let mut out = vec![0.0; x.len()];
        for (o, i) in out.chunks_exact_mut(v).zip(x.chunks_exact(v)) {
            for (u, &p) in perm.iter().enumerate() {
                if inward {
                    o[p] = s * i[u];
                } else {
                    o[u] = s * i[p];
                }
            }
        }
        Ok(out)
    }

    /// A force ∂S/∂ϕ in user variables and layout to ∂S/∂φ (internal): ∂S/∂φ = (∂S/∂ϕ)/√κ.
    pub fn force_to_internal(&self, l: usize, user: &[f64]) -> Result<Vec<f64>> {
        let s2 = self.scale() * self.scale();
        let mut f = self.to_internal(l, user)?;
        if s2 != 1.0 {
            f.iter_mut().for_each(|x| *x /= s2);
        }
        Ok(f)
    }

    /// log q of internal φ as log q of the user's variables: + (V/2) log κ.
    pub fn log_q_to_user(&self, v: usize, log_q: f64) -> f64 {
        log_q + 0.5 * v as f64 * self.hopping.kappa.ln()
    }

    /// S(φ) as the user's action of ϕ: + V λ̃.
    pub fn action_to_user(&self, v: usize, s: f64) -> f64 {
        s + v as f64 * self.hopping.lambda_tilde
    }

    /// The user's action of ϕ as S(φ): − V λ̃.
    pub fn action_to_internal(&self, v: usize, s: f64) -> f64 {
        s - v as f64 * self.hopping.lambda_tilde
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::lattice::Lattice;
    use crate::rng::{Rng, Stream};

    fn hopping_action(l: usize, h: Hopping, phi: &[f64]) -> f64 {
        let (k, lt) = (h.kappa, h.lambda_tilde);
        let mut s = 0.0;
        for x0 in 0..l {
            for x1 in 0..l {
                let p = phi[x0 * l + x1];
                let hop = phi[((x0 + 1) % l) * l + x1] + phi[x0 * l + (x1 + 1) % l];
                s += -2.0 * k * p * hop + p * p + lt * (p * p - 1.0).powi(2);
            }
        }
        s
    }

    #[test]
    fn layouts_round_trip_and_follow_their_index_formulas() {
        for l in [2, 3, 4, 5] {
            let v = l * l;
            let mut x = vec![0.0; 2 * v];
            Rng::new(1, Stream::Sample, l as u64).fill_normal(&mut x);
            for layout in [FieldLayout::X1Fastest, FieldLayout::X0Fastest, FieldLayout::EvenOdd] {
                let c = Conventions::new(layout, Some(Hopping { kappa: 0.27, lambda_tilde: 0.5 }));
                let user = c.from_internal(l, &x).unwrap();
                let back = c.to_internal(l, &user).unwrap();
                for (a, b) in back.iter().zip(&x) {
                    assert!((a - b).abs() < 1e-15);
                }
                // index formulas of the documentation
                let s = 1.0 / 0.27f64.sqrt();
                let n_even = v.div_ceil(2);
                for x0 in 0..l {
                    for x1 in 0..l {
                        let u = match layout {
                            FieldLayout::X1Fastest => x0 * l + x1,
                            FieldLayout::X0Fastest => x1 * l + x0,
                            FieldLayout::EvenOdd => {
                                let rank = (0..x0 * l + x1).filter(|i| (i / l + i % l) % 2 == (x0 + x1) % 2).count();
                                rank + if (x0 + x1) % 2 == 0 { 0 } else { n_even }
                            }
                        };
                        if layout == FieldLayout::EvenOdd && l % 2 == 0 {
                            assert_eq!(u % n_even, (x0 * l + x1) / 2);
                        }
                        assert!((user[v + u] - s * x[v + x0 * l + x1]).abs() < 1e-14);
                    }
                }
            }
        }
        let c = Conventions::default();
        assert!(c.from_internal(3, &[0.0; 8]).is_err());
    }

    #[test]
    fn saved_form_is_unchanged_and_the_standard_form_converts_exactly() {
        let d = Conventions::default();
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"layout":"X1Fastest","hopping":null}"#);
        let h = Conventions::new(FieldLayout::EvenOdd, Some(Hopping { kappa: 0.25, lambda_tilde: 0.5 }));
        let js = serde_json::to_string(&h).unwrap();
        assert_eq!(js, r#"{"layout":"EvenOdd","hopping":{"kappa":0.25,"lambda_tilde":0.5}}"#);
        assert_eq!(serde_json::from_str::<Conventions>(&js).unwrap(), h);
        let back: Conventions = serde_json::from_str(r#"{"layout":"X0Fastest","hopping":null}"#).unwrap();
        assert_eq!((back.layout, back.hopping(), back.is_identity()), (FieldLayout::X0Fastest, None, false));
        assert_eq!(h.hopping().map(|h| h.kappa), Some(0.25));
        // the standard form's conversions are the identity to the bit
        for x in [-1234.5678901234, 0.1, 3e-300] {
            assert_eq!(d.log_q_to_user(144, x).to_bits(), x.to_bits());
            assert_eq!(d.action_to_user(144, x).to_bits(), x.to_bits());
            assert_eq!(d.action_to_internal(144, x).to_bits(), x.to_bits());
        }
        assert_eq!(h.log_q_to_user(4, 1.0), 1.0 + 2.0 * 0.25f64.ln());
    }

    #[test]
    fn hopping_form_is_the_same_theory() {
        let l = 4;
        let h = Hopping { kappa: 0.3, lambda_tilde: 0.02 };
        let c = Conventions::new(FieldLayout::X1Fastest, Some(h));
        let action = Action::new(Lattice::new(l).unwrap(), h.couplings().unwrap());
        let mut phi = vec![0.0; l * l];
        Rng::new(2, Stream::Sample, 0).fill_normal(&mut phi);
        let varphi = c.from_internal(l, &phi).unwrap();
        let s = action.action_one(&phi);
        let s_hop = hopping_action(l, h, &varphi);
        assert!((c.action_to_user(l * l, s) - s_hop).abs() < 1e-10 * s_hop.abs().max(1.0), "{s} vs {s_hop}");
        // the force: ∂S_hop/∂ϕ by finite differences, converted, equals ∂S/∂φ
        let mut f = vec![0.0; l * l];
        action.force_batch(&phi, &mut f).unwrap();
        let mut fu = vec![0.0; l * l];
        for i in 0..l * l {
            let mut p = varphi.clone();
            p[i] += 1e-6;
            let up = hopping_action(l, h, &p);
            p[i] -= 2e-6;
            fu[i] = (up - hopping_action(l, h, &p)) / 2e-6;
        }
        let fi = c.force_to_internal(l, &fu).unwrap();
        for (a, b) in fi.iter().zip(&f) {
            assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
