//! Convolution as one dense matrix product per batch: M[x][c·V + y] = W[c][(x − y) mod L].
//! Costs 2·V²·n_c flops per field but runs at GEMM speed: the fastest choice for small L.

use crate::real::Real;

/// The plan: lattice side and channel count.
pub struct DenseConv<R: Real> {
    l: usize,
    n_c: usize,
    /// disp[x·V + y] = index of the displacement x − y.
    disp: Vec<u32>,
    _r: std::marker::PhantomData<R>,
}

/// The V × (n_c·V) matrix for one kernel, and its transpose (both contiguous for GEMM packing).
pub struct DenseKernel<R: Real> {
    m: Vec<R>,
    mt: Vec<R>,
}

/// Scratch: the V × (n_c·V) kernel-gradient matrix before its reduction to displacements.
pub struct DenseScratch<R: Real> {
    gm: Vec<R>,
}

impl<R: Real> DenseConv<R> {
    /// The lattice volume V = L².
    pub fn volume(&self) -> usize {
        self.l * self.l
    }
    /// A plan for side `l` and `n_c` channels.
    pub fn new(l: usize, n_c: usize) -> Self {
        let v = l * l;
        let mut disp = vec![0u32; v * v];
        for x in 0..v {
            for y in 0..v {
                disp[x * v + y] = (((x / l + l - y / l) % l) * l + (x % l + l - y % l) % l) as u32;
            }
        }
        DenseConv { l, n_c, disp, _r: std::marker::PhantomData }
    }
    /// Builds M from W (n_c × V).
    pub fn prepare(&self, wt: &[R]) -> DenseKernel<R> {
        let v = self.l * self.l;
        let k = self.n_c * v;
        let mut m = vec![R::zero(); v * k];
        let mut mt = vec![R::zero(); v * k];
        for c in 0..self.n_c {
            let w = &wt[c * v..(c + 1) * v];
            for x in 0..v {
                let d = &self.disp[x * v..(x + 1) * v];
                let row = &mut m[x * k + c * v..x * k + (c + 1) * v];
                for (o, &r) in row.iter_mut().zip(d) {
                    *o = w[r as usize];
                }
                for y in 0..v {
                    mt[(c * v + y) * v + x] = row[y];
                }
            }
        }
        DenseKernel { m, mt }
    }
    /// Scratch for any batch size.
    pub fn scratch(&self, _nb: usize) -> DenseScratch<R> {
        let v = self.l * self.l;
        DenseScratch { gm: vec![R::zero(); v * self.n_c * v] }
    }
    /// out = g · Mᵀ.
    pub fn forward(&self, k: &DenseKernel<R>, g: &[R], out: &mut [R], _s: &mut DenseScratch<R>) {
        let v = self.l * self.l;
        let kk = self.n_c * v;
        let nb = out.len() / v;
        assert_eq!(g.len(), nb * kk, "dense forward: g length");
        R::gemm(nb, kk, v, R::one(), g, kk as isize, 1, &k.mt, v as isize, 1, R::zero(), out, v as isize, 1);
    }
    /// a = k̄ · M; W̄[c][r] += Σ_x (k̄ᵀ g)[x][c·V + x − r].
    pub fn backward(
        &self,
        k: &DenseKernel<R>,
        kbar: &[R],
        g: &[R],
        a: &mut [R],
        wbar: &mut [R],
        s: &mut DenseScratch<R>,
    ) {
        let v = self.l * self.l;
        let kk = self.n_c * v;
        let nb = kbar.len() / v;
        assert_eq!(g.len(), nb * kk, "dense backward: g length");
        assert_eq!(a.len(), nb * kk, "dense backward: a length");
        R::gemm(nb, v, kk, R::one(), kbar, v as isize, 1, &k.m, kk as isize, 1, R::zero(), a, kk as isize, 1);
        R::gemm(v, nb, kk, R::one(), kbar, 1, v as isize, g, kk as isize, 1, R::zero(), &mut s.gm, kk as isize, 1);
        for c in 0..self.n_c {
            let wb = &mut wbar[c * v..(c + 1) * v];
            for x in 0..v {
                let row = &s.gm[x * kk + c * v..x * kk + (c + 1) * v];
                for (&r, &gv) in self.disp[x * v..(x + 1) * v].iter().zip(row) {
                    wb[r as usize] = wb[r as usize] + gv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::conv::direct::{self, noise};

    #[test]
    fn dense_equals_direct_sum() {
        for (l, n_c, nb) in [(2, 1, 1), (3, 3, 2), (4, 5, 3), (5, 2, 1)] {
            let v = l * l;
            let p = DenseConv::<f64>::new(l, n_c);
            let wt = noise(n_c * v, 1);
            let g = noise(nb * n_c * v, 2);
            let kbar = noise(nb * v, 3);
            let k = p.prepare(&wt);
            let mut s = p.scratch(nb);
            let mut out = vec![f64::NAN; nb * v];
            p.forward(&k, &g, &mut out, &mut s);
            let mut want = vec![0.0; nb * v];
            direct::forward(l, n_c, &wt, &g, &mut want);
            let (mut a, mut wb) = (vec![f64::NAN; nb * n_c * v], vec![0.5; n_c * v]);
            p.backward(&k, &kbar, &g, &mut a, &mut wb, &mut s);
            let (mut a2, mut wb2) = (vec![0.0; nb * n_c * v], vec![0.5; n_c * v]);
            direct::backward(l, n_c, &wt, &kbar, &g, &mut a2, &mut wb2);
            for (x, y) in out.iter().zip(&want).chain(a.iter().zip(&a2)).chain(wb.iter().zip(&wb2)) {
                assert!((x - y).abs() < 1e-12, "L={l}: {x} vs {y}");
            }
        }
    }
}
