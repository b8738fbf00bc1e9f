//! [`CudaFlow`]: a flow's prepared vector field on the device, and push-forward of prior
//! draws there (sampling direction: fields, log q and S), with host↔device traffic only at
//! the API boundary (prior draws are made on the device; fields, log r, −∫∇·f and S come
//! back once per chunk).
//!
//! The kernel sequence is written once, in `Pipeline::push_forward`, over an executor ([`Exec`]):
//! the device runs the kernels, [`CpuTwins`] runs their CPU twins. The CPU tests run the
//! sequence on the twins against `Flow::push_forward`; the GPU tests run it on the device.

use super::conv::{Conv, ConvPath, Prepared, Scratch};
use super::device::Device;
pub use super::launch::FeatureDims;
use super::launch::{self, Launcher};
use super::{twin, Elem};
use crate::error::{Error, Result};
use crate::flow::config::FeatureKind;
use crate::flow::model::{Flow, Precision, Samples};
use crate::flow::vector_field::{mixing, SlotWeights};
use crate::rng::Stream;
use std::sync::Arc;

/// What the sampler's kernel sequence needs, on the device or on the CPU twins.
pub trait Exec<R: Elem> {
    /// A buffer of R.
    type R;
    /// A buffer of f64.
    type D;
    /// n zeros.
    fn zeros(&self, n: usize) -> Result<Self::R>;
    /// n zeros (f64).
    fn zeros_d(&self, n: usize) -> Result<Self::D>;
    /// A copy of host data.
    fn upload(&self, x: &[R]) -> Result<Self::R>;
    /// The contents.
    fn download(&self, b: &Self::R) -> Result<Vec<R>>;
    /// The contents (f64).
    fn download_d(&self, b: &Self::D) -> Result<Vec<f64>>;
    /// rng.cu prior normals.
    fn prior_normal(&self, z: &mut Self::R, seed: u64, stream: Stream, first: u64, n: usize, v: usize) -> Result<()>;
    /// density.cu log r.
    fn log_prior(&self, z: &Self::R, out: &mut Self::D, n: usize, v: usize) -> Result<()>;
    /// features.cu h, h'.
    fn features(&self, u: &Self::R, omega: &Self::R, h: &mut Self::R, hp: &mut Self::R, d: FeatureDims) -> Result<()>;
    /// features.cu g = F̃ h.
    #[allow(clippy::too_many_arguments)]
    fn mix(&self, f: &Self::R, h: &Self::R, g: &mut Self::R, n: usize, v: usize, n_h: usize, n_c: usize) -> Result<()>;
    /// A convolution plan.
    type C;
    /// A kernel prepared for the plan.
    type K;
    /// The plan's work buffers.
    type S;
    /// The convolution of n_c channels on an l × l lattice by `path` (conv.rs).
    fn conv_plan(&self, path: ConvPath, l: usize, n_c: usize) -> Result<Self::C>;
    /// W (n_c × V) prepared for `c`.
    fn conv_kernel(&self, c: &Self::C, w: &[R]) -> Result<Self::K>;
    /// Work buffers of `c` for n fields.
    fn conv_scratch(&self, c: &Self::C, n: usize) -> Result<Self::S>;
    /// conv.cu or spectral.cu: `out = Σ_c W[c] ∗ g[c]` for n fields.
    fn conv(&self, c: &Self::C, w: &Self::K, g: &Self::R, out: &mut Self::R, n: usize, s: &mut Self::S) -> Result<()>;
    /// Whether `field_stage` fuses stages of the plan `c` (field.cu).
    fn fuses(&self, c: &Self::C) -> bool;
    /// field.cu: one stage's features, convolution with `w` and divergence with weights `beta`,
    /// fused, for flows without feature mixing and plans that `fuses`.
    #[allow(clippy::too_many_arguments)]
    fn field_stage(
        &self,
        c: &Self::C,
        w: &Self::K,
        omega: &Self::R,
        beta: &Self::R,
        u: &Self::R,
        k: &mut Self::R,
        div: &mut Self::D,
        d: FeatureDims,
    ) -> Result<()>;
    /// density.cu divergence.
    fn divergence(&self, hp: &Self::R, beta: &Self::R, div: &mut Self::D, n: usize, v: usize, n_h: usize)
        -> Result<()>;
    /// rk4.cu stage point over `len` elements.
    fn rk4_point(&self, phi: &Self::R, k: &Self::R, u: &mut Self::R, c: f64, len: usize) -> Result<()>;
    /// rk4.cu combination.
    #[allow(clippy::too_many_arguments)]
    fn rk4_combine(
        &self,
        cur: &mut Self::R,
        k: [&Self::R; 4],
        d: [&Self::D; 4],
        neg_div: &mut Self::D,
        h: f64,
        n: usize,
        v: usize,
    ) -> Result<()>;
    /// action.cu S.
    fn action(&self, phi: &Self::R, out: &mut Self::D, m2: f64, lambda: f64, n: usize, l: usize) -> Result<()>;
}

