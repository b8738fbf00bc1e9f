//! The vector field's convolution on the device (SPEC §3.1), forward and backward, by one of
//! two paths with the same results up to rounding:
//!
//! - [`ConvPath::Direct`]: the direct sums of conv.cu and train.cu, O(n_c V²) per field;
//! - [`ConvPath::Spectral`]: discrete Fourier transforms (spectral.cu): radix-2 FFTs along
//!   rows and columns where L is a power of two up to 64 (O(n_c V log L) per field), direct
//!   DFTs otherwise (O(n_c V L), any L). The kernel's spectrum is prepared once per parameter load; per field the
//!   forward pass transforms the n_c channels, multiplies and sums them in Fourier space and
//!   transforms back once; the backward pass transforms k̄ and the channels, and the kernel's
//!   cotangent is summed over the batch in Fourier space before one inverse transform per
//!   channel (the method of `flow::conv::fft`, with direct DFTs instead of FFTs).
//!
//! [`ConvPath::choose`] picks by operation count (or `EQFLOW_CUDA_CONV=direct|spectral`).

use super::launch::{self, FieldDims, Launcher, RealOut, SpectralMix};
use super::Elem;
use crate::error::{Error, Result};

/// How the device convolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPath {
    /// Direct sums over all displacements.
    Direct,
    /// Row and column DFTs, products in Fourier space.
    Spectral,
}

impl ConvPath {
    /// Multiply-adds per field of one forward convolution of n_c channels on an l × l lattice.
    pub fn cost(self, l: usize, n_c: usize) -> usize {
        let (v, h) = (l * l, l / 2 + 1);
        match self {
            ConvPath::Direct => n_c * v * v,
            // by FFT: a line of L costs (L/2) log2 L butterflies of ~6 multiply-adds; lines:
            // n_c L rows, n_c h columns, h inverse columns, L inverse rows; products 4 n_c
            // per frequency
            ConvPath::Spectral if launch::fft_ok(l) => {
                let line = 3 * l * l.trailing_zeros() as usize;
                (n_c * l + n_c * h + h + l) * line + 4 * n_c * l * h
            }
            // by DFT: rows (real × complex: 2), columns (4), products (4 n_c per frequency),
            // inverse columns (4) and rows (2)
            ConvPath::Spectral => (2 * n_c * l + 4 * n_c * l + 4 * n_c + 4 * l) * l * h + 2 * v * h,
        }
    }

    /// `EQFLOW_CUDA_CONV` (`direct` or `spectral`) if set, else the path with fewer
    /// multiply-adds, counting the spectral path's five launches and its memory traffic as
    /// doubling its cost (a guess until measured on a GPU).
    pub fn choose(l: usize, n_c: usize) -> Result<ConvPath> {
        match std::env::var("EQFLOW_CUDA_CONV").as_deref() {
            Ok("direct") => Ok(ConvPath::Direct),
            Ok("spectral") => Ok(ConvPath::Spectral),
            Ok(other) => Err(Error::invalid(format!("EQFLOW_CUDA_CONV={other}: expected direct or spectral"))),
            Err(_) => Ok(if 2 * ConvPath::Spectral.cost(l, n_c) < ConvPath::Direct.cost(l, n_c) {
                ConvPath::Spectral
            } else {
                ConvPath::Direct
            }),
        }
    }
}

/// The convolution of n_c channels on an l × l lattice on one executor.
pub struct Conv<L: Launcher, R: Elem> {
    path: ConvPath,
    l: usize,
    n_c: usize,
    /// cos, sin(2πj/L) (spectral path).
    tw: Option<L::Buf<R>>,
}

/// A kernel W (n_c × V) prepared for [`Conv`]: W itself, and its spectrum on the spectral path.
pub struct Prepared<L: Launcher, R: Elem> {
    pub(crate) w: L::Buf<R>,
    spectrum: Option<L::Buf<R>>,
}

impl<L: Launcher, R: Elem> Prepared<L, R> {
    /// W, not yet prepared: [`Conv::refresh`] makes it ready.
    pub(crate) fn empty(w: L::Buf<R>) -> Self {
        Prepared { w, spectrum: None }
    }
}

/// Work buffers for up to `n` fields.
pub struct Scratch<L: Launcher, R: Elem> {
    n: usize,
    a: Option<L::Buf<R>>,
    b: Option<L::Buf<R>>,
    k: Option<L::Buf<R>>,
}

