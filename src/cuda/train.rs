//! Training on the device (SPEC §4): the reverse-KL loss of a batch and its exact gradient,
//! back-propagated through the RK4 steps by the kernels of `kernels/train.cu`, as
//! `flow::grad::{forward_tape, backward}` do on the CPU (step-start states kept, each step's
//! stages recomputed, four feature banks per step).
//!
//! Host↔device traffic per training step: the parameters up (W in f64, ω, F̃ and K'(t) of
//! every slot: O(n_params + N_t·n_tc)), the gradient pieces down (∂W, ∂K' per slot, ∂F, ∂ω:
//! O(n_params + N_t·n_tc)) and log q, S of the batch down (2·batch). Nothing moves inside the
//! ODE loop. The Adam update is the host's (`Flow::apply_gradient`, O(n_params)), so the
//! optimiser state and the checkpoints are the CPU's, bit for bit in format.
//!
//! Path gradients (`TrainConfig::gradient`): the score ∇ log q is integrated alongside the
//! forward pass by the same kernels (one vector-Jacobian product per stage, as
//! `flow::grad::forward_tape_score`), and the backward pass starts from ∇(log q + S) without
//! differentiating log q.
//!
//! Written once over [`Launcher`]: the tests run it on the host emulation of the kernels
//! against `Flow::loss_and_grad_of`; on a GPU, [`CudaTrainer`] runs it on the device.

use super::conv::{Conv, ConvPath, Prepared, Scratch};
use super::device::Device;
use super::launch::{self, FeatureDims, FeaturesBackward, FieldDims, Launcher, ParamGrad};
use super::Elem;
use crate::error::{Error, Result, Status};
use crate::flow::config::{Architecture, FeatureKind};
use crate::flow::model::{Flow, Precision, Samples, StepStats};
use crate::flow::params::Layout;
use crate::flow::vector_field::{mixing, time_weights};
use crate::rng::Stream;
use crate::train::Gradient;
use std::sync::Arc;

/// The score integrated alongside the forward pass (path gradients), and the scratch of its
/// vector-Jacobian products (their parameter cotangents are discarded).
struct Score<L: Launcher, R: Elem> {
    a: L::Buf<R>,
    ai: L::Buf<R>,
    m: [L::Buf<R>; 4],
    abuf: L::Buf<R>,
    hbar: Option<L::Buf<R>>,
    wbar: L::Buf<f64>,
    beta_bar: L::Buf<f64>,
    omega_bar: L::Buf<f64>,
}

impl<L: Launcher, R: Elem> Score<L, R> {
    fn new(dev: &L, z: &L::Buf<R>, n: usize, v: usize, d: FieldDims, n_omega: usize, mixed: bool) -> Result<Self> {
        let len = n * v;
        let mut a = dev.alloc_zeros::<R>(len)?;
        launch::axpby(dev, z, &mut a, -1.0, 0.0, len)?;
        Ok(Score {
            a,
            ai: dev.alloc_zeros(len)?,
            m: [dev.alloc_zeros(len)?, dev.alloc_zeros(len)?, dev.alloc_zeros(len)?, dev.alloc_zeros(len)?],
            abuf: dev.alloc_zeros(n * d.n_c * v)?,
            hbar: if mixed { Some(dev.alloc_zeros(n * d.n_h * v)?) } else { None },
            wbar: dev.alloc_zeros(d.n_slots * d.n_c * v)?,
            beta_bar: dev.alloc_zeros(d.n_slots * d.n_h)?,
            omega_bar: dev.alloc_zeros(n_omega)?,
        })
    }
}

/// One bank of features of a stage point.
struct Bank<L: Launcher, R: Elem> {
    h: L::Buf<R>,
    hp: L::Buf<R>,
    g: Option<L::Buf<R>>,
}

