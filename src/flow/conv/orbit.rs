//! Convolution through the kernel's orbit structure. W_t is constant on the n_orb orbits of
//! displacements, so contract the channels first, q_o = Σ_c W_o[o][c] g_c (a small GEMM),
//! then sum shifted copies, out[x] = Σ_r q_{o(r)}[x − r] (V² adds). This costs
//! 2·n_orb·n_c·V + V² flops per field instead of the dense 2·n_c·V²: the fastest choice for
//! small and medium L. The backward pass gives the orbit-summed kernel gradient directly.

use crate::real::Real;

/// The plan: lattice side, channels and the orbit of every displacement.
pub struct OrbitConv<R: Real> {
    l: usize,
    n_c: usize,
    n_orb: usize,
    orbit_of: Vec<usize>,
    /// A representative displacement of every orbit.
    rep: Vec<usize>,
    _r: std::marker::PhantomData<R>,
}

/// The kernel for one time: W_o[o][c] (n_orb × n_c).
pub struct OrbitKernel<R: Real> {
    wo: Vec<R>,
}

/// Scratch: q (nb × n_orb × V) and the kernel gradient W̄_o (n_orb × n_c).
pub struct OrbitScratch<R: Real> {
    q: Vec<R>,
    wo_bar: Vec<R>,
}

impl<R: Real> OrbitConv<R> {
    /// The lattice volume V = L².
    pub fn volume(&self) -> usize {
        self.l * self.l
    }
    /// A plan for side `l`, `n_c` channels and the displacement orbits `orbit_of` (length V).
    pub fn new(l: usize, n_c: usize, orbit_of: &[usize]) -> Self {
        let n_orb = orbit_of.iter().max().map_or(0, |&m| m + 1);
        let mut rep = vec![usize::MAX; n_orb];
        for (r, &o) in orbit_of.iter().enumerate() {
            if rep[o] == usize::MAX {
                rep[o] = r;
            }
        }
        OrbitConv { l, n_c, n_orb, orbit_of: orbit_of.to_vec(), rep, _r: std::marker::PhantomData }
    }
    /// Reads W_o off the real-space kernel W (n_c × V), which is constant on orbits.
    pub fn prepare(&self, wt: &[R]) -> OrbitKernel<R> {
        let v = self.l * self.l;
        let mut wo = vec![R::zero(); self.n_orb * self.n_c];
        for o in 0..self.n_orb {
            for c in 0..self.n_c {
                wo[o * self.n_c + c] = wt[c * v + self.rep[o]];
            }
        }
        OrbitKernel { wo }
    }
    /// Scratch for batches of up to `nb` fields.
    pub fn scratch(&self, nb: usize) -> OrbitScratch<R> {
        OrbitScratch {
            q: vec![R::zero(); nb * self.n_orb * self.l * self.l],
            wo_bar: vec![R::zero(); self.n_orb * self.n_c],
        }
    }

    /// dst[x] += src[x − r] for every site x (periodic shift by r = (r0, r1)).
    #[inline]
    fn add_shifted(&self, dst: &mut [R], src: &[R], r: usize, sign_forward: bool) {
        let l = self.l;
        let (r0, r1) = (r / l, r % l);
        for x0 in 0..l {
            // forward: read src at x − r; backward (transpose): read src at x + r
            let s0 = if sign_forward { (x0 + l - r0) % l } else { (x0 + r0) % l };
            let s1 = if sign_forward { (l - r1) % l } else { r1 };
            let d = &mut dst[x0 * l..(x0 + 1) * l];
            let s = &src[s0 * l..(s0 + 1) * l];
            // d[x1] += s[(x1 + s1) mod L]: two contiguous pieces
            let k = l - s1;
            for (a, &b) in d[..k].iter_mut().zip(&s[s1..]) {
                *a = *a + b;
            }
            for (a, &b) in d[k..].iter_mut().zip(&s[..s1]) {
                *a = *a + b;
            }
        }
    }

    /// out = conv(W, g) for g nb × n_c × V.
    pub fn forward(&self, k: &OrbitKernel<R>, g: &[R], out: &mut [R], s: &mut OrbitScratch<R>) {
        let v = self.l * self.l;
        let (n_c, n_orb) = (self.n_c, self.n_orb);
        let nb = out.len() / v;
        assert_eq!(g.len(), nb * n_c * v, "orbit forward: g length");
        for b in 0..nb {
            let q = &mut s.q[b * n_orb * v..(b + 1) * n_orb * v];
            R::gemm(
                n_orb,
                n_c,
                v,
                R::one(),
                &k.wo,
                n_c as isize,
                1,
                &g[b * n_c * v..(b + 1) * n_c * v],
                v as isize,
                1,
                R::zero(),
                q,
                v as isize,
                1,
            );
            let o_b = &mut out[b * v..(b + 1) * v];
            o_b.iter_mut().for_each(|x| *x = R::zero());
            for r in 0..v {
                let o = self.orbit_of[r];
                self.add_shifted(o_b, &q[o * v..(o + 1) * v], r, true);
            }
        }
    }