impl<R: Elem, L: Launcher> Exec<R> for L {
    type R = L::Buf<R>;
    type D = L::Buf<f64>;
    fn zeros(&self, n: usize) -> Result<Self::R> {
        self.alloc_zeros(n)
    }
    fn zeros_d(&self, n: usize) -> Result<Self::D> {
        self.alloc_zeros(n)
    }
    fn upload(&self, x: &[R]) -> Result<Self::R> {
        Launcher::upload(self, x)
    }
    fn download(&self, b: &Self::R) -> Result<Vec<R>> {
        Launcher::download(self, b)
    }
    fn download_d(&self, b: &Self::D) -> Result<Vec<f64>> {
        Launcher::download(self, b)
    }
    fn prior_normal(&self, z: &mut Self::R, seed: u64, stream: Stream, first: u64, n: usize, v: usize) -> Result<()> {
        launch::prior_normal(self, z, seed, stream as u32, first, n, v)
    }
    fn log_prior(&self, z: &Self::R, out: &mut Self::D, n: usize, v: usize) -> Result<()> {
        launch::log_prior(self, z, out, n, v)
    }
    fn features(&self, u: &Self::R, omega: &Self::R, h: &mut Self::R, hp: &mut Self::R, d: FeatureDims) -> Result<()> {
        launch::features(self, u, omega, h, hp, d)
    }
    fn mix(&self, f: &Self::R, h: &Self::R, g: &mut Self::R, n: usize, v: usize, n_h: usize, n_c: usize) -> Result<()> {
        launch::mix(self, f, h, g, n, v, n_h, n_c)
    }
    type C = Conv<L, R>;
    type K = Prepared<L, R>;
    type S = Scratch<L, R>;
    fn conv_plan(&self, path: ConvPath, l: usize, n_c: usize) -> Result<Self::C> {
        Conv::new(self, path, l, n_c)
    }
    fn conv_kernel(&self, c: &Self::C, w: &[R]) -> Result<Self::K> {
        c.prepare(self, Launcher::upload(self, w)?)
    }
    fn conv_scratch(&self, c: &Self::C, n: usize) -> Result<Self::S> {
        c.scratch(self, n)
    }
    fn conv(&self, c: &Self::C, w: &Self::K, g: &Self::R, out: &mut Self::R, n: usize, s: &mut Self::S) -> Result<()> {
        c.forward(self, w, g, out, n, s)
    }
    fn fuses(&self, c: &Self::C) -> bool {
        c.fuses()
    }
    fn field_stage(
        &self,
        c: &Self::C,
        w: &Self::K,
        omega: &Self::R,
        beta: &Self::R,
        u: &Self::R,
        k: &mut Self::R,
        div: &mut Self::D,
        d: FeatureDims,
    ) -> Result<()> {
        launch::field_stage(self, c.field_stage(w, omega, beta)?, u, k, div, c.side(), d)
    }
    fn divergence(
        &self,
        hp: &Self::R,
        beta: &Self::R,
        div: &mut Self::D,
        n: usize,
        v: usize,
        n_h: usize,
    ) -> Result<()> {
        launch::divergence(self, hp, beta, div, n, v, n_h)
    }
    fn rk4_point(&self, phi: &Self::R, k: &Self::R, u: &mut Self::R, c: f64, len: usize) -> Result<()> {
        launch::rk4_point(self, phi, k, u, c, len)
    }
    fn rk4_combine(
        &self,
        cur: &mut Self::R,
        k: [&Self::R; 4],
        d: [&Self::D; 4],
        neg_div: &mut Self::D,
        h: f64,
        n: usize,
        v: usize,
    ) -> Result<()> {
        launch::rk4_combine(self, cur, k, d, neg_div, h, n, v)
    }
    fn action(&self, phi: &Self::R, out: &mut Self::D, m2: f64, lambda: f64, n: usize, l: usize) -> Result<()> {
        launch::action(self, phi, out, m2, lambda, n, l)
    }
}

