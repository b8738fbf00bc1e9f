//! Site-wise features h_j(φ) of the field, their derivatives, and their backward pass (SPEC §3.1–3.2).
//!
//! Rows j of h for one field (each of length V):
//! - odd:     sin(ω_b φ) for b < n_ω, then φ if the linear feature is on;
//! - non-odd: sin(ω_b φ), then cos(ω_b φ), then the constant 1, then φ if linear.

use super::config::FeatureKind;
use crate::real::Real;

/// The feature definition: kind, frequencies and the linear feature.
#[derive(Debug, Clone)]
pub struct Features<R: Real> {
    /// Odd or non-odd.
    pub kind: FeatureKind,
    /// Frequencies ω_b.
    pub omega: Vec<R>,
    /// Whether the last row is φ itself.
    pub linear: bool,
}

impl<R: Real> Features<R> {
    /// Number of rows n_h.
    pub fn n_rows(&self) -> usize {
        let n = self.omega.len();
        (match self.kind {
            FeatureKind::Odd => n,
            FeatureKind::NonOdd => 2 * n + 1,
        }) + self.linear as usize
    }

    /// h and h' = dh/dφ of one field `u` (length V) into `h`, `hp` (n_h × V each).
    /// `cos` (n_ω × V) keeps cos(ω_b u) for the backward pass.
    pub fn eval(&self, u: &[R], h: &mut [R], hp: &mut [R], cos: &mut [R]) {
        crate::simd::wide!(self.eval_body(u, h, hp, cos))
    }

    /// [`Self::eval`] inlined into its caller (compiled for the caller's CPU features).
    #[inline(always)]
    pub(crate) fn eval_body(&self, u: &[R], h: &mut [R], hp: &mut [R], cos: &mut [R]) {
        let v = u.len();
        let n = self.omega.len();
        for (b, &w) in self.omega.iter().enumerate() {
            let arg = &mut hp[b * v..(b + 1) * v];
            for (a, &x) in arg.iter_mut().zip(u) {
                *a = w * x;
            }
            R::sincos(arg, &mut h[b * v..(b + 1) * v], &mut cos[b * v..(b + 1) * v]);
            // h' of sin(ωu) is ω cos(ωu)
            for (p, &c) in arg.iter_mut().zip(&cos[b * v..(b + 1) * v]) {
                *p = w * c;
            }
        }
        let mut row = n;
        if self.kind == FeatureKind::NonOdd {
            for b in 0..n {
                let w = self.omega[b];
                let (hs, hc) = h.split_at_mut((n + b) * v);
                let (ps, pc) = hp.split_at_mut((n + b) * v);
                hc[..v].copy_from_slice(&cos[b * v..(b + 1) * v]);
                // d/du cos(ωu) = −ω sin(ωu)
                for (p, &s) in pc[..v].iter_mut().zip(&hs[b * v..(b + 1) * v]) {
                    *p = -w * s;
                }
                let _ = ps;
            }
            row = 2 * n;
            h[row * v..(row + 1) * v].fill(R::one());
            hp[row * v..(row + 1) * v].fill(R::zero());
            row += 1;
        }
        if self.linear {
            h[row * v..(row + 1) * v].copy_from_slice(u);
            hp[row * v..(row + 1) * v].fill(R::one());
        }
    }

