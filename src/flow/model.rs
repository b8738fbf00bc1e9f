//! The flow as users hold it: theory, architecture, parameters, optimiser state, and the
//! operations of the Rust API (train, sample, log q, ESS), parallel over fixed chunks of
//! samples with ordered reductions, so results do not depend on the thread count.

use super::config::Architecture;
use super::conv::ConvMethod;
use super::grad::{backward, forward_tape, forward_tape_score, log_prior, Tape};
use super::ode;
use super::params::{self, Layout};
use super::vector_field::VectorField;
use crate::action::{Action, Couplings};
use crate::error::{check_len, Error, Result, Status};
use crate::lattice::Lattice;
use crate::real::Real;
use crate::rng::{Rng, Stream};
use crate::train::{ess, Adam, Gradient, TrainConfig};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Fields per parallel work item: fixed, so reductions run in the same order for any thread count.
pub const CHUNK: usize = 8;

/// The arithmetic of the bulk compute (log q, S and losses are f64 in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// Double precision throughout.
    F64,
    /// Single precision for fields and convolutions.
    F32,
}

/// Everything needed to create a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowConfig {
    /// Lattice side L.
    pub lattice_size: usize,
    /// Couplings (m², λ).
    pub couplings: Couplings,
    /// The vector field's architecture.
    pub arch: Architecture,
    /// Training settings.
    pub train: TrainConfig,
    /// Compute precision of training (f32 is ~2× faster; gradients are noisy anyway).
    pub precision: Precision,
    /// Compute precision of proposals and log q (f64 keeps log q exact to ~1e-12;
    /// f32 measured |Δ log q| ≈ 2e-6 at L = 6).
    #[serde(default = "default_sample_precision")]
    pub sample_precision: Precision,
    /// Convolution method.
    pub conv: ConvMethod,
    /// Seed of every random stream of this flow.
    pub seed: u64,
    /// Layout and variables of fields at the C boundary (the Rust API always uses the
    /// internal ones: φ, x1 fastest).
    #[serde(default)]
    pub conventions: crate::conventions::Conventions,
}

impl FlowConfig {
    /// A configuration with the default architecture and training settings.
    pub fn new(lattice_size: usize, m2: f64, lambda: f64) -> Self {
        FlowConfig {
            lattice_size,
            couplings: Couplings { m2, lambda },
            arch: Architecture::default(),
            train: TrainConfig::default(),
            precision: Precision::F32,
            sample_precision: Precision::F64,
            conv: ConvMethod::Auto,
            seed: 0,
            conventions: Default::default(),
        }
    }
}

fn default_sample_precision() -> Precision {
    Precision::F64
}

/// Statistics of one training step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Steps done after this one.
    pub step: u64,
    /// The reverse-KL loss E[log q + S] (up to log Z).
    pub loss: f64,
    /// ESS of the training batch.
    pub ess: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Euclidean norm of the gradient.
    pub grad_norm: f64,
}

/// Independent flow samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    /// Fields, n × V (layout of SPEC §1).
    pub phi: Vec<f64>,
    /// log q of each.
    pub log_q: Vec<f64>,
    /// S of each.
    pub action: Vec<f64>,
}

impl Samples {
    /// log w = −S − log q of each sample.
    pub fn log_weights(&self) -> Vec<f64> {
        self.action.iter().zip(&self.log_q).map(|(s, q)| -s - q).collect()
    }
}

