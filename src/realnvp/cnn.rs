//! The coupling network of SPEC §7: periodic 3×3 convolutions with bias,
//! 1 → h → h → 2 channels, LeakyReLU (slope 0.01) between and tanh on the output,
//! with its hand-written backward pass.
//!
//! Convolutions follow PyTorch's `Conv2d` (a cross-correlation) with circular padding:
//! out[o, x] = b[o] + Σ_i Σ_{dy,dx ∈ {−1,0,1}} w[o, i, dy+1, dx+1] · in[i, x0+dy, x1+dx],
//! with x0 the slow (row) axis as in SPEC §1. They run as im2col followed by one GEMM
//! over a chunk of fields; activations are stored channel-major, then field, then site:
//! `act[c · N + b · V + x]` with N = n_fields · V.

use crate::lattice::Lattice;
use crate::real::Real;

/// PyTorch's default negative slope of LeakyReLU.
pub const LEAKY_SLOPE: f64 = 0.01;

/// Taps of a 3×3 kernel: tap = (dy + 1)·3 + (dx + 1).
pub const TAPS: usize = 9;

/// Periodic neighbour tables of the 3×3 stencil.
#[derive(Debug, Clone)]
pub struct Geometry {
    v: usize,
    /// `nbr[tap · V + x]` = the site x + (dy, dx) (mod L).
    nbr: Vec<u32>,
}

impl Geometry {
    /// The stencil of `lattice`.
    pub fn new(lattice: &Lattice) -> Self {
        let l = lattice.size();
        let v = lattice.volume();
        let mut nbr = vec![0u32; TAPS * v];
        for tap in 0..TAPS {
            let (dy, dx) = (tap / 3 + l - 1, tap % 3 + l - 1);
            for x in 0..v {
                let (x0, x1) = lattice.coords(x);
                nbr[tap * v + x] = lattice.index((x0 + dy) % l, (x1 + dx) % l) as u32;
            }
        }
        Geometry { v, nbr }
    }

    /// The number of sites V.
    pub fn volume(&self) -> usize {
        self.v
    }

