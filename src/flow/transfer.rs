//! Transfer of a trained flow to a larger lattice (the follow-up's approach) and to a wider
//! architecture.
//!
//! Lattice: the kernel W is indexed by displacement orbits, and an orbit's canonical folded
//! distances (a ≤ b) mean the same displacement on any lattice, so each orbit of the small
//! lattice seeds the same orbit of the large one; orbits that only exist on the large lattice
//! (b > L_small/2) start at zero.
//!
//! Width: more frequencies (their kernel weights and feature-mixing columns start at zero, so
//! they add nothing until trained; their ω are the new flow's initial ones) and a finer time
//! kernel (a hat kernel on d' nodes with d' − 1 a multiple of d − 1 represents every
//! piecewise-linear function of the coarse one exactly; a Fourier kernel of more modes gets
//! zero weights on the new ones). The mixings' normalisations 1/n_h and 1/d_t are compensated.
//! Both keep the vector field, hence the flow, unchanged. Everything else (features, mixing
//! sizes, symmetry) must match.

use super::config::{Architecture, FeatureKind, KernelSymmetry, TimeKernelKind};
use super::model::Flow;
use crate::error::{Error, Result};

impl Flow {
    /// Sets this flow's parameters from `small`, a flow on a lattice no larger than this one,
    /// of the same architecture or a narrower one (fewer frequencies, a coarser time kernel:
    /// see the module docs). The optimiser state and counters start fresh.
    ///
    /// Errors: a larger source lattice, or an architecture that does not embed in this one.
    pub fn transfer_from(&mut self, small: &Flow) -> Result<()> {
        let (ls, l) = (small.lattice.size(), self.lattice.size());
        if ls > l {
            return Err(Error::invalid(format!("transfer: the source lattice L = {ls} is larger than L = {l}")));
        }
        let (a, b) = (&small.config.arch, &self.config.arch);
        check_embeds(a, b)?;
        let rows = feature_rows(a, b);
        let tp = time_map(a, b); // d × d'
        let (sl, ll) = (&small.layout, &self.layout);
        let sp = small.params();
        let mut p = vec![0.0; ll.total];
        // one orbit's block W[a][c] of the source into the block of `dst`
        let mut put = |src: usize, dst: usize| {
            let (s0, d0) = (sl.w.start + src * sl.n_tc * sl.n_c, ll.w.start + dst * ll.n_tc * ll.n_c);
            for ta in 0..sl.n_tc {
                for c in 0..sl.n_c {
                    let v = sp[s0 + ta * sl.n_c + c];
                    let cl = if a.feature_mixing.is_some() { c } else { rows[c] };
                    if a.time_mixing.is_some() {
                        p[d0 + ta * ll.n_c + cl] = v;
                    } else {
                        for (tb, &m) in tp[ta * ll.d_t..(ta + 1) * ll.d_t].iter().enumerate() {
                            p[d0 + tb * ll.n_c + cl] += v * m;
                        }
                    }
                }
            }
        };
        match b.symmetry {
            KernelSymmetry::Full => {
                // orbit index b(b+1)/2 + a is the same on both lattices for b ≤ L_small/2
                for o in 0..sl.n_orb {
                    put(o, o);
                }
            }
            KernelSymmetry::Translations => {
                // displacement (s0, s1) with |s_i| ≤ L_small/2, signed, maps to the same one
                let half = (ls / 2) as isize;
                for r in 0..l * l {
                    let signed = |x: usize| if x <= l / 2 { x as isize } else { x as isize - l as isize };
                    let (s0, s1) = (signed(r / l), signed(r % l));
                    if s0.abs() > half || s1.abs() > half {
                        continue;
                    }
                    let wrap = |s: isize| s.rem_euclid(ls as isize) as usize;
                    put(wrap(s0) * ls + wrap(s1), r);
                }
            }
        }
        // ω: the source's, then this flow's initial values for new frequencies
        let own = self.params();
        p[ll.omega.clone()].copy_from_slice(&own[ll.omega.clone()]);
        p[ll.omega.start..ll.omega.start + sl.omega.len()].copy_from_slice(&sp[sl.omega.clone()]);
        if let (Some(fs), Some(fl)) = (&sl.f, &ll.f) {
            // F̃ = F / n_h: F' = (n_h'/n_h) F on the old rows keeps F̃
            let scale = ll.n_h as f64 / sl.n_h as f64;
            for c in 0..sl.n_c {
                for (j, &jl) in rows.iter().enumerate() {
                    p[fl.start + c * ll.n_h + jl] = scale * sp[fs.start + c * sl.n_h + j];
                }
            }
        }
        if let (Some(ts), Some(tl)) = (&sl.t, &ll.t) {
            // K' = T K / d_t: T' = (d'/d) T P keeps T' K_new / d' = T K_old / d
            let scale = ll.d_t as f64 / sl.d_t as f64;
            for ta in 0..sl.n_tc {
                for k in 0..sl.d_t {
                    let v = scale * sp[ts.start + ta * sl.d_t + k];
                    for (kb, &m) in tp[k * ll.d_t..(k + 1) * ll.d_t].iter().enumerate() {
                        p[tl.start + ta * ll.d_t + kb] += v * m;
                    }
                }
            }
        }
        self.set_params(&p)
    }
}

