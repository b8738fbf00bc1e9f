//! The equivariant vector field f_θ(φ, t) and its exact divergence (SPEC §3.1, seed Eq. 9),
//! prepared for one parameter vector, with its vector-Jacobian product for back-propagation.
//!
//! f(φ, t)_x = Σ_y Σ_c W_t[c][x − y] g_c(φ_y),   W_t[c][r] = Σ_a W[o(r)][a][c] K'_a(t)
//! ∇·f = Σ_x Σ_c W_t[c][0] g_c'(φ_x) = Σ_j β_j Σ_x h_j'(φ_x),   β_j = Σ_c W_t[c][0] F̃_cj
//!
//! with g = F̃ h (F̃ = F / n_h when features are mixed, the identity otherwise) and
//! K' = T K / d_t when time is mixed (K otherwise).

use super::config::Architecture;
use super::conv::{ConvKernel, ConvMethod, ConvPlan, ConvScratch, ConvSpectra};
use super::features::Features;
use super::params::Layout;
use super::time_kernel;
use crate::lattice::Lattice;
use crate::real::Real;

/// One of the 2·N_t + 1 distinct times at which RK4 evaluates the field.
pub struct Slot<R: Real> {
    /// The time t.
    pub t: f64,
    /// Raw time kernel K(t) (d_t).
    pub k: Vec<f64>,
    /// Effective time weights K'(t) (n_tc).
    pub kp: Vec<f64>,
    /// W_t[c][0] (n_c).
    pub w0: Vec<R>,
    /// Divergence weights β_j (n_h).
    pub beta: Vec<R>,
    /// The convolution kernel W_t.
    pub kernel: ConvKernel<R>,
}

/// The vector field for one parameter vector, with every time slot prepared.
pub struct VectorField<R: Real> {
    /// The lattice.
    pub lattice: Lattice,
    /// The architecture.
    pub arch: Architecture,
    /// The parameter layout.
    pub layout: Layout,
    /// The parameters (f64 master copy).
    pub params: Vec<f64>,
    /// The site features.
    pub feats: Features<R>,
    fmix: Option<Vec<R>>,
    /// Slots 2n (t = n·h) and 2n+1 (t = (n+½)·h).
    pub slots: Vec<Slot<R>>,
    conv: ConvPlan<R>,
}

/// Site features of a chunk at one stage point: h, h', cos(ω u) and (if mixed) g = F̃ h.
struct Bank<R: Real> {
    h: Vec<R>,
    hp: Vec<R>,
    cos: Vec<R>,
    g: Vec<R>,
    /// The convolution inputs' spectra, kept by `eval` for `vjp` of the same features
    /// (back-propagation with four banks only).
    spectra: ConvSpectra<R>,
}

/// Per-thread buffers for a chunk of up to `nb` fields. With four banks the features of the
/// four RK4 stage points are kept, so back-propagation need not recompute them.
pub struct Work<R: Real> {
    nb: usize,
    banks: Vec<Bank<R>>,
    a: Vec<R>,
    hbar: Vec<R>,
    wbar_t: Vec<R>,
    fbar: Vec<R>,
    beta_bar: Vec<f64>,
    conv: ConvScratch<R>,
}

/// The feature mixing F̃ = F / n_h (n_c × n_h), if the architecture mixes features.
pub fn mixing<R: Real>(layout: &Layout, params: &[f64]) -> Option<Vec<R>> {
    layout.f.clone().map(|f| params[f].iter().map(|&x| R::of(x / layout.n_h as f64)).collect())
}

/// ∇·f of one field from its h' (n_h × V): Σ_j β_j Σ_x h'_j, each row summed in R by
/// [`super::features::row_sum`] (fixed lanes: the same on every CPU).
pub fn divergence<R: Real>(beta: &[R], hp: &[R], v: usize) -> f64 {
    crate::simd::wide!(divergence_body(beta, hp, v))
}

#[inline(always)]
fn divergence_body<R: Real>(beta: &[R], hp: &[R], v: usize) -> f64 {
    let mut acc = 0.0;
    for (j, &b) in beta.iter().enumerate() {
        let row_sum = super::features::row_sum(&hp[j * v..(j + 1) * v]);
        acc += (b * row_sum).f64();
    }
    acc
}