    /// a = transpose-conv(W, k̄); W̄ += kernel gradient, written at one representative
    /// displacement per orbit (its orbit sum is what the caller uses).
    pub fn backward(
        &self,
        k: &OrbitKernel<R>,
        kbar: &[R],
        g: &[R],
        a: &mut [R],
        wbar: &mut [R],
        s: &mut OrbitScratch<R>,
    ) {
        let v = self.l * self.l;
        let (n_c, n_orb) = (self.n_c, self.n_orb);
        let nb = kbar.len() / v;
        assert_eq!(g.len(), nb * n_c * v, "orbit backward: g length");
        assert_eq!(a.len(), nb * n_c * v, "orbit backward: a length");
        s.wo_bar.iter_mut().for_each(|x| *x = R::zero());
        for b in 0..nb {
            // q̄_o[y] = Σ_{r∈o} k̄[y + r]
            let q = &mut s.q[b * n_orb * v..(b + 1) * n_orb * v];
            q.iter_mut().for_each(|x| *x = R::zero());
            let kb = &kbar[b * v..(b + 1) * v];
            for r in 0..v {
                let o = self.orbit_of[r];
                self.add_shifted(&mut q[o * v..(o + 1) * v], kb, r, false);
            }
            let gb = &g[b * n_c * v..(b + 1) * n_c * v];
            // ḡ = W_oᵀ q̄ ;  W̄_o += q̄ gᵀ
            R::gemm(
                n_c,
                n_orb,
                v,
                R::one(),
                &k.wo,
                1,
                n_c as isize,
                q,
                v as isize,
                1,
                R::zero(),
                &mut a[b * n_c * v..(b + 1) * n_c * v],
                v as isize,
                1,
            );
            R::gemm(
                n_orb,
                v,
                n_c,
                R::one(),
                q,
                v as isize,
                1,
                gb,
                1,
                v as isize,
                R::one(),
                &mut s.wo_bar,
                n_c as isize,
                1,
            );
        }
        for o in 0..n_orb {
            for c in 0..n_c {
                let i = c * v + self.rep[o];
                wbar[i] = wbar[i] + s.wo_bar[o * n_c + c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::conv::direct::{self, noise};
    use crate::lattice::Lattice;

    #[test]
    fn orbit_conv_equals_direct_sum_on_orbit_sums() {
        for (l, n_c, nb, full) in [(2, 1, 1, true), (3, 3, 2, true), (4, 5, 3, true), (5, 2, 2, false), (6, 4, 1, true)]
        {
            let lat = Lattice::new(l).unwrap();
            let v = l * l;
            let orbit_of = if full { lat.displacement_orbits() } else { (0..v).collect() };
            let n_orb = orbit_of.iter().max().unwrap() + 1;
            let wo = noise(n_orb * n_c, 1);
            let wt: Vec<f64> = (0..n_c * v).map(|i| wo[orbit_of[i % v] * n_c + i / v]).collect();
            let g = noise(nb * n_c * v, 2);
            let kbar = noise(nb * v, 3);
            let p = OrbitConv::<f64>::new(l, n_c, &orbit_of);
            let k = p.prepare(&wt);
            let mut s = p.scratch(nb);
            let mut out = vec![f64::NAN; nb * v];
            p.forward(&k, &g, &mut out, &mut s);
            let mut want = vec![0.0; nb * v];
            direct::forward(l, n_c, &wt, &g, &mut want);
            let (mut a, mut wb) = (vec![f64::NAN; nb * n_c * v], vec![0.0; n_c * v]);
            p.backward(&k, &kbar, &g, &mut a, &mut wb, &mut s);
            let (mut a2, mut wb2) = (vec![0.0; nb * n_c * v], vec![0.0; n_c * v]);
            direct::backward(l, n_c, &wt, &kbar, &g, &mut a2, &mut wb2);
            for (x, y) in out.iter().zip(&want).chain(a.iter().zip(&a2)) {
                assert!((x - y).abs() < 1e-12, "L={l}: {x} vs {y}");
            }
            // kernel gradients agree once summed over each orbit
            for o in 0..n_orb {
                for c in 0..n_c {
                    let sum = |w: &[f64]| (0..v).filter(|&r| orbit_of[r] == o).map(|r| w[c * v + r]).sum::<f64>();
                    assert!((sum(&wb) - sum(&wb2)).abs() < 1e-12);
                }
            }
        }
    }
}
