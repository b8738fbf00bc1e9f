//! The flow as users hold it: theory, architecture, parameters, optimiser state, and the
//! operations of the Rust API (train, sample, log q, ESS), parallel over fixed chunks of
//! samples with ordered reductions, so results do not depend on the thread count.

use super::config::Architecture;
use super::conv::ConvMethod;
use super::grad::{log_prior, loss_and_grad};
use super::ode;
use super::params::{self, Layout};
use super::vector_field::VectorField;
use crate::action::{Action, Couplings};
use crate::error::{check_len, Error, Result, Status};
use crate::lattice::Lattice;
use crate::real::Real;
use crate::rng::{Rng, Stream};
use crate::train::{ess, Adam, TrainConfig};
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

    /// Draws prior noise for samples `first..first + n` of `stream` into an n × V buffer.
    fn noise(&self, stream: Stream, first: u64, n: usize) -> Vec<f64> {
        let v = self.volume();
        let mut z = vec![0.0; n * v];
        let seed = self.config.seed;
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
        let action = self.action;
        let weight = 1.0 / n as f64;
        let results: Vec<ChunkOut> = self.pool.install(|| {
            z.par_chunks(CHUNK * v)
                .map(|zc| {
                    let mut g = vec![0.0; total];
                    let (lq, s, phi) = match &*prep {
                        Prepared::F64(f) => chunk_grad(f, &action, zc, weight, &mut g),
                        Prepared::F32(f) => chunk_grad(f, &action, zc, weight, &mut g),
                    };
                    (lq, s, phi, g)
                })
                .collect()
        });
        let mut grad = vec![0.0; total];
        let mut out = Samples::default();
        for (lq, s, phi, g) in results {
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
            out.log_q.extend(lq);
            out.action.extend(s);
            out.phi.extend(phi);
        }
        let loss = out.log_q.iter().zip(&out.action).map(|(q, s)| q + s).sum::<f64>() / n as f64;
        Ok((loss, out, grad))
    }

    /// One Adam step on a fresh batch. A non-finite loss or gradient returns an error and
    /// leaves the parameters and optimiser state as they were.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let b = self.config.train.batch_size;
        let z = self.noise(Stream::Train, self.steps_done << 24, b);
        let (loss, samples, grad) = self.loss_and_grad_of(&z)?;
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
        let lr = cfg.schedule.rate(cfg.learning_rate, self.steps_done);
        self.adam.update(&cfg, lr, &mut self.params, &grad);
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
        let action = self.action;
        let parts: Vec<Samples> = self.pool.install(|| {
            z.par_chunks(CHUNK * v)
                .map(|zc| match &*prep {
                    Prepared::F64(f) => chunk_forward(f, &action, zc),
                    Prepared::F32(f) => chunk_forward(f, &action, zc),
                })
                .collect()
        });
        Ok(concat(parts))
    }

    /// n independent samples (the flow's own sample stream; advances it).
    pub fn sample(&mut self, n: usize) -> Result<Samples> {
        let z = self.noise(Stream::Sample, self.samples_drawn, n);
        self.samples_drawn += n as u64;
        self.push_forward(&z)
    }

    /// n samples for stream `stream` starting at index `first` (does not advance anything).
    pub fn sample_at(&mut self, stream: Stream, first: u64, n: usize) -> Result<Samples> {
        let z = self.noise(stream, first, n);
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

/// One chunk's log q, S, fields and gradient.
type ChunkOut = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map(Arc::new)
        .map_err(|e| Error::new(Status::Internal, format!("thread pool: {e}")))
}

fn concat(parts: Vec<Samples>) -> Samples {
    let mut out = Samples::default();
    for p in parts {
        out.phi.extend(p.phi);
        out.log_q.extend(p.log_q);
        out.action.extend(p.action);
    }
    out
}

fn chunk_grad<R: Real>(
    f: &VectorField<R>,
    action: &Action,
    zc: &[f64],
    weight: f64,
    g: &mut [f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let v = f.lattice.volume();
    let mut w = f.work_for_grad(zc.len() / v);
    let zr = to_r::<R>(zc);
    let out = loss_and_grad(f, action, &zr, weight, g, &mut w);
    (out.log_q, out.action, Vec::new())
}

fn chunk_forward<R: Real>(f: &VectorField<R>, action: &Action, zc: &[f64]) -> Samples {
    let v = f.lattice.volume();
    let nb = zc.len() / v;
    let mut w = f.work(nb);
    let zr = to_r::<R>(zc);
    let mut phi = vec![R::zero(); nb * v];
    let mut nd = vec![0.0; nb];
    ode::forward(f, &zr, &mut phi, &mut nd, None, &mut w);
    let phi64: Vec<f64> = phi.iter().map(|x| x.f64()).collect();
    let log_q = (0..nb).map(|b| log_prior(&zr[b * v..(b + 1) * v]) + nd[b]).collect();
    let act = phi64.chunks_exact(v).map(|p| action.action_one(p)).collect();
    Samples { phi: phi64, log_q, action: act }
}

fn chunk_invert<R: Real>(f: &VectorField<R>, pc: &[f64], tol: f64) -> Result<Vec<f64>> {
    let v = f.lattice.volume();
    let nb = pc.len() / v;
    let mut w = f.work(nb);
    let mut z = vec![R::zero(); nb * v];
    ode::invert(f, &to_r::<R>(pc), &mut z, tol, &mut w)?;
    Ok(z.iter().map(|x| x.f64()).collect())
}
