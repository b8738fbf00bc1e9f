//! Full-lattice convolutions of feature channels with a displacement kernel (SPEC §3.1):
//!
//! out[x] = Σ_c Σ_y W[c][x − y] g[c][y]                       (forward)
//! a[c][y] = Σ_x W[c][x − y] k̄[x],  W̄[c][r] += Σ_x k̄[x] g[c][x − r]   (backward)
//!
//! Two evaluations with one interface: a dense matrix product (fast for small L) and
//! real FFTs (fast for large L). The direct sum in `direct` is the test oracle.

pub mod dense;
pub mod direct;
pub mod fft;
pub mod orbit;

use crate::real::Real;

/// `Auto` uses the orbit contraction up to this L and FFTs above: measured per training step
/// (f32, seed preset, 1 thread) equal at L = 6 and 1.8× faster with FFTs at L = 12.
pub const AUTO_ORBIT_MAX_L: usize = 5;

/// How the convolutions are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConvMethod {
    /// Choose by lattice size (what measured fastest).
    Auto,
    /// Dense V × (n_c·V) matrix product.
    Dense,
    /// Channel contraction per displacement orbit, then shifted sums.
    Orbit,
    /// FFTs.
    Fft,
}

/// A planned convolution for a lattice size and channel count.
pub enum ConvPlan<R: Real> {
    /// Dense matrix product.
    Dense(dense::DenseConv<R>),
    /// Orbit contraction.
    Orbit(orbit::OrbitConv<R>),
    /// FFTs.
    Fft(fft::FftConv<R>),
}

/// A kernel prepared for one time.
pub enum ConvKernel<R: Real> {
    /// Dense matrix.
    Dense(dense::DenseKernel<R>),
    /// Orbit weights.
    Orbit(orbit::OrbitKernel<R>),
    /// Kernel spectra.
    Fft(fft::FftKernel<R>),
}

/// Per-thread scratch.
pub enum ConvScratch<R: Real> {
    /// Dense scratch.
    Dense(dense::DenseScratch<R>),
    /// Orbit scratch.
    Orbit(orbit::OrbitScratch<R>),
    /// FFT scratch.
    Fft(fft::FftScratch<R>),
}

/// The spectra of a forward pass's inputs kept for the backward pass of the same inputs
/// (FFT path only; the other paths keep nothing).
pub enum ConvSpectra<R: Real> {
    /// Nothing kept.
    None,
    /// Spectra of the FFT path.
    Fft(fft::FftSpectra<R>),
}

impl<R: Real> ConvSpectra<R> {
    /// Marks the kept spectra stale (their inputs changed).
    pub fn invalidate(&mut self) {
        if let ConvSpectra::Fft(sp) = self {
            sp.invalidate();
        }
    }
}