/// A flow's vector field on an executor, prepared for training: the orbit tables and the
/// slot weights of the parameters last loaded.
pub struct Trainer<R: Elem, L: Launcher> {
    arch: Architecture,
    layout: Layout,
    d: FieldDims,
    fd: FeatureDims,
    m2: f64,
    lambda: f64,
    orbit_of: L::Buf<u32>,
    orbit_start: L::Buf<u32>,
    orbit_sites: L::Buf<u32>,
    orbit0: usize,
    w64: L::Buf<f64>,
    kp: L::Buf<f64>,
    omega: L::Buf<R>,
    /// F̃ (n_c × n_h) and F̃ᵀ (n_h × n_c), when features are mixed.
    fmix: Option<(L::Buf<R>, L::Buf<R>)>,
    /// The convolution, W_t (n_c × V) of every slot prepared for it, and β (n_h).
    conv: Conv<L, R>,
    wt: Vec<Prepared<L, R>>,
    beta: Vec<L::Buf<R>>,
    w0: L::Buf<R>,
    /// K(t_s) (d_t) of every slot, for ∂T on the host.
    k_raw: Vec<Vec<f64>>,
    /// The gradient estimator (the flow's `TrainConfig::gradient` when last stepped).
    gradient: Gradient,
}

impl<R: Elem, L: Launcher> Trainer<R, L> {
    /// Prepares `flow`'s field on `dev` and loads its current parameters, convolving by the
    /// path [`ConvPath::choose`] picks.
    pub fn new(flow: &Flow, dev: &L) -> Result<Self> {
        Self::with_path(flow, dev, ConvPath::choose(flow.lattice.size(), flow.layout.n_c)?)
    }

    /// As `new`, convolving by `path`.
    pub fn with_path(flow: &Flow, dev: &L, path: ConvPath) -> Result<Self> {
        if flow.has_custom_action() {
            return Err(Error::invalid(
                "CUDA training: a host action (eqflow_flow_set_action) cannot run on the device",
            ));
        }
        let (arch, layout) = (flow.config.arch.clone(), flow.layout.clone());
        let l = flow.lattice.size();
        let v = l * l;
        let n_slots = 2 * arch.ode_steps + 1;
        let d = FieldDims { n_slots, n_c: layout.n_c, n_h: layout.n_h, n_tc: layout.n_tc, n_orb: layout.n_orb, l };
        let fd = FeatureDims {
            n: 0,
            v,
            n_omega: layout.omega.len(),
            n_h: layout.n_h,
            kind: (arch.features == FeatureKind::NonOdd) as u32,
            linear: arch.linear_feature,
        };
        // orbits as CSR: sites of orbit o are orbit_sites[start[o]..start[o + 1]], in site order
        let mut start = vec![0u32; layout.n_orb + 1];
        for &o in &layout.orbit_of {
            start[o + 1] += 1;
        }
        for o in 0..layout.n_orb {
            start[o + 1] += start[o];
        }
        let mut fill = start.clone();
        let mut sites = vec![0u32; v];
        for (r, &o) in layout.orbit_of.iter().enumerate() {
            sites[fill[o] as usize] = r as u32;
            fill[o] += 1;
        }
        let orbit_of: Vec<u32> = layout.orbit_of.iter().map(|&o| o as u32).collect();
        let mut t = Trainer {
            d,
            fd,
            m2: flow.action.couplings.m2,
            lambda: flow.action.couplings.lambda,
            orbit_of: dev.upload(&orbit_of)?,
            orbit_start: dev.upload(&start)?,
            orbit_sites: dev.upload(&sites)?,
            orbit0: layout.orbit_of[0],
            w64: dev.alloc_zeros(layout.w.len())?,
            kp: dev.alloc_zeros(n_slots * layout.n_tc)?,
            omega: dev.alloc_zeros(layout.omega.len())?,
            fmix: None,
            conv: Conv::new(dev, path, l, layout.n_c)?,
            wt: (0..n_slots).map(|_| Ok(Prepared::empty(dev.alloc_zeros(layout.n_c * v)?))).collect::<Result<_>>()?,
            beta: (0..n_slots).map(|_| dev.alloc_zeros(layout.n_h)).collect::<Result<_>>()?,
            w0: dev.alloc_zeros(n_slots * layout.n_c)?,
            k_raw: Vec::new(),
            gradient: flow.config.train.gradient,
            arch,
            layout,
        };
        t.load_params(dev, flow.params())?;
        Ok(t)
    }

