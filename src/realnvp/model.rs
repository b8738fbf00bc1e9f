//! The RealNVP flow as users hold it: theory, parameters, optimiser state, and the
//! operations of `crate::flow::Flow` that apply to it (train, sample, exact log q, ESS),
//! parallel over fixed chunks of `CHUNK` fields with ordered reductions, so the same seed
//! gives bit-identical results for any thread count.

use super::cnn::TAPS;
use super::network::Network;
use crate::action::{Action, Couplings};
use crate::conventions::Conventions;
use crate::error::{check_finite, check_len, Error, Result, Status};
use crate::flow::grad::log_prior;
use crate::flow::model::{build_pool, concat, evaluate_with, Samples, StepStats, CHUNK};
use crate::flow::CustomAction;
use crate::lattice::Lattice;
use crate::rng::{Rng, Stream};
use crate::train::{ess, Adam, Schedule, TrainConfig};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// Everything needed to create a RealNVP flow (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealNvpConfig {
    /// Lattice side L.
    pub lattice_size: usize,
    /// Couplings (m², λ).
    pub couplings: Couplings,
    /// Affine coupling layers, alternating the checkerboard mask (16 in the reference).
    pub n_layers: usize,
    /// Channels of the two hidden convolutions of each layer's network (8 in the reference).
    pub hidden: usize,
    /// Training settings.
    pub train: TrainConfig,
    /// Seed of every random stream of this flow (initialisation included).
    pub seed: u64,
    /// Conventions of fields crossing the C ABI (applied only there; saved with the flow).
    #[serde(default)]
    pub conventions: Conventions,
}

impl RealNvpConfig {
    /// The reference architecture of Albergo et al. (16 layers, 1 → 8 → 8 → 2 channels) and
    /// its training settings (`reference_training`).
    pub fn new(lattice_size: usize, m2: f64, lambda: f64) -> Self {
        RealNvpConfig {
            lattice_size,
            couplings: Couplings { m2, lambda },
            n_layers: 16,
            hidden: 8,
            train: Self::reference_training(),
            seed: 0,
            conventions: Conventions::default(),
        }
    }

    /// The reference notebook's training: batch 64, `torch.optim.Adam(lr = 1e-3)` with
    /// PyTorch's default β = (0.9, 0.999), ε = 1e-8, constant rate.
    pub fn reference_training() -> TrainConfig {
        TrainConfig {
            batch_size: 64,
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            schedule: Schedule::Constant,
            ..TrainConfig::default()
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        Lattice::new(self.lattice_size)?;
        Couplings::new(self.couplings.m2, self.couplings.lambda)?;
        if self.n_layers == 0 || self.n_layers > 1024 {
            return Err(Error::invalid(format!("n_layers = {}: must be in 1..=1024", self.n_layers)));
        }
        if self.hidden == 0 || self.hidden > 1024 {
            return Err(Error::invalid(format!("hidden = {}: must be in 1..=1024", self.hidden)));
        }
        let t = &self.train;
        if t.batch_size == 0 || t.batch_size > 1 << 24 {
            return Err(Error::invalid(format!("batch_size = {}: must be in 1..=16777216", t.batch_size)));
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(Error::invalid(format!("learning_rate = {}: must be finite and > 0", t.learning_rate)));
        }
        if !((0.0..1.0).contains(&t.beta1) && (0.0..1.0).contains(&t.beta2)) {
            return Err(Error::invalid(format!("Adam beta1 = {}, beta2 = {}: must be in [0, 1)", t.beta1, t.beta2)));
        }
        if !(t.eps.is_finite() && t.eps > 0.0) {
            return Err(Error::invalid(format!("Adam eps = {}: must be finite and > 0", t.eps)));
        }
        Ok(())
    }
}

/// A named block of parameters: one convolution's weight or bias in one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamGroup {
    /// The coupling layer (0-based).
    pub layer: usize,
    /// The convolution in the layer's network: 0 (1 → h), 1 (h → h), 2 (h → 2).
    pub conv: usize,
    /// Bias (true) or weight `[cout][cin][3][3]` (false).
    pub bias: bool,
    /// Its indices in `params()`.
    pub range: Range<usize>,
}

/// A RealNVP flow (SPEC §7) with its optimiser state. A clone copies the parameters and
/// Adam's moments and shares the geometry and the thread pool.
#[derive(Clone)]
pub struct RealNvp {
    /// Configuration it was created with.
    pub config: RealNvpConfig,
    /// The lattice.
    pub lattice: Lattice,
    /// The target action.
    pub action: Action,
    /// Adam state.
    pub adam: Adam,
    /// Training steps done.
    pub steps_done: u64,
    /// Samples drawn so far (the next sample's RNG index).
    pub samples_drawn: u64,
    params: Vec<f64>,
    net: Arc<Network>,
    pool: Arc<rayon::ThreadPool>,
    custom: Option<Arc<dyn CustomAction>>,
}

