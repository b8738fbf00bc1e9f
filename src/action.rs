//! The φ⁴ action and its force (SPEC §2), batched over fields stored one after another.
//!
//! S(φ) = Σ_x [ Σ_μ (φ_{x+μ̂} − φ_x)² + m² φ_x² + λ φ_x⁴ ]   (no factor ½ on the kinetic term)
//! ∂S/∂φ_x = 2(−Δφ)_x + 2 m² φ_x + 4 λ φ_x³

use crate::error::{check_len, Error, Result};
use crate::lattice::Lattice;

/// Couplings (m², λ) of the φ⁴ theory in the convention of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Couplings {
    /// The bare mass squared m² (may be negative).
    pub m2: f64,
    /// The quartic coupling λ ≥ 0.
    pub lambda: f64,
}

impl Couplings {
    /// Validated couplings: finite, λ ≥ 0, and a bounded-below action.
    pub fn new(m2: f64, lambda: f64) -> Result<Self> {
        if !m2.is_finite() || !lambda.is_finite() {
            return Err(Error::invalid(format!("couplings m2 = {m2}, lambda = {lambda}: must be finite")));
        }
        if lambda < 0.0 {
            return Err(Error::invalid(format!("coupling lambda = {lambda}: must be >= 0")));
        }
        if lambda == 0.0 && m2 <= 0.0 {
            return Err(Error::invalid(format!(
                "couplings m2 = {m2}, lambda = 0: the free theory needs m2 > 0 to be normalisable"
            )));
        }
        Ok(Couplings { m2, lambda })
    }
    /// The hopping form (κ, λ̃) converted to (m², λ) with φ = √κ ϕ:
    /// 2λ̃ + (4 + m²)κ = 1, λ = λ̃/κ² (2D). (SPEC §2 prints 2λ̃κ²; substituting φ = √κ ϕ
    /// into the action gives 2λ̃, which is also what its own m² = −4 example satisfies.)
    pub fn from_hopping(kappa: f64, lambda_tilde: f64) -> Result<Self> {
        if !(kappa.is_finite() && kappa > 0.0) {
            return Err(Error::invalid(format!("hopping parameter kappa = {kappa}: must be finite and > 0")));
        }
        let m2 = (1.0 - 2.0 * lambda_tilde) / kappa - 4.0;
        Self::new(m2, lambda_tilde / (kappa * kappa))
    }
    /// The paper's couplings on the m² = −4 line for the preset lattice sizes (SPEC §2).
    pub fn preset(l: usize) -> Option<Self> {
        let lambda = match l {
            6 => 6.975,
            8 => 6.008,
            10 => 5.550,
            12 => 5.276,
            14 => 5.113,
            20 => 4.807,
            32 => 4.572,
            64 => 4.398,
            _ => return None,
        };
        Some(Couplings { m2: -4.0, lambda })
    }
}

/// The φ⁴ action on a lattice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Action {
    /// The lattice.
    pub lattice: Lattice,
    /// The couplings.
    pub couplings: Couplings,
}

impl Action {
    /// An action on `lattice` with `couplings`.
    pub fn new(lattice: Lattice, couplings: Couplings) -> Self {
        Action { lattice, couplings }
    }

    /// S of one field (length V).
    pub fn action_one(&self, phi: &[f64]) -> f64 {
        let l = self.lattice.size();
        let (m2, lam) = (self.couplings.m2, self.couplings.lambda);
        let mut s = 0.0;
        for x0 in 0..l {
            let row = &phi[x0 * l..(x0 + 1) * l];
            let next_row = &phi[((x0 + 1) % l) * l..((x0 + 1) % l + 1) * l];
            for x1 in 0..l {
                let p = row[x1];
                let d0 = next_row[x1] - p;
                let d1 = row[(x1 + 1) % l] - p;
                let p2 = p * p;
                s += d0 * d0 + d1 * d1 + m2 * p2 + lam * p2 * p2;
            }
        }
        s
    }