    /// Uploads parameters (the flow's layout) and recomputes every slot's weights on `dev`.
    pub fn load_params(&mut self, dev: &L, params: &[f64]) -> Result<()> {
        crate::error::check_len("CUDA training: parameters", params.len(), self.layout.total)?;
        let (lay, d) = (&self.layout, self.d);
        self.w64 = dev.upload(&params[lay.w.clone()])?;
        let omega: Vec<R> = params[lay.omega.clone()].iter().map(|&w| R::of(w)).collect();
        self.omega = dev.upload(&omega)?;
        self.fmix = match mixing::<R>(lay, params) {
            Some(f) => {
                let mut ft = vec![R::zero(); f.len()];
                for c in 0..d.n_c {
                    for j in 0..d.n_h {
                        ft[j * d.n_c + c] = f[c * d.n_h + j];
                    }
                }
                Some((dev.upload(&f)?, dev.upload(&ft)?))
            }
            None => None,
        };
        let mut kp = Vec::with_capacity(d.n_slots * d.n_tc);
        self.k_raw.clear();
        for s in 0..d.n_slots {
            let (_, k, kps) = time_weights(&self.arch, lay, params, s);
            kp.extend_from_slice(&kps);
            self.k_raw.push(k);
        }
        self.kp = dev.upload(&kp)?;
        for s in 0..d.n_slots {
            launch::slot_weights(dev, &self.w64, &self.kp, &self.orbit_of, &mut self.wt[s].w, &mut self.w0, s, d)?;
            launch::slot_beta(dev, &self.wt[s].w, self.fmix.as_ref().map(|f| &f.0), &mut self.beta[s], d)?;
        }
        self.conv.refresh_all(dev, &mut self.wt)?;
        Ok(())
    }

    /// The features of `u` into `bank` and the field f(u, t_slot) into `k`.
    #[allow(clippy::too_many_arguments)]
    fn eval(
        &self,
        dev: &L,
        slot: usize,
        u: &L::Buf<R>,
        bank: &mut Bank<L, R>,
        k: &mut L::Buf<R>,
        n: usize,
        s: &mut Scratch<L, R>,
    ) -> Result<()> {
        let (v, n_c, n_h) = (self.fd.v, self.d.n_c, self.d.n_h);
        launch::features(dev, u, &self.omega, &mut bank.h, &mut bank.hp, FeatureDims { n, ..self.fd })?;
        if let (Some((f, _)), Some(g)) = (&self.fmix, bank.g.as_mut()) {
            launch::mix(dev, f, &bank.h, g, n, v, n_h, n_c)?;
        }
        let feats = bank.g.as_ref().unwrap_or(&bank.h);
        self.conv.forward(dev, &self.wt[slot], feats, k, n, s)
    }

    /// Stage i of the score's RK4 step (`flow::grad::forward_tape_score`): the stage's score
    /// A_i = a + c_i·(−m_{i−1}), then m_i = (∂f/∂u)ᵀ A_i + ∇_u(∇·f) at the stage point, whose
    /// features `bank` holds (the right-hand side is −m_i).
    #[allow(clippy::too_many_arguments)]
    fn score_stage(
        &self,
        dev: &L,
        sc: &mut Score<L, R>,
        i: usize,
        slot: usize,
        point: &L::Buf<R>,
        bank: &Bank<L, R>,
        coef: f64,
        n: usize,
        scratch: &mut Scratch<L, R>,
    ) -> Result<()> {
        let (v, d) = (self.fd.v, self.d);
        let len = n * v;
        if i == 0 {
            launch::axpby(dev, &sc.a, &mut sc.ai, 1.0, 0.0, len)?;
        } else {
            launch::rk4_point(dev, &sc.a, &sc.m[i - 1], &mut sc.ai, -coef, len)?;
        }
        let feats = bank.g.as_ref().unwrap_or(&bank.h);
        // the score needs ∂/∂φ alone: no kernel gradient (its transforms of the features skipped)
        self.conv.backward(
            dev,
            &self.wt[slot],
            &sc.ai,
            feats,
            &mut sc.abuf,
            &mut sc.wbar,
            false,
            n,
            slot,
            d,
            scratch,
        )?;
        let hb = match (&self.fmix, sc.hbar.as_mut()) {
            (Some((_, ft)), Some(hb)) => {
                launch::mix(dev, ft, &sc.abuf, hb, n, v, d.n_c, d.n_h)?;
                &*hb
            }
            _ => &sc.abuf,
        };
        let fb = FeaturesBackward {
            u: point,
            omega: &self.omega,
            h: &bank.h,
            hp: &bank.hp,
            hbar: hb,
            beta: &self.beta[slot],
        };
        let fd = FeatureDims { n, ..self.fd };
        launch::features_backward(dev, fb, &mut sc.m[i], &mut sc.beta_bar, &mut sc.omega_bar, 1.0, slot, fd, d.n_slots)
    }