/// An action supplied by the host instead of the built-in φ⁴ action: S of each of n fields
/// (n × V) and, when `force` is given, ∂S/∂φ. It is only ever called on the thread that called
/// into the flow (never from worker threads), once per batch.
pub trait CustomAction: Send + Sync {
    /// Writes S into `action` (n) and, if asked, ∂S/∂φ into `force` (n × V).
    fn evaluate(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()>;
}

enum Prepared {
    F64(VectorField<f64>),
    F32(VectorField<f32>),
}

/// A trained or untrained flow with its optimiser state.
pub struct Flow {
    /// Configuration it was created with.
    pub config: FlowConfig,
    /// The lattice.
    pub lattice: Lattice,
    /// The target action.
    pub action: Action,
    /// The parameter layout.
    pub layout: Layout,
    /// The parameters.
    params: Vec<f64>,
    /// Adam state.
    pub adam: Adam,
    /// Training steps done.
    pub steps_done: u64,
    /// Samples drawn so far (the next sample's RNG index).
    pub samples_drawn: u64,
    prepared: [Option<Arc<Prepared>>; 2],
    custom: Option<Arc<dyn CustomAction>>,
    pool: Arc<rayon::ThreadPool>,
}

fn to_r<R: Real>(x: &[f64]) -> Vec<R> {
    x.iter().map(|&v| R::of(v)).collect()
}

impl Flow {
    /// A new flow with W = 0 (the identity map) and `threads` worker threads (0: all cores).
    pub fn new(config: FlowConfig, threads: usize) -> Result<Self> {
        let lattice = Lattice::new(config.lattice_size)?;
        let couplings = Couplings::new(config.couplings.m2, config.couplings.lambda)?;
        config.arch.validate()?;
        let t = &config.train;
        if t.batch_size == 0 || t.batch_size > 1 << 24 {
            return Err(Error::invalid(format!("batch_size = {}: must be in 1..=16777216", t.batch_size)));
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(Error::invalid(format!("learning_rate = {}: must be finite and > 0", t.learning_rate)));
        }
        let layout = Layout::new(&config.arch, &lattice);
        let params = params::initial(&config.arch, &layout, config.seed);
        let pool = build_pool(threads)?;
        Ok(Flow {
            adam: Adam::new(layout.total),
            action: Action::new(lattice, couplings),
            lattice,
            layout,
            params,
            steps_done: 0,
            samples_drawn: 0,
            prepared: [None, None],
            custom: None,
            pool,
            config,
        })
    }

    /// A frozen copy sharing the prepared field: later training of `self` does not change it.
    pub fn snapshot(&self) -> Flow {
        Flow {
            config: self.config.clone(),
            lattice: self.lattice,
            action: self.action,
            layout: self.layout.clone(),
            params: self.params.clone(),
            adam: self.adam.clone(),
            steps_done: self.steps_done,
            samples_drawn: self.samples_drawn,
            prepared: self.prepared.clone(),
            custom: self.custom.clone(),
            pool: self.pool.clone(),
        }
    }

    /// The lattice volume V.
    pub fn volume(&self) -> usize {
        self.lattice.volume()
    }
    /// The parameters (flat, layout of `self.layout`).
    pub fn params(&self) -> &[f64] {
        &self.params
    }
    /// Replaces the parameters (checked for length and finiteness).
    pub fn set_params(&mut self, p: &[f64]) -> Result<()> {
        check_len("set_params", p.len(), self.layout.total)?;
        crate::error::check_finite("set_params", p)?;
        self.params.copy_from_slice(p);
        self.prepared = [None, None];
        Ok(())
    }
    /// Whether a host action replaces the built-in one (it is never saved to files).
    pub fn has_custom_action(&self) -> bool {
        self.custom.is_some()
    }

    /// Replaces the built-in φ⁴ action by a host-supplied one (None: back to φ⁴). Training,
    /// proposals and chains created afterwards use it. Files do not hold it: set it again
    /// after loading.
    pub fn set_custom_action(&mut self, action: Option<Arc<dyn CustomAction>>) {
        self.custom = action;
    }