/// The executor of the CPU twins (host vectors; the oracle of the kernel sequence).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTwins;

impl<R: Elem> Exec<R> for CpuTwins {
    type R = Vec<R>;
    type D = Vec<f64>;
    fn zeros(&self, n: usize) -> Result<Self::R> {
        Ok(vec![R::zero(); n])
    }
    fn zeros_d(&self, n: usize) -> Result<Self::D> {
        Ok(vec![0.0; n])
    }
    fn upload(&self, x: &[R]) -> Result<Self::R> {
        Ok(x.to_vec())
    }
    fn download(&self, b: &Self::R) -> Result<Vec<R>> {
        Ok(b.clone())
    }
    fn download_d(&self, b: &Self::D) -> Result<Vec<f64>> {
        Ok(b.clone())
    }
    fn prior_normal(&self, z: &mut Self::R, seed: u64, stream: Stream, first: u64, n: usize, v: usize) -> Result<()> {
        z[..n * v].copy_from_slice(&twin::prior_normal::<R>(seed, stream, first, n, v));
        Ok(())
    }
    fn log_prior(&self, z: &Self::R, out: &mut Self::D, n: usize, v: usize) -> Result<()> {
        out[..n].copy_from_slice(&twin::log_prior(&z[..n * v], v));
        Ok(())
    }
    fn features(&self, u: &Self::R, omega: &Self::R, h: &mut Self::R, hp: &mut Self::R, d: FeatureDims) -> Result<()> {
        let kind = if d.kind == 0 { FeatureKind::Odd } else { FeatureKind::NonOdd };
        let (th, tp) = twin::features(&u[..d.n * d.v], &omega[..d.n_omega], kind, d.linear, d.v);
        h[..th.len()].copy_from_slice(&th);
        hp[..tp.len()].copy_from_slice(&tp);
        Ok(())
    }
    fn mix(&self, f: &Self::R, h: &Self::R, g: &mut Self::R, n: usize, v: usize, n_h: usize, n_c: usize) -> Result<()> {
        g[..n * n_c * v].copy_from_slice(&twin::mix(&f[..n_c * n_h], &h[..n * n_h * v], n_c, n_h, v));
        Ok(())
    }
    /// (l, n_c): the twins convolve densely whatever the path.
    type C = (usize, usize);
    type K = Vec<R>;
    type S = ();
    fn conv_plan(&self, _path: ConvPath, l: usize, n_c: usize) -> Result<Self::C> {
        Ok((l, n_c))
    }
    fn conv_kernel(&self, _c: &Self::C, w: &[R]) -> Result<Self::K> {
        Ok(w.to_vec())
    }
    fn conv_scratch(&self, _c: &Self::C, _n: usize) -> Result<Self::S> {
        Ok(())
    }
    fn conv(&self, c: &Self::C, w: &Self::K, g: &Self::R, out: &mut Self::R, n: usize, _s: &mut ()) -> Result<()> {
        let (l, n_c) = *c;
        let v = l * l;
        out[..n * v].copy_from_slice(&twin::conv(&w[..n_c * v], &g[..n * n_c * v], l, n_c));
        Ok(())
    }
    /// The twins compose the unfused sequence.
    fn fuses(&self, _c: &Self::C) -> bool {
        false
    }
    fn field_stage(
        &self,
        _c: &Self::C,
        _w: &Self::K,
        _omega: &Self::R,
        _beta: &Self::R,
        _u: &Self::R,
        _k: &mut Self::R,
        _div: &mut Self::D,
        _d: FeatureDims,
    ) -> Result<()> {
        Err(Error::new(crate::error::Status::Internal, "CPU twins: no fused stage"))
    }
    fn divergence(
        &self,
        hp: &Self::R,
        beta: &Self::R,
        div: &mut Self::D,
        n: usize,
        v: usize,
        n_h: usize,
    ) -> Result<()> {
        div[..n].copy_from_slice(&twin::divergence(&hp[..n * n_h * v], &beta[..n_h], v));
        Ok(())
    }
    fn rk4_point(&self, phi: &Self::R, k: &Self::R, u: &mut Self::R, c: f64, len: usize) -> Result<()> {
        u[..len].copy_from_slice(&twin::rk4_point(&phi[..len], &k[..len], R::of(c)));
        Ok(())
    }
    fn rk4_combine(
        &self,
        cur: &mut Self::R,
        k: [&Self::R; 4],
        d: [&Self::D; 4],
        neg_div: &mut Self::D,
        h: f64,
        n: usize,
        v: usize,
    ) -> Result<()> {
        let k = k.map(|x| &x[..n * v]);
        let d = d.map(|x| &x[..n]);
        twin::rk4_combine(&mut cur[..n * v], k, d, &mut neg_div[..n], h);
        Ok(())
    }
    fn action(&self, phi: &Self::R, out: &mut Self::D, m2: f64, lambda: f64, n: usize, l: usize) -> Result<()> {
        out[..n].copy_from_slice(&twin::action(&phi[..n * l * l], m2, lambda, l));
        Ok(())
    }
}

