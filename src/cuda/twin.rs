//! The CPU twin of every kernel in `kernels/`: same inputs, same outputs, built from the
//! CPU code each kernel reproduces (so a twin is never a second implementation that could
//! drift from the library). They are the oracle of the GPU tests, and the sampler's kernel
//! sequence runs on them in the CPU tests.

use crate::action::{Action, Couplings};
use crate::flow::config::FeatureKind;
use crate::flow::conv::{ConvMethod, ConvPlan};
use crate::flow::features::Features;
use crate::lattice::Lattice;
use crate::real::Real;
use crate::rng::{Rng, Stream};

/// The rng stream of a kernel's u32 stream number.
pub fn stream_of(s: u32) -> Stream {
    match s {
        1 => Stream::Train,
        2 => Stream::Sample,
        3 => Stream::Init,
        4 => Stream::Metropolis,
        5 => Stream::Hmc,
        6 => Stream::Ess,
        _ => Stream::Flip,
    }
}

/// rng.cu `eqflow_philox_words`: `Rng::block(j)` for j < count.
pub fn philox_words(seed: u64, stream: Stream, index: u64, count: usize) -> Vec<u32> {
    let r = Rng::new(seed, stream, index);
    (0..count as u32).flat_map(|j| r.block(j)).collect()
}

/// rng.cu `eqflow_prior_normal`: `Rng::fill_normal` of (seed, stream, first + i), rounded to R.
pub fn prior_normal<R: Real>(seed: u64, stream: Stream, first: u64, n: usize, v: usize) -> Vec<R> {
    let mut z = vec![0.0; n * v];
    for (i, zi) in z.chunks_mut(v.max(1)).enumerate() {
        Rng::new(seed, stream, first + i as u64).fill_normal(zi);
    }
    z.iter().map(|&x| R::of(x)).collect()
}

/// rng.cu `eqflow_uniform`: `Rng::uniform(k)` of (seed, stream, first + i).
pub fn uniform(seed: u64, stream: Stream, first: u64, k: u32, n: usize) -> Vec<f64> {
    (0..n as u64).map(|i| Rng::new(seed, stream, first + i).uniform(k)).collect()
}

fn action_of(l: usize, m2: f64, lambda: f64) -> Action {
    Action::new(Lattice::new(l).expect("twin: valid lattice"), Couplings { m2, lambda })
}

/// action.cu `eqflow_action`: `Action::action_one` of each field.
pub fn action<R: Real>(phi: &[R], m2: f64, lambda: f64, l: usize) -> Vec<f64> {
    let a = action_of(l, m2, lambda);
    phi.chunks(l * l).map(|p| a.action_one(&p.iter().map(|x| x.f64()).collect::<Vec<_>>())).collect()
}

/// action.cu `eqflow_force`: `Action::force_one` of each field.
pub fn force<R: Real>(phi: &[R], m2: f64, lambda: f64, l: usize) -> Vec<f64> {
    let a = action_of(l, m2, lambda);
    let mut out = vec![0.0; phi.len()];
    for (p, f) in phi.chunks(l * l).zip(out.chunks_mut(l * l)) {
        a.force_one(&p.iter().map(|x| x.f64()).collect::<Vec<_>>(), f);
    }
    out
}

/// features.cu `eqflow_features`: `Features::eval` of each field into h, h' (n × n_h × v).
pub fn features<R: Real>(u: &[R], omega: &[R], kind: FeatureKind, linear: bool, v: usize) -> (Vec<R>, Vec<R>) {
    let f = Features { kind, omega: omega.to_vec(), linear };
    let (n_h, n) = (f.n_rows(), u.len() / v);
    let (mut h, mut hp) = (vec![R::zero(); n * n_h * v], vec![R::zero(); n * n_h * v]);
    let mut cos = vec![R::zero(); omega.len().max(1) * v];
    for b in 0..n {
        let (hb, pb) = (&mut h[b * n_h * v..(b + 1) * n_h * v], &mut hp[b * n_h * v..(b + 1) * n_h * v]);
        f.eval(&u[b * v..(b + 1) * v], hb, pb, &mut cos);
    }
    (h, hp)
}