impl Flow {
    /// Dilates the kernel of a flow just transferred from a lattice of size `l_small`: the
    /// couplings of the benchmark keep ξ ≈ L/4, so a displacement d on this lattice plays the
    /// role of d / r on the small one (r = L / L_small). Each orbit with folded distances
    /// (a, b), b > `keep`, gets `r^(-power)` times the kernel of the transferred flow
    /// interpolated bilinearly at (a / r, b / r) among the orbits the small lattice has (those
    /// with b ≤ L_small / 2, which `transfer_from` filled); orbits with b ≤ `keep` keep the small
    /// lattice's values at the same displacement. Only the kernel W changes.
    ///
    /// Errors: a source lattice not smaller than this one, a kernel with translation symmetry
    /// only, a non-finite `power`.
    pub fn dilate_kernel(&mut self, l_small: usize, power: f64, keep: usize) -> Result<()> {
        let l = self.lattice.size();
        if l_small < 2 || l_small >= l {
            return Err(Error::invalid(format!(
                "dilate: the source lattice L = {l_small} is not smaller than L = {l}"
            )));
        }
        if self.config.arch.symmetry != KernelSymmetry::Full {
            return Err(Error::invalid(
                "dilate: needs the fully symmetric kernel (orbits of displacements)".to_string(),
            ));
        }
        if !power.is_finite() {
            return Err(Error::invalid(format!("dilate: power = {power} is not finite")));
        }
        let lay = &self.layout;
        let block = lay.n_tc * lay.n_c;
        let orb = |a: usize, b: usize| {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            b * (b + 1) / 2 + a
        };
        let src = self.params()[lay.w.clone()].to_vec();
        let mut w = src.clone();
        let r = l as f64 / l_small as f64;
        let (c, top) = (r.powf(-power), l_small / 2);
        for b in keep + 1..=l / 2 {
            for a in 0..=b {
                let (x, y) = (a as f64 / r, b as f64 / r);
                let (x0, y0) = ((x.floor() as usize).min(top), (y.floor() as usize).min(top));
                let (x1, y1) = ((x0 + 1).min(top), (y0 + 1).min(top));
                let (fx, fy) = (x - x0 as f64, y - y0 as f64);
                let dst = &mut w[orb(a, b) * block..(orb(a, b) + 1) * block];
                for (k, d) in dst.iter_mut().enumerate() {
                    let g = |i: usize, j: usize| src[orb(i, j) * block + k];
                    let v = (1.0 - fx) * (1.0 - fy) * g(x0, y0)
                        + fx * (1.0 - fy) * g(x1, y0)
                        + (1.0 - fx) * fy * g(x0, y1)
                        + fx * fy * g(x1, y1);
                    *d = c * v;
                }
            }
        }
        let mut p = self.params().to_vec();
        p[self.layout.w.clone()].copy_from_slice(&w);
        self.set_params(&p)
    }
}

/// Whether `a` embeds in `b`: equal but for N_t, more frequencies, a finer time kernel.
fn check_embeds(a: &Architecture, b: &Architecture) -> Result<()> {
    let mut same = a.clone();
    same.ode_steps = b.ode_steps;
    same.n_frequencies = b.n_frequencies;
    same.time_kernel_size = b.time_kernel_size;
    if same != *b {
        return Err(Error::invalid(
            "transfer: the source flow has another architecture (only the number of frequencies, the \
             time-kernel size and N_t may differ)"
                .to_string(),
        ));
    }
    if b.n_frequencies < a.n_frequencies {
        return Err(Error::invalid(format!(
            "transfer: the source has {} frequencies, more than this flow's {}",
            a.n_frequencies, b.n_frequencies
        )));
    }
    let (d, e) = (a.time_kernel_size, b.time_kernel_size);
    let fits = match b.time_kernel {
        TimeKernelKind::Hat => (e - 1) % (d - 1) == 0,
        TimeKernelKind::Fourier => e >= d,
    };
    if !fits {
        return Err(Error::invalid(format!(
            "transfer: a time kernel of size {d} does not embed in one of size {e} ({})",
            match b.time_kernel {
                TimeKernelKind::Hat => "hat: the new size minus 1 must be a multiple of the old size minus 1",
                TimeKernelKind::Fourier => "Fourier: the new size must not be smaller",
            }
        )));
    }
    Ok(())
}

/// Where each raw feature row of `a` sits in `b` (rows: see `features`).
fn feature_rows(a: &Architecture, b: &Architecture) -> Vec<usize> {
    let (n, m) = (a.n_frequencies, b.n_frequencies);
    let mut rows: Vec<usize> = (0..n).collect();
    if a.features == FeatureKind::NonOdd {
        rows.extend((0..n).map(|k| m + k));
        rows.push(2 * m);
    }
    if a.linear_feature {
        rows.push(b.n_raw_features() - 1);
    }
    rows
}

/// P (d × d', row-major) with K_a(t) = Σ_a' P[a][a'] K'_a'(t) for the old kernel K and the
/// new one K': a hat function's values at the new nodes, or the identity on shared modes.
fn time_map(a: &Architecture, b: &Architecture) -> Vec<f64> {
    let (d, e) = (a.time_kernel_size, b.time_kernel_size);
    let mut p = vec![0.0; d * e];
    match b.time_kernel {
        TimeKernelKind::Hat => {
            // new node tb sits at old position tb / r, r = (d' − 1)/(d − 1): linear interpolation
            let r = (e - 1) / (d - 1);
            for tb in 0..e {
                let (lo, frac) = (tb / r, (tb % r) as f64 / r as f64);
                p[lo * e + tb] = 1.0 - frac;
                if frac > 0.0 {
                    p[(lo + 1) * e + tb] = frac;
                }
            }
        }
        TimeKernelKind::Fourier => (0..d).for_each(|ta| p[ta * e + ta] = 1.0),
    }
    p
}