    /// S (and, if asked, ∂S/∂φ) of n fields (n × V) under the flow's target action.
    pub fn evaluate_action(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> Result<()> {
        evaluate_with(&self.action, self.custom.as_deref(), self.volume(), phi, action, force)
    }

    /// Sets the number of RK4 steps N_t. The parameters define a continuous ODE, so training
    /// can run with fewer steps early and sample with more (SPEC §3.3: keep N_t a multiple of
    /// d_t − 1 for the hat kernel).
    pub fn set_ode_steps(&mut self, n_steps: usize) -> Result<()> {
        let mut arch = self.config.arch.clone();
        arch.ode_steps = n_steps;
        arch.validate()?;
        self.config.arch = arch;
        self.prepared = [None, None];
        Ok(())
    }

    /// Sets the compute precisions of training and of sampling / log q.
    pub fn set_precision(&mut self, train: Precision, sample: Precision) {
        self.config.precision = train;
        self.config.sample_precision = sample;
        self.prepared = [None, None];
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Sets the number of worker threads (0: all cores).
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        self.pool = build_pool(threads)?;
        Ok(())
    }

    /// The field prepared for training (`train`) or for sampling.
    fn prepared(&mut self, train: bool) -> Arc<Prepared> {
        let (slot, precision) = if train { (0, self.config.precision) } else { (1, self.config.sample_precision) };
        if self.prepared[slot].is_none() {
            let c = &self.config;
            let p = match precision {
                Precision::F64 => {
                    Prepared::F64(VectorField::new(&c.arch, self.lattice, &self.layout, &self.params, c.conv))
                }
                Precision::F32 => {
                    Prepared::F32(VectorField::new(&c.arch, self.lattice, &self.layout, &self.params, c.conv))
                }
            };
            self.prepared[slot] = Some(Arc::new(p));
        }
        self.prepared[slot].clone().unwrap()
    }

    /// Bytes a training step holds at its peak: the tapes (state at every RK4 step, in the
    /// training precision) and the f64 fields, log q, S and force of the batch.
    pub fn training_bytes(&self) -> Option<u64> {
        let r = match self.config.precision {
            Precision::F64 => 8u64,
            Precision::F32 => 4,
        };
        let per_field = (self.config.arch.ode_steps as u64 + 2).checked_mul(r)?.checked_add(32)?;
        (self.config.train.micro() as u64).checked_mul(self.volume() as u64)?.checked_mul(per_field)
    }

    /// Bytes that pushing n fields through the flow holds (prior draws, chunk results, output).
    pub fn sampling_bytes(&self, n: usize) -> Option<u64> {
        (n as u64).checked_mul(self.volume() as u64)?.checked_mul(3 * 8)
    }

    /// Draws prior noise for samples `first..first + n` of `stream` into an n × V buffer.
    fn noise(&self, stream: Stream, first: u64, n: usize) -> Vec<f64> {
        self.noise_keyed(self.config.seed, stream, first, n)
    }

    /// As `noise`, with the draws keyed by `seed` instead of the flow's own seed.
    fn noise_keyed(&self, seed: u64, stream: Stream, first: u64, n: usize) -> Vec<f64> {
        let v = self.volume();
        let mut z = vec![0.0; n * v];
        self.pool.install(|| {
            z.par_chunks_mut(v).enumerate().for_each(|(i, zi)| Rng::new(seed, stream, first + i as u64).fill_normal(zi))
        });
        z
    }

    /// The batch loss, its per-sample log q and S, and the gradient, for prior draws `z`.
    pub fn loss_and_grad_of(&mut self, z: &[f64]) -> Result<(f64, Samples, Vec<f64>)> {
        let v = self.volume();
        if z.is_empty() || z.len() % v != 0 {
            return Err(Error::length("loss_and_grad: z", z.len(), v * (z.len() / v).max(1)));
        }
        let n = z.len() / v;
        let prep = self.prepared(true);
        let total = self.layout.total;
        let weight = 1.0 / n as f64;
        let path = self.config.train.gradient == Gradient::Path;
        // 1. forward passes, in parallel over fixed chunks (with the score for path gradients)
        let tapes: Vec<AnyTape> = self.pool.install(|| {
            z.par_chunks(CHUNK * v)
                .map(|zc| match (&*prep, path) {
                    (Prepared::F64(f), false) => AnyTape::F64(forward_tape(f, to_r(zc), &mut f.work(zc.len() / v))),
                    (Prepared::F32(f), false) => AnyTape::F32(forward_tape(f, to_r(zc), &mut f.work(zc.len() / v))),
                    (Prepared::F64(f), true) => {
                        AnyTape::F64(forward_tape_score(f, to_r(zc), &mut f.work(zc.len() / v)))
                    }
                    (Prepared::F32(f), true) => {
                        AnyTape::F32(forward_tape_score(f, to_r(zc), &mut f.work(zc.len() / v)))
                    }
                })
                .collect()
        });
        // 2. the action and its force, on the calling thread (a host callback may be behind it)
        let mut out = Samples::default();
        for t in &tapes {
            match t {
                AnyTape::F64(t) => {
                    out.phi.extend(t.phi.iter().copied());
                    out.log_q.extend(&t.log_q);
                }
                AnyTape::F32(t) => {
                    out.phi.extend(t.phi.iter().map(|&x| x as f64));
                    out.log_q.extend(&t.log_q);
                }
            }
        }
        out.action = vec![0.0; n];
        let mut force = vec![0.0; n * v];
        self.evaluate_action(&out.phi, &mut out.action, Some(&mut force))?;
        force.iter_mut().for_each(|f| *f *= weight);
        // path gradients: the cotangent at φ(1) is ∇(log q + S) / n and log q itself is not
        // differentiated (its score term has zero mean)
        let log_q_weight = if path {
            let scores = tapes.iter().flat_map(|t| match t {
                AnyTape::F64(t) => t.score.to_vec(),
                AnyTape::F32(t) => t.score.iter().map(|&x| x as f64).collect(),
            });
            force.iter_mut().zip(scores).for_each(|(f, a)| *f += weight * a);
            0.0
        } else {
            weight
        };
        // 3. back-propagation, in parallel, gradients summed in chunk order
        let grads: Vec<Vec<f64>> = self.pool.install(|| {
            tapes
                .par_iter()
                .zip(force.par_chunks(CHUNK * v))
                .map(|(t, fc)| {
                    let mut g = vec![0.0; total];
                    match (&*prep, t) {
                        (Prepared::F64(f), AnyTape::F64(t)) => {
                            backward(f, t, &to_r(fc), log_q_weight, &mut g, &mut f.work_for_grad(fc.len() / v))
                        }
                        (Prepared::F32(f), AnyTape::F32(t)) => {
                            backward(f, t, &to_r(fc), log_q_weight, &mut g, &mut f.work_for_grad(fc.len() / v))
                        }
                        _ => unreachable!("tape and field of different precision"),
                    }
                    g
                })
                .collect()
        });
        let mut grad = vec![0.0; total];
        for g in grads {
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        }
        let loss = out.log_q.iter().zip(&out.action).map(|(q, s)| q + s).sum::<f64>() / n as f64;
        Ok((loss, out, grad))
    }

    /// One Adam step on a fresh batch. A non-finite loss or gradient returns an error and
    /// leaves the parameters and optimiser state as they were.
    pub fn train_step(&mut self) -> Result<StepStats> {
        // coarse integration early in training (TrainConfig::coarse_ode_steps)
        let fine = self.config.arch.ode_steps;
        let nt = self.training_ode_steps();
        if nt == fine {
            return self.train_step_at_nt();
        }
        self.set_ode_steps(nt)?;
        let r = self.train_step_at_nt();
        self.config.arch.ode_steps = fine;
        self.prepared = [None, None];
        r
    }

    /// The RK4 steps the next training step integrates with.
    pub fn training_ode_steps(&self) -> usize {
        self.config.train.ode_steps_at(self.steps_done, self.config.arch.ode_steps)
    }

    fn train_step_at_nt(&mut self) -> Result<StepStats> {
        crate::memory::check(self.training_bytes(), "train step (batch tapes)")?;
        let (loss, samples, grad) = self.batch_gradient(|f, first, n| {
            let z = f.noise(Stream::Train, first, n);
            f.loss_and_grad_of(&z)
        })?;
        self.apply_gradient(loss, &samples, &grad)
    }

    /// The loss, log q and S, and gradient of the next training batch, from `micro(flow,
    /// first, n)`, the loss, samples and gradient of the n prior draws first.. of the Train
    /// stream: micro-batches in order, each its mean loss and gradient, combined with weights
    /// m_k / b (one micro-batch: exactly the whole-batch computation). Shared by the CPU step
    /// and the CUDA trainer.
    pub fn batch_gradient(
        &mut self,
        mut micro: impl FnMut(&mut Self, u64, usize) -> Result<(f64, Samples, Vec<f64>)>,
    ) -> Result<(f64, Samples, Vec<f64>)> {
        let (b, m) = (self.config.train.batch_size, self.config.train.micro());
        let first = self.steps_done << 24;
        let (mut loss, mut samples, mut grad) = (0.0, Samples::default(), vec![0.0; self.layout.total]);
        for start in (0..b).step_by(m.max(1)) {
            let mk = m.min(b - start);
            let (l, s, g) = micro(self, first + start as u64, mk)?;
            if mk == b {
                return Ok((l, s, g));
            }
            let w = mk as f64 / b as f64;
            loss += w * l;
            grad.iter_mut().zip(&g).for_each(|(a, x)| *a += w * x);
            // only the weights are needed (the ESS): the fields are not kept
            samples.log_q.extend(s.log_q);
            samples.action.extend(s.action);
        }
        Ok((loss, samples, grad))
    }

    /// The update of a training step from its batch loss, the batch's log q and S, and the
    /// gradient: a non-finite loss or gradient is an error that leaves the flow as it was;
    /// otherwise one Adam step. Shared by the CPU step and the CUDA trainer.
    pub fn apply_gradient(&mut self, loss: f64, samples: &Samples, grad: &[f64]) -> Result<StepStats> {
        crate::error::check_len("apply_gradient: gradient", grad.len(), self.layout.total)?;
        let grad_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(Error::new(
                Status::NonFinite,
                format!(
                    "train step {}: non-finite {} (loss {loss}); parameters left at the last good step",
                    self.steps_done,
                    if loss.is_finite() { "gradient" } else { "loss" }
                ),
            ));
        }
        let cfg = self.config.train.clone();
        let lr = cfg.rate(self.steps_done);
        self.adam.update(&cfg, lr, &mut self.params, grad);
        self.prepared = [None, None];
        self.steps_done += 1;
        Ok(StepStats { step: self.steps_done, loss, ess: ess(&samples.log_weights()), lr, grad_norm })
    }