/// features.cu `eqflow_mix`: g = F̃ h per field, the GEMM of `VectorField`'s features.
pub fn mix<R: Real>(f: &[R], h: &[R], n_c: usize, n_h: usize, v: usize) -> Vec<R> {
    let n = h.len() / (n_h * v);
    let mut g = vec![R::zero(); n * n_c * v];
    for b in 0..n {
        R::gemm(
            n_c,
            n_h,
            v,
            R::one(),
            f,
            n_h as isize,
            1,
            &h[b * n_h * v..(b + 1) * n_h * v],
            v as isize,
            1,
            R::zero(),
            &mut g[b * n_c * v..(b + 1) * n_c * v],
            v as isize,
            1,
        );
    }
    g
}

/// conv.cu `eqflow_conv_direct`: the CPU's dense convolution (tested against the direct sum
/// of `flow::conv::direct`).
pub fn conv<R: Real>(w: &[R], g: &[R], l: usize, n_c: usize) -> Vec<R> {
    let v = l * l;
    let plan = ConvPlan::<R>::new(ConvMethod::Dense, l, n_c, &[]);
    let k = plan.prepare(w);
    let n = g.len() / (n_c * v);
    let mut out = vec![R::zero(); n * v];
    plan.forward(&k, g, &mut out, &mut plan.scratch(n));
    out
}

/// density.cu `eqflow_divergence`: `vector_field::divergence` of each field.
pub fn divergence<R: Real>(hp: &[R], beta: &[R], v: usize) -> Vec<f64> {
    let n_h = beta.len();
    hp.chunks(n_h * v).map(|p| crate::flow::vector_field::divergence(beta, p, v)).collect()
}

/// density.cu `eqflow_log_prior`: `grad::log_prior` of each field.
pub fn log_prior<R: Real>(z: &[R], v: usize) -> Vec<f64> {
    z.chunks(v).map(crate::flow::grad::log_prior).collect()
}

/// rk4.cu `eqflow_rk4_point`: u = φ + c k, as in `ode::stages_upto`.
pub fn rk4_point<R: Real>(phi: &[R], k: &[R], c: R) -> Vec<R> {
    phi.iter().zip(k).map(|(&p, &k)| p + c * k).collect()
}

/// rk4.cu `eqflow_rk4_combine`: `ode::combine` and `ode::div_increment` of each field.
pub fn rk4_combine<R: Real>(cur: &mut [R], k: [&[R]; 4], d: [&[f64]; 4], neg_div: &mut [f64], h: f64) {
    let v = cur.len() / neg_div.len().max(1);
    let mut st = crate::flow::ode::Stages::<R>::new(0, v);
    st.k = [k[0].to_vec(), k[1].to_vec(), k[2].to_vec(), k[3].to_vec()];
    st.d = [d[0].to_vec(), d[1].to_vec(), d[2].to_vec(), d[3].to_vec()];
    let base = cur.to_vec();
    crate::flow::ode::combine(R::of(h), &base, &st, cur);
    for (b, nd) in neg_div.iter_mut().enumerate() {
        *nd -= crate::flow::ode::div_increment(h, &st, b);
    }
}

/// metropolis.cu `eqflow_metropolis`: the accept/reject of `Chain::run` (no flip update).
/// Returns (state, accepted) per step, state −1 for the prior state `cur`, −2 for none.
pub fn metropolis(log_q: &[f64], action: &[f64], u: &[f64], cur: Option<(f64, f64)>) -> (Vec<i32>, Vec<i32>) {
    let (mut state, mut accepted) = (Vec::with_capacity(log_q.len()), Vec::with_capacity(log_q.len()));
    let mut cur_i = if cur.is_some() { -1 } else { -2 };
    let mut cur = cur;
    for i in 0..log_q.len() {
        let (lq, s) = (log_q[i], action[i]);
        let accept = if !lq.is_finite() || !s.is_finite() {
            false
        } else {
            match cur {
                None => true,
                Some((cq, cs)) => {
                    let log_ratio = (-s - lq) - (-cs - cq);
                    log_ratio >= 0.0 || u[i] < log_ratio.exp()
                }
            }
        };
        if accept {
            cur = Some((lq, s));
            cur_i = i as i32;
        }
        state.push(cur_i);
        accepted.push(accept as i32);
    }
    (state, accepted)
}