/// The prepared vector field of one flow in one precision, held by an executor.
pub struct Pipeline<R: Elem, E: Exec<R>> {
    l: usize,
    n_steps: usize,
    m2: f64,
    lambda: f64,
    dims: FeatureDims,
    n_c: usize,
    omega: E::R,
    fmix: Option<E::R>,
    /// The convolution, and W_t (n_c × V) of each of the 2N_t + 1 time slots prepared for it.
    conv: E::C,
    wt: Vec<E::K>,
    /// β (n_h) of each slot.
    beta: Vec<E::R>,
    /// Fields per chunk.
    chunk: usize,
    /// Whether each stage's field is one fused launch (field.cu), and whether it can be.
    fused: bool,
    fusable: bool,
}

/// Per-chunk results on the executor's side, downloaded at the end.
struct Chunk<E: Exec<R>, R: Elem> {
    phi: E::R,
    log_r: E::D,
    neg_div: E::D,
    action: E::D,
}

impl<R: Elem, E: Exec<R>> Pipeline<R, E> {
    /// Uploads the sampling field of `flow` (its parameters now) to `exec`, convolving by
    /// the path [`ConvPath::choose`] picks.
    pub fn new(flow: &Flow, exec: &E) -> Result<Self> {
        Self::with_path(flow, exec, ConvPath::choose(flow.lattice.size(), flow.layout.n_c)?)
    }

    /// As `new`, convolving by `path`.
    pub fn with_path(flow: &Flow, exec: &E, path: ConvPath) -> Result<Self> {
        if flow.has_custom_action() {
            return Err(Error::invalid(
                "CUDA sampler: a host action (eqflow_flow_set_action) cannot run on the device",
            ));
        }
        let (arch, layout, params) = (&flow.config.arch, &flow.layout, flow.params());
        let fmix = mixing::<R>(layout, params);
        let fmix_none = fmix.is_none();
        let omega: Vec<R> = params[layout.omega.clone()].iter().map(|&w| R::of(w)).collect();
        let (mut wt, mut beta) = (Vec::new(), Vec::new());
        let conv = exec.conv_plan(path, flow.lattice.size(), layout.n_c)?;
        for s in 0..=2 * arch.ode_steps {
            let w = SlotWeights::<R>::new(arch, flow.lattice, layout, params, fmix.as_deref(), s);
            wt.push(exec.conv_kernel(&conv, &w.wt)?);
            beta.push(exec.upload(&w.beta)?);
        }
        Ok(Pipeline {
            l: flow.lattice.size(),
            n_steps: arch.ode_steps,
            m2: flow.action.couplings.m2,
            lambda: flow.action.couplings.lambda,
            dims: FeatureDims {
                n: 0,
                v: flow.volume(),
                n_omega: omega.len(),
                n_h: layout.n_h,
                kind: (arch.features == FeatureKind::NonOdd) as u32,
                linear: arch.linear_feature,
            },
            n_c: layout.n_c,
            omega: exec.upload(&omega)?,
            fmix: match fmix {
                Some(f) => Some(exec.upload(&f)?),
                None => None,
            },
            fused: fmix_none && exec.fuses(&conv),
            fusable: exec.fuses(&conv),
            conv,
            wt,
            beta,
            chunk: 0,
        }
        .with_default_chunk())
    }