    /// Backward pass of one field. Given hbar = ∂L/∂h (n_h × V), the divergence weights
    /// β_j (the divergence is Σ_j β_j Σ_x h'_j) and its cotangent `dbar`, accumulates
    /// ∂L/∂u into `ubar` and, if `grads = Some((omega_bar, beta_bar))`, ∂L/∂ω into
    /// `omega_bar` and d̄·Σ_x h'_j into `beta_bar` (without them: ∂L/∂u alone, for the score
    /// integration of path gradients). Sums over sites run in [`LANES`] interleaved partial
    /// sums, added in lane order, so they vectorise and stay independent of the CPU.
    ///
    /// Inlined into its caller and vectorised for the caller's CPU features: call it inside
    /// `simd::wide!` (as `VectorField::vjp` does).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn backward(
        &self,
        u: &[R],
        h: &[R],
        hp: &[R],
        cos: &[R],
        hbar: &[R],
        beta: &[R],
        dbar: f64,
        ubar: &mut [R],
        mut grads: Option<(&mut [f64], &mut [f64])>,
    ) {
        let v = u.len();
        let n = self.omega.len();
        let db = R::of(dbar);
        let rows = self.n_rows();
        let ubar = &mut ubar[..v];
        // ū += Σ_j h̄_j h'_j, and β̄_j += d̄ Σ_x h'_j
        for j in 0..rows {
            let (hb, p) = (&hbar[j * v..(j + 1) * v], &hp[j * v..(j + 1) * v]);
            let mut sp = [R::zero(); LANES];
            blocks(
                ubar,
                [hb, p],
                #[inline(always)]
                |ub, [hb, p]| {
                    for i in 0..LANES {
                        ub[i] = ub[i] + hb[i] * p[i];
                        sp[i] = sp[i] + p[i];
                    }
                },
            );
            if let Some((_, beta_bar)) = grads.as_mut() {
                beta_bar[j] += dbar * total(&sp).f64();
            }
        }
        for b in 0..n {
            let w = self.omega[b];
            let (s, c) = (&h[b * v..(b + 1) * v], &cos[b * v..(b + 1) * v]);
            // sine row: h'' = −ω² sin; ∂h/∂ω = u cos; ∂h'/∂ω = cos − ω u sin
            let hb = &hbar[b * v..(b + 1) * v];
            let kb = db * beta[b];
            let kw = kb * w * w;
            if let Some((omega_bar, _)) = grads.as_mut() {
                let (mut g1, mut g2) = ([R::zero(); LANES], [R::zero(); LANES]);
                blocks(
                    ubar,
                    [hb, u, s, c],
                    #[inline(always)]
                    |ub, [hb, u, s, c]| {
                        for i in 0..LANES {
                            ub[i] = ub[i] - kw * s[i];
                            g1[i] = g1[i] + hb[i] * u[i] * c[i];
                            g2[i] = g2[i] + (c[i] - w * u[i] * s[i]);
                        }
                    },
                );
                omega_bar[b] += total(&g1).f64() + (kb * total(&g2)).f64();
            } else {
                blocks(
                    ubar,
                    [s],
                    #[inline(always)]
                    |ub, [s]| {
                        for i in 0..LANES {
                            ub[i] = ub[i] - kw * s[i];
                        }
                    },
                );
            }
            if self.kind == FeatureKind::NonOdd {
                // cosine row: h'' = −ω² cos; ∂h/∂ω = −u sin; ∂h'/∂ω = −sin − ω u cos
                let hb = &hbar[(n + b) * v..(n + b + 1) * v];
                let kb = db * beta[n + b];
                let kw = kb * w * w;
                if let Some((omega_bar, _)) = grads.as_mut() {
                    let (mut g1, mut g2) = ([R::zero(); LANES], [R::zero(); LANES]);
                    blocks(
                        ubar,
                        [hb, u, s, c],
                        #[inline(always)]
                        |ub, [hb, u, s, c]| {
                            for i in 0..LANES {
                                ub[i] = ub[i] - kw * c[i];
                                g1[i] = g1[i] - hb[i] * u[i] * s[i];
                                g2[i] = g2[i] - (s[i] + w * u[i] * c[i]);
                            }
                        },
                    );
                    omega_bar[b] += total(&g1).f64() + (kb * total(&g2)).f64();
                } else {
                    blocks(
                        ubar,
                        [c],
                        #[inline(always)]
                        |ub, [c]| {
                            for i in 0..LANES {
                                ub[i] = ub[i] - kw * c[i];
                            }
                        },
                    );
                }
            }
        }
    }
}

/// The number of interleaved partial sums of the sums over sites (a multiple of every SIMD
/// width in use), fixed so that results do not depend on the CPU.
pub const LANES: usize = 8;