/// spectral.cu's passes, in f64 from their definitions (half spectra: k1 < L/2 + 1, (re, im)
/// pairs, `[m][k0][k1]`).
pub mod spectral {
    /// e^{± 2πi j k / L} as (cos, ±sin), the exponent reduced mod L first.
    fn e(l: usize, jk: usize, sign: f64) -> (f64, f64) {
        let th = 2.0 * std::f64::consts::PI * (jk % l) as f64 / l as f64;
        (th.cos(), sign * th.sin())
    }

    /// `eqflow_dft_rows`: the transforms along the rows of m real l × l arrays.
    pub fn dft_rows(x: &[f64], l: usize) -> Vec<f64> {
        let h = l / 2 + 1;
        let mut out = Vec::with_capacity(2 * x.len() / l * h);
        for row in x.chunks(l) {
            for k1 in 0..h {
                let (mut re, mut im) = (0.0, 0.0);
                for (x1, &v) in row.iter().enumerate() {
                    let (c, s) = e(l, k1 * x1, -1.0);
                    re += v * c;
                    im += v * s;
                }
                out.extend([re, im]);
            }
        }
        out
    }

    /// `eqflow_dft_cols`: the transforms along the columns of m half spectra.
    pub fn dft_cols(x: &[f64], l: usize, inverse: bool) -> Vec<f64> {
        let h = l / 2 + 1;
        let sign = if inverse { 1.0 } else { -1.0 };
        let mut out = vec![0.0; x.len()];
        for (xm, om) in x.chunks(2 * l * h).zip(out.chunks_mut(2 * l * h)) {
            for k in 0..l {
                for k1 in 0..h {
                    let (mut re, mut im) = (0.0, 0.0);
                    for j in 0..l {
                        let (xr, xi) = (xm[2 * (j * h + k1)], xm[2 * (j * h + k1) + 1]);
                        let (c, s) = e(l, j * k, sign);
                        re += xr * c - xi * s;
                        im += xr * s + xi * c;
                    }
                    om[2 * (k * h + k1)] = re;
                    om[2 * (k * h + k1) + 1] = im;
                }
            }
        }
        out
    }

    /// `eqflow_dft_c2r`: scale × the real inverse transforms along the rows of m half spectra.
    pub fn dft_c2r(x: &[f64], l: usize, scale: f64) -> Vec<f64> {
        let h = l / 2 + 1;
        let mut out = Vec::with_capacity(x.len() / (2 * h) * l);
        for row in x.chunks(2 * h) {
            for x1 in 0..l {
                let mut acc = 0.0;
                for k1 in 0..h {
                    let (c, s) = e(l, k1 * x1, 1.0);
                    let w = if k1 == 0 || 2 * k1 == l { 1.0 } else { 2.0 };
                    acc += w * (row[2 * k1] * c - row[2 * k1 + 1] * s);
                }
                out.push(scale * acc);
            }
        }
        out
    }

    /// `eqflow_spectral_mix` with mode 0 (forward), 1 (input) or 2 (kernel).
    pub fn mix(mode: u32, w: &[f64], x: &[f64], n: usize, l: usize, n_c: usize) -> Vec<f64> {
        let nk = l * (l / 2 + 1);
        let at = |a: &[f64], i: usize, k: usize| (a[2 * (i * nk + k)], a[2 * (i * nk + k) + 1]);
        let mul = |(a, b): (f64, f64), (c, d): (f64, f64)| (a * c - b * d, a * d + b * c);
        let mut out = Vec::new();
        match mode {
            0 => {
                for b in 0..n {
                    for k in 0..nk {
                        let (mut re, mut im) = (0.0, 0.0);
                        for c in 0..n_c {
                            let p = mul(at(w, c, k), at(x, b * n_c + c, k));
                            re += p.0;
                            im += p.1;
                        }
                        out.extend([re, im]);
                    }
                }
            }
            1 => {
                for b in 0..n {
                    for c in 0..n_c {
                        for k in 0..nk {
                            let (wr, wi) = at(w, c, k);
                            let p = mul((wr, -wi), at(x, b, k));
                            out.extend([p.0, p.1]);
                        }
                    }
                }
            }
            _ => {
                for c in 0..n_c {
                    for k in 0..nk {
                        let (mut re, mut im) = (0.0, 0.0);
                        for b in 0..n {
                            let (xr, xi) = at(x, b * n_c + c, k);
                            let p = mul(at(w, b, k), (xr, -xi));
                            re += p.0;
                            im += p.1;
                        }
                        out.extend([re, im]);
                    }
                }
            }
        }
        out
    }
}