    /// The loss (mean of log q + S), log q and S of each field, and the gradient (the flow's
    /// parameter layout) for prior draws `z` (n × V) on the executor.
    pub fn loss_and_grad(&self, dev: &L, z: L::Buf<R>, n: usize) -> Result<(f64, Samples, Vec<f64>)> {
        if n == 0 {
            return Err(Error::invalid("CUDA training: an empty batch"));
        }
        let (v, l, d) = (self.fd.v, self.d.l, self.d);
        let (n_c, n_h, n_steps) = (d.n_c, d.n_h, self.arch.ode_steps);
        let len = n * v;
        let fd = FeatureDims { n, ..self.fd };
        let weight = 1.0 / n as f64;
        let mixed = self.fmix.is_some();
        let bank = || -> Result<Bank<L, R>> {
            Ok(Bank {
                h: dev.alloc_zeros(n * n_h * v)?,
                hp: dev.alloc_zeros(n * n_h * v)?,
                g: if mixed { Some(dev.alloc_zeros(n * n_c * v)?) } else { None },
            })
        };
        let mut banks = [bank()?, bank()?, bank()?, bank()?];
        let mut scratch = self.conv.scratch(dev, n)?;
        let mut k: Vec<L::Buf<R>> = (0..4).map(|_| dev.alloc_zeros(len)).collect::<Result<_>>()?;
        let mut u: Vec<L::Buf<R>> = (0..4).map(|_| dev.alloc_zeros(len)).collect::<Result<_>>()?;
        let mut dv: Vec<L::Buf<f64>> = (0..4).map(|_| dev.alloc_zeros(n)).collect::<Result<_>>()?;
        // the step and stage coefficients in R, as ode::stages_upto rounds them
        let h_step = 1.0 / n_steps.max(1) as f64;
        let hr = R::of(h_step);
        let half = hr * R::of(0.5);
        let coef = [R::zero(), half, half, hr];

        // 1. forward, keeping the state at the start of every step
        let mut log_r = dev.alloc_zeros::<f64>(n)?;
        launch::log_prior(dev, &z, &mut log_r, n, v)?;
        let mut neg_div = dev.alloc_zeros::<f64>(n)?;
        // path gradients: the score a = ∇ log q_t along the trajectory, from a(0) = −z
        let mut score = match self.gradient {
            Gradient::Total => None,
            Gradient::Path => Some(Score::<L, R>::new(dev, &z, n, v, d, fd.n_omega, mixed)?),
        };
        let mut states = vec![z];
        for step in 0..n_steps {
            let slots = [2 * step, 2 * step + 1, 2 * step + 1, 2 * step + 2];
            for i in 0..4 {
                if i > 0 {
                    let (prev, cur) = k.split_at_mut(i);
                    let _ = cur;
                    launch::rk4_point(dev, &states[step], &prev[i - 1], &mut u[i], coef[i].f64(), len)?;
                }
                let point = if i == 0 { &states[step] } else { &u[i] };
                self.eval(dev, slots[i], point, &mut banks[0], &mut k[i], n, &mut scratch)?;
                launch::divergence(dev, &banks[0].hp, &self.beta[slots[i]], &mut dv[i], n, v, n_h)?;
                if let Some(sc) = score.as_mut() {
                    self.score_stage(dev, sc, i, slots[i], point, &banks[0], coef[i].f64(), n, &mut scratch)?;
                }
            }
            if let Some(sc) = score.as_mut() {
                // a_{n+1} = a_n − h/6 (m_1 + 2 m_2 + 2 m_3 + m_4)
                for (i, ci) in [1.0, 2.0, 2.0, 1.0].into_iter().enumerate() {
                    launch::axpby(dev, &sc.m[i], &mut sc.a, -h_step / 6.0 * ci, 1.0, len)?;
                }
            }
            let mut next = dev.alloc_zeros::<R>(len)?;
            launch::axpby(dev, &states[step], &mut next, 1.0, 0.0, len)?;
            launch::rk4_combine(
                dev,
                &mut next,
                [&k[0], &k[1], &k[2], &k[3]],
                [&dv[0], &dv[1], &dv[2], &dv[3]],
                &mut neg_div,
                h_step,
                n,
                v,
            )?;
            states.push(next);
        }

        // 2. the action and its force at φ(1); φ̄ = ∂S/∂φ / n
        let phi = &states[n_steps];
        let mut action = dev.alloc_zeros::<f64>(n)?;
        launch::action(dev, phi, &mut action, self.m2, self.lambda, n, l)?;
        let mut force = dev.alloc_zeros::<f64>(len)?;
        launch::force(dev, phi, &mut force, self.m2, self.lambda, n, l)?;
        let mut phibar = dev.alloc_zeros::<R>(len)?;
        launch::scale_from_f64(dev, &force, &mut phibar, weight, len)?;
        // path gradients: φ̄ = ∇(log q + S) / n, and log q is not differentiated
        let log_q_weight = match &score {
            Some(sc) => {
                launch::axpby(dev, &sc.a, &mut phibar, weight, 1.0, len)?;
                0.0
            }
            None => weight,
        };
        drop(score);

        // 3. back-propagation through the steps (flow::grad::backward)
        let mut wbar = dev.alloc_zeros::<f64>(d.n_slots * n_c * v)?;
        let mut beta_bar = dev.alloc_zeros::<f64>(d.n_slots * n_h)?;
        let mut omega_bar = dev.alloc_zeros::<f64>(fd.n_omega)?;
        let mut fbar = if mixed { Some(dev.alloc_zeros::<f64>(n_c * n_h)?) } else { None };
        let mut acc = dev.alloc_zeros::<R>(len)?;
        let mut kbar = dev.alloc_zeros::<R>(len)?;
        let mut ubar = dev.alloc_zeros::<R>(len)?;
        let mut abuf = dev.alloc_zeros::<R>(n * n_c * v)?;
        let mut hbar = if mixed { Some(dev.alloc_zeros::<R>(n * n_h * v)?) } else { None };
        let c = [1.0, 2.0, 2.0, 1.0];
        let h6 = R::of(h_step / 6.0);
        let a_next = [R::of(0.5), R::of(0.5), R::one()];
        for step in (0..n_steps).rev() {
            let slots = [2 * step, 2 * step + 1, 2 * step + 1, 2 * step + 2];
            // the stage points u_0..u_3 and the features of each, in its own bank
            for i in 0..4 {
                if i > 0 {
                    let (prev, _) = k.split_at_mut(i);
                    launch::rk4_point(dev, &states[step], &prev[i - 1], &mut u[i], coef[i].f64(), len)?;
                }
                let point = if i == 0 { &states[step] } else { &u[i] };
                if i < 3 {
                    self.eval(dev, slots[i], point, &mut banks[i], &mut k[i], n, &mut scratch)?;
                } else {
                    let b = &mut banks[3];
                    launch::features(dev, point, &self.omega, &mut b.h, &mut b.hp, fd)?;
                    if let (Some((f, _)), Some(g)) = (&self.fmix, b.g.as_mut()) {
                        launch::mix(dev, f, &b.h, g, n, v, n_h, n_c)?;
                    }
                }
            }
            launch::axpby(dev, &phibar, &mut acc, 1.0, 0.0, len)?;
            let mut carry: Option<usize> = None;
            for i in (0..4).rev() {
                launch::axpby(dev, &phibar, &mut kbar, (h6 * R::of(c[i])).f64(), 0.0, len)?;
                if let Some(j) = carry {
                    launch::axpby(dev, &ubar, &mut kbar, (a_next[j - 1] * hr).f64(), 1.0, len)?;
                }
                let dbar = -h_step / 6.0 * c[i] * log_q_weight;
                let s = slots[i];
                let point = if i == 0 { &states[step] } else { &u[i] };
                let bank = &banks[i];
                let feats = bank.g.as_ref().unwrap_or(&bank.h);
                self.conv.backward(
                    dev,
                    &self.wt[s],
                    &kbar,
                    feats,
                    &mut abuf,
                    &mut wbar,
                    true,
                    n,
                    s,
                    d,
                    &mut scratch,
                )?;
                let hb = match (&self.fmix, hbar.as_mut(), fbar.as_mut()) {
                    (Some((_, ft)), Some(hb), Some(fb)) => {
                        // h̄ = F̃ᵀ ḡ, F̄ += Σ_b ḡ hᵀ
                        launch::mix(dev, ft, &abuf, hb, n, v, n_c, n_h)?;
                        launch::outer(dev, &abuf, &bank.h, fb, n, v, n_c, n_h)?;
                        &*hb
                    }
                    _ => &abuf,
                };
                let fb = FeaturesBackward {
                    u: point,
                    omega: &self.omega,
                    h: &bank.h,
                    hp: &bank.hp,
                    hbar: hb,
                    beta: &self.beta[s],
                };
                launch::features_backward(dev, fb, &mut ubar, &mut beta_bar, &mut omega_bar, dbar, s, fd, d.n_slots)?;
                launch::axpby(dev, &ubar, &mut acc, 1.0, 1.0, len)?;
                carry = Some(i);
            }
            std::mem::swap(&mut phibar, &mut acc);
        }

        // 4. the parameter gradient
        let lay = &self.layout;
        let mut wo_bar = dev.alloc_zeros::<f64>(d.n_slots * d.n_orb * n_c)?;
        let mut gw = dev.alloc_zeros::<f64>(lay.w.len())?;
        let mut kp_bar = dev.alloc_zeros::<f64>(d.n_slots * d.n_tc)?;
        let mut gf = if mixed { Some(dev.alloc_zeros::<f64>(n_c * n_h)?) } else { None };
        let p = ParamGrad {
            wbar: &wbar,
            beta_bar: &beta_bar,
            mixing: match (&fbar, &self.fmix) {
                (Some(fb), Some((f, _))) => Some((fb, f)),
                _ => None,
            },
            w0: &self.w0,
            orbit_start: &self.orbit_start,
            orbit_sites: &self.orbit_sites,
            orbit0: self.orbit0,
            w: &self.w64,
            kp: &self.kp,
        };
        launch::param_grad(dev, p, &mut wo_bar, &mut gw, &mut kp_bar, gf.as_mut(), d)?;
        let mut grad = vec![0.0; lay.total];
        grad[lay.w.clone()].copy_from_slice(&dev.download(&gw)?);
        grad[lay.omega.clone()].copy_from_slice(&dev.download(&omega_bar)?[..lay.omega.len()]);
        if let (Some(fr), Some(gf)) = (&lay.f, &gf) {
            grad[fr.clone()].copy_from_slice(&dev.download(gf)?);
        }
        if let Some(tr) = &lay.t {
            let kpb = dev.download(&kp_bar)?;
            let (n_tc, d_t) = (lay.n_tc, lay.d_t);
            let gt = &mut grad[tr.clone()];
            for (s, k) in self.k_raw.iter().enumerate() {
                for a in 0..n_tc {
                    for j in 0..d_t {
                        gt[a * d_t + j] += kpb[s * n_tc + a] * k[j] / d_t as f64;
                    }
                }
            }
        }
        let (log_r, neg_div, action) = (dev.download(&log_r)?, dev.download(&neg_div)?, dev.download(&action)?);
        let log_q: Vec<f64> = (0..n).map(|b| log_r[b] + neg_div[b]).collect();
        let loss = log_q.iter().zip(&action).map(|(q, s)| q + s).sum::<f64>() / n as f64;
        Ok((loss, Samples { phi: Vec::new(), log_q, action }, grad))
    }