fn missing() -> Error {
    Error::new(crate::error::Status::Internal, "spectral convolution: a buffer of the direct path")
}

impl<L: Launcher, R: Elem> Conv<L, R> {
    /// The convolution by `path`.
    pub(crate) fn new(dev: &L, path: ConvPath, l: usize, n_c: usize) -> Result<Self> {
        let tw = match path {
            ConvPath::Direct => None,
            ConvPath::Spectral => {
                let mut t = Vec::with_capacity(2 * l);
                for j in 0..l {
                    let th = 2.0 * std::f64::consts::PI * j as f64 / l as f64;
                    t.push(R::of(th.cos()));
                    t.push(R::of(th.sin()));
                }
                Some(dev.upload(&t)?)
            }
        };
        Ok(Conv { path, l, n_c, tw })
    }

    /// cos, sin(2πj/L) on the spectral path.
    #[cfg(test)]
    pub(crate) fn twiddles(&self) -> Option<&L::Buf<R>> {
        self.tw.as_ref()
    }

    /// The path.
    pub(crate) fn path(&self) -> ConvPath {
        self.path
    }

    /// The lattice side.
    pub(crate) fn side(&self) -> usize {
        self.l
    }

    /// Whether field.cu can fuse a stage of this convolution with its features (the spectral
    /// path, l even and at most `field_lmax`), unless `EQFLOW_CUDA_FUSED=0`.
    pub(crate) fn fuses(&self) -> bool {
        self.path == ConvPath::Spectral
            && self.l % 2 == 0
            && self.l <= launch::field_lmax::<R>()
            && std::env::var("EQFLOW_CUDA_FUSED").as_deref() != Ok("0")
    }