    fn with_default_chunk(mut self) -> Self {
        self.chunk = self.default_chunk();
        self
    }

    fn default_chunk(&self) -> usize {
        // the feature banks, the stage buffers, and the spectral path's scratch (2 n_c + 1
        // half spectra of about V + 2L numbers each; counted whatever the path); fused
        // stages: the stage buffers alone
        let (v, l, n_c) = (self.dims.v, self.l, self.n_c);
        let per = if self.fused {
            v * 8 * std::mem::size_of::<R>()
        } else {
            (v * (2 * self.dims.n_h + n_c + 8) + (2 * n_c + 1) * (v + 2 * l)) * std::mem::size_of::<R>()
        };
        ((256usize << 20) / per.max(1)).clamp(1, 1 << 16)
    }

    /// Fuses each stage's field into one launch (field.cu) where the executor and the flow
    /// allow it (the default), or not.
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on && self.fmix.is_none() && self.fusable;
        self.chunk = self.default_chunk();
    }

    /// Whether stages are fused.
    pub fn fused(&self) -> bool {
        self.fused
    }

    /// Sets the fields per chunk (≥ 1).
    pub fn set_chunk_fields(&mut self, n: usize) {
        self.chunk = n.max(1);
    }

    /// Fields per chunk: by default, so that the feature banks and work buffers stay below
    /// ~256 MiB.
    pub fn chunk_fields(&self) -> usize {
        self.chunk
    }

    /// The RK4 integration of ode::forward on prior points `z` (n × V, overwritten by φ(1)),
    /// with log r, −∫∇·f and S of each field (chunk_forward and Flow::push_forward).
    fn push_forward(&self, exec: &E, mut z: E::R, n: usize) -> Result<Chunk<E, R>> {
        let (v, l, n_c) = (self.dims.v, self.l, self.n_c);
        let n_h = self.dims.n_h;
        let d = FeatureDims { n, ..self.dims };
        let mut log_r = exec.zeros_d(n)?;
        exec.log_prior(&z, &mut log_r, n, v)?;
        let mut neg_div = exec.zeros_d(n)?;
        // the feature banks and the convolution's work buffers (none when stages are fused)
        let m = if self.fused { 0 } else { n };
        let (mut h, mut hp) = (exec.zeros(m * n_h * v)?, exec.zeros(m * n_h * v)?);
        let mut g = if self.fmix.is_some() { Some(exec.zeros(n * n_c * v)?) } else { None };
        let mut u = exec.zeros(n * v)?;
        let mut scratch = exec.conv_scratch(&self.conv, m)?;
        let mut k = [exec.zeros(n * v)?, exec.zeros(n * v)?, exec.zeros(n * v)?, exec.zeros(n * v)?];
        let mut dv = [exec.zeros_d(n)?, exec.zeros_d(n)?, exec.zeros_d(n)?, exec.zeros_d(n)?];
        // the step and stage coefficients in R, as ode::stages_upto rounds them
        let h_step = 1.0 / self.n_steps.max(1) as f64;
        let hr = R::of(h_step);
        let half = (hr * R::of(0.5)).f64();
        let coef = [0.0, half, half, hr.f64()];
        for step in 0..self.n_steps {
            let slots = [2 * step, 2 * step + 1, 2 * step + 1, 2 * step + 2];
            for i in 0..4 {
                if i > 0 {
                    let (prev, _) = k.split_at(i);
                    exec.rk4_point(&z, &prev[i - 1], &mut u, coef[i], n * v)?;
                }
                let point = if i == 0 { &z } else { &u };
                if self.fused {
                    let (w, b) = (&self.wt[slots[i]], &self.beta[slots[i]]);
                    exec.field_stage(&self.conv, w, &self.omega, b, point, &mut k[i], &mut dv[i], d)?;
                    continue;
                }
                exec.features(point, &self.omega, &mut h, &mut hp, d)?;
                let feats = match (&self.fmix, g.as_mut()) {
                    (Some(f), Some(g)) => {
                        exec.mix(f, &h, g, n, v, n_h, n_c)?;
                        &*g
                    }
                    _ => &h,
                };
                exec.conv(&self.conv, &self.wt[slots[i]], feats, &mut k[i], n, &mut scratch)?;
                exec.divergence(&hp, &self.beta[slots[i]], &mut dv[i], n, v, n_h)?;
            }
            exec.rk4_combine(
                &mut z,
                [&k[0], &k[1], &k[2], &k[3]],
                [&dv[0], &dv[1], &dv[2], &dv[3]],
                &mut neg_div,
                h_step,
                n,
                v,
            )?;
        }
        let mut action = exec.zeros_d(n)?;
        exec.action(&z, &mut action, self.m2, self.lambda, n, l)?;
        Ok(Chunk { phi: z, log_r, neg_div, action })
    }

    fn finish(&self, exec: &E, c: Chunk<E, R>, n: usize, out: &mut Samples) -> Result<()> {
        let v = self.dims.v;
        let phi = exec.download(&c.phi)?;
        let (log_r, neg_div, action) =
            (exec.download_d(&c.log_r)?, exec.download_d(&c.neg_div)?, exec.download_d(&c.action)?);
        out.phi.extend(phi[..n * v].iter().map(|x| x.f64()));
        // log q = log r(z) − ∫∇·f, summed as chunk_forward sums it
        out.log_q.extend((0..n).map(|b| log_r[b] + neg_div[b]));
        out.action.extend_from_slice(&action[..n]);
        Ok(())
    }

    /// Pushes host prior points z (n × V, f64; rounded to R) through the flow.
    pub fn push_forward_host(&self, exec: &E, z: &[f64]) -> Result<Samples> {
        let v = self.dims.v;
        let mut out = Samples::default();
        for zc in z.chunks(self.chunk_fields() * v) {
            let n = zc.len() / v;
            let zr: Vec<R> = zc.iter().map(|&x| R::of(x)).collect();
            let c = self.push_forward(exec, exec.upload(&zr)?, n)?;
            self.finish(exec, c, n, &mut out)?;
        }
        Ok(out)
    }

    /// Draws prior points `first..first + n` of (seed, stream) on the executor and pushes them.
    pub fn sample(&self, exec: &E, seed: u64, stream: Stream, first: u64, n: usize) -> Result<Samples> {
        let v = self.dims.v;
        let mut out = Samples::default();
        let mut done = 0;
        while done < n {
            let m = (n - done).min(self.chunk_fields());
            let mut z = exec.zeros(m * v)?;
            exec.prior_normal(&mut z, seed, stream, first + done as u64, m, v)?;
            let c = self.push_forward(exec, z, m)?;
            self.finish(exec, c, m, &mut out)?;
            done += m;
        }
        Ok(out)
    }
}