    /// Pushes prior draws through the flow: fields, log q and S.
    pub fn push_forward(&mut self, z: &[f64]) -> Result<Samples> {
        let v = self.volume();
        if z.len() % v != 0 {
            return Err(Error::length("push_forward: z", z.len(), v * (z.len() / v + 1)));
        }
        crate::error::check_finite("push_forward: z", z)?;
        let prep = self.prepared(false);
        let parts: Vec<Samples> = self.pool.install(|| {
            z.par_chunks(CHUNK * v)
                .map(|zc| match &*prep {
                    Prepared::F64(f) => chunk_forward(f, zc),
                    Prepared::F32(f) => chunk_forward(f, zc),
                })
                .collect()
        });
        let mut out = concat(parts);
        out.action = vec![0.0; out.log_q.len()];
        self.evaluate_action(&out.phi, &mut out.action, None)?;
        Ok(out)
    }

    /// n independent samples (the flow's own sample stream; advances it).
    pub fn sample(&mut self, n: usize) -> Result<Samples> {
        crate::memory::check(self.sampling_bytes(n), &format!("sampling {n} fields"))?;
        let z = self.noise(Stream::Sample, self.samples_drawn, n);
        self.samples_drawn += n as u64;
        self.push_forward(&z)
    }

    /// n samples for stream `stream` starting at index `first` (does not advance anything).
    pub fn sample_at(&mut self, stream: Stream, first: u64, n: usize) -> Result<Samples> {
        crate::memory::check(self.sampling_bytes(n), &format!("sampling {n} fields"))?;
        let z = self.noise(stream, first, n);
        self.push_forward(&z)
    }