impl<R: Real> ConvPlan<R> {
    /// Memory for the spectra of up to `nb` fields (FFT path; nothing otherwise).
    pub fn spectra(&self, nb: usize) -> ConvSpectra<R> {
        match self {
            ConvPlan::Fft(p) => ConvSpectra::Fft(p.spectra(nb)),
            _ => ConvSpectra::None,
        }
    }
    /// [`ConvPlan::forward`], keeping the inputs' spectra in `sp` where the path has them.
    pub fn forward_keep(
        &self,
        k: &ConvKernel<R>,
        g: &[R],
        out: &mut [R],
        s: &mut ConvScratch<R>,
        sp: &mut ConvSpectra<R>,
    ) {
        match (self, k, s, sp) {
            (ConvPlan::Fft(p), ConvKernel::Fft(k), ConvScratch::Fft(s), ConvSpectra::Fft(sp)) => {
                p.forward_keep(k, g, out, s, sp)
            }
            (_, k, s, _) => self.forward(k, g, out, s),
        }
    }
    /// [`ConvPlan::backward`], taking the spectra of `g` from `sp` when it holds them (the
    /// same results, bit for bit).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_kept(
        &self,
        k: &ConvKernel<R>,
        kbar: &[R],
        g: &[R],
        sp: &ConvSpectra<R>,
        a: &mut [R],
        wbar: &mut [R],
        s: &mut ConvScratch<R>,
    ) {
        if let (ConvPlan::Fft(p), ConvKernel::Fft(k), ConvScratch::Fft(s), ConvSpectra::Fft(sp)) =
            (self, k, &mut *s, sp)
        {
            if sp.holds(kbar.len() / p.volume()) {
                return p.backward_kept(k, kbar, g, sp, a, wbar, s);
            }
        }
        self.backward(k, kbar, g, a, wbar, s)
    }
    /// Plans the convolution for side `l`, `n_c` channels and kernel orbits `orbit_of`;
    /// `Auto` picks by size.
    pub fn new(method: ConvMethod, l: usize, n_c: usize, orbit_of: &[usize]) -> Self {
        match method {
            ConvMethod::Dense => ConvPlan::Dense(dense::DenseConv::new(l, n_c)),
            ConvMethod::Orbit => ConvPlan::Orbit(orbit::OrbitConv::new(l, n_c, orbit_of)),
            ConvMethod::Fft => ConvPlan::Fft(fft::FftConv::new(l, n_c)),
            ConvMethod::Auto if l <= AUTO_ORBIT_MAX_L => ConvPlan::Orbit(orbit::OrbitConv::new(l, n_c, orbit_of)),
            ConvMethod::Auto => ConvPlan::Fft(fft::FftConv::new(l, n_c)),
        }
    }
    /// Prepares the kernel W (n_c × V, real space).
    pub fn prepare(&self, wt: &[R]) -> ConvKernel<R> {
        match self {
            ConvPlan::Dense(p) => ConvKernel::Dense(p.prepare(wt)),
            ConvPlan::Orbit(p) => ConvKernel::Orbit(p.prepare(wt)),
            ConvPlan::Fft(p) => ConvKernel::Fft(p.prepare(wt)),
        }
    }
    /// Scratch for batches of up to `nb` fields.
    pub fn scratch(&self, nb: usize) -> ConvScratch<R> {
        match self {
            ConvPlan::Dense(p) => ConvScratch::Dense(p.scratch(nb)),
            ConvPlan::Orbit(p) => ConvScratch::Orbit(p.scratch(nb)),
            ConvPlan::Fft(p) => ConvScratch::Fft(p.scratch(nb)),
        }
    }
    /// out (nb × V) = conv(W, g) with g nb × n_c × V.
    pub fn forward(&self, k: &ConvKernel<R>, g: &[R], out: &mut [R], s: &mut ConvScratch<R>) {
        match (self, k, s) {
            (ConvPlan::Dense(p), ConvKernel::Dense(k), ConvScratch::Dense(s)) => p.forward(k, g, out, s),
            (ConvPlan::Orbit(p), ConvKernel::Orbit(k), ConvScratch::Orbit(s)) => p.forward(k, g, out, s),
            (ConvPlan::Fft(p), ConvKernel::Fft(k), ConvScratch::Fft(s)) => p.forward(k, g, out, s),
            _ => unreachable!("convolution plan, kernel and scratch of different methods"),
        }
    }
    /// a (nb × n_c × V) = transpose-conv(W, k̄); W̄ (n_c × V) += Σ_b k̄ ⋆ g.
    pub fn backward(
        &self,
        k: &ConvKernel<R>,
        kbar: &[R],
        g: &[R],
        a: &mut [R],
        wbar: &mut [R],
        s: &mut ConvScratch<R>,
    ) {
        match (self, k, s) {
            (ConvPlan::Dense(p), ConvKernel::Dense(k), ConvScratch::Dense(s)) => p.backward(k, kbar, g, a, wbar, s),
            (ConvPlan::Orbit(p), ConvKernel::Orbit(k), ConvScratch::Orbit(s)) => p.backward(k, kbar, g, a, wbar, s),
            (ConvPlan::Fft(p), ConvKernel::Fft(k), ConvScratch::Fft(s)) => p.backward(k, kbar, g, a, wbar, s),
            _ => unreachable!("convolution plan, kernel and scratch of different methods"),
        }
    }
    /// a (nb × n_c × V) = transpose-conv(W, k̄) alone, without W̄: half the transforms on the
    /// FFT path; the small-lattice paths compute W̄ anyway and drop it.
    pub fn backward_input(&self, k: &ConvKernel<R>, kbar: &[R], g: &[R], a: &mut [R], s: &mut ConvScratch<R>) {
        if let (ConvPlan::Fft(p), ConvKernel::Fft(k), ConvScratch::Fft(s)) = (self, k, &mut *s) {
            return p.backward_input(k, kbar, a, s);
        }
        let mut wbar = vec![R::zero(); if kbar.is_empty() { 0 } else { g.len() / (kbar.len() / self.volume()) }];
        self.backward(k, kbar, g, a, &mut wbar, s);
    }
    /// The lattice volume V this plan serves.
    fn volume(&self) -> usize {
        match self {
            ConvPlan::Dense(p) => p.volume(),
            ConvPlan::Orbit(p) => p.volume(),
            ConvPlan::Fft(p) => p.volume(),
        }
    }
}
