//! The coupling network of SPEC §7: periodic 3×3 convolutions with bias,
//! 1 → h → h → 2 channels, LeakyReLU (slope 0.01) between and tanh on the output,
//! with its hand-written backward pass.
//!
//! Convolutions follow PyTorch's `Conv2d` (a cross-correlation) with circular padding:
//! out[o, x] = b[o] + Σ_i Σ_{dy,dx ∈ {−1,0,1}} w[o, i, dy+1, dx+1] · in[i, x0+dy, x1+dx],
//! with x0 the slow (row) axis as in SPEC §1. They run as im2col followed by a GEMM, over
//! blocks of a few fields; activations are stored channel-major, then field, then site:
//! `act[c · N + b · V + x]` with N = n_fields · V.

use crate::lattice::Lattice;
use crate::real::Real;

/// PyTorch's default negative slope of LeakyReLU.
pub const LEAKY_SLOPE: f64 = 0.01;

/// Taps of a 3×3 kernel: tap = (dy + 1)·3 + (dx + 1).
pub const TAPS: usize = 9;

/// The periodic 3×3 stencil on an L × L lattice. A tap (dy, dx) rotates each row by dx and
/// moves rows by dy, so im2col is a few contiguous copies per field.
#[derive(Debug, Clone)]
pub struct Geometry {
    l: usize,
    v: usize,
}

impl Geometry {
    /// The stencil of `lattice`.
    pub fn new(lattice: &Lattice) -> Self {
        Geometry { l: lattice.size(), v: lattice.volume() }
    }

    /// The number of sites V.
    pub fn volume(&self) -> usize {
        self.v
    }

    /// The im2col matrix of fields `b0..b0 + nb` of a chunk whose channels have stride `nn`:
    /// col[(i·9 + tap)·M + b·V + x] = input[i·nn + (b0 + b)·V + (x + tap offset)], M = nb·V.
    pub fn im2col(&self, input: &[f64], cin: usize, nn: usize, b0: usize, nb: usize, col: &mut [f64]) {
        let (l, v) = (self.l, self.v);
        let m = nb * v;
        for i in 0..cin {
            let inp = &input[i * nn + b0 * v..i * nn + (b0 + nb) * v];
            // the channel's 9 rows: dy = −1 (taps 0..3), 0 (3..6), +1 (6..9)
            let block = &mut col[i * TAPS * m..(i + 1) * TAPS * m];
            let (up, rest) = block.split_at_mut(3 * m);
            let (mid, down) = rest.split_at_mut(3 * m);
            for dxi in 0..3 {
                let r = dxi * m..(dxi + 1) * m;
                let (mid, up, down) = (&mut mid[r.clone()], &mut up[r.clone()], &mut down[r]);
                for b in 0..nb {
                    let f = b * v..(b + 1) * v;
                    let (src, c) = (&inp[f.clone()], &mut mid[f.clone()]);
                    // dy = 0: c[x0, x1] = src[x0, x1 + dx]
                    match dxi {
                        1 => c.copy_from_slice(src),
                        2 => {
                            c[..v - 1].copy_from_slice(&src[1..]);
                            for x0 in 0..l {
                                c[x0 * l + l - 1] = src[x0 * l];
                            }
                        }
                        _ => {
                            c[1..].copy_from_slice(&src[..v - 1]);
                            for x0 in 0..l {
                                c[x0 * l] = src[x0 * l + l - 1];
                            }
                        }
                    }
                    // dy = ±1: whole rows of the dy = 0 image, moved cyclically
                    let (u, d) = (&mut up[f.clone()], &mut down[f]);
                    u[l..].copy_from_slice(&c[..v - l]);
                    u[..l].copy_from_slice(&c[v - l..]);
                    d[..v - l].copy_from_slice(&c[l..]);
                    d[v - l..].copy_from_slice(&c[..l]);
                }
            }
        }
    }