    /// ∂S/∂φ of one field into `force` (length V).
    pub fn force_one(&self, phi: &[f64], force: &mut [f64]) {
        let l = self.lattice.size();
        let (m2, lam) = (self.couplings.m2, self.couplings.lambda);
        for x0 in 0..l {
            let up = ((x0 + 1) % l) * l;
            let dn = ((x0 + l - 1) % l) * l;
            for x1 in 0..l {
                let i = x0 * l + x1;
                let p = phi[i];
                let nb = phi[up + x1] + phi[dn + x1] + phi[x0 * l + (x1 + 1) % l] + phi[x0 * l + (x1 + l - 1) % l];
                force[i] = 2.0 * (4.0 * p - nb) + 2.0 * m2 * p + 4.0 * lam * p * p * p;
            }
        }
    }

    /// S of each of a batch of fields (`phi.len() = n·V`, `out.len() = n`).
    pub fn action_batch(&self, phi: &[f64], out: &mut [f64]) -> Result<()> {
        let v = self.lattice.volume();
        check_len("action_batch: phi", phi.len(), out.len() * v)?;
        for (o, p) in out.iter_mut().zip(phi.chunks_exact(v)) {
            *o = self.action_one(p);
        }
        Ok(())
    }

    /// ∂S/∂φ of a batch of fields (`force.len() = phi.len() = n·V`).
    pub fn force_batch(&self, phi: &[f64], force: &mut [f64]) -> Result<()> {
        let v = self.lattice.volume();
        check_len("force_batch: force", force.len(), phi.len())?;
        if phi.len() % v != 0 {
            return Err(Error::length("force_batch: phi", phi.len(), (phi.len() / v + 1) * v));
        }
        for (f, p) in force.chunks_exact_mut(v).zip(phi.chunks_exact(v)) {
            self.force_one(p, f);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_field(v: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..v)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn force_is_gradient_of_action() {
        for l in [2, 3, 5, 6] {
            let a = Action::new(Lattice::new(l).unwrap(), Couplings::new(-4.0, 6.975).unwrap());
            let v = l * l;
            let phi = test_field(v, l as u64);
            let mut f = vec![0.0; v];
            a.force_one(&phi, &mut f);
            for i in 0..v {
                let h = 1e-5;
                let mut p = phi.clone();
                p[i] += h;
                let sp = a.action_one(&p);
                p[i] -= 2.0 * h;
                let sm = a.action_one(&p);
                let fd = (sp - sm) / (2.0 * h);
                assert!((fd - f[i]).abs() < 1e-7 * (1.0 + f[i].abs()), "L={l} i={i}: {fd} vs {}", f[i]);
            }
        }
    }

    #[test]
    fn action_matches_laplacian_form() {
        // S = Σ φ(−Δφ) + m²φ² + λφ⁴ (the second line of SPEC §2), summed independently
        let lat = Lattice::new(4).unwrap();
        let c = Couplings::new(0.7, 0.3).unwrap();
        let a = Action::new(lat, c);
        let phi = test_field(16, 9);
        let mut s = 0.0;
        for i in 0..16 {
            let mut lap = 4.0 * phi[i];
            for d in 0..2 {
                lap -= phi[lat.neighbour(i, d, true)] + phi[lat.neighbour(i, d, false)];
            }
            s += phi[i] * lap + c.m2 * phi[i].powi(2) + c.lambda * phi[i].powi(4);
        }
        assert!((s - a.action_one(&phi)).abs() < 1e-12);
    }

    #[test]
    fn hopping_conversion_on_the_m2_minus_4_line() {
        // λ̃ = ½ and κ = 1/√(2λ) give m² = −4 (SPEC §2)
        let lam: f64 = 5.276;
        let c = Couplings::from_hopping(1.0 / (2.0 * lam).sqrt(), 0.5).unwrap();
        assert!((c.m2 + 4.0).abs() < 1e-12 && (c.lambda - lam).abs() < 1e-12);
        assert!(Couplings::new(f64::NAN, 1.0).is_err());
        assert!(Couplings::new(1.0, -1.0).is_err());
        assert!(Couplings::new(-1.0, 0.0).is_err());
    }
}
