//! Geometry of the periodic L × L lattice (SPEC §1): layout, neighbours,
//! the 8·L² lattice symmetries acting on fields, and D4 orbits of displacements.

use crate::error::{Error, Result};

/// A periodic square lattice Z_L × Z_L with sites stored x1-fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lattice {
    l: usize,
}

/// One of the 8 elements of D4 acting on displacements or sites (mod L):
/// optionally swap the two axes, then optionally negate each axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct D4 {
    /// Swap (r0, r1) → (r1, r0) first.
    pub swap: bool,
    /// Then negate axis 0.
    pub neg0: bool,
    /// Then negate axis 1.
    pub neg1: bool,
}

impl D4 {
    /// All 8 group elements.
    pub fn all() -> [D4; 8] {
        let mut out = [D4 { swap: false, neg0: false, neg1: false }; 8];
        for (i, g) in out.iter_mut().enumerate() {
            *g = D4 { swap: i & 1 != 0, neg0: i & 2 != 0, neg1: i & 4 != 0 };
        }
        out
    }
}

/// A lattice symmetry: x ↦ g(x) + shift (mod L), and optionally φ ↦ −φ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symmetry {
    /// The point-group part.
    pub g: D4,
    /// The translation applied after g.
    pub shift: (usize, usize),
    /// Whether the field is negated (the global Z2).
    pub flip: bool,
}

impl Lattice {
    /// A lattice of side `l` (≥ 2).
    pub fn new(l: usize) -> Result<Self> {
        if l < 2 {
            return Err(Error::invalid(format!("lattice size L = {l}: must be at least 2")));
        }
        if l > 4096 {
            return Err(Error::invalid(format!("lattice size L = {l}: larger than 4096")));
        }
        Ok(Lattice { l })
    }
    /// The side L.
    pub fn size(&self) -> usize {
        self.l
    }
    /// The number of sites V = L².
    pub fn volume(&self) -> usize {
        self.l * self.l
    }
    /// index(x0, x1) = x0·L + x1 (SPEC §1).
    #[inline]
    pub fn index(&self, x0: usize, x1: usize) -> usize {
        x0 * self.l + x1
    }
    /// The coordinates of a site index.
    #[inline]
    pub fn coords(&self, i: usize) -> (usize, usize) {
        (i / self.l, i % self.l)
    }
    /// Index of the neighbour x + μ̂ (dir 0 or 1) or x − μ̂ (`forward = false`).
    #[inline]
    pub fn neighbour(&self, i: usize, dir: usize, forward: bool) -> usize {
        let (x0, x1) = self.coords(i);
        let l = self.l;
        let step = |x: usize| if forward { (x + 1) % l } else { (x + l - 1) % l };
        if dir == 0 {
            self.index(step(x0), x1)
        } else {
            self.index(x0, step(x1))
        }
    }
    /// Applies a D4 element to a displacement or site (mod L).
    #[inline]
    pub fn apply_d4(&self, g: D4, r: (usize, usize)) -> (usize, usize) {
        let l = self.l;
        let (mut a, mut b) = if g.swap { (r.1, r.0) } else { r };
        if g.neg0 {
            a = (l - a) % l;
        }
        if g.neg1 {
            b = (l - b) % l;
        }
        (a, b)
    }
    /// Number of D4 orbits of displacements: (⌊L/2⌋+1)(⌊L/2⌋+2)/2.
    pub fn orbit_count(&self) -> usize {
        let m = self.l / 2;
        (m + 1) * (m + 2) / 2
    }
    /// The orbit of each displacement r (indexed like a site), orbit 0 being r = 0.
    /// Orbits are numbered by their canonical representative (a ≤ b ≤ ⌊L/2⌋),
    /// with a, b the folded distances along the two axes.
    pub fn displacement_orbits(&self) -> Vec<usize> {
        let l = self.l;
        let m = l / 2;
        let fold = |r: usize| r.min(l - r);
        (0..self.volume())
            .map(|i| {
                let (r0, r1) = self.coords(i);
                let (u, v) = (fold(r0), fold(r1));
                let (a, b) = if u <= v { (u, v) } else { (v, u) };
                // canonical (a, b) with a ≤ b ≤ m, enumerated by b then a
                debug_assert!(b <= m);
                b * (b + 1) / 2 + a
            })
            .collect()
    }
    /// Applies a symmetry to a field: out at s(x) is ±φ at x.
    pub fn transform(&self, s: Symmetry, phi: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; phi.len()];
        let sign = if s.flip { -1.0 } else { 1.0 };
        for (i, &v) in phi.iter().enumerate() {
            let (a, b) = self.apply_d4(s.g, self.coords(i));
            let j = self.index((a + s.shift.0) % self.l, (b + s.shift.1) % self.l);
            out[j] = sign * v;
        }
        out
    }
    /// All 8·L² lattice symmetries (without the flip), duplicates included at L = 2.
    pub fn symmetries(&self) -> Vec<Symmetry> {
        let mut out = Vec::with_capacity(8 * self.volume());
        for g in D4::all() {
            for s0 in 0..self.l {
                for s1 in 0..self.l {
                    out.push(Symmetry { g, shift: (s0, s1), flip: false });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orbit_count_matches_formula_and_enumeration() {
        for l in 2..=13 {
            let lat = Lattice::new(l).unwrap();
            let orb = lat.displacement_orbits();
            let mut seen: Vec<usize> = orb.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), lat.orbit_count(), "L = {l}");
            assert_eq!(seen, (0..lat.orbit_count()).collect::<Vec<_>>());
            assert_eq!(orb[0], 0);
            // orbits are exactly the D4 images: constant on images, and two displacements
            // in one orbit are related by some g
            for i in 0..lat.volume() {
                let r = lat.coords(i);
                for g in D4::all() {
                    let (a, b) = lat.apply_d4(g, r);
                    assert_eq!(orb[lat.index(a, b)], orb[i]);
                }
                for j in 0..lat.volume() {
                    if orb[i] == orb[j] {
                        let rj = lat.coords(j);
                        assert!(D4::all().iter().any(|&g| lat.apply_d4(g, r) == rj));
                    }
                }
            }
        }
        assert_eq!(Lattice::new(6).unwrap().orbit_count(), 10);
        assert_eq!(Lattice::new(12).unwrap().orbit_count(), 28);
        assert_eq!(Lattice::new(32).unwrap().orbit_count(), 153);
    }

    #[test]
    fn symmetries_are_bijections_and_neighbours_periodic() {
        let lat = Lattice::new(5).unwrap();
        let phi: Vec<f64> = (0..25).map(|i| i as f64).collect();
        for s in lat.symmetries() {
            let mut t = lat.transform(s, &phi);
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(t, phi);
        }
        assert_eq!(lat.neighbour(lat.index(4, 2), 0, true), lat.index(0, 2));
        assert_eq!(lat.neighbour(lat.index(3, 0), 1, false), lat.index(3, 4));
        assert!(Lattice::new(1).is_err());
    }
}