    /// col[(i·9 + tap)·N + b·V + x] = input[i·N + b·V + (x + tap offset)], for `cin` channels
    /// of `n` fields (N = n·V).
    pub fn im2col(&self, input: &[f64], cin: usize, n: usize, col: &mut [f64]) {
        let v = self.v;
        let nn = n * v;
        for i in 0..cin {
            let inp = &input[i * nn..(i + 1) * nn];
            for tap in 0..TAPS {
                let nb = &self.nbr[tap * v..(tap + 1) * v];
                let row = &mut col[(i * TAPS + tap) * nn..(i * TAPS + tap + 1) * nn];
                for (dst, src) in row.chunks_exact_mut(v).zip(inp.chunks_exact(v)) {
                    for (d, &j) in dst.iter_mut().zip(nb) {
                        *d = src[j as usize];
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: grad_in[i·N + b·V + (x + tap offset)] += gcol[(i·9 + tap)·N + b·V + x].
    pub fn col2im_add(&self, gcol: &[f64], cin: usize, n: usize, grad_in: &mut [f64]) {
        let v = self.v;
        let nn = n * v;
        for i in 0..cin {
            let g = &mut grad_in[i * nn..(i + 1) * nn];
            for tap in 0..TAPS {
                let nb = &self.nbr[tap * v..(tap + 1) * v];
                let row = &gcol[(i * TAPS + tap) * nn..(i * TAPS + tap + 1) * nn];
                for (src, dst) in row.chunks_exact(v).zip(g.chunks_exact_mut(v)) {
                    for (&s, &j) in src.iter().zip(nb) {
                        dst[j as usize] += s;
                    }
                }
            }
        }
    }
}

/// Shapes of the three convolutions of one coupling network and the offsets of their
/// parameters in the layer's block: w1, b1, w2, b2, w3, b3, each weight `[cout][cin][3][3]`
/// (PyTorch's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CnnShape {
    /// Hidden channels h.
    pub hidden: usize,
}

/// (in channels, out channels) of the three convolutions.
fn convs(h: usize) -> [(usize, usize); 3] {
    [(1, h), (h, h), (h, 2)]
}

impl CnnShape {
    /// Parameters of one network: Σ cout·(cin·9 + 1).
    pub fn n_params(&self) -> usize {
        convs(self.hidden).iter().map(|&(ci, co)| co * (ci * TAPS + 1)).sum()
    }
    /// (weight range, bias range, cin, cout) of convolution `j` ∈ 0..3 inside the block.
    pub fn conv(&self, j: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>, usize, usize) {
        let cs = convs(self.hidden);
        let mut off = 0;
        for &(ci, co) in &cs[..j] {
            off += co * (ci * TAPS + 1);
        }
        let (ci, co) = cs[j];
        let w = off..off + co * ci * TAPS;
        let b = w.end..w.end + co;
        (w, b, ci, co)
    }
    /// Scratch sizes for `n` fields.
    pub fn work(&self, n: usize, v: usize) -> CnnWork {
        let nn = n * v;
        let h = self.hidden;
        CnnWork {
            col: vec![0.0; TAPS * h.max(1) * nn],
            gcol: vec![0.0; TAPS * h.max(1) * nn],
            g1: vec![0.0; h * nn],
            g2: vec![0.0; h * nn],
            gout: vec![0.0; 2 * nn],
        }
    }
}

/// Scratch buffers of the network, reused across layers and calls.
#[derive(Debug, Clone)]
pub struct CnnWork {
    col: Vec<f64>,
    gcol: Vec<f64>,
    g1: Vec<f64>,
    g2: Vec<f64>,
    gout: Vec<f64>,
}

/// One convolution: out (cout × N) = W (cout × cin·9) · col + b.
fn conv_forward(w: &[f64], b: &[f64], cin: usize, cout: usize, col: &[f64], nn: usize, out: &mut [f64]) {
    let k = cin * TAPS;
    for (o, row) in out[..cout * nn].chunks_exact_mut(nn).enumerate() {
        row.fill(b[o]);
    }
    f64::gemm(cout, k, nn, 1.0, w, k as isize, 1, col, nn as isize, 1, 1.0, out, nn as isize, 1);
}

/// The adjoint of `conv_forward`: gw += gout · colᵀ, gb += Σ_n gout, gcol = Wᵀ · gout.
#[allow(clippy::too_many_arguments)]
fn conv_backward(
    w: &[f64],
    cin: usize,
    cout: usize,
    col: &[f64],
    gout: &[f64],
    nn: usize,
    gw: &mut [f64],
    gb: &mut [f64],
    gcol: &mut [f64],
) {
    let k = cin * TAPS;
    f64::gemm(cout, nn, k, 1.0, gout, nn as isize, 1, col, 1, nn as isize, 1.0, gw, k as isize, 1);
    for (o, row) in gout[..cout * nn].chunks_exact(nn).enumerate() {
        let mut s = 0.0;
        for &g in row {
            s += g;
        }
        gb[o] += s;
    }
    f64::gemm(k, cout, nn, 1.0, w, 1, k as isize, gout, nn as isize, 1, 0.0, gcol, nn as isize, 1);
}

#[inline]
fn leaky(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        LEAKY_SLOPE * x
    }
}

/// d leaky / dx from the activation itself (same sign as its input; 0 counts as negative,
/// as in PyTorch).
#[inline]
fn leaky_slope(a: f64) -> f64 {
    if a > 0.0 {
        1.0
    } else {
        LEAKY_SLOPE
    }
}

/// The network's forward pass on `n` single-channel inputs `u0` (n × V), writing the
/// activations `a1`, `a2` (h × N each, after LeakyReLU) and `st` (2 × N: s then t, after tanh).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    shape: CnnShape,
    geo: &Geometry,
    p: &[f64],
    u0: &[f64],
    n: usize,
    a1: &mut [f64],
    a2: &mut [f64],
    st: &mut [f64],
    work: &mut CnnWork,
) {
    let nn = n * geo.volume();
    let mut input: &[f64] = u0;
    let outs: [&mut [f64]; 3] = [a1, a2, st];
    for (j, out) in outs.into_iter().enumerate() {
        let (wr, br, ci, co) = shape.conv(j);
        geo.im2col(input, ci, n, &mut work.col);
        conv_forward(&p[wr], &p[br], ci, co, &work.col, nn, out);
        if j < 2 {
            out[..co * nn].iter_mut().for_each(|x| *x = leaky(*x));
        } else {
            out[..co * nn].iter_mut().for_each(|x| *x = x.tanh());
        }
        input = out;
    }
}

/// The network's backward pass. `gst` (2 × N) is ∂ℓ/∂(s, t) after tanh; the parameter
/// gradient is added to `g` (the layer's block) and ∂ℓ/∂u0 is written to `gu0` (N).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    shape: CnnShape,
    geo: &Geometry,
    p: &[f64],
    u0: &[f64],
    a1: &[f64],
    a2: &[f64],
    st: &[f64],
    gst: &[f64],
    n: usize,
    g: &mut [f64],
    gu0: &mut [f64],
    work: &mut CnnWork,
) {
    let nn = n * geo.volume();
    let h = shape.hidden;
    // through tanh: d tanh = 1 − tanh²
    for ((go, &gs), &y) in work.gout[..2 * nn].iter_mut().zip(&gst[..2 * nn]).zip(&st[..2 * nn]) {
        *go = gs * (1.0 - y * y);
    }
    let CnnWork { col, gcol, g1, g2, gout } = work;
    // conv 3: a2 → st
    let (wr, br, ci, co) = shape.conv(2);
    geo.im2col(a2, ci, n, col);
    let (gw, gb) = split(g, &wr, &br);
    conv_backward(&p[wr], ci, co, col, gout, nn, gw, gb, gcol);
    g2[..h * nn].fill(0.0);
    geo.col2im_add(gcol, ci, n, g2);
    g2[..h * nn].iter_mut().zip(&a2[..h * nn]).for_each(|(x, &a)| *x *= leaky_slope(a));
    // conv 2: a1 → a2
    let (wr, br, ci, co) = shape.conv(1);
    geo.im2col(a1, ci, n, col);
    let (gw, gb) = split(g, &wr, &br);
    conv_backward(&p[wr], ci, co, col, g2, nn, gw, gb, gcol);
    g1[..h * nn].fill(0.0);
    geo.col2im_add(gcol, ci, n, g1);
    g1[..h * nn].iter_mut().zip(&a1[..h * nn]).for_each(|(x, &a)| *x *= leaky_slope(a));
    // conv 1: u0 → a1
    let (wr, br, ci, co) = shape.conv(0);
    geo.im2col(u0, ci, n, col);
    let (gw, gb) = split(g, &wr, &br);
    conv_backward(&p[wr], ci, co, col, g1, nn, gw, gb, gcol);
    gu0[..nn].fill(0.0);
    geo.col2im_add(gcol, ci, n, gu0);
}

/// The disjoint weight and bias slices of `g` (bias directly after weight).
fn split<'a>(
    g: &'a mut [f64],
    w: &std::ops::Range<usize>,
    b: &std::ops::Range<usize>,
) -> (&'a mut [f64], &'a mut [f64]) {
    debug_assert_eq!(w.end, b.start);
    let (gw, rest) = g[w.start..b.end].split_at_mut(w.len());
    (gw, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, Stream};

    fn noise(n: usize, idx: u64) -> Vec<f64> {
        let mut x = vec![0.0; n];
        Rng::new(5, Stream::Init, idx).fill_normal(&mut x);
        x
    }

    /// The direct sum of the module docs, as an oracle for im2col + GEMM.
    fn conv_direct(lat: &Lattice, w: &[f64], b: &[f64], cin: usize, cout: usize, inp: &[f64], n: usize) -> Vec<f64> {
        let l = lat.size() as isize;
        let v = lat.volume();
        let nn = n * v;
        let mut out = vec![0.0; cout * nn];
        for o in 0..cout {
            for bb in 0..n {
                for x in 0..v {
                    let (x0, x1) = lat.coords(x);
                    let mut acc = b[o];
                    for i in 0..cin {
                        for dy in -1isize..=1 {
                            for dx in -1isize..=1 {
                                let y0 = (x0 as isize + dy).rem_euclid(l) as usize;
                                let y1 = (x1 as isize + dx).rem_euclid(l) as usize;
                                let wi = ((o * cin + i) * 3 + (dy + 1) as usize) * 3 + (dx + 1) as usize;
                                acc += w[wi] * inp[i * nn + bb * v + lat.index(y0, y1)];
                            }
                        }
                    }
                    out[o * nn + bb * v + x] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn gemm_convolution_matches_direct_sum() {
        for l in [2, 3, 5] {
            let lat = Lattice::new(l).unwrap();
            let geo = Geometry::new(&lat);
            let (cin, cout, n) = (3, 4, 2);
            let nn = n * lat.volume();
            let w = noise(cout * cin * 9, 1);
            let b = noise(cout, 2);
            let inp = noise(cin * nn, 3);
            let mut col = vec![0.0; cin * 9 * nn];
            geo.im2col(&inp, cin, n, &mut col);
            let mut out = vec![0.0; cout * nn];
            conv_forward(&w, &b, cin, cout, &col, nn, &mut out);
            let want = conv_direct(&lat, &w, &b, cin, cout, &inp, n);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-13, "L={l}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> = <x, col2im(c)>
        let lat = Lattice::new(4).unwrap();
        let geo = Geometry::new(&lat);
        let (cin, n) = (2, 3);
        let nn = n * 16;
        let x = noise(cin * nn, 4);
        let c = noise(cin * 9 * nn, 5);
        let mut col = vec![0.0; cin * 9 * nn];
        geo.im2col(&x, cin, n, &mut col);
        let mut back = vec![0.0; cin * nn];
        geo.col2im_add(&c, cin, n, &mut back);
        let lhs: f64 = col.iter().zip(&c).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0));
    }

    #[test]
    fn shape_offsets_tile_the_block() {
        let s = CnnShape { hidden: 8 };
        assert_eq!(s.n_params(), 8 * 10 + 8 * 73 + 2 * 73);
        let mut end = 0;
        for j in 0..3 {
            let (w, b, ci, co) = s.conv(j);
            assert_eq!(w.start, end);
            assert_eq!(w.len(), ci * co * 9);
            assert_eq!(b.start, w.end);
            end = b.end;
        }
        assert_eq!(end, s.n_params());
    }
}