    /// The loss and gradient for host prior draws z (n × V, f64; rounded to R).
    pub fn loss_and_grad_host(&self, dev: &L, z: &[f64]) -> Result<(f64, Samples, Vec<f64>)> {
        let v = self.fd.v;
        if z.is_empty() || z.len() % v != 0 {
            return Err(Error::length("CUDA loss_and_grad: z", z.len(), v * (z.len() / v).max(1)));
        }
        crate::error::check_finite("CUDA loss_and_grad: z", z)?;
        let zr: Vec<R> = z.iter().map(|&x| R::of(x)).collect();
        self.loss_and_grad(dev, dev.upload(&zr)?, z.len() / v)
    }

    /// The loss and gradient of `flow`'s next training batch (or micro-batch), drawn on `dev`
    /// as `Flow::train_step` draws it: prior points first..first + n of (seed, Train).
    pub fn loss_and_grad_drawn(&self, dev: &L, seed: u64, first: u64, n: usize) -> Result<(f64, Samples, Vec<f64>)> {
        let v = self.fd.v;
        let mut z = dev.alloc_zeros::<R>(n * v)?;
        launch::prior_normal(dev, &mut z, seed, Stream::Train as u32, first, n, v)?;
        self.loss_and_grad(dev, z, n)
    }
}