    /// The inputs of field.cu for the prepared kernel `p` (spectral path only).
    pub(crate) fn field_stage<'a>(
        &'a self,
        p: &'a Prepared<L, R>,
        omega: &'a L::Buf<R>,
        beta: &'a L::Buf<R>,
    ) -> Result<launch::FieldStage<'a, L, R>> {
        match (&self.tw, &p.spectrum) {
            (Some(tw), Some(spectrum)) => Ok(launch::FieldStage { tw, omega, spectrum, beta }),
            _ => Err(Error::new(crate::error::Status::Internal, "field stage: not the spectral path")),
        }
    }

    /// Prepares W (n_c × V), taking it over.
    pub(crate) fn prepare(&self, dev: &L, w: L::Buf<R>) -> Result<Prepared<L, R>> {
        let mut p = Prepared { w, spectrum: None };
        self.refresh(dev, &mut p)?;
        Ok(p)
    }

    /// Recomputes the spectrum after `p.w` changed.
    pub(crate) fn refresh(&self, dev: &L, p: &mut Prepared<L, R>) -> Result<()> {
        self.refresh_all(dev, std::slice::from_mut(p))
    }

    /// Recomputes the spectra of kernels whose W changed (one work buffer for all).
    pub(crate) fn refresh_all(&self, dev: &L, ps: &mut [Prepared<L, R>]) -> Result<()> {
        let Some(tw) = &self.tw else { return Ok(()) };
        let (l, n_c) = (self.l, self.n_c);
        let mut rows = dev.alloc_zeros(launch::spectrum_len(n_c, l))?;
        for p in ps {
            launch::dft_rows(dev, tw, &p.w, &mut rows, n_c, l)?;
            let mut s = match p.spectrum.take() {
                Some(s) => s,
                None => dev.alloc_zeros(launch::spectrum_len(n_c, l))?,
            };
            launch::dft_cols(dev, tw, &rows, &mut s, n_c, l, false)?;
            p.spectrum = Some(s);
        }
        Ok(())
    }

    /// Work buffers for up to n fields (none on the direct path).
    pub(crate) fn scratch(&self, dev: &L, n: usize) -> Result<Scratch<L, R>> {
        let len = |m: usize| launch::spectrum_len(m, self.l);
        Ok(match self.path {
            ConvPath::Direct => Scratch { n, a: None, b: None, k: None },
            ConvPath::Spectral => Scratch {
                n,
                a: Some(dev.alloc_zeros(len(n * self.n_c))?),
                b: Some(dev.alloc_zeros(len(n * self.n_c))?),
                k: Some(dev.alloc_zeros(len(n))?),
            },
        })
    }

    fn check(&self, s: &Scratch<L, R>, n: usize) -> Result<()> {
        if n > s.n {
            return Err(Error::new(
                crate::error::Status::Internal,
                format!("convolution: scratch for {} fields, {n} asked", s.n),
            ));
        }
        Ok(())
    }

    /// out (n × V) = Σ_c W[c] ∗ g[c] for g (n × n_c × V).
    pub(crate) fn forward(
        &self,
        dev: &L,
        p: &Prepared<L, R>,
        g: &L::Buf<R>,
        out: &mut L::Buf<R>,
        n: usize,
        s: &mut Scratch<L, R>,
    ) -> Result<()> {
        let (l, n_c) = (self.l, self.n_c);
        let (Some(tw), Some(spec)) = (&self.tw, &p.spectrum) else {
            return launch::conv_direct(dev, &p.w, g, out, n, l, n_c);
        };
        self.check(s, n)?;
        let (Some(a), Some(b)) = (s.a.as_mut(), s.b.as_mut()) else { return Err(missing()) };
        launch::dft_rows(dev, tw, g, a, n * n_c, l)?;
        launch::dft_cols(dev, tw, a, b, n * n_c, l, false)?;
        launch::spectral_mix(dev, SpectralMix::Forward, spec, b, a, n, l, n_c)?;
        launch::dft_cols(dev, tw, a, b, n, l, true)?;
        launch::dft_c2r(dev, tw, b, RealOut::Write(out), n, l, 1.0 / (l * l) as f64)
    }

    /// The backward pass at one slot: a (n × n_c × V) = Wᵀ k̄ and, with `kernel_grad`,
    /// wbar[slot] (f64, n_slots × n_c × V) += Σ_b k̄ ⋆ g. Without it the spectral path skips
    /// the transforms of g (the score integration of path gradients needs a alone); the direct
    /// path computes both anyway.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward(
        &self,
        dev: &L,
        p: &Prepared<L, R>,
        kbar: &L::Buf<R>,
        g: &L::Buf<R>,
        a_out: &mut L::Buf<R>,
        wbar: &mut L::Buf<f64>,
        kernel_grad: bool,
        n: usize,
        slot: usize,
        d: FieldDims,
        s: &mut Scratch<L, R>,
    ) -> Result<()> {
        let (l, n_c) = (self.l, self.n_c);
        let (Some(tw), Some(spec)) = (&self.tw, &p.spectrum) else {
            return launch::conv_backward(dev, &p.w, kbar, g, a_out, wbar, n, slot, d);
        };
        self.check(s, n)?;
        if slot >= d.n_slots || d.l != l || d.n_c != n_c {
            return Err(Error::new(
                crate::error::Status::Internal,
                format!("conv backward: slot {slot} of {}", d.n_slots),
            ));
        }
        let (Some(a), Some(b), Some(k)) = (s.a.as_mut(), s.b.as_mut(), s.k.as_mut()) else { return Err(missing()) };
        let scale = 1.0 / (l * l) as f64;
        // K̂ of k̄, then Ĝ of the channels
        launch::dft_rows(dev, tw, kbar, a, n, l)?;
        launch::dft_cols(dev, tw, a, k, n, l, false)?;
        if kernel_grad {
            launch::dft_rows(dev, tw, g, a, n * n_c, l)?;
            launch::dft_cols(dev, tw, a, b, n * n_c, l, false)?;
            // the kernel's cotangent, summed over the batch in Fourier space
            launch::spectral_mix(dev, SpectralMix::Kernel, k, b, a, n, l, n_c)?;
            launch::dft_cols(dev, tw, a, b, n_c, l, true)?;
            launch::dft_c2r(dev, tw, b, RealOut::Add(wbar, slot * n_c * l * l), n_c, l, scale)?;
        }
        // the input's cotangent
        launch::spectral_mix(dev, SpectralMix::Input, spec, k, a, n, l, n_c)?;
        launch::dft_cols(dev, tw, a, b, n * n_c, l, true)?;
        launch::dft_c2r(dev, tw, b, RealOut::Write(a_out), n * n_c, l, scale)
    }
}
