//! One checkerboard-masked affine coupling layer (SPEC §7):
//! φ_frozen unchanged, φ_active ← e^{s} ⊙ φ_active + t with (s, t) = CNN(φ ⊙ frozen mask),
//! log-det = Σ_active s. Its exact inverse and its backward pass.

use super::cnn::{self, CnnShape, CnnWork, Geometry};
use crate::lattice::Lattice;

/// What back-propagation through one layer needs, for a chunk of n fields (N = n·V).
#[derive(Debug, Clone)]
pub struct LayerTape {
    /// The layer's input (N).
    x: Vec<f64>,
    /// The network's input, x ⊙ frozen mask (N).
    u0: Vec<f64>,
    /// First and second hidden activations (h × N each).
    a1: Vec<f64>,
    a2: Vec<f64>,
    /// s then t, after tanh (2 × N).
    st: Vec<f64>,
}

impl LayerTape {
    /// Buffers for n fields.
    pub fn new(shape: CnnShape, n: usize, v: usize) -> Self {
        let nn = n * v;
        LayerTape {
            x: vec![0.0; nn],
            u0: vec![0.0; nn],
            a1: vec![0.0; shape.hidden * nn],
            a2: vec![0.0; shape.hidden * nn],
            st: vec![0.0; 2 * nn],
        }
    }
}

/// Scratch of the layer's backward pass.
#[derive(Debug, Clone)]
pub struct CouplingWork {
    cnn: CnnWork,
    gst: Vec<f64>,
    gu0: Vec<f64>,
}

impl CouplingWork {
    /// Buffers for n fields.
    pub fn new(shape: CnnShape, geo: &Geometry, n: usize) -> Self {
        let v = geo.volume();
        CouplingWork { cnn: shape.work(geo, n), gst: vec![0.0; 2 * n * v], gu0: vec![0.0; n * v] }
    }
}

/// The checkerboard mask of one layer: sites with (x0 + x1 + parity) odd are frozen, as in
/// Albergo et al.'s `make_checker_mask(shape, parity)`; layer k uses parity k mod 2.
#[derive(Debug, Clone)]
pub struct Coupling {
    /// 1 on frozen sites, 0 on active ones (V).
    frozen: Vec<f64>,
}

impl Coupling {
    /// The mask of `parity` (0 or 1) on `lattice`.
    pub fn new(lattice: &Lattice, parity: usize) -> Self {
        let frozen = (0..lattice.volume())
            .map(|i| {
                let (x0, x1) = lattice.coords(i);
                ((x0 + x1 + parity) % 2) as f64
            })
            .collect();
        Coupling { frozen }
    }

    /// Forward map of n fields x → y; adds Σ_active s of each field to `logdet` (n) and
    /// leaves in `tape` what `backward` needs.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        shape: CnnShape,
        geo: &Geometry,
        p: &[f64],
        x: &[f64],
        n: usize,
        y: &mut [f64],
        logdet: &mut [f64],
        tape: &mut LayerTape,
        work: &mut CouplingWork,
    ) {
        let v = self.frozen.len();
        let nn = n * v;
        tape.x[..nn].copy_from_slice(&x[..nn]);
        self.mask_input(x, n, &mut tape.u0);
        cnn::forward(shape, geo, p, &tape.u0, n, &mut tape.a1, &mut tape.a2, &mut tape.st, &mut work.cnn);
        let (s, t) = tape.st.split_at(nn);
        for (b, out) in logdet[..n].iter_mut().enumerate() {
            let mut ld = 0.0;
            for (i, &m) in self.frozen.iter().enumerate() {
                let k = b * v + i;
                if m == 0.0 {
                    y[k] = s[k].exp() * x[k] + t[k];
                    ld += s[k];
                } else {
                    y[k] = x[k];
                }
            }
            *out += ld;
        }
    }

    /// The exact inverse y → x of n fields; adds Σ_active s to `logdet` (the forward map's
    /// log-det at x, since s depends on frozen sites only). `tape` is scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn inverse(
        &self,
        shape: CnnShape,
        geo: &Geometry,
        p: &[f64],
        y: &[f64],
        n: usize,
        x: &mut [f64],
        logdet: &mut [f64],
        tape: &mut LayerTape,
        work: &mut CouplingWork,
    ) {
        let v = self.frozen.len();
        let nn = n * v;
        self.mask_input(y, n, &mut tape.u0);
        cnn::forward(shape, geo, p, &tape.u0, n, &mut tape.a1, &mut tape.a2, &mut tape.st, &mut work.cnn);
        let (s, t) = tape.st.split_at(nn);
        for (b, out) in logdet[..n].iter_mut().enumerate() {
            let mut ld = 0.0;
            for (i, &m) in self.frozen.iter().enumerate() {
                let k = b * v + i;
                if m == 0.0 {
                    x[k] = (y[k] - t[k]) * (-s[k]).exp();
                    ld += s[k];
                } else {
                    x[k] = y[k];
                }
            }
            *out += ld;
        }
    }

    /// Back-propagates through the layer: `g` holds ∂ℓ/∂y on entry and ∂ℓ/∂x on exit;
    /// `c_logdet` is ∂ℓ/∂(log-det of this layer) of every field; the parameter gradient is
    /// added to `grad` (the layer's block).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        shape: CnnShape,
        geo: &Geometry,
        p: &[f64],
        tape: &LayerTape,
        n: usize,
        c_logdet: f64,
        g: &mut [f64],
        grad: &mut [f64],
        work: &mut CouplingWork,
    ) {
        let v = self.frozen.len();
        let nn = n * v;
        let s = &tape.st[..nn];
        let (gs, gt) = work.gst.split_at_mut(nn);
        for b in 0..n {
            for (i, &m) in self.frozen.iter().enumerate() {
                let k = b * v + i;
                if m == 0.0 {
                    // y = e^s x + t
                    let es = s[k].exp();
                    gs[k] = g[k] * es * tape.x[k] + c_logdet;
                    gt[k] = g[k];
                    g[k] *= es;
                } else {
                    gs[k] = 0.0;
                    gt[k] = 0.0;
                }
            }
        }
        cnn::backward(
            shape,
            geo,
            p,
            &tape.u0,
            &tape.a1,
            &tape.a2,
            &tape.st,
            &work.gst,
            n,
            grad,
            &mut work.gu0,
            &mut work.cnn,
        );
        for b in 0..n {
            for (i, &m) in self.frozen.iter().enumerate() {
                let k = b * v + i;
                g[k] += m * work.gu0[k];
            }
        }
    }

    /// u0 = x ⊙ frozen mask.
    fn mask_input(&self, x: &[f64], n: usize, u0: &mut [f64]) {
        let v = self.frozen.len();
        for (uc, xc) in u0[..n * v].chunks_exact_mut(v).zip(x.chunks_exact(v)) {
            for ((u, &xi), &m) in uc.iter_mut().zip(xc).zip(&self.frozen) {
                *u = xi * m;
            }
        }
    }
}