/// Index of the first `Stream::Init` counter of RealNVP's initialisation (layer k uses
/// this + k), far from the continuous flow's, so the two never share draws.
const INIT_INDEX: u64 = 1 << 32;

impl RealNvp {
    /// A new flow with PyTorch's default `Conv2d` initialisation (weights and biases
    /// U(−1/√fan_in, 1/√fan_in), fan_in = cin·9) drawn from the config's seed, and `threads`
    /// worker threads (0: all cores).
    pub fn new(config: RealNvpConfig, threads: usize) -> Result<Self> {
        config.validate()?;
        let lattice = Lattice::new(config.lattice_size)?;
        let couplings = Couplings::new(config.couplings.m2, config.couplings.lambda)?;
        let net = Network::new(&lattice, config.hidden, config.n_layers);
        let params = initial_params(&net, config.seed);
        Ok(RealNvp {
            adam: Adam::new(params.len()),
            action: Action::new(lattice, couplings),
            lattice,
            steps_done: 0,
            samples_drawn: 0,
            params,
            net: Arc::new(net),
            pool: build_pool(threads)?,
            config,
            custom: None,
        })
    }

    /// A frozen copy (for chains): later training of `self` does not change it.
    pub fn snapshot(&self) -> RealNvp {
        self.clone()
    }

    /// Whether a host action replaces the built-in one (it is never saved to files).
    pub fn has_custom_action(&self) -> bool {
        self.custom.is_some()
    }

    /// Worker threads of this flow's pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Replaces the built-in φ⁴ action by a host-supplied one (None: back to φ⁴); as
    /// `Flow::set_custom_action`.
    pub fn set_custom_action(&mut self, action: Option<Arc<dyn CustomAction>>) {
        self.custom = action;
    }

    /// S (and, if asked, ∂S/∂φ) of n fields (n × V) under the flow's target action.
    pub fn evaluate_action(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()> {
        evaluate_with(&self.action, self.custom.as_deref(), self.volume(), phi, action, force)
    }

    /// The lattice volume V.
    pub fn volume(&self) -> usize {
        self.lattice.volume()
    }
    /// The number of parameters: n_layers · Σ_convs cout·(cin·9 + 1).
    pub fn n_params(&self) -> usize {
        self.params.len()
    }
    /// The parameters, layer after layer; in a layer w1, b1, w2, b2, w3, b3 (see `param_groups`).
    pub fn params(&self) -> &[f64] {
        &self.params
    }
    /// Replaces the parameters (checked for length and finiteness).
    pub fn set_params(&mut self, p: &[f64]) -> Result<()> {
        check_len("set_params", p.len(), self.params.len())?;
        check_finite("set_params", p)?;
        self.params.copy_from_slice(p);
        Ok(())
    }
    /// Every convolution's weight and bias block, in storage order.
    pub fn param_groups(&self) -> Vec<ParamGroup> {
        let shape = self.net.shape();
        let m = self.net.per_layer();
        let mut out = Vec::new();
        for layer in 0..self.config.n_layers {
            for conv in 0..3 {
                let (w, b, _, _) = shape.conv(conv);
                let o = layer * m;
                out.push(ParamGroup { layer, conv, bias: false, range: o + w.start..o + w.end });
                out.push(ParamGroup { layer, conv, bias: true, range: o + b.start..o + b.end });
            }
        }
        out
    }
    /// Sets the number of worker threads (0: all cores).
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        self.pool = build_pool(threads)?;
        Ok(())
    }

    /// Checks that `x` holds whole fields (and at least one when `nonempty`); returns their count.
    fn fields(&self, what: &str, x: &[f64], nonempty: bool) -> Result<usize> {
        let v = self.volume();
        if x.len() % v != 0 || (nonempty && x.is_empty()) {
            return Err(Error::length(what, x.len(), v * (x.len() / v).max(1)));
        }
        Ok(x.len() / v)
    }

    /// Draws prior noise for samples `first..first + n` of `stream` into an n × V buffer.
    fn noise(&self, stream: Stream, first: u64, n: usize) -> Result<Vec<f64>> {
        self.noise_keyed(self.config.seed, stream, first, n)
    }

    /// As `noise`, with the draws keyed by `seed` instead of the flow's own seed.
    fn noise_keyed(&self, seed: u64, stream: Stream, first: u64, n: usize) -> Result<Vec<f64>> {
        let v = self.volume();
        let len = n
            .checked_mul(v)
            .filter(|&len| len as u64 <= 1u64 << 32)
            .ok_or_else(|| Error::new(Status::OutOfMemory, format!("{n} samples of volume {v}: too many at once")))?;
        let mut z = vec![0.0; len];
        self.pool.install(|| {
            z.par_chunks_mut(v).enumerate().for_each(|(i, zi)| Rng::new(seed, stream, first + i as u64).fill_normal(zi))
        });
        Ok(z)
    }

