//! Per-configuration measurements of φ⁴ fields, streamed into bins (SPEC §6).

use crate::error::{check_finite, check_len, Error, Result};
use crate::lattice::Lattice;

/// Per-configuration measurements of a sequence of fields on an L × L lattice (SPEC §6):
/// M = (1/V) Σ_x φ_x, |M|, M², M⁴, and the zero-momentum slice correlator
///
///   C̃(t) = (1/L) Σ_{x0} (1/V) Σ_y φ_y φ_{y+(x0,t)},  averaged over both axes,
///
/// so that G̃(t) = ⟨C̃(t)⟩ − ⟨M⟩² and L Σ_{t<L} C̃(t) = V M². It is computed from row and
/// column sums, C̃(t) = (1/(L V)) Σ_j S_j S_{j+t}, in O(V + L²) per field. Since C̃(t) = C̃(L − t)
/// exactly, only t = 0..=⌊L/2⌋ is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurements {
    lattice: Lattice,
    m: Vec<f64>,
    abs_m: Vec<f64>,
    m2: Vec<f64>,
    m4: Vec<f64>,
    /// ctilde[t][i]: C̃(t) of configuration i, t = 0..=⌊L/2⌋.
    ctilde: Vec<Vec<f64>>,
}

impl Measurements {
    /// No measurements yet, for an L × L lattice (L ≥ 2).
    pub fn new(l: usize) -> Result<Self> {
        let lattice = Lattice::new(l)?;
        Ok(Measurements {
            lattice,
            m: Vec::new(),
            abs_m: Vec::new(),
            m2: Vec::new(),
            m4: Vec::new(),
            ctilde: vec![Vec::new(); l / 2 + 1],
        })
    }

    /// Measures one field (length V, x1 fastest, finite entries) and appends the results.
    pub fn push(&mut self, phi: &[f64]) -> Result<()> {
        check_len("Measurements::push: phi", phi.len(), self.lattice.volume())?;
        check_finite("Measurements::push: phi", phi)?;
        self.measure(phi);
        Ok(())
    }

    /// Measures a batch of fields stored one after another (length n·V); nothing is appended
    /// unless the whole batch is valid.
    pub fn push_batch(&mut self, phi: &[f64]) -> Result<()> {
        let v = self.lattice.volume();
        if phi.len() % v != 0 {
            return Err(Error::length("Measurements::push_batch: phi", phi.len(), (phi.len() / v + 1) * v));
        }
        check_finite("Measurements::push_batch: phi", phi)?;
        for field in phi.chunks_exact(v) {
            self.measure(field);
        }
        Ok(())
    }

    fn measure(&mut self, phi: &[f64]) {
        let l = self.lattice.size();
        let v = self.lattice.volume();
        let mut rows = vec![0.0; l]; // R_{x0} = Σ_{x1} φ(x0, x1)
        let mut cols = vec![0.0; l]; // S_{x1} = Σ_{x0} φ(x0, x1)
        for (x0, row) in phi.chunks_exact(l).enumerate() {
            for (x1, &p) in row.iter().enumerate() {
                rows[x0] += p;
                cols[x1] += p;
            }
        }
        let m = rows.iter().sum::<f64>() / v as f64;
        let norm = 1.0 / (2.0 * (l * v) as f64);
        for (t, series) in self.ctilde.iter_mut().enumerate() {
            let mut c = 0.0;
            for j in 0..l {
                let k = (j + t) % l;
                c += rows[j] * rows[k] + cols[j] * cols[k];
            }
            series.push(c * norm);
        }
        let m2 = m * m;
        self.m.push(m);
        self.abs_m.push(m.abs());
        self.m2.push(m2);
        self.m4.push(m2 * m2);
    }

    /// The lattice size L.
    pub fn l(&self) -> usize {
        self.lattice.size()
    }
    /// The number of configurations measured.
    pub fn len(&self) -> usize {
        self.m.len()
    }
    /// Whether no configuration has been measured.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }
    /// The series of M = (1/V) Σ_x φ_x.
    pub fn m(&self) -> &[f64] {
        &self.m
    }
    /// The series of |M|.
    pub fn abs_m(&self) -> &[f64] {
        &self.abs_m
    }
    /// The series of M².
    pub fn m2(&self) -> &[f64] {
        &self.m2
    }
    /// The series of M⁴.
    pub fn m4(&self) -> &[f64] {
        &self.m4
    }
    /// The series of C̃(t) for any t (taken mod L; C̃(t) = C̃(L − t)).
    pub fn ctilde(&self, t: usize) -> &[f64] {
        let l = self.lattice.size();
        let t = t % l;
        &self.ctilde[t.min(l - t)]
    }
}