/// One training step of `flow` on `dev` with `trainer` (its parameters loaded): the batch in
/// micro-batches as `Flow::train_step` splits it, then the host's Adam update; reloads the
/// new parameters.
fn step_with<R: Elem, L: Launcher>(dev: &L, trainer: &mut Trainer<R, L>, flow: &mut Flow) -> Result<StepStats> {
    let seed = flow.config.seed;
    let (loss, samples, grad) = flow.batch_gradient(|_, first, n| trainer.loss_and_grad_drawn(dev, seed, first, n))?;
    let stats = flow.apply_gradient(loss, &samples, &grad)?;
    trainer.load_params(dev, flow.params())?;
    Ok(stats)
}

/// One training step of `flow` with `t`, rebuilt first if the step's N_t (coarse
/// integration early in training) is not the one it was made for.
pub(crate) fn train_step<R: Elem, L: Launcher>(d: &L, t: &mut Trainer<R, L>, flow: &mut Flow) -> Result<StepStats> {
    let nt = flow.training_ode_steps();
    if t.arch.ode_steps != nt {
        let mut f = flow.snapshot();
        f.set_ode_steps(nt)?;
        *t = Trainer::with_path(&f, d, t.conv.path())?;
    }
    check_same(t, flow)?;
    t.gradient = flow.config.train.gradient;
    step_with(d, t, flow)
}