    /// Pushes prior draws z (n × V) through the flow: fields, log q = log r(z) − log-det, and S.
    pub fn push_forward(&self, z: &[f64]) -> Result<Samples> {
        let v = self.volume();
        self.fields("push_forward: z", z, false)?;
        check_finite("push_forward: z", z)?;
        let (net, p, action) = (&*self.net, &self.params[..], &self.action);
        let parts: Vec<Samples> = self.pool.install(|| {
            z.par_chunks(CHUNK * v)
                .map(|zc| {
                    let nb = zc.len() / v;
                    let mut w = net.work(nb);
                    let mut phi = vec![0.0; nb * v];
                    let mut ld = vec![0.0; nb];
                    net.forward(p, zc, nb, &mut phi, &mut ld, None, &mut w);
                    let log_q = zc.chunks_exact(v).zip(&ld).map(|(zb, l)| log_prior(zb) - l).collect();
                    let s = phi.chunks_exact(v).map(|f| action.action_one(f)).collect();
                    Samples { phi, log_q, action: s }
                })
                .collect()
        });
        Ok(concat(parts))
    }

    /// n independent samples (the flow's own sample stream; advances it).
    pub fn sample(&mut self, n: usize) -> Result<Samples> {
        let z = self.noise(Stream::Sample, self.samples_drawn, n)?;
        self.samples_drawn += n as u64;
        self.push_forward(&z)
    }

    /// n samples for stream `stream` starting at index `first`: sample i uses the noise keyed
    /// by (seed, stream, first + i). Advances nothing.
    pub fn sample_at(&self, stream: Stream, first: u64, n: usize) -> Result<Samples> {
        let z = self.noise(stream, first, n)?;
        self.push_forward(&z)
    }

    /// n samples whose noise is keyed by (seed, sample stream, first + i), as a Metropolis chain
    /// with that seed draws its proposals. Advances nothing.
    pub fn sample_keyed(&self, seed: u64, first: u64, n: usize) -> Result<Samples> {
        let z = self.noise_keyed(seed, Stream::Sample, first, n)?;
        self.push_forward(&z)
    }

    /// ESS of n fresh samples (a separate stream from training and sampling).
    pub fn ess(&self, n: usize) -> Result<f64> {
        if n == 0 {
            return Err(Error::invalid("ess: n_samples = 0"));
        }
        let s = self.sample_at(Stream::Ess, self.steps_done << 24, n)?;
        Ok(ess(&s.log_weights()))
    }

    /// As [`Self::ess`] (the same samples), with the jackknife error of the estimate
    /// ([`crate::reweight::ess_with_error`]); n ≥ 2.
    pub fn ess_estimate(&self, n: usize) -> Result<crate::reweight::ValueError> {
        if n < 2 {
            return Err(Error::invalid(format!("ess: n_samples = {n} (need at least 2 for an error)")));
        }
        let s = self.sample_at(Stream::Ess, self.steps_done << 24, n)?;
        crate::reweight::ess_with_error(&s.log_weights())
    }

    /// The exact inverse z = Φ⁻¹(φ) (n × V) and log q(φ) = log r(z) − log-det of each field.
    pub fn invert_with_log_prob(&self, phi: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let v = self.volume();
        self.fields("invert: phi", phi, false)?;
        check_finite("invert: phi", phi)?;
        let (net, p) = (&*self.net, &self.params[..]);
        let parts: Vec<(Vec<f64>, Vec<f64>)> = self.pool.install(|| {
            phi.par_chunks(CHUNK * v)
                .map(|pc| {
                    let nb = pc.len() / v;
                    let mut w = net.work(nb);
                    let mut z = vec![0.0; nb * v];
                    let mut ld = vec![0.0; nb];
                    net.inverse(p, pc, nb, &mut z, &mut ld, &mut w);
                    let log_q = z.chunks_exact(v).zip(&ld).map(|(zb, l)| log_prior(zb) - l).collect();
                    (z, log_q)
                })
                .collect()
        });
        let (mut z, mut log_q) = (Vec::with_capacity(phi.len()), Vec::with_capacity(phi.len() / v));
        for (zc, qc) in parts {
            z.extend(zc);
            log_q.extend(qc);
        }
        Ok((z, log_q))
    }

    /// The prior point z with Φ(z) = φ (n × V), exact up to rounding.
    pub fn invert(&self, phi: &[f64]) -> Result<Vec<f64>> {
        Ok(self.invert_with_log_prob(phi)?.0)
    }