    /// n samples whose noise is keyed by (seed, sample stream, first + i), as a Metropolis chain
    /// with that seed draws its proposals. Advances nothing.
    pub fn sample_keyed(&mut self, seed: u64, first: u64, n: usize) -> Result<Samples> {
        crate::memory::check(self.sampling_bytes(n), &format!("sampling {n} fields"))?;
        let z = self.noise_keyed(seed, Stream::Sample, first, n);
        self.push_forward(&z)
    }

    /// ESS of n fresh samples (a separate stream from training and sampling).
    pub fn ess(&mut self, n: usize) -> Result<f64> {
        if n == 0 {
            return Err(Error::invalid("ess: n_samples = 0"));
        }
        let s = self.sample_at(Stream::Ess, self.steps_done << 24, n)?;
        Ok(ess(&s.log_weights()))
    }

    /// As [`Self::ess`] (the same samples), with the jackknife error of the estimate
    /// ([`crate::reweight::ess_with_error`]); n ≥ 2.
    pub fn ess_estimate(&mut self, n: usize) -> Result<crate::reweight::ValueError> {
        if n < 2 {
            return Err(Error::invalid(format!("ess: n_samples = {n} (need at least 2 for an error)")));
        }
        let s = self.sample_at(Stream::Ess, self.steps_done << 24, n)?;
        crate::reweight::ess_with_error(&s.log_weights())
    }

    /// log q of arbitrary configurations (n × V): the discrete forward map is inverted to
    /// ~1e-13 (f64) and the divergence accumulated forward exactly as in sampling.
    pub fn log_prob(&mut self, phi: &[f64]) -> Result<Vec<f64>> {
        let v = self.volume();
        if phi.is_empty() || phi.len() % v != 0 {
            return Err(Error::length("log_prob: phi", phi.len(), v * (phi.len() / v).max(1)));
        }
        crate::error::check_finite("log_prob: phi", phi)?;
        let z = self.invert(phi)?;
        Ok(self.push_forward(&z)?.log_q)
    }

