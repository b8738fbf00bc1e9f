//! The stack of coupling layers as one bijection z → φ on a chunk of fields: forward with
//! log-det, exact inverse, and back-propagation of the reverse-KL loss to the parameters.

use super::cnn::{CnnShape, Geometry};
use super::coupling::{Coupling, CouplingWork, LayerTape};
use crate::lattice::Lattice;

/// Geometry and shapes of a RealNVP flow (everything but the parameters).
#[derive(Debug, Clone)]
pub struct Network {
    shape: CnnShape,
    n_layers: usize,
    geo: Geometry,
    /// The two checkerboard masks; layer k uses masks[k mod 2].
    masks: [Coupling; 2],
    v: usize,
}

/// The forward pass of a chunk, kept for back-propagation.
#[derive(Debug, Clone)]
pub struct Tape {
    layers: Vec<LayerTape>,
    n: usize,
}

/// Scratch of a chunk of n fields.
#[derive(Debug, Clone)]
pub struct Work {
    cur: Vec<f64>,
    next: Vec<f64>,
    scratch: LayerTape,
    coupling: CouplingWork,
    n: usize,
}

impl Network {
    /// `n_layers` couplings with `hidden` channels on `lattice`.
    pub fn new(lattice: &Lattice, hidden: usize, n_layers: usize) -> Self {
        Network {
            shape: CnnShape { hidden },
            n_layers,
            geo: Geometry::new(lattice),
            masks: [Coupling::new(lattice, 0), Coupling::new(lattice, 1)],
            v: lattice.volume(),
        }
    }

    /// The shape of each layer's network.
    pub fn shape(&self) -> CnnShape {
        self.shape
    }

    /// Parameters per layer.
    pub fn per_layer(&self) -> usize {
        self.shape.n_params()
    }

    /// All parameters.
    pub fn n_params(&self) -> usize {
        self.n_layers * self.per_layer()
    }

    /// Scratch for up to n fields.
    pub fn work(&self, n: usize) -> Work {
        Work {
            cur: vec![0.0; n * self.v],
            next: vec![0.0; n * self.v],
            scratch: LayerTape::new(self.shape, n, self.v),
            coupling: CouplingWork::new(self.shape, &self.geo, n),
            n,
        }
    }

    /// An empty tape for n fields.
    pub fn tape(&self, n: usize) -> Tape {
        Tape { layers: (0..self.n_layers).map(|_| LayerTape::new(self.shape, n, self.v)).collect(), n }
    }

    fn layer_params<'a>(&self, p: &'a [f64], k: usize) -> &'a [f64] {
        let m = self.per_layer();
        &p[k * m..(k + 1) * m]
    }

    /// φ = Φ(z) for n fields and the total log-det Σ_layers Σ_active s of each (`logdet`, n).
    /// With a tape, what `backward` needs is kept in it.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        p: &[f64],
        z: &[f64],
        n: usize,
        phi: &mut [f64],
        logdet: &mut [f64],
        mut tape: Option<&mut Tape>,
        w: &mut Work,
    ) {
        let nn = n * self.v;
        assert!(n <= w.n && tape.as_ref().map_or(true, |t| t.n == n), "network: chunk and buffers differ");
        logdet[..n].fill(0.0);
        w.cur[..nn].copy_from_slice(&z[..nn]);
        for k in 0..self.n_layers {
            let lt = match tape.as_deref_mut() {
                Some(t) => &mut t.layers[k],
                None => &mut w.scratch,
            };
            self.masks[k % 2].forward(
                self.shape,
                &self.geo,
                self.layer_params(p, k),
                &w.cur,
                n,
                &mut w.next,
                logdet,
                lt,
                &mut w.coupling,
            );
            std::mem::swap(&mut w.cur, &mut w.next);
        }
        phi[..nn].copy_from_slice(&w.cur[..nn]);
    }

    /// z = Φ⁻¹(φ) for n fields, exact up to rounding, and the forward map's total log-det at z.
    pub fn inverse(&self, p: &[f64], phi: &[f64], n: usize, z: &mut [f64], logdet: &mut [f64], w: &mut Work) {
        let nn = n * self.v;
        assert!(n <= w.n, "network: chunk larger than its buffers");
        logdet[..n].fill(0.0);
        w.cur[..nn].copy_from_slice(&phi[..nn]);
        for k in (0..self.n_layers).rev() {
            self.masks[k % 2].inverse(
                self.shape,
                &self.geo,
                self.layer_params(p, k),
                &w.cur,
                n,
                &mut w.next,
                logdet,
                &mut w.scratch,
                &mut w.coupling,
            );
            std::mem::swap(&mut w.cur, &mut w.next);
        }
        z[..nn].copy_from_slice(&w.cur[..nn]);
    }

    /// Back-propagation through the whole stack. On entry `g` (n × V) is ∂ℓ/∂φ; on exit ∂ℓ/∂z.
    /// `c_logdet` is ∂ℓ/∂(total log-det) of every field (−1/batch for the reverse-KL loss,
    /// since log q = log r(z) − log-det). The parameter gradient is added to `grad`.
    pub fn backward(&self, p: &[f64], tape: &Tape, g: &mut [f64], c_logdet: f64, grad: &mut [f64], w: &mut Work) {
        let m = self.per_layer();
        let n = tape.n;
        for k in (0..self.n_layers).rev() {
            self.masks[k % 2].backward(
                self.shape,
                &self.geo,
                self.layer_params(p, k),
                &tape.layers[k],
                n,
                c_logdet,
                g,
                &mut grad[k * m..(k + 1) * m],
                &mut w.coupling,
            );
        }
    }
}