/// The weights of one time slot s (t = s / 2N_t): the displacement kernel W_t (n_c × V) and
/// the divergence weights β, as every backend uses them.
pub struct SlotWeights<R: Real> {
    /// The time t.
    pub t: f64,
    /// Raw time kernel K(t) (d_t).
    pub k: Vec<f64>,
    /// Effective time weights K'(t) (n_tc).
    pub kp: Vec<f64>,
    /// W_t[c][r] (n_c × V).
    pub wt: Vec<R>,
    /// W_t[c][0] (n_c).
    pub w0: Vec<R>,
    /// Divergence weights β_j (n_h).
    pub beta: Vec<R>,
}

/// The time t of slot s (t = s / 2N_t), its raw time kernel K(t) (d_t) and the effective
/// time weights K'(t) (n_tc): T K / d_t when time is mixed, K otherwise.
pub fn time_weights(arch: &Architecture, layout: &Layout, params: &[f64], s: usize) -> (f64, Vec<f64>, Vec<f64>) {
    let (n_tc, d_t) = (layout.n_tc, layout.d_t);
    let t = s as f64 / (2 * arch.ode_steps) as f64;
    let mut k = vec![0.0; d_t];
    time_kernel::eval(arch.time_kernel, t, &mut k);
    let kp: Vec<f64> = match (&layout.t, arch.time_mixing) {
        (Some(tr), Some(_)) => {
            let tm = &params[tr.clone()];
            (0..n_tc).map(|a| (0..d_t).map(|j| tm[a * d_t + j] * k[j]).sum::<f64>() / d_t as f64).collect()
        }
        _ => k.clone(),
    };
    (t, k, kp)
}

impl<R: Real> SlotWeights<R> {
    /// The weights of slot `s` for `params`; `fmix` is [`mixing`] of the same parameters.
    pub fn new(
        arch: &Architecture,
        lattice: Lattice,
        layout: &Layout,
        params: &[f64],
        fmix: Option<&[R]>,
        s: usize,
    ) -> Self {
        let v = lattice.volume();
        let (n_c, n_h, n_tc, n_orb) = (layout.n_c, layout.n_h, layout.n_tc, layout.n_orb);
        let w = &params[layout.w.clone()];
        let (t, k, kp) = time_weights(arch, layout, params, s);
        // W_o[o][c] = Σ_a W[o][a][c] K'_a, then spread over displacements
        let mut wo = vec![0.0; n_orb * n_c];
        for o in 0..n_orb {
            for (a, &ka) in kp.iter().enumerate() {
                let row = &w[(o * n_tc + a) * n_c..(o * n_tc + a + 1) * n_c];
                for c in 0..n_c {
                    wo[o * n_c + c] += row[c] * ka;
                }
            }
        }
        let mut wt = vec![R::zero(); n_c * v];
        for r in 0..v {
            let o = layout.orbit_of[r];
            for c in 0..n_c {
                wt[c * v + r] = R::of(wo[o * n_c + c]);
            }
        }
        let w0: Vec<R> = (0..n_c).map(|c| wt[c * v]).collect();
        let beta: Vec<R> = match fmix {
            Some(f) => (0..n_h).map(|j| (0..n_c).fold(R::zero(), |acc, c| acc + w0[c] * f[c * n_h + j])).collect(),
            None => w0.clone(),
        };
        SlotWeights { t, k, kp, wt, w0, beta }
    }
}