    /// Fields per im2col block: about `BLOCK_SITES` sites, so a GEMM call is amortised and the
    /// im2col matrix stays in cache (a chunk-wide im2col measured 27 % of the time at L = 12),
    /// with the chunk split evenly.
    fn block(&self, n: usize) -> usize {
        let n = n.max(1);
        let blocks = (n * self.v).div_ceil(BLOCK_SITES).clamp(1, n);
        n.div_ceil(blocks)
    }
}

/// Target sites per im2col block.
const BLOCK_SITES: usize = 256;

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
    pub fn work(&self, geo: &Geometry, n: usize) -> CnnWork {
        let v = geo.v;
        let nn = n * v;
        let h = self.hidden;
        let m = geo.block(n) * v;
        CnnWork {
            // im2col of an input (≤ h channels) or of an output gradient (≤ max(h, 2) channels)
            col: vec![0.0; TAPS * h.max(2) * m],
            wflip: vec![0.0; TAPS * h * h.max(2)],
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
    wflip: Vec<f64>,
    g1: Vec<f64>,
    g2: Vec<f64>,
    gout: Vec<f64>,
}

/// One convolution of n fields (channels of stride N = n·V), by im2col and GEMM over blocks
/// of fields: out (cout × N) = W (cout × cin·9) · col + b.
#[allow(clippy::too_many_arguments)]
fn conv_forward(
    geo: &Geometry,
    w: &[f64],
    b: &[f64],
    cin: usize,
    cout: usize,
    input: &[f64],
    n: usize,
    out: &mut [f64],
    col: &mut [f64],
) {
    let v = geo.v;
    let nn = n * v;
    let k = cin * TAPS;
    for (o, row) in out[..cout * nn].chunks_exact_mut(nn).enumerate() {
        row.fill(b[o]);
    }
    let blk = geo.block(n);
    for b0 in (0..n).step_by(blk) {
        let nb = blk.min(n - b0);
        let m = nb * v;
        geo.im2col(input, cin, nn, b0, nb, col);
        f64::gemm(cout, k, m, 1.0, w, k as isize, 1, col, m as isize, 1, 1.0, &mut out[b0 * v..], nn as isize, 1);
    }
}

/// The adjoint of `conv_forward`: gw += gout · colᵀ, gb += Σ_n gout, and
/// grad_in (cin × N) = Wᵀ-convolution of gout. The latter is itself a convolution, with
/// W'[i, o, tap] = W[o, i, 8 − tap] (the mirrored stencil), so it runs as im2col of gout and
/// one GEMM, without a scatter.
#[allow(clippy::too_many_arguments)]
fn conv_backward(
    geo: &Geometry,
    w: &[f64],
    cin: usize,
    cout: usize,
    input: &[f64],
    gout: &[f64],
    n: usize,
    gw: &mut [f64],
    gb: &mut [f64],
    grad_in: &mut [f64],
    col: &mut [f64],
    wflip: &mut [f64],
) {
    let v = geo.v;
    let nn = n * v;
    let k = cin * TAPS;
    let kf = cout * TAPS;
    for (o, row) in gout[..cout * nn].chunks_exact(nn).enumerate() {
        let mut s = 0.0;
        for &g in row {
            s += g;
        }
        gb[o] += s;
    }
    for i in 0..cin {
        for o in 0..cout {
            for tap in 0..TAPS {
                wflip[i * kf + o * TAPS + tap] = w[o * k + i * TAPS + (TAPS - 1 - tap)];
            }
        }
    }
    let blk = geo.block(n);
    for b0 in (0..n).step_by(blk) {
        let nb = blk.min(n - b0);
        let m = nb * v;
        let go = &gout[b0 * v..];
        geo.im2col(input, cin, nn, b0, nb, col);
        f64::gemm(cout, m, k, 1.0, go, nn as isize, 1, col, 1, m as isize, 1.0, gw, k as isize, 1);
        geo.im2col(gout, cout, nn, b0, nb, col);
        f64::gemm(
            cin,
            kf,
            m,
            1.0,
            wflip,
            kf as isize,
            1,
            col,
            m as isize,
            1,
            0.0,
            &mut grad_in[b0 * v..],
            nn as isize,
            1,
        );
    }
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
        conv_forward(geo, &p[wr], &p[br], ci, co, input, n, out, &mut work.col);
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
    let CnnWork { col, wflip, g1, g2, gout } = work;
    // conv 3: a2 → st
    let (wr, br, ci, co) = shape.conv(2);
    let (gw, gb) = split(g, &wr, &br);
    conv_backward(geo, &p[wr], ci, co, a2, gout, n, gw, gb, g2, col, wflip);
    g2[..h * nn].iter_mut().zip(&a2[..h * nn]).for_each(|(x, &a)| *x *= leaky_slope(a));
    // conv 2: a1 → a2
    let (wr, br, ci, co) = shape.conv(1);
    let (gw, gb) = split(g, &wr, &br);
    conv_backward(geo, &p[wr], ci, co, a1, g2, n, gw, gb, g1, col, wflip);
    g1[..h * nn].iter_mut().zip(&a1[..h * nn]).for_each(|(x, &a)| *x *= leaky_slope(a));
    // conv 1: u0 → a1
    let (wr, br, ci, co) = shape.conv(0);
    let (gw, gb) = split(g, &wr, &br);
    conv_backward(geo, &p[wr], ci, co, u0, g1, n, gw, gb, gu0, col, wflip);
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
            let mut out = vec![0.0; cout * nn];
            conv_forward(&geo, &w, &b, cin, cout, &inp, n, &mut out, &mut col);
            let want = conv_direct(&lat, &w, &b, cin, cout, &inp, n);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-13, "L={l}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn backward_is_the_adjoint_of_forward() {
        // conv is linear in (x, w, b): <conv(x), g> = <x, grad_in> + <w, gw> + <b, gb> − ... with
        // each part checked by switching the others off
        for l in [2, 3, 4] {
            let lat = Lattice::new(l).unwrap();
            let geo = Geometry::new(&lat);
            let (cin, cout, n) = (3, 2, 5);
            let nn = n * lat.volume();
            let x = noise(cin * nn, 4);
            let g = noise(cout * nn, 5);
            let w = noise(cout * cin * 9, 6);
            let b = noise(cout, 7);
            let mut col = vec![0.0; 9 * cin.max(cout) * nn];
            let mut out = vec![0.0; cout * nn];
            conv_forward(&geo, &w, &b, cin, cout, &x, n, &mut out, &mut col);
            let lhs: f64 = out.iter().zip(&g).map(|(a, c)| a * c).sum();
            let (mut gw, mut gb, mut gx) = (vec![0.0; w.len()], vec![0.0; cout], vec![0.0; cin * nn]);
            let mut wflip = vec![0.0; w.len()];
            conv_backward(&geo, &w, cin, cout, &x, &g, n, &mut gw, &mut gb, &mut gx, &mut col, &mut wflip);
            let dot = |a: &[f64], c: &[f64]| a.iter().zip(c).map(|(p, q)| p * q).sum::<f64>();
            // out = A(w) x + b, bilinear in (w, x): <out, g> = <x, gx> + <b, gb> = <w, gw> + <b, gb>
            let via_x = dot(&x, &gx) + dot(&b, &gb);
            let via_w = dot(&w, &gw) + dot(&b, &gb);
            assert!((lhs - via_x).abs() < 1e-11 * lhs.abs().max(1.0), "L={l}: {lhs} vs {via_x}");
            assert!((lhs - via_w).abs() < 1e-11 * lhs.abs().max(1.0), "L={l}: {lhs} vs {via_w}");
            assert!((gb[0] - g[..nn].iter().sum::<f64>()).abs() < 1e-12);
        }
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