    /// The prior point z with Φ(z) = φ (n × V).
    pub fn invert(&mut self, phi: &[f64]) -> Result<Vec<f64>> {
        let v = self.volume();
        if phi.len() % v != 0 {
            return Err(Error::length("invert: phi", phi.len(), v * (phi.len() / v + 1)));
        }
        let prep = self.prepared(false);
        let parts: Vec<Result<Vec<f64>>> = self.pool.install(|| {
            phi.par_chunks(CHUNK * v)
                .map(|pc| match &*prep {
                    Prepared::F64(f) => chunk_invert(f, pc, 1e-13),
                    Prepared::F32(f) => chunk_invert(f, pc, 1e-6),
                })
                .collect()
        });
        let mut z = Vec::with_capacity(phi.len());
        for p in parts {
            z.extend(p?);
        }
        Ok(z)
    }

    /// Plain backward RK4 integration from φ to an approximate z (for measuring the integrator).
    pub fn backward_rk4(&mut self, phi: &[f64]) -> Result<Vec<f64>> {
        let v = self.volume();
        check_len("backward_rk4: phi", phi.len() % v, 0)?;
        let prep = self.prepared(false);
        let mut z = vec![0.0; phi.len()];
        match &*prep {
            Prepared::F64(f) => {
                let mut w = f.work(phi.len() / v);
                ode::backward_rk4(f, phi, &mut z, &mut w);
            }
            Prepared::F32(f) => {
                let mut w = f.work(phi.len() / v);
                let mut z32 = vec![0.0f32; phi.len()];
                ode::backward_rk4(f, &to_r::<f32>(phi), &mut z32, &mut w);
                z = z32.iter().map(|&x| x as f64).collect();
            }
        }
        Ok(z)
    }
}

/// A chunk's forward tape in either precision.
enum AnyTape {
    F64(Tape<f64>),
    F32(Tape<f32>),
}

/// A thread pool of `threads` workers (0: all cores), owned by one flow (never the global pool).
/// S (and, if asked, ∂S/∂φ) of n fields under the built-in `action` or, if set, a host
/// action (whose S must not be NaN); shared by every flow type.
pub(crate) fn evaluate_with(
    action: &crate::action::Action,
    custom: Option<&dyn CustomAction>,
    v: usize,
    phi: &[f64],
    out: &mut [f64],
    force: Option<&mut [f64]>,
) -> Result<()> {
    check_len("evaluate_action: action", out.len() * v, phi.len())?;
    match custom {
        Some(c) => {
            c.evaluate(phi, out, force)?;
            match out.iter().position(|s| s.is_nan()) {
                Some(i) => Err(Error::non_finite(format!("custom action: S of field {i} is NaN"))),
                None => Ok(()),
            }
        }
        None => {
            action.action_batch(phi, out)?;
            if let Some(f) = force {
                action.force_batch(phi, f)?;
            }
            Ok(())
        }
    }
}

pub(crate) fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map(Arc::new)
        .map_err(|e| Error::new(Status::Internal, format!("thread pool: {e}")))
}

/// Chunk results joined in chunk order.
pub(crate) fn concat(parts: Vec<Samples>) -> Samples {
    let mut out = Samples::default();
    for p in parts {
        out.phi.extend(p.phi);
        out.log_q.extend(p.log_q);
        out.action.extend(p.action);
    }
    out
}

fn chunk_forward<R: Real>(f: &VectorField<R>, zc: &[f64]) -> Samples {
    let v = f.lattice.volume();
    let nb = zc.len() / v;
    let mut w = f.work(nb);
    let zr = to_r::<R>(zc);
    let mut phi = vec![R::zero(); nb * v];
    let mut nd = vec![0.0; nb];
    ode::forward(f, &zr, &mut phi, &mut nd, None, &mut w);
    let phi64: Vec<f64> = phi.iter().map(|x| x.f64()).collect();
    let log_q = (0..nb).map(|b| log_prior(&zr[b * v..(b + 1) * v]) + nd[b]).collect();
    Samples { phi: phi64, log_q, action: Vec::new() }
}

fn chunk_invert<R: Real>(f: &VectorField<R>, pc: &[f64], tol: f64) -> Result<Vec<f64>> {
    let v = f.lattice.volume();
    let nb = pc.len() / v;
    let mut w = f.work(nb);
    let mut z = vec![R::zero(); nb * v];
    ode::invert(f, &to_r::<R>(pc), &mut z, tol, &mut w)?;
    Ok(z.iter().map(|x| x.f64()).collect())
}