impl<R: Real> VectorField<R> {
    /// Prepares the field for `params` (layout of `layout`), evaluated with `method`.
    pub fn new(arch: &Architecture, lattice: Lattice, layout: &Layout, params: &[f64], method: ConvMethod) -> Self {
        let n_c = layout.n_c;
        let feats = Features {
            kind: arch.features,
            omega: params[layout.omega.clone()].iter().map(|&w| R::of(w)).collect(),
            linear: arch.linear_feature,
        };
        let fmix = mixing::<R>(layout, params);
        let conv = ConvPlan::new(method, lattice.size(), n_c, &layout.orbit_of);
        let n_steps = arch.ode_steps;
        let slots = (0..=2 * n_steps)
            .map(|s| {
                let w = SlotWeights::new(arch, lattice, layout, params, fmix.as_deref(), s);
                let kernel = conv.prepare(&w.wt);
                Slot { t: w.t, k: w.k, kp: w.kp, w0: w.w0, beta: w.beta, kernel }
            })
            .collect();
        VectorField {
            lattice,
            arch: arch.clone(),
            layout: layout.clone(),
            params: params.to_vec(),
            feats,
            fmix,
            slots,
            conv,
        }
    }

    /// Buffers for chunks of up to `nb` fields, with `banks` (1 or 4) feature banks.
    pub fn work_banks(&self, nb: usize, banks: usize) -> Work<R> {
        let v = self.lattice.volume();
        let (n_c, n_h, n_w) = (self.layout.n_c, self.layout.n_h, self.feats.omega.len());
        let mixed = self.fmix.is_some();
        let bank = || Bank {
            h: vec![R::zero(); nb * n_h * v],
            hp: vec![R::zero(); nb * n_h * v],
            cos: vec![R::zero(); nb * n_w.max(1) * v],
            g: if mixed { vec![R::zero(); nb * n_c * v] } else { Vec::new() },
            spectra: ConvSpectra::None,
        };
        Work {
            nb,
            banks: (0..banks).map(|_| bank()).collect(),
            a: vec![R::zero(); nb * n_c * v],
            hbar: if mixed { vec![R::zero(); nb * n_h * v] } else { Vec::new() },
            wbar_t: vec![R::zero(); n_c * v],
            fbar: if mixed { vec![R::zero(); n_c * n_h] } else { Vec::new() },
            beta_bar: vec![0.0; n_h],
            conv: self.conv.scratch(nb),
        }
    }

    /// Buffers for chunks of up to `nb` fields (one feature bank).
    pub fn work(&self, nb: usize) -> Work<R> {
        self.work_banks(nb, 1)
    }

    /// Buffers for back-propagation: four feature banks when they fit in 64 MiB. (At L = 64,
    /// f32, chunks of 8 fields, the four banks would take 131 MB: measured, a step was 7 %
    /// slower with them than recomputing into one bank, so the limit stays.)
    pub fn work_for_grad(&self, nb: usize) -> Work<R> {
        // features, and the spectra of the convolution's inputs (about n_c numbers per site)
        let per_bank =
            nb * self.lattice.volume() * (3 * self.layout.n_h + 2 * self.layout.n_c) * std::mem::size_of::<R>();
        let mut w = self.work_banks(nb, if 4 * per_bank <= 64 << 20 { 4 } else { 1 });
        if w.banks.len() == 4 {
            for b in &mut w.banks {
                b.spectra = self.conv.spectra(nb);
            }
        }
        w
    }

    /// The bank that stage `i` uses (its own when there are four).
    pub fn bank_for(w: &Work<R>, i: usize) -> usize {
        if w.banks.len() == 4 {
            i
        } else {
            0
        }
    }

    /// Whether `w` keeps one bank per stage.
    pub fn caches_stages(w: &Work<R>) -> bool {
        w.banks.len() == 4
    }

    /// Features h, h', cos and (if mixed) g of the fields `u` into feature bank `k`.
    fn features(&self, u: &[R], w: &mut Work<R>, k: usize) -> usize {
        let v = self.lattice.volume();
        let nb = u.len() / v;
        assert!(nb <= w.nb && u.len() == nb * v, "vector field: chunk of {nb} fields exceeds work size {}", w.nb);

        let (n_c, n_h, n_w) = (self.layout.n_c, self.layout.n_h, self.feats.omega.len().max(1));
        let w = &mut w.banks[k];
        w.spectra.invalidate();
        for b in 0..nb {
            self.feats.eval(
                &u[b * v..(b + 1) * v],
                &mut w.h[b * n_h * v..(b + 1) * n_h * v],
                &mut w.hp[b * n_h * v..(b + 1) * n_h * v],
                &mut w.cos[b * n_w * v..(b + 1) * n_w * v],
            );
            if let Some(f) = &self.fmix {
                R::gemm(
                    n_c,
                    n_h,
                    v,
                    R::one(),
                    f,
                    n_h as isize,
                    1,
                    &w.h[b * n_h * v..(b + 1) * n_h * v],
                    v as isize,
                    1,
                    R::zero(),
                    &mut w.g[b * n_c * v..(b + 1) * n_c * v],
                    v as isize,
                    1,
                );
            }
        }
        nb
    }