    /// log q of arbitrary configurations (n × V, n ≥ 1), exact through the inverse map.
    pub fn log_prob(&self, phi: &[f64]) -> Result<Vec<f64>> {
        self.fields("log_prob: phi", phi, true)?;
        Ok(self.invert_with_log_prob(phi)?.1)
    }

    /// The reverse-KL loss L = mean_b [log q(φ_b) + S(φ_b)] of the prior draws `z` (n × V,
    /// n ≥ 1), the samples, and ∂L/∂θ (reparameterisation: z held fixed).
    pub fn loss_and_grad_of(&self, z: &[f64]) -> Result<(f64, Samples, Vec<f64>)> {
        let v = self.volume();
        let n = self.fields("loss_and_grad: z", z, true)?;
        check_finite("loss_and_grad: z", z)?;
        let weight = 1.0 / n as f64;
        let (net, p, action, total) = (&*self.net, &self.params[..], &self.action, self.params.len());
        let parts: Vec<(Samples, Vec<f64>)> = self.pool.install(|| {
            z.par_chunks(CHUNK * v)
                .map(|zc| {
                    let nb = zc.len() / v;
                    let mut w = net.work(nb);
                    let mut tape = net.tape(nb);
                    let mut phi = vec![0.0; nb * v];
                    let mut ld = vec![0.0; nb];
                    net.forward(p, zc, nb, &mut phi, &mut ld, Some(&mut tape), &mut w);
                    let log_q = zc.chunks_exact(v).zip(&ld).map(|(zb, l)| log_prior(zb) - l).collect();
                    let s = phi.chunks_exact(v).map(|f| action.action_one(f)).collect();
                    // ∂L/∂φ = force / n; ∂L/∂(log-det) = −1/n
                    let mut g = vec![0.0; nb * v];
                    for (gb, fb) in g.chunks_exact_mut(v).zip(phi.chunks_exact(v)) {
                        action.force_one(fb, gb);
                        gb.iter_mut().for_each(|x| *x *= weight);
                    }
                    let mut grad = vec![0.0; total];
                    net.backward(p, &tape, &mut g, -weight, &mut grad, &mut w);
                    (Samples { phi, log_q, action: s }, grad)
                })
                .collect()
        });
        let mut grad = vec![0.0; total];
        let mut samples = Vec::with_capacity(parts.len());
        for (s, g) in parts {
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
            samples.push(s);
        }
        let out = concat(samples);
        let loss = out.log_q.iter().zip(&out.action).map(|(q, s)| q + s).sum::<f64>() / n as f64;
        Ok((loss, out, grad))
    }

    /// One Adam step on a fresh batch. A non-finite loss or gradient returns an error and
    /// leaves the parameters and optimiser state as they were.
    pub fn train_step(&mut self) -> Result<StepStats> {
        if self.config.train.gradient != crate::train::Gradient::Total {
            return Err(Error::invalid(
                "RealNVP training computes the total gradient only (path gradients: continuous flows)",
            ));
        }
        let b = self.config.train.batch_size;
        let z = self.noise(Stream::Train, self.steps_done << 24, b)?;
        let (loss, samples, grad) = self.loss_and_grad_of(&z)?;
        let grad_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(Error::non_finite(format!(
                "RealNVP train step {}: non-finite {} (loss {loss}); parameters left at the last good step",
                self.steps_done,
                if loss.is_finite() { "gradient" } else { "loss" }
            )));
        }
        let cfg = self.config.train.clone();
        let lr = cfg.rate(self.steps_done);
        self.adam.update(&cfg, lr, &mut self.params, &grad);
        self.steps_done += 1;
        Ok(StepStats { step: self.steps_done, loss, ess: ess(&samples.log_weights()), lr, grad_norm })
    }
}

/// PyTorch's `Conv2d.reset_parameters`: kaiming-uniform with a = √5 gives weights
/// U(−1/√fan_in, 1/√fan_in), and the bias the same bound. Parameter j of layer k is the
/// j-th uniform of `Stream::Init` at index INIT_INDEX + k.
fn initial_params(net: &Network, seed: u64) -> Vec<f64> {
    let shape = net.shape();
    let m = net.per_layer();
    let mut p = vec![0.0; net.n_params()];
    for (k, block) in p.chunks_exact_mut(m).enumerate() {
        let rng = Rng::new(seed, Stream::Init, INIT_INDEX + k as u64);
        for conv in 0..3 {
            let (w, b, cin, _) = shape.conv(conv);
            let bound = 1.0 / ((cin * TAPS) as f64).sqrt();
            for (j, x) in block.iter_mut().enumerate().take(b.end).skip(w.start) {
                *x = bound * (2.0 * rng.uniform(j as u32) - 1.0);
            }
        }
    }
    p
}