enum AnyTrainer {
    F32(Trainer<f32, Device>),
    F64(Trainer<f64, Device>),
}

/// Training of one flow on a CUDA device, in the flow's training precision. The flow stays
/// the master copy (parameters, Adam state, step count, checkpoints); each step runs the
/// batch's forward and backward passes on the device and updates the flow.
pub struct CudaTrainer {
    device: Arc<Device>,
    trainer: AnyTrainer,
}

impl CudaTrainer {
    /// Prepares `flow` for training on `device`, convolving by the path [`ConvPath::choose`]
    /// picks.
    pub fn new(flow: &Flow, device: Arc<Device>) -> Result<Self> {
        Self::with_conv_path(flow, device, ConvPath::choose(flow.lattice.size(), flow.layout.n_c)?)
    }

    /// As `new`, convolving by `path`.
    pub fn with_conv_path(flow: &Flow, device: Arc<Device>, path: ConvPath) -> Result<Self> {
        let trainer = match flow.config.precision {
            Precision::F32 => AnyTrainer::F32(Trainer::with_path(flow, &*device, path)?),
            Precision::F64 => AnyTrainer::F64(Trainer::with_path(flow, &*device, path)?),
        };
        Ok(CudaTrainer { device, trainer })
    }

    /// One training step of `flow` (which must be the flow this trainer was made for, with
    /// the parameters it was last given).
    /// With coarse integration early in training (`TrainConfig::coarse_ode_steps`), the
    /// trainer is rebuilt when the step's N_t changes.
    pub fn train_step(&mut self, flow: &mut Flow) -> Result<StepStats> {
        let d = &*self.device;
        match &mut self.trainer {
            AnyTrainer::F32(t) => train_step(d, t, flow),
            AnyTrainer::F64(t) => train_step(d, t, flow),
        }
    }

    /// The batch loss, log q and S, and gradient for host prior draws z (as
    /// `Flow::loss_and_grad_of`).
    pub fn loss_and_grad_of(&self, z: &[f64]) -> Result<(f64, Samples, Vec<f64>)> {
        let d = &*self.device;
        match &self.trainer {
            AnyTrainer::F32(t) => t.loss_and_grad_host(d, z),
            AnyTrainer::F64(t) => t.loss_and_grad_host(d, z),
        }
    }
}

fn check_same<R: Elem, L: Launcher>(t: &Trainer<R, L>, flow: &Flow) -> Result<()> {
    let mut arch = flow.config.arch.clone();
    arch.ode_steps = t.arch.ode_steps;
    if t.arch != arch || t.layout.total != flow.layout.total || t.d.l != flow.lattice.size() {
        return Err(Error::new(
            Status::InvalidArgument,
            "CUDA training: the flow is not the one this trainer was made for",
        ));
    }
    Ok(())
}