    /// f(u, t_slot) into `f` and ∇·f into `div`, for a chunk of fields `u` (nb × V),
    /// leaving the features of `u` in bank `k`.
    pub fn eval(&self, slot: usize, u: &[R], f: &mut [R], div: &mut [f64], w: &mut Work<R>, k: usize) {
        let v = self.lattice.volume();
        let nb = self.features(u, w, k);
        let n_h = self.layout.n_h;
        let s = &self.slots[slot];
        let bank = &mut w.banks[k];
        let g = if self.fmix.is_some() { &bank.g[..nb * self.layout.n_c * v] } else { &bank.h[..nb * n_h * v] };
        self.conv.forward_keep(&s.kernel, g, &mut f[..nb * v], &mut w.conv, &mut bank.spectra);
        for (b, d) in div.iter_mut().enumerate().take(nb) {
            *d = divergence(&s.beta, &w.banks[k].hp[b * n_h * v..(b + 1) * n_h * v], v);
        }
    }

    /// Vector-Jacobian product at slot `slot` for fields `u`: given k̄ = ∂L/∂f (nb × V) and
    /// d̄ = ∂L/∂(∇·f) (nb), accumulates ∂L/∂u into `ubar` and ∂L/∂θ into `grad` (flat layout).
    /// With `fresh = false` the features of `u` are taken from bank `k` as `eval` left them.
    /// With `grad = None` only ∂L/∂u is computed, with half the convolution's transforms (the
    /// score integration of path gradients needs no parameter gradient).
    #[allow(clippy::too_many_arguments)]
    pub fn vjp(
        &self,
        slot: usize,
        u: &[R],
        kbar: &[R],
        dbar: &[f64],
        ubar: &mut [R],
        mut grad: Option<&mut [f64]>,
        w: &mut Work<R>,
        k: usize,
        fresh: bool,
    ) {
        let v = self.lattice.volume();
        let nb = if fresh { self.features(u, w, k) } else { u.len() / v };
        let Work { banks, a: wa, hbar: whbar, wbar_t, fbar, beta_bar, conv, .. } = w;
        let bank = &banks[k];
        let lay = &self.layout;
        let (n_c, n_h, n_tc, d_t, n_orb) = (lay.n_c, lay.n_h, lay.n_tc, lay.d_t, lay.n_orb);
        let n_w = self.feats.omega.len().max(1);
        let s = &self.slots[slot];
        let want_grad = grad.is_some();
        {
            let g = if self.fmix.is_some() { &bank.g[..nb * n_c * v] } else { &bank.h[..nb * n_h * v] };
            if want_grad {
                wbar_t.iter_mut().for_each(|x| *x = R::zero());
                self.conv.backward_kept(
                    &s.kernel,
                    &kbar[..nb * v],
                    g,
                    &bank.spectra,
                    &mut wa[..nb * n_c * v],
                    wbar_t,
                    conv,
                );
            } else {
                self.conv.backward_input(&s.kernel, &kbar[..nb * v], g, &mut wa[..nb * n_c * v], conv);
            }
        }
        if let Some(f) = &self.fmix {
            // h̄ = F̃ᵀ ḡ and F̄ += (1/n_h) Σ_b ḡ hᵀ
            if want_grad {
                fbar.iter_mut().for_each(|x| *x = R::zero());
            }
            for b in 0..nb {
                let a = &wa[b * n_c * v..(b + 1) * n_c * v];
                R::gemm(
                    n_h,
                    n_c,
                    v,
                    R::one(),
                    f,
                    1,
                    n_h as isize,
                    a,
                    v as isize,
                    1,
                    R::zero(),
                    &mut whbar[b * n_h * v..(b + 1) * n_h * v],
                    v as isize,
                    1,
                );
                if !want_grad {
                    continue;
                }
                R::gemm(
                    n_c,
                    v,
                    n_h,
                    R::one(),
                    a,
                    v as isize,
                    1,
                    &bank.h[b * n_h * v..(b + 1) * n_h * v],
                    1,
                    v as isize,
                    R::one(),
                    fbar,
                    n_h as isize,
                    1,
                );
            }
        }
        beta_bar.iter_mut().for_each(|x| *x = 0.0);
        let om = lay.omega.clone();
        for b in 0..nb {
            let hbar = if self.fmix.is_some() {
                &whbar[b * n_h * v..(b + 1) * n_h * v]
            } else {
                &wa[b * n_c * v..(b + 1) * n_c * v]
            };
            crate::simd::wide!(self.feats.backward(
                &u[b * v..(b + 1) * v],
                &bank.h[b * n_h * v..(b + 1) * n_h * v],
                &bank.hp[b * n_h * v..(b + 1) * n_h * v],
                &bank.cos[b * n_w * v..(b + 1) * n_w * v],
                hbar,
                &s.beta,
                dbar[b],
                &mut ubar[b * v..(b + 1) * v],
                grad.as_deref_mut().map(|g| (&mut g[om.clone()], &mut beta_bar[..])),
            ));
        }
        let Some(grad) = grad else { return };
        // β_j = Σ_c w0_c F̃_cj: back to w0 (and F)
        let mut w0bar = vec![0.0; n_c];
        match (&self.fmix, &lay.f) {
            (Some(f), Some(fr)) => {
                let gf = &mut grad[fr.clone()];
                for c in 0..n_c {
                    let mut acc = 0.0;
                    for j in 0..n_h {
                        acc += beta_bar[j] * f[c * n_h + j].f64();
                        gf[c * n_h + j] += (s.w0[c].f64() * beta_bar[j] + fbar[c * n_h + j].f64()) / n_h as f64;
                    }
                    w0bar[c] = acc;
                }
            }
            _ => w0bar.copy_from_slice(&beta_bar[..n_c]),
        }
        // W̄_t (displacements) → orbits; then through W_t = Σ_a W[o][a][c] K'_a
        let mut wo_bar = vec![0.0; n_orb * n_c];
        for c in 0..n_c {
            for r in 0..v {
                wo_bar[lay.orbit_of[r] * n_c + c] += wbar_t[c * v + r].f64();
            }
            wo_bar[lay.orbit_of[0] * n_c + c] += w0bar[c];
        }
        let mut kp_bar = vec![0.0; n_tc];
        {
            let wpar = &self.params[lay.w.clone()];
            let gw = &mut grad[lay.w.clone()];
            let mut acc = vec![0.0; n_tc];
            for o in 0..n_orb {
                let wb = &wo_bar[o * n_c..(o + 1) * n_c];
                for (a, &kp) in s.kp.iter().enumerate() {
                    let base = (o * n_tc + a) * n_c;
                    for (g, &b) in gw[base..base + n_c].iter_mut().zip(wb) {
                        *g += kp * b;
                    }
                }
                // Σ_c W ⋅ W̄ for every a at once: n_tc independent sums, each over c in order
                acc.iter_mut().for_each(|x| *x = 0.0);
                for (c, &b) in wb.iter().enumerate() {
                    for (a, x) in acc.iter_mut().enumerate() {
                        *x += wpar[(o * n_tc + a) * n_c + c] * b;
                    }
                }
                kp_bar.iter_mut().zip(&acc).for_each(|(k, &x)| *k += x);
            }
        }
        if let Some(tr) = &lay.t {
            let gt = &mut grad[tr.clone()];
            for a in 0..n_tc {
                for j in 0..d_t {
                    gt[a * d_t + j] += kp_bar[a] * s.k[j] / d_t as f64;
                }
            }
        }
    }
}