enum Field {
    F32(Pipeline<f32, Device>),
    F64(Pipeline<f64, Device>),
}

/// A flow's sampling field on a CUDA device: proposals, log q and S computed there, in the
/// flow's sampling precision. A snapshot: later training of the flow does not change it.
///
/// Thread safety: `Send + Sync`; calls from several threads share the device's one stream.
pub struct CudaFlow {
    device: Arc<Device>,
    field: Field,
    seed: u64,
    v: usize,
}

impl CudaFlow {
    /// Uploads `flow`'s sampling field (its current parameters) to `device`, convolving by
    /// the path [`ConvPath::choose`] picks.
    pub fn new(flow: &Flow, device: Arc<Device>) -> Result<Self> {
        Self::with_conv_path(flow, device, ConvPath::choose(flow.lattice.size(), flow.layout.n_c)?)
    }

    /// As `new`, convolving by `path`.
    pub fn with_conv_path(flow: &Flow, device: Arc<Device>, path: ConvPath) -> Result<Self> {
        let field = match flow.config.sample_precision {
            Precision::F32 => Field::F32(Pipeline::with_path(flow, &*device, path)?),
            Precision::F64 => Field::F64(Pipeline::with_path(flow, &*device, path)?),
        };
        Ok(CudaFlow { device, field, seed: flow.config.seed, v: flow.volume() })
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// Sets the fields pushed per chunk (default: feature buffers of ~256 MiB).
    pub fn set_chunk_fields(&mut self, n: usize) {
        match &mut self.field {
            Field::F32(p) => p.set_chunk_fields(n),
            Field::F64(p) => p.set_chunk_fields(n),
        }
    }

    /// Fuses each stage's features, convolution and divergence into one launch (field.cu; on by
    /// default where possible: spectral path, no feature mixing, L ≤ 64 in f32 or 44 in f64),
    /// or not (the unfused kernels, for comparison). Resets the chunk size to its default.
    pub fn set_fused(&mut self, on: bool) {
        match &mut self.field {
            Field::F32(p) => p.set_fused(on),
            Field::F64(p) => p.set_fused(on),
        }
    }

    /// Whether stages are fused.
    pub fn fused(&self) -> bool {
        match &self.field {
            Field::F32(p) => p.fused(),
            Field::F64(p) => p.fused(),
        }
    }

    /// Pushes prior draws z (n × V) through the flow: fields, log q and S (as
    /// `Flow::push_forward`).
    pub fn push_forward(&self, z: &[f64]) -> Result<Samples> {
        if z.len() % self.v != 0 {
            return Err(Error::length("CUDA push_forward: z", z.len(), self.v * (z.len() / self.v + 1)));
        }
        crate::error::check_finite("CUDA push_forward: z", z)?;
        let d = &*self.device;
        match &self.field {
            Field::F32(p) => p.push_forward_host(d, z),
            Field::F64(p) => p.push_forward_host(d, z),
        }
    }

    /// n samples of stream `stream` from index `first`, drawn on the device (as
    /// `Flow::sample_at`).
    pub fn sample_at(&self, stream: Stream, first: u64, n: usize) -> Result<Samples> {
        let d = &*self.device;
        match &self.field {
            Field::F32(p) => p.sample(d, self.seed, stream, first, n),
            Field::F64(p) => p.sample(d, self.seed, stream, first, n),
        }
    }
}

impl crate::mcmc::metropolis::Push for CudaFlow {
    fn push_forward(&mut self, z: &[f64]) -> Result<Samples> {
        CudaFlow::push_forward(self, z)
    }
}

/// The sampler's kernel sequence on the CPU twins, in chunks of `chunk` fields:
/// `Flow::sample_at` recomputed the way the device computes it (the test of the sequence
/// without a GPU).
pub fn sample_on_twins(flow: &Flow, stream: Stream, first: u64, n: usize, chunk: usize) -> Result<Samples> {
    fn run<R: Elem>(flow: &Flow, stream: Stream, first: u64, n: usize, chunk: usize) -> Result<Samples> {
        let mut p = Pipeline::<R, CpuTwins>::new(flow, &CpuTwins)?;
        p.set_chunk_fields(chunk);
        p.sample(&CpuTwins, flow.config.seed, stream, first, n)
    }
    match flow.config.sample_precision {
        Precision::F32 => run::<f32>(flow, stream, first, n, chunk),
        Precision::F64 => run::<f64>(flow, stream, first, n, chunk),
    }
}

/// Independence Metropolis accept/reject on the device for proposals with `log_q` and
/// `action` (host, m each), step i using uniform(0) of (seed, Metropolis, first + i) as
/// `Chain::run` does; `cur` = (log q, S) of the chain's state, if it has one. Returns the
/// state after each step (proposal index, −1 = `cur`, −2 = none yet) and the accept flags.
pub fn metropolis<L: Launcher>(
    device: &L,
    seed: u64,
    first: u64,
    log_q: &[f64],
    action: &[f64],
    cur: Option<(f64, f64)>,
) -> Result<(Vec<i32>, Vec<i32>)> {
    crate::error::check_len("CUDA metropolis: action", action.len(), log_q.len())?;
    let m = log_q.len();
    if m == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let (lq, s) = (device.upload(log_q)?, device.upload(action)?);
    let mut u = device.alloc_zeros::<f64>(m)?;
    launch::uniform(device, &mut u, seed, Stream::Metropolis as u32, first, 0, m)?;
    let (mut state, mut accepted) = (device.alloc_zeros::<i32>(m)?, device.alloc_zeros::<i32>(m)?);
    launch::metropolis(device, &lq, &s, &u, &mut state, &mut accepted, cur, m)?;
    Ok((device.download(&state)?, device.download(&accepted)?))
}
