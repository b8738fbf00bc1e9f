//! The flow's parameters as one flat f64 vector with named groups, and their initialisation.

use super::config::{Architecture, KernelSymmetry, OmegaInit};
use crate::lattice::Lattice;
use crate::rng::{Rng, Stream};
use std::ops::Range;

/// Where each parameter group sits in the flat vector, and the sizes that define it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Number of kernel parameters per (time channel, feature channel): orbits or displacements.
    pub n_orb: usize,
    /// Time channels.
    pub n_tc: usize,
    /// Feature channels.
    pub n_c: usize,
    /// Raw features per site.
    pub n_h: usize,
    /// Time-kernel size d_t.
    pub d_t: usize,
    /// W[o][a][c] at (o·n_tc + a)·n_c + c.
    pub w: Range<usize>,
    /// ω_b.
    pub omega: Range<usize>,
    /// F[c][j] (feature mixing), if any.
    pub f: Option<Range<usize>>,
    /// T[a][k] (time mixing), if any.
    pub t: Option<Range<usize>>,
    /// Total number of parameters.
    pub total: usize,
    /// The orbit (or displacement) of each displacement r.
    pub orbit_of: Vec<usize>,
}

impl Layout {
    /// The layout for an architecture on a lattice (the architecture must be valid).
    pub fn new(arch: &Architecture, lattice: &Lattice) -> Self {
        let (n_orb, orbit_of) = match arch.symmetry {
            KernelSymmetry::Full => (lattice.orbit_count(), lattice.displacement_orbits()),
            KernelSymmetry::Translations => (lattice.volume(), (0..lattice.volume()).collect()),
        };
        let (n_tc, n_c, n_h, d_t) =
            (arch.n_time_channels(), arch.n_channels(), arch.n_raw_features(), arch.time_kernel_size);
        let mut at = 0;
        let mut take = |n: usize| {
            let r = at..at + n;
            at += n;
            r
        };
        let w = take(n_orb * n_tc * n_c);
        let omega = take(arch.n_frequencies);
        let f = arch.feature_mixing.map(|m| take(m * n_h));
        let t = arch.time_mixing.map(|m| take(m * d_t));
        Layout { n_orb, n_tc, n_c, n_h, d_t, w, omega, f, t, total: at, orbit_of }
    }
    /// Names and ranges of the groups present.
    pub fn groups(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut g = vec![("W", self.w.clone()), ("omega", self.omega.clone())];
        if let Some(f) = &self.f {
            g.push(("F", f.clone()));
        }
        if let Some(t) = &self.t {
            g.push(("T", t.clone()));
        }
        g
    }
}

/// Initial parameters: W = 0 (the identity flow), ω per the architecture,
/// mixing matrices with orthonormal rows (or columns, whichever are fewer).
pub fn initial(arch: &Architecture, layout: &Layout, seed: u64) -> Vec<f64> {
    let mut p = vec![0.0; layout.total];
    let mut noise = vec![0.0; layout.total.max(1)];
    Rng::new(seed, Stream::Init, 0).fill_normal(&mut noise);
    let om = &mut p[layout.omega.clone()];
    match arch.omega_init {
        OmegaInit::Normal => om.copy_from_slice(&noise[layout.omega.clone()]),
        OmegaInit::Uniform05 => {
            let rng = Rng::new(seed, Stream::Init, 1);
            for (b, o) in om.iter_mut().enumerate() {
                *o = 5.0 * (1.0 - rng.uniform(b as u32)); // in (0, 5]
            }
        }
    }
    if let Some(f) = layout.f.clone() {
        orthonormal(&mut p[f.clone()], &noise[f], layout.n_c, layout.n_h);
    }
    if let Some(t) = layout.t.clone() {
        orthonormal(&mut p[t.clone()], &noise[t], layout.n_tc, layout.d_t);
    }
    p
}

/// An m×n matrix with orthonormal rows (m ≤ n) or columns (m > n), by Gram–Schmidt on noise.
fn orthonormal(out: &mut [f64], noise: &[f64], m: usize, n: usize) {
    let (count, len) = if m <= n { (m, n) } else { (n, m) };
    // vectors v_i of length `len`: rows when m ≤ n, else columns
    let get = |i: usize, k: usize| if m <= n { noise[i * n + k] } else { noise[k * n + i] };
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(count);
    for i in 0..count {
        let mut v: Vec<f64> = (0..len).map(|k| get(i, k)).collect();
        for _ in 0..2 {
            for u in &vs {
                let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        vs.push(v);
    }
    for (i, v) in vs.iter().enumerate() {
        for (k, &x) in v.iter().enumerate() {
            if m <= n {
                out[i * n + k] = x;
            } else {
                out[k * n + i] = x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixing_matrices_are_orthonormal() {
        let arch = Architecture::refined();
        let lat = Lattice::new(6).unwrap();
        let lay = Layout::new(&arch, &lat);
        let p = initial(&arch, &lay, 3);
        let f = &p[lay.f.clone().unwrap()];
        for i in 0..lay.n_c {
            for j in 0..lay.n_c {
                let d: f64 = (0..lay.n_h).map(|k| f[i * lay.n_h + k] * f[j * lay.n_h + k]).sum();
                assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(p[lay.w.clone()].iter().all(|&w| w == 0.0));
        assert!(p[lay.omega.clone()].iter().all(|&w| w > 0.0 && w <= 5.0));
        assert_eq!(lay.n_orb, 10);
        assert_eq!(lay.total, 10 * 20 * 20 + 49 + 20 * 50 + 20 * 21);
    }
}