/// Runs `f` over the sites of `out` in blocks of [`LANES`] (with the same blocks of the rows
/// `ins`, each at least as long as `out`); a last partial block is zero-padded, and only its
/// sites are written back to `out` (zero inputs add nothing to the sums of `f`).
#[inline(always)]
fn blocks<R: Real, const K: usize>(
    out: &mut [R],
    ins: [&[R]; K],
    mut f: impl FnMut(&mut [R; LANES], [&[R; LANES]; K]),
) {
    let v = out.len();
    assert!(ins.iter().all(|x| x.len() >= v), "features: rows shorter than the field");
    let full = v - v % LANES;
    let mut x0 = 0;
    while x0 < full {
        let o: &mut [R; LANES] = (&mut out[x0..x0 + LANES]).try_into().expect("a block");
        f(o, std::array::from_fn(|k| ins[k][x0..x0 + LANES].try_into().expect("a block")));
        x0 += LANES;
    }
    if full < v {
        let n = v - full;
        let mut o = [R::zero(); LANES];
        o[..n].copy_from_slice(&out[full..]);
        let pads: [[R; LANES]; K] = std::array::from_fn(|k| {
            let mut p = [R::zero(); LANES];
            p[..n].copy_from_slice(&ins[k][full..v]);
            p
        });
        f(&mut o, std::array::from_fn(|k| &pads[k]));
        out[full..].copy_from_slice(&o[..n]);
    }
}

/// The partial sums added in lane order.
#[inline(always)]
pub fn total<R: Real>(acc: &[R; LANES]) -> R {
    acc.iter().fold(R::zero(), |s, &a| s + a)
}

/// Σ_x of one row in [`LANES`] partial sums (vectorises; the same on every CPU).
#[inline(always)]
pub fn row_sum<R: Real>(x: &[R]) -> R {
    let mut acc = [R::zero(); LANES];
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for (a, &y) in acc.iter_mut().zip(c) {
            *a = *a + y;
        }
    }
    for (a, &y) in acc.iter_mut().zip(it.remainder()) {
        *a = *a + y;
    }
    total(&acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::baseline;

    fn rows<R: Real>(n: usize, seed: u64) -> Vec<R> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                R::of((s >> 11) as f64 / (1u64 << 53) as f64 * 3.0 - 1.5)
            })
            .collect()
    }

    fn same<R: Real>(a: &[R], b: &[R]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.f64().to_bits() == y.f64().to_bits())
    }

    /// The dispatched (AVX2 where present) features and backward pass give the bits of the
    /// baseline build: same IEEE operations, same order (the tests' reference for "whatever
    /// the CPU").
    fn dispatch_matches_baseline<R: Real>() {
        let v = 37; // a partial last block of LANES
        for kind in [FeatureKind::Odd, FeatureKind::NonOdd] {
            let f = Features::<R> { kind, omega: rows(5, 1), linear: true };
            let (n_h, n) = (f.n_rows(), f.omega.len());
            let u = rows::<R>(v, 2);
            let (mut h, mut hp, mut cos) = (vec![R::zero(); n_h * v], vec![R::zero(); n_h * v], vec![R::zero(); n * v]);
            let (mut h0, mut hp0, mut cos0) = (h.clone(), hp.clone(), cos.clone());
            f.eval(&u, &mut h, &mut hp, &mut cos);
            baseline(|| f.eval_body(&u, &mut h0, &mut hp0, &mut cos0));
            assert!(same(&h, &h0) && same(&hp, &hp0) && same(&cos, &cos0), "{kind:?}: eval");
            let (hbar, beta) = (rows::<R>(n_h * v, 3), rows::<R>(n_h, 4));
            for with_grads in [false, true] {
                let (mut ub, mut ub0) = (rows::<R>(v, 5), rows::<R>(v, 5));
                let (mut om, mut bb) = (vec![0.1; n], vec![0.2; n_h]);
                let (mut om0, mut bb0) = (om.clone(), bb.clone());
                let g = with_grads.then_some((&mut om[..], &mut bb[..]));
                crate::simd::wide!(f.backward(&u, &h, &hp, &cos, &hbar, &beta, 0.7, &mut ub, g));
                let g0 = with_grads.then_some((&mut om0[..], &mut bb0[..]));
                baseline(|| f.backward(&u, &h, &hp, &cos, &hbar, &beta, 0.7, &mut ub0, g0));
                assert!(same(&ub, &ub0), "{kind:?}: ubar");
                assert!(same(&om, &om0) && same(&bb, &bb0), "{kind:?}: parameter gradients");
                assert!(ub.iter().zip(rows::<R>(v, 5)).any(|(a, b)| *a != b), "backward changed nothing");
            }
        }
    }

    #[test]
    fn dispatched_features_give_the_baseline_bits() {
        if !crate::simd::has_avx2() {
            eprintln!("note: no AVX2 on this CPU: the dispatch takes the baseline path, compared with itself");
        }
        dispatch_matches_baseline::<f32>();
        dispatch_matches_baseline::<f64>();
    }
}
