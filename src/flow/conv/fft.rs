//! Full-lattice periodic 2D convolutions through FFTs: the bulk of the equivariant
//! vector field (SPEC §3.1) and of its backward pass.
//!
//! On a periodic L × L lattice (V = L² sites, stored x1 fastest:
//! `index(x0, x1) = x0 * L + x1`), with n_c real kernels `W[c]` (each V numbers indexed
//! by the displacement r = (r0, r1) like a site) and a batch of nb inputs `g[b][c]`,
//! this module computes
//!
//! ```text
//! forward:   out[b][x]   = Σ_c Σ_y W[c][(x − y) mod L] · g[b][c][y]
//! backward:  a[b][c][y]  = Σ_x W[c][(x − y) mod L] · kbar[b][x]            (the VJP)
//!            wbar[c][r] += Σ_b Σ_x kbar[b][x] · g[b][c][(x − r) mod L]     (the kernel gradient)
//! ```
//!
//! W is a general real kernel (no symmetry under r → −r is assumed), so the transpose in
//! `backward` is a correlation.
//!
//! # Method
//!
//! Two real channels travel as one complex field, `z = g[c] + i·g[c+1]` (an odd last
//! channel is paired with zero), and one complex 2D FFT serves both. With the DFT
//! `X̂(k) = Σ_x X(x) e^{−ik·x}`:
//!
//! - the prepared kernel stores, per channel pair p = (c, c+1),
//!   `Q_p = FFT(W[c] − i·W[c+1]) / V`; then
//!   `Re IFFT(Σ_p Q_p ⊙ Ẑ_p) = Σ_c W[c] ∗ g[c]` (the imaginary part is discarded), so the
//!   forward pass needs n_c/2 forward transforms per field, one multiply-accumulate over
//!   the channel pairs in Fourier space, and one inverse transform per field;
//! - `a[c] + i·a[c+1] = IFFT(conj(Q_p) ⊙ K̂)` with `K̂ = FFT(kbar[b])`: one inverse
//!   transform per channel pair and field;
//! - `wbar[c] + i·wbar[c+1] = FFT(Σ_b conj(K̂_b) ⊙ Ẑ_{b,p}) / V`: the sum over the
//!   batch is taken in Fourier space, so the kernel gradient costs one transform per
//!   channel pair and call, not per field.
//!
//! A 2D transform is a batched 1D FFT along the rows (one rustfft call over many rows),
//! an in-place square transpose, and a second batched row FFT. Fourier-space arrays
//! are therefore kept transposed (`[k1][k0]`, k0 fastest); only this module sees them.
//!
//! The element-wise steps (interleaving two channels, the Fourier-space products,
//! transposes, extracting real and imaginary parts) have AVX versions for f32 and f64,
//! chosen at run time, that perform exactly the scalar code's IEEE operations (no fused
//! multiply-add): they give bit-identical results.
//!
//! # Cost and memory
//!
//! `forward` and `backward` allocate nothing: every buffer lives in [`FftScratch`]
//! (nb + 1 complex fields of V numbers, and a work buffer of 16 KiB or one field).
//! Per field, `forward` costs ⌈n_c/2⌉ + 1 complex L × L FFTs and `backward` 2⌈n_c/2⌉ + 1,
//! plus ⌈n_c/2⌉ per call for the kernel gradient. A prepared kernel holds ⌈n_c/2⌉ V
//! complex numbers and costs ⌈n_c/2⌉ FFTs to prepare.
//!
//! # Determinism
//!
//! No threads, no randomness, no dependence on the batch size or the scratch's
//! capacity: each field's `out` and `a` depend only on that field's inputs and the
//! kernel, bit for bit; `wbar` sums the fields in batch order. Across machines,
//! rustfft chooses its SIMD code (AVX, SSE, scalar) at run time, which can change the
//! last bits; [`FftConv::new_portable`] uses rustfft's scalar code, whose results are
//! the same on every CPU (about 3–4 times slower at L = 32 and 64).

use crate::real::Real;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner, FftPlannerScalar};
use std::sync::Arc;

type C<R> = Complex<R>;

/// Bytes of Fourier-space accumulators per block of fields in `forward`: the channel
/// pairs stream through a block. Small blocks measured best at L = 32 and 64 (a block
/// then holds one field), larger ones help small L only a little.
const ACC_BYTES: usize = 16 * 1024;

/// Bytes of the work buffer: fields of one channel pair transformed in one batch (many
/// short rows per rustfft call at small L).
const WORK_BYTES: usize = 16 * 1024;

/// Plans and sizes for the convolutions of n_c channels on an L × L periodic lattice.
///
/// Build once per (L, n_c) with [`FftConv::new`]; it is `Send + Sync` and read-only,
/// so one instance can serve many threads, each with its own [`FftScratch`].
pub struct FftConv<R: Real> {
    l: usize,
    n_c: usize,
    v: usize,
    /// Channel pairs, ⌈n_c/2⌉.
    np: usize,
    fwd: Arc<dyn Fft<R>>,
    inv: Arc<dyn Fft<R>>,
    fft_scratch_len: usize,
    /// Fields per block of accumulators in `forward`.
    acc_fields: usize,
    /// Fields per batch of transforms.
    work_fields: usize,
    /// Whether the element-wise kernels may use AVX (bit-identical to the scalar code).
    simd: bool,
}

/// A kernel prepared for [`FftConv::forward`] and [`FftConv::backward`]: the Fourier
/// transforms of the n_c real kernels, two channels per complex array.
///
/// Built by [`FftConv::prepare`] (or refilled by [`FftConv::prepare_into`]) and
/// read-only afterwards; `Send + Sync`, so one prepared kernel (for one time t) can be
/// shared by all threads.
pub struct FftKernel<R: Real> {
    l: usize,
    n_c: usize,
    /// ⌈n_c/2⌉ × V complex numbers, `Q_p = FFT(W[2p] − i·W[2p+1]) / V`, layout `[k1][k0]`.
    q: Vec<C<R>>,
    /// rustfft's scratch for `prepare_into`, kept so that refilling allocates nothing.
    fft_scratch: Vec<C<R>>,
}

/// Per-thread working memory for [`FftConv::forward`] and [`FftConv::backward`]
/// (`Send`, not shared). Made by [`FftConv::scratch`] for batches of up to `nb` fields.
pub struct FftScratch<R: Real> {
    l: usize,
    n_c: usize,
    /// The largest batch this scratch serves.
    nb: usize,
    /// nb × V: the forward pass's Fourier-space accumulators, or the backward pass's K̂_b.
    acc: Vec<C<R>>,
    /// work_fields × V: the fields of one channel pair being transformed.
    work: Vec<C<R>>,
    /// V: the backward pass's kernel-gradient accumulator for one channel pair.
    y: Vec<C<R>>,
    /// rustfft's scratch.
    fft_scratch: Vec<C<R>>,
}

impl<R: Real> FftKernel<R> {
    /// The lattice size L this kernel was prepared for.
    pub fn l(&self) -> usize {
        self.l
    }
    /// The number of channels n_c this kernel was prepared for.
    pub fn n_c(&self) -> usize {
        self.n_c
    }
}

impl<R: Real> FftScratch<R> {
    /// The largest batch (number of fields) this scratch serves.
    pub fn capacity(&self) -> usize {
        self.nb
    }
}

/// The spectra Ẑ of a forward pass's inputs, kept for the backward pass of the same inputs
/// ([`FftConv::forward_keep`], [`FftConv::backward_kept`]): training evaluates a stage and
/// back-propagates through it with the same features, so the backward pass can skip the
/// features' transforms (⌈n_c/2⌉ per field, a third of its work). ⌈n_c/2⌉ × nb × V complex
/// numbers, layout `[pair][field][k1][k0]`. Made by [`FftConv::spectra`].
pub struct FftSpectra<R: Real> {
    l: usize,
    n_c: usize,
    /// The largest batch held.
    nb: usize,
    z: Vec<C<R>>,
    /// The batch of the forward pass that filled `z`; `None` when `z` is not current.
    fields: Option<usize>,
}

impl<R: Real> FftSpectra<R> {
    /// Marks the spectra stale (the inputs they came from have changed).
    pub fn invalidate(&mut self) {
        self.fields = None;
    }
    /// Whether these are the spectra of a forward pass of `nb` fields.
    pub fn holds(&self, nb: usize) -> bool {
        self.fields == Some(nb)
    }
}

/// Element-wise kernels on complex arrays, with AVX versions for f32 and f64 on
/// x86-64. The AVX code performs exactly the scalar code's IEEE operations (no fused
/// multiply-add), so both give bit-identical results.
mod kern {
    use super::C;
    use crate::real::Real;
    use std::any::TypeId;

    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    fn is<R: 'static, T: 'static>() -> bool {
        TypeId::of::<R>() == TypeId::of::<T>()
    }

    /// Runs `$f64` or `$f32` (x86-64 AVX kernels taking the element count and raw
    /// pointers to the reals) when `$simd` and R is f64 or f32, and returns.
    macro_rules! dispatch {
        ($simd:expr, $R:ty, $f64:path, $f32:path, $n:expr, $($arg:expr),*) => {
            #[cfg(target_arch = "x86_64")]
            if $simd {
                if is::<$R, f64>() {
                    // SAFETY: R is f64 (so the pointers address f64s) and AVX is available
                    // (`simd` is set only when detected); lengths were checked by the caller.
                    unsafe { $f64($n, $($arg.cast()),*) };
                    return;
                }
                if is::<$R, f32>() {
                    // SAFETY: as above, for f32.
                    unsafe { $f32($n, $($arg.cast()),*) };
                    return;
                }
            }
        };
    }

    /// z = re + i·im (`im` = None: zero imaginary part).
    pub fn interleave<R: Real>(simd: bool, re: &[R], im: Option<&[R]>, z: &mut [C<R>]) {
        let n = z.len();
        assert!(re.len() == n);
        match im {
            Some(im) => {
                assert!(im.len() == n);
                let (pr, pi, pz) = (re.as_ptr(), im.as_ptr(), z.as_mut_ptr());
                #[cfg(target_arch = "x86_64")]
                if simd {
                    if is::<R, f64>() {
                        // SAFETY: R is f64, AVX is available, all three hold n elements.
                        unsafe { x86::interleave_f64(n, pr.cast(), pi.cast(), pz.cast()) };
                        return;
                    }
                    if is::<R, f32>() {
                        // SAFETY: as above, for f32.
                        unsafe { x86::interleave_f32(n, pr.cast(), pi.cast(), pz.cast()) };
                        return;
                    }
                }
                let _ = (pr, pi, pz, simd);
                for ((z, &a), &b) in z.iter_mut().zip(re).zip(im) {
                    *z = C::new(a, b);
                }
            }
            None => {
                for (z, &a) in z.iter_mut().zip(re) {
                    *z = C::new(a, R::zero());
                }
            }
        }
    }

    /// re = Re z, and im = Im z when given.
    pub fn deinterleave<R: Real>(simd: bool, z: &[C<R>], re: &mut [R], im: Option<&mut [R]>) {
        let n = z.len();
        assert!(re.len() == n);
        match im {
            Some(im) => {
                assert!(im.len() == n);
                let (pz, pr, pi) = (z.as_ptr(), re.as_mut_ptr(), im.as_mut_ptr());
                dispatch!(simd, R, x86::deinterleave_f64, x86::deinterleave_f32, n, pz, pr, pi);
                let _ = (pz, pr, pi);
                for ((z, a), b) in z.iter().zip(re.iter_mut()).zip(im.iter_mut()) {
                    *a = z.re;
                    *b = z.im;
                }
            }
            None => {
                let (pz, pr) = (z.as_ptr(), re.as_mut_ptr());
                dispatch!(simd, R, x86::real_part_f64, x86::real_part_f32, n, pz, pr);
                let _ = (pz, pr);
                for (z, a) in z.iter().zip(re.iter_mut()) {
                    *a = z.re;
                }
            }
        }
    }

    /// acc = q ⊙ z (`ACC` false) or acc += q ⊙ z (`ACC` true).
    pub fn mul<R: Real, const ACC: bool>(simd: bool, acc: &mut [C<R>], q: &[C<R>], z: &[C<R>]) {
        let n = acc.len();
        assert!(q.len() == n && z.len() == n);
        let (pa, pq, pz) = (acc.as_mut_ptr(), q.as_ptr(), z.as_ptr());
        dispatch!(simd, R, x86::mul_f64::<ACC>, x86::mul_f32::<ACC>, n, pa, pq, pz);
        let _ = (pa, pq, pz);
        for ((a, &q), &z) in acc.iter_mut().zip(q).zip(z) {
            *a = if ACC { *a + q * z } else { q * z };
        }
    }

    /// The backward pass's step for one field and channel pair:
    /// y += conj(k) ⊙ z, then z = conj(q) ⊙ k.
    pub fn backward<R: Real>(simd: bool, y: &mut [C<R>], z: &mut [C<R>], k: &[C<R>], q: &[C<R>]) {
        let n = y.len();
        assert!(z.len() == n && k.len() == n && q.len() == n);
        let (py, pz, pk, pq) = (y.as_mut_ptr(), z.as_mut_ptr(), k.as_ptr(), q.as_ptr());
        dispatch!(simd, R, x86::backward_f64, x86::backward_f32, n, py, pz, pk, pq);
        let _ = (py, pz, pk, pq);
        for ((y, z), (&k, &q)) in y.iter_mut().zip(z.iter_mut()).zip(k.iter().zip(q)) {
            *y = *y + k.conj() * *z;
            *z = q.conj() * k;
        }
    }

    /// Transposes the square l × l matrix `a` in place.
    pub fn transpose<R: Real>(simd: bool, l: usize, a: &mut [C<R>]) {
        assert!(a.len() == l * l);
        #[cfg(target_arch = "x86_64")]
        if simd {
            let p = a.as_mut_ptr();
            if is::<R, f64>() {
                // SAFETY: AVX is available; the l × l elements of 16 bytes are in bounds.
                unsafe { x86::transpose_16(l, p.cast()) };
                return;
            }
            if is::<R, f32>() {
                // SAFETY: AVX is available; the l × l elements of 8 bytes are in bounds.
                unsafe { x86::transpose_8(l, p.cast()) };
                return;
            }
        }
        let _ = simd;
        transpose_scalar(l, a);
    }

    /// The portable blocked in-place transpose.
    fn transpose_scalar<T: Copy>(l: usize, a: &mut [T]) {
        const B: usize = 8;
        let mut i0 = 0;
        while i0 < l {
            let i1 = (i0 + B).min(l);
            let mut j0 = i0;
            while j0 < l {
                let j1 = (j0 + B).min(l);
                for i in i0..i1 {
                    for j in j0.max(i + 1)..j1 {
                        a.swap(i * l + j, j * l + i);
                    }
                }
                j0 = j1;
            }
            i0 = i1;
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        //! AVX kernels. Each takes the number of complex elements n and raw pointers to
        //! the reals (2n per complex array, n per real array); the caller guarantees the
        //! bounds and that AVX is available. Tails run the same operations in scalar code.
        use std::arch::x86_64::*;

        /// Scalar complex product of (ar, ai) and (br, bi), in num-complex's order.
        #[inline(always)]
        fn cmul<T: std::ops::Mul<Output = T> + std::ops::Add<Output = T> + std::ops::Sub<Output = T> + Copy>(
            ar: T,
            ai: T,
            br: T,
            bi: T,
        ) -> (T, T) {
            (ar * br - ai * bi, ar * bi + ai * br)
        }

        macro_rules! scalar_tails {
            ($t:ty, $mul:ident, $backward:ident) => {
                #[inline(always)]
                unsafe fn $mul<const ACC: bool>(i: usize, a: *mut $t, q: *const $t, z: *const $t) {
                    let (r, m) = cmul(*q.add(2 * i), *q.add(2 * i + 1), *z.add(2 * i), *z.add(2 * i + 1));
                    if ACC {
                        *a.add(2 * i) = *a.add(2 * i) + r;
                        *a.add(2 * i + 1) = *a.add(2 * i + 1) + m;
                    } else {
                        *a.add(2 * i) = r;
                        *a.add(2 * i + 1) = m;
                    }
                }
                #[inline(always)]
                unsafe fn $backward(i: usize, y: *mut $t, z: *mut $t, k: *const $t, q: *const $t) {
                    let (kr, ki) = (*k.add(2 * i), -*k.add(2 * i + 1));
                    let (r, m) = cmul(kr, ki, *z.add(2 * i), *z.add(2 * i + 1));
                    *y.add(2 * i) = *y.add(2 * i) + r;
                    *y.add(2 * i + 1) = *y.add(2 * i + 1) + m;
                    let (r, m) = cmul(*q.add(2 * i), -*q.add(2 * i + 1), kr, -ki);
                    *z.add(2 * i) = r;
                    *z.add(2 * i + 1) = m;
                }
            };
        }
        scalar_tails!(f64, mul_tail_f64, backward_tail_f64);
        scalar_tails!(f32, mul_tail_f32, backward_tail_f32);

        #[target_feature(enable = "avx")]
        pub unsafe fn interleave_f64(n: usize, re: *const f64, im: *const f64, z: *mut f64) {
            let mut i = 0;
            while i + 4 <= n {
                let a = _mm256_loadu_pd(re.add(i));
                let b = _mm256_loadu_pd(im.add(i));
                let lo = _mm256_unpacklo_pd(a, b);
                let hi = _mm256_unpackhi_pd(a, b);
                _mm256_storeu_pd(z.add(2 * i), _mm256_permute2f128_pd(lo, hi, 0x20));
                _mm256_storeu_pd(z.add(2 * i + 4), _mm256_permute2f128_pd(lo, hi, 0x31));
                i += 4;
            }
            while i < n {
                *z.add(2 * i) = *re.add(i);
                *z.add(2 * i + 1) = *im.add(i);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn interleave_f32(n: usize, re: *const f32, im: *const f32, z: *mut f32) {
            let mut i = 0;
            while i + 8 <= n {
                let a = _mm256_loadu_ps(re.add(i));
                let b = _mm256_loadu_ps(im.add(i));
                let lo = _mm256_unpacklo_ps(a, b);
                let hi = _mm256_unpackhi_ps(a, b);
                _mm256_storeu_ps(z.add(2 * i), _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps(z.add(2 * i + 8), _mm256_permute2f128_ps(lo, hi, 0x31));
                i += 8;
            }
            while i < n {
                *z.add(2 * i) = *re.add(i);
                *z.add(2 * i + 1) = *im.add(i);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn deinterleave_f64(n: usize, z: *const f64, re: *mut f64, im: *mut f64) {
            let mut i = 0;
            while i + 4 <= n {
                let z0 = _mm256_loadu_pd(z.add(2 * i));
                let z1 = _mm256_loadu_pd(z.add(2 * i + 4));
                let t0 = _mm256_permute2f128_pd(z0, z1, 0x20);
                let t1 = _mm256_permute2f128_pd(z0, z1, 0x31);
                _mm256_storeu_pd(re.add(i), _mm256_unpacklo_pd(t0, t1));
                _mm256_storeu_pd(im.add(i), _mm256_unpackhi_pd(t0, t1));
                i += 4;
            }
            while i < n {
                *re.add(i) = *z.add(2 * i);
                *im.add(i) = *z.add(2 * i + 1);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn deinterleave_f32(n: usize, z: *const f32, re: *mut f32, im: *mut f32) {
            let mut i = 0;
            while i + 8 <= n {
                let z0 = _mm256_loadu_ps(z.add(2 * i));
                let z1 = _mm256_loadu_ps(z.add(2 * i + 8));
                let t0 = _mm256_permute2f128_ps(z0, z1, 0x20);
                let t1 = _mm256_permute2f128_ps(z0, z1, 0x31);
                _mm256_storeu_ps(re.add(i), _mm256_shuffle_ps(t0, t1, 0b10_00_10_00));
                _mm256_storeu_ps(im.add(i), _mm256_shuffle_ps(t0, t1, 0b11_01_11_01));
                i += 8;
            }
            while i < n {
                *re.add(i) = *z.add(2 * i);
                *im.add(i) = *z.add(2 * i + 1);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn real_part_f64(n: usize, z: *const f64, re: *mut f64) {
            let mut i = 0;
            while i + 4 <= n {
                let z0 = _mm256_loadu_pd(z.add(2 * i));
                let z1 = _mm256_loadu_pd(z.add(2 * i + 4));
                let t0 = _mm256_permute2f128_pd(z0, z1, 0x20);
                let t1 = _mm256_permute2f128_pd(z0, z1, 0x31);
                _mm256_storeu_pd(re.add(i), _mm256_unpacklo_pd(t0, t1));
                i += 4;
            }
            while i < n {
                *re.add(i) = *z.add(2 * i);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn real_part_f32(n: usize, z: *const f32, re: *mut f32) {
            let mut i = 0;
            while i + 8 <= n {
                let z0 = _mm256_loadu_ps(z.add(2 * i));
                let z1 = _mm256_loadu_ps(z.add(2 * i + 8));
                let t0 = _mm256_permute2f128_ps(z0, z1, 0x20);
                let t1 = _mm256_permute2f128_ps(z0, z1, 0x31);
                _mm256_storeu_ps(re.add(i), _mm256_shuffle_ps(t0, t1, 0b10_00_10_00));
                i += 8;
            }
            while i < n {
                *re.add(i) = *z.add(2 * i);
                i += 1;
            }
        }

        /// The complex products of the vectors a and b (two f64 complexes each), in
        /// num-complex's operation order: (ar br − ai bi, ar bi + ai br).
        #[inline(always)]
        unsafe fn cmul_pd(a: __m256d, b: __m256d) -> __m256d {
            let ar = _mm256_movedup_pd(a);
            let ai = _mm256_permute_pd(a, 0b1111);
            let bs = _mm256_permute_pd(b, 0b0101);
            _mm256_addsub_pd(_mm256_mul_pd(ar, b), _mm256_mul_pd(ai, bs))
        }

        /// As `cmul_pd`, for four f32 complexes.
        #[inline(always)]
        unsafe fn cmul_ps(a: __m256, b: __m256) -> __m256 {
            let ar = _mm256_moveldup_ps(a);
            let ai = _mm256_movehdup_ps(a);
            let bs = _mm256_permute_ps(b, 0b10_11_00_01);
            _mm256_addsub_ps(_mm256_mul_ps(ar, b), _mm256_mul_ps(ai, bs))
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn mul_f64<const ACC: bool>(n: usize, a: *mut f64, q: *const f64, z: *const f64) {
            let mut i = 0;
            while i + 2 <= n {
                let p = cmul_pd(_mm256_loadu_pd(q.add(2 * i)), _mm256_loadu_pd(z.add(2 * i)));
                let p = if ACC { _mm256_add_pd(_mm256_loadu_pd(a.add(2 * i)), p) } else { p };
                _mm256_storeu_pd(a.add(2 * i), p);
                i += 2;
            }
            while i < n {
                mul_tail_f64::<ACC>(i, a, q, z);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn mul_f32<const ACC: bool>(n: usize, a: *mut f32, q: *const f32, z: *const f32) {
            let mut i = 0;
            while i + 4 <= n {
                let p = cmul_ps(_mm256_loadu_ps(q.add(2 * i)), _mm256_loadu_ps(z.add(2 * i)));
                let p = if ACC { _mm256_add_ps(_mm256_loadu_ps(a.add(2 * i)), p) } else { p };
                _mm256_storeu_ps(a.add(2 * i), p);
                i += 4;
            }
            while i < n {
                mul_tail_f32::<ACC>(i, a, q, z);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn backward_f64(n: usize, y: *mut f64, z: *mut f64, k: *const f64, q: *const f64) {
            // conj(x) is x with the sign of its odd lanes flipped.
            let conj = _mm256_set_pd(-0.0, 0.0, -0.0, 0.0);
            let mut i = 0;
            while i + 2 <= n {
                let kc = _mm256_xor_pd(_mm256_loadu_pd(k.add(2 * i)), conj);
                let qc = _mm256_xor_pd(_mm256_loadu_pd(q.add(2 * i)), conj);
                let zv = _mm256_loadu_pd(z.add(2 * i));
                let yv = _mm256_loadu_pd(y.add(2 * i));
                _mm256_storeu_pd(y.add(2 * i), _mm256_add_pd(yv, cmul_pd(kc, zv)));
                // k = conj(kc)
                _mm256_storeu_pd(z.add(2 * i), cmul_pd(qc, _mm256_xor_pd(kc, conj)));
                i += 2;
            }
            while i < n {
                backward_tail_f64(i, y, z, k, q);
                i += 1;
            }
        }

        #[target_feature(enable = "avx")]
        pub unsafe fn backward_f32(n: usize, y: *mut f32, z: *mut f32, k: *const f32, q: *const f32) {
            let conj = _mm256_set_ps(-0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0);
            let mut i = 0;
            while i + 4 <= n {
                let kc = _mm256_xor_ps(_mm256_loadu_ps(k.add(2 * i)), conj);
                let qc = _mm256_xor_ps(_mm256_loadu_ps(q.add(2 * i)), conj);
                let zv = _mm256_loadu_ps(z.add(2 * i));
                let yv = _mm256_loadu_ps(y.add(2 * i));
                _mm256_storeu_ps(y.add(2 * i), _mm256_add_ps(yv, cmul_ps(kc, zv)));
                _mm256_storeu_ps(z.add(2 * i), cmul_ps(qc, _mm256_xor_ps(kc, conj)));
                i += 4;
            }
            while i < n {
                backward_tail_f32(i, y, z, k, q);
                i += 1;
            }
        }

        /// In-place transpose of an l × l matrix of 16-byte elements (f64 complexes),
        /// by swaps of transposed 2 × 2 tiles, in 8 × 8 blocks.
        #[target_feature(enable = "avx")]
        pub unsafe fn transpose_16(l: usize, a: *mut f64) {
            // Element (i, j) starts at a + 2 (i l + j); a row of a tile is one __m256d.
            let at = |i: usize, j: usize| a.add(2 * (i * l + j));
            let lt = l & !1;
            let mut i0 = 0;
            while i0 < lt {
                let i1 = (i0 + 8).min(lt);
                let mut j0 = i0;
                while j0 < lt {
                    let j1 = (j0 + 8).min(lt);
                    let mut i = i0;
                    while i < i1 {
                        let mut j = if j0 == i0 { i } else { j0 };
                        while j < j1 {
                            let a0 = _mm256_loadu_pd(at(i, j));
                            let a1 = _mm256_loadu_pd(at(i + 1, j));
                            let t0 = _mm256_permute2f128_pd(a0, a1, 0x20);
                            let t1 = _mm256_permute2f128_pd(a0, a1, 0x31);
                            if i == j {
                                _mm256_storeu_pd(at(i, j), t0);
                                _mm256_storeu_pd(at(i + 1, j), t1);
                            } else {
                                let b0 = _mm256_loadu_pd(at(j, i));
                                let b1 = _mm256_loadu_pd(at(j + 1, i));
                                _mm256_storeu_pd(at(i, j), _mm256_permute2f128_pd(b0, b1, 0x20));
                                _mm256_storeu_pd(at(i + 1, j), _mm256_permute2f128_pd(b0, b1, 0x31));
                                _mm256_storeu_pd(at(j, i), t0);
                                _mm256_storeu_pd(at(j + 1, i), t1);
                            }
                            j += 2;
                        }
                        i += 2;
                    }
                    j0 = j1;
                }
                i0 = i1;
            }
            // The last row and column of an odd l.
            for i in lt..l {
                for j in 0..i {
                    let (x, y) = (at(i, j) as *mut [f64; 2], at(j, i) as *mut [f64; 2]);
                    std::ptr::swap(x, y);
                }
            }
        }

        /// In-place transpose of an l × l matrix of 8-byte elements (f32 complexes),
        /// by swaps of transposed 4 × 4 tiles, in 8 × 8 blocks.
        #[target_feature(enable = "avx")]
        pub unsafe fn transpose_8(l: usize, a: *mut f64) {
            // Element (i, j) is the f64-sized word a + i l + j; a tile row is one __m256d.
            let at = |i: usize, j: usize| a.add(i * l + j);
            #[inline(always)]
            unsafe fn load4(p: *const f64, l: usize) -> [__m256d; 4] {
                let r = [
                    _mm256_loadu_pd(p),
                    _mm256_loadu_pd(p.add(l)),
                    _mm256_loadu_pd(p.add(2 * l)),
                    _mm256_loadu_pd(p.add(3 * l)),
                ];
                let t0 = _mm256_unpacklo_pd(r[0], r[1]);
                let t1 = _mm256_unpackhi_pd(r[0], r[1]);
                let t2 = _mm256_unpacklo_pd(r[2], r[3]);
                let t3 = _mm256_unpackhi_pd(r[2], r[3]);
                [
                    _mm256_permute2f128_pd(t0, t2, 0x20),
                    _mm256_permute2f128_pd(t1, t3, 0x20),
                    _mm256_permute2f128_pd(t0, t2, 0x31),
                    _mm256_permute2f128_pd(t1, t3, 0x31),
                ]
            }
            #[inline(always)]
            unsafe fn store4(p: *mut f64, l: usize, t: [__m256d; 4]) {
                for (r, v) in t.into_iter().enumerate() {
                    _mm256_storeu_pd(p.add(r * l), v);
                }
            }
            let lt = l & !3;
            let mut i0 = 0;
            while i0 < lt {
                let i1 = (i0 + 8).min(lt);
                let mut j0 = i0;
                while j0 < lt {
                    let j1 = (j0 + 8).min(lt);
                    let mut i = i0;
                    while i < i1 {
                        let mut j = if j0 == i0 { i } else { j0 };
                        while j < j1 {
                            let ta = load4(at(i, j), l);
                            if i == j {
                                store4(at(i, j), l, ta);
                            } else {
                                let tb = load4(at(j, i), l);
                                store4(at(i, j), l, tb);
                                store4(at(j, i), l, ta);
                            }
                            j += 4;
                        }
                        i += 4;
                    }
                    j0 = j1;
                }
                i0 = i1;
            }
            for i in lt..l {
                for j in 0..i {
                    std::ptr::swap(at(i, j), at(j, i));
                }
            }
        }
    }
}

impl<R: Real> FftConv<R> {
    /// The lattice volume V = L².
    pub fn volume(&self) -> usize {
        self.v
    }
    /// Plans the transforms for an L × L lattice (any L ≥ 2) and n_c ≥ 1 channels, with
    /// rustfft's fastest code for this CPU (AVX, SSE or scalar, chosen at run time).
    pub fn new(l: usize, n_c: usize) -> Self {
        let mut planner = FftPlanner::<R>::new();
        let (fwd, inv) = (planner.plan_fft_forward(l), planner.plan_fft_inverse(l));
        Self::from_plans(l, n_c, fwd, inv)
    }

    /// Like [`FftConv::new`], but with rustfft's scalar code only: slower, and its
    /// results are bit-identical on every CPU (no run-time SIMD dispatch).
    pub fn new_portable(l: usize, n_c: usize) -> Self {
        let mut planner = FftPlannerScalar::<R>::new();
        let (fwd, inv) = (planner.plan_fft_forward(l), planner.plan_fft_inverse(l));
        Self::from_plans(l, n_c, fwd, inv)
    }

    fn from_plans(l: usize, n_c: usize, fwd: Arc<dyn Fft<R>>, inv: Arc<dyn Fft<R>>) -> Self {
        assert!(l >= 2, "FftConv: lattice size L = {l} must be at least 2");
        assert!(n_c >= 1, "FftConv: the number of channels must be at least 1");
        let v = l * l;
        let fft_scratch_len = fwd.get_inplace_scratch_len().max(inv.get_inplace_scratch_len());
        let field_bytes = v * std::mem::size_of::<C<R>>();
        #[cfg(target_arch = "x86_64")]
        let simd = is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let simd = false;
        FftConv {
            l,
            n_c,
            v,
            np: n_c.div_ceil(2),
            fwd,
            inv,
            fft_scratch_len,
            acc_fields: (ACC_BYTES / field_bytes).max(1),
            work_fields: (WORK_BYTES / field_bytes).max(1),
            simd,
        }
    }

    /// The lattice size L.
    pub fn l(&self) -> usize {
        self.l
    }

    /// The number of channels n_c.
    pub fn n_c(&self) -> usize {
        self.n_c
    }

    /// Prepares the kernel `wt` (n_c × V, `wt[c * V + r] = W[c][r]`) for the
    /// convolutions: ⌈n_c/2⌉ complex FFTs.
    pub fn prepare(&self, wt: &[R]) -> FftKernel<R> {
        let mut k = FftKernel { l: 0, n_c: 0, q: Vec::new(), fft_scratch: Vec::new() };
        self.prepare_into(wt, &mut k);
        k
    }

    /// Like [`FftConv::prepare`], but refills `k`, reusing its memory (no allocation when
    /// `k` was prepared before by an `FftConv` of the same L and n_c).
    pub fn prepare_into(&self, wt: &[R], k: &mut FftKernel<R>) {
        let (v, n_c, np) = (self.v, self.n_c, self.np);
        assert_eq!(
            wt.len(),
            n_c * v,
            "FftConv::prepare: the kernel has {} numbers, expected n_c × V = {n_c} × {v}",
            wt.len()
        );
        k.l = self.l;
        k.n_c = n_c;
        k.q.resize(np * v, C::default());
        k.fft_scratch.resize(self.fft_scratch_len, C::default());
        let scale = R::one() / R::of(v as f64);
        for (p, q) in k.q.chunks_exact_mut(v).enumerate() {
            let wc = &wt[2 * p * v..][..v];
            if 2 * p + 1 < n_c {
                let wd = &wt[(2 * p + 1) * v..][..v];
                for ((z, &a), &b) in q.iter_mut().zip(wc).zip(wd) {
                    *z = C::new(a * scale, -(b * scale));
                }
            } else {
                for (z, &a) in q.iter_mut().zip(wc) {
                    *z = C::new(a * scale, R::zero());
                }
            }
        }
        self.fft2(&*self.fwd, &mut k.q, &mut k.fft_scratch);
    }

    /// Working memory for batches of up to `nb` fields (one per thread). The results
    /// do not depend on the capacity.
    pub fn scratch(&self, nb: usize) -> FftScratch<R> {
        let nb = nb.max(1);
        FftScratch {
            l: self.l,
            n_c: self.n_c,
            nb,
            acc: vec![C::default(); nb * self.v],
            work: vec![C::default(); self.work_fields.min(nb) * self.v],
            y: vec![C::default(); self.v],
            fft_scratch: vec![C::default(); self.fft_scratch_len],
        }
    }

    /// In-place 2D transform of consecutive L × L blocks in `buf` with the 1D plan
    /// `plan`: row FFTs, transpose, row FFTs. From the site layout `[x0][x1]` it gives
    /// `[k1][k0]`, and from `[k1][k0]` it gives `[x0][x1]`.
    #[inline]
    fn fft2(&self, plan: &dyn Fft<R>, buf: &mut [C<R>], scratch: &mut [C<R>]) {
        plan.process_with_scratch(buf, scratch);
        for blk in buf.chunks_exact_mut(self.v) {
            kern::transpose(self.simd, self.l, blk);
        }
        plan.process_with_scratch(buf, scratch);
    }

    /// The batch size of an input of `len` numbers holding `per` numbers per field.
    fn batch(&self, len: usize, per: usize, what: &str) -> usize {
        assert!(
            len % per == 0,
            "FftConv::{what}: length {len} is not a multiple of {per} (L = {}, n_c = {})",
            self.l,
            self.n_c
        );
        len / per
    }

    fn check(&self, k: &FftKernel<R>, s: &FftScratch<R>, nb: usize, what: &str) {
        assert!(
            k.l == self.l && k.n_c == self.n_c && k.q.len() == self.np * self.v,
            "FftConv::{what}: the kernel was prepared for L = {}, n_c = {}, not L = {}, n_c = {}",
            k.l,
            k.n_c,
            self.l,
            self.n_c
        );
        assert!(
            s.l == self.l && s.n_c == self.n_c,
            "FftConv::{what}: the scratch was made for L = {}, n_c = {}, not L = {}, n_c = {}",
            s.l,
            s.n_c,
            self.l,
            self.n_c
        );
        assert!(nb <= s.nb, "FftConv::{what}: a batch of {nb} fields exceeds the scratch's capacity of {}", s.nb);
    }

    /// Loads channels (2p, 2p+1) of fields `b0..b0 + m` of `g` (nb × n_c × V) into `work`
    /// as complex fields g[2p] + i·g[2p+1] (a missing channel 2p+1 reads as zero).
    #[inline]
    fn load_pair(&self, g: &[R], b0: usize, m: usize, p: usize, work: &mut [C<R>]) {
        let (v, n_c) = (self.v, self.n_c);
        for (j, z) in work[..m * v].chunks_exact_mut(v).enumerate() {
            let base = ((b0 + j) * n_c + 2 * p) * v;
            let gd = (2 * p + 1 < n_c).then(|| &g[base + v..][..v]);
            kern::interleave(self.simd, &g[base..][..v], gd, z);
        }
    }

    /// Stores the complex fields `work` (fields b0.., channel pair p, after the inverse
    /// transform) into channels (2p, 2p+1) of `a` (nb × n_c × V): real and imaginary parts.
    #[inline]
    fn store_pair(&self, work: &[C<R>], b0: usize, p: usize, a: &mut [R]) {
        let (v, n_c) = (self.v, self.n_c);
        for (j, z) in work.chunks_exact(v).enumerate() {
            let base = ((b0 + j) * n_c + 2 * p) * v;
            if 2 * p + 1 < n_c {
                let (ac, ad) = a[base..base + 2 * v].split_at_mut(v);
                kern::deinterleave(self.simd, z, ac, Some(ad));
            } else {
                kern::deinterleave(self.simd, z, &mut a[base..base + v], None);
            }
        }
    }

    /// The transforms K̂_b of the cotangents k̄ (nb × V) into the scratch's accumulators.
    fn cotangent_spectra(&self, kbar: &[R], s: &mut FftScratch<R>) {
        let v = self.v;
        let kh = &mut s.acc[..kbar.len()];
        for (z, kb) in kh.chunks_exact_mut(v).zip(kbar.chunks_exact(v)) {
            kern::interleave(self.simd, kb, None, z);
        }
        self.fft2(&*self.fwd, kh, &mut s.fft_scratch);
    }

    /// The vector-Jacobian product of [`FftConv::forward`] alone, without the kernel
    /// gradient: `a[b][c][y] = Σ_x W[c][(x − y) mod L] · kbar[b][x]` (overwrites `a`,
    /// nb × n_c × V). Half the transforms of [`FftConv::backward`]: the features' spectra
    /// are needed only for W̄. For the score integration of path gradients, whose parameter
    /// gradient is not wanted. Allocates nothing.
    pub fn backward_input(&self, k: &FftKernel<R>, kbar: &[R], a: &mut [R], s: &mut FftScratch<R>) {
        let (v, n_c, np) = (self.v, self.n_c, self.np);
        let nb = self.batch(kbar.len(), v, "backward_input: kbar");
        assert_eq!(
            a.len(),
            nb * n_c * v,
            "FftConv::backward_input: a must hold nb × n_c × V = {nb} × {n_c} × {v} numbers"
        );
        self.check(k, s, nb, "backward_input");
        if nb == 0 {
            return;
        }
        let wf = self.work_fields.min(s.nb);
        self.cotangent_spectra(kbar, s);
        for p in 0..np {
            let q = &k.q[p * v..][..v];
            let mut b0 = 0;
            while b0 < nb {
                let m = wf.min(nb - b0);
                let work = &mut s.work[..m * v];
                // the VJP's spectrum conj(Q_p) K̂_b, as in `backward`
                for (z, kb) in work.chunks_exact_mut(v).zip(s.acc[b0 * v..].chunks_exact(v)) {
                    for ((z, &kb), &q) in z.iter_mut().zip(kb).zip(q) {
                        *z = q.conj() * kb;
                    }
                }
                self.fft2(&*self.inv, work, &mut s.fft_scratch);
                self.store_pair(work, b0, p, a);
                b0 += m;
            }
        }
    }

    /// The convolution `out[b][x] = Σ_c Σ_y W[c][(x − y) mod L] · g[b][c][y]`.
    ///
    /// `g` holds nb × n_c × V numbers (nb = g.len() / (n_c V), at most the scratch's
    /// capacity), `out` nb × V, overwritten. Allocates nothing.
    pub fn forward(&self, k: &FftKernel<R>, g: &[R], out: &mut [R], s: &mut FftScratch<R>) {
        self.forward_impl(k, g, out, s, None)
    }

    /// Working memory for the spectra of up to `nb` fields ([`FftConv::forward_keep`]).
    pub fn spectra(&self, nb: usize) -> FftSpectra<R> {
        let nb = nb.max(1);
        FftSpectra { l: self.l, n_c: self.n_c, nb, z: vec![C::default(); self.np * nb * self.v], fields: None }
    }

    /// [`FftConv::forward`], keeping the inputs' spectra in `sp` for [`FftConv::backward_kept`]
    /// (the same results, bit for bit).
    pub fn forward_keep(
        &self,
        k: &FftKernel<R>,
        g: &[R],
        out: &mut [R],
        s: &mut FftScratch<R>,
        sp: &mut FftSpectra<R>,
    ) {
        assert!(sp.l == self.l && sp.n_c == self.n_c, "FftConv::forward_keep: spectra made for another L or n_c");
        sp.fields = None;
        self.forward_impl(k, g, out, s, Some(sp));
    }

    fn forward_impl(
        &self,
        k: &FftKernel<R>,
        g: &[R],
        out: &mut [R],
        s: &mut FftScratch<R>,
        mut sp: Option<&mut FftSpectra<R>>,
    ) {
        let (v, np) = (self.v, self.np);
        let nb = self.batch(g.len(), self.n_c * v, "forward: g");
        assert_eq!(out.len(), nb * v, "FftConv::forward: out must hold nb × V = {nb} × {v} numbers");
        self.check(k, s, nb, "forward");
        if let Some(sp) = &sp {
            assert!(
                nb <= sp.nb,
                "FftConv::forward_keep: a batch of {nb} fields exceeds the spectra's capacity of {}",
                sp.nb
            );
        }
        let wf = self.work_fields.min(s.nb);
        // Blocks of fields whose accumulators stay in cache; in each, the channel pairs
        // stream through, transformed `wf` fields at a time.
        let mut b0 = 0;
        while b0 < nb {
            let m = self.acc_fields.min(nb - b0);
            let acc = &mut s.acc[..m * v];
            for p in 0..np {
                let q = &k.q[p * v..][..v];
                let mut j0 = 0;
                while j0 < m {
                    let mw = wf.min(m - j0);
                    let work = match sp.as_deref_mut() {
                        Some(sp) => &mut sp.z[(p * sp.nb + b0 + j0) * v..][..mw * v],
                        None => &mut s.work[..mw * v],
                    };
                    self.load_pair(g, b0 + j0, mw, p, work);
                    self.fft2(&*self.fwd, work, &mut s.fft_scratch);
                    for (a, z) in acc[j0 * v..(j0 + mw) * v].chunks_exact_mut(v).zip(work.chunks_exact(v)) {
                        if p == 0 {
                            kern::mul::<R, false>(self.simd, a, q, z);
                        } else {
                            kern::mul::<R, true>(self.simd, a, q, z);
                        }
                    }
                    j0 += mw;
                }
            }
            self.fft2(&*self.inv, acc, &mut s.fft_scratch);
            kern::deinterleave(self.simd, acc, &mut out[b0 * v..(b0 + m) * v], None);
            b0 += m;
        }
        if let Some(sp) = sp {
            sp.fields = Some(nb);
        }
    }

    /// The vector-Jacobian product and the kernel gradient of [`FftConv::forward`]:
    ///
    /// `a[b][c][y] = Σ_x W[c][(x − y) mod L] · kbar[b][x]` (overwrites `a`, nb × n_c × V) and
    /// `wbar[c][r] += Σ_b Σ_x kbar[b][x] · g[b][c][(x − r) mod L]` (accumulates into
    /// `wbar`, n_c × V, real space). `kbar` holds nb × V numbers, `g` nb × n_c × V (the
    /// forward pass's input). Allocates nothing.
    pub fn backward(&self, k: &FftKernel<R>, kbar: &[R], g: &[R], a: &mut [R], wbar: &mut [R], s: &mut FftScratch<R>) {
        self.backward_impl(k, kbar, g, None, a, wbar, s)
    }

    /// [`FftConv::backward`] for the inputs `g` of the last [`FftConv::forward_keep`] into
    /// `sp`, taking their spectra from `sp` (the same results, bit for bit, with a third fewer
    /// transforms). Panics if `sp` holds no spectra of a batch of this size.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_kept(
        &self,
        k: &FftKernel<R>,
        kbar: &[R],
        g: &[R],
        sp: &FftSpectra<R>,
        a: &mut [R],
        wbar: &mut [R],
        s: &mut FftScratch<R>,
    ) {
        let nb = self.batch(kbar.len(), self.v, "backward_kept: kbar");
        assert!(
            sp.l == self.l && sp.n_c == self.n_c && sp.fields == Some(nb),
            "FftConv::backward_kept: the spectra are not those of a forward pass of these {nb} fields"
        );
        self.backward_impl(k, kbar, g, Some(sp), a, wbar, s)
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_impl(
        &self,
        k: &FftKernel<R>,
        kbar: &[R],
        g: &[R],
        sp: Option<&FftSpectra<R>>,
        a: &mut [R],
        wbar: &mut [R],
        s: &mut FftScratch<R>,
    ) {
        let (v, n_c, np) = (self.v, self.n_c, self.np);
        let nb = self.batch(kbar.len(), v, "backward: kbar");
        assert_eq!(g.len(), nb * n_c * v, "FftConv::backward: g must hold nb × n_c × V = {nb} × {n_c} × {v} numbers");
        assert_eq!(a.len(), nb * n_c * v, "FftConv::backward: a must hold nb × n_c × V = {nb} × {n_c} × {v} numbers");
        assert_eq!(wbar.len(), n_c * v, "FftConv::backward: wbar must hold n_c × V = {n_c} × {v} numbers");
        self.check(k, s, nb, "backward");
        if nb == 0 {
            return;
        }
        let wf = self.work_fields.min(s.nb);
        // K̂_b for every field.
        self.cotangent_spectra(kbar, s);
        let kh = &s.acc[..nb * v];
        let scale = R::one() / R::of(v as f64);
        for p in 0..np {
            let q = &k.q[p * v..][..v];
            let y = &mut s.y[..];
            y.fill(C::default());
            let mut b0 = 0;
            while b0 < nb {
                let m = wf.min(nb - b0);
                let work = &mut s.work[..m * v];
                match sp {
                    Some(sp) => work.copy_from_slice(&sp.z[(p * sp.nb + b0) * v..][..m * v]),
                    None => {
                        self.load_pair(g, b0, m, p, work);
                        self.fft2(&*self.fwd, work, &mut s.fft_scratch);
                    }
                }
                // The kernel gradient, Y += conj(K̂_b) Ẑ, then the VJP's spectrum,
                // conj(Q_p) K̂_b, replaces Ẑ.
                for (z, kb) in work.chunks_exact_mut(v).zip(kh[b0 * v..].chunks_exact(v)) {
                    kern::backward(self.simd, y, z, kb, q);
                }
                self.fft2(&*self.inv, work, &mut s.fft_scratch);
                self.store_pair(work, b0, p, a);
                b0 += m;
            }
            self.fft2(&*self.fwd, y, &mut s.fft_scratch);
            let base = 2 * p * v;
            if 2 * p + 1 < n_c {
                let (wc, wd) = wbar[base..base + 2 * v].split_at_mut(v);
                for ((wc, wd), z) in wc.iter_mut().zip(wd.iter_mut()).zip(y.iter()) {
                    *wc = *wc + z.re * scale;
                    *wd = *wd + z.im * scale;
                }
            } else {
                for (wc, z) in wbar[base..base + v].iter_mut().zip(y.iter()) {
                    *wc = *wc + z.re * scale;
                }
            }
        }
    }
}

/// The batch size for the direct sums, with a clear panic on inconsistent lengths.
fn direct_batch(len: usize, per: usize, what: &str) -> usize {
    assert!(per > 0 && len % per == 0, "{what}: length {len} is not a multiple of {per}");
    len / per
}

/// The direct O(nb n_c V²) sum of [`FftConv::forward`] in f64, the test oracle:
/// `out[b][x] = Σ_c Σ_y W[c][(x − y) mod L] · g[b][c][y]` (overwrites `out`, nb × V);
/// `wt` is n_c × V, `g` nb × n_c × V.
pub fn direct_forward(l: usize, n_c: usize, wt: &[f64], g: &[f64], out: &mut [f64]) {
    let v = l * l;
    assert_eq!(wt.len(), n_c * v, "direct_forward: wt must hold n_c × V numbers");
    let nb = direct_batch(g.len(), n_c * v, "direct_forward: g");
    assert_eq!(out.len(), nb * v, "direct_forward: out must hold nb × V numbers");
    for b in 0..nb {
        for x0 in 0..l {
            for x1 in 0..l {
                let mut sum = 0.0;
                for c in 0..n_c {
                    let w = &wt[c * v..][..v];
                    let gc = &g[(b * n_c + c) * v..][..v];
                    for y0 in 0..l {
                        let r0 = (x0 + l - y0) % l;
                        for y1 in 0..l {
                            let r1 = (x1 + l - y1) % l;
                            sum += w[r0 * l + r1] * gc[y0 * l + y1];
                        }
                    }
                }
                out[b * v + x0 * l + x1] = sum;
            }
        }
    }
}

/// The direct sums of [`FftConv::backward`] in f64, the test oracle:
/// `a[b][c][y] = Σ_x W[c][(x − y) mod L] · kbar[b][x]` (overwrites `a`, nb × n_c × V) and
/// `wbar[c][r] += Σ_b Σ_x kbar[b][x] · g[b][c][(x − r) mod L]` (accumulates, n_c × V);
/// `wt` is n_c × V, `kbar` nb × V, `g` nb × n_c × V.
pub fn direct_backward(l: usize, n_c: usize, wt: &[f64], kbar: &[f64], g: &[f64], a: &mut [f64], wbar: &mut [f64]) {
    let v = l * l;
    assert_eq!(wt.len(), n_c * v, "direct_backward: wt must hold n_c × V numbers");
    let nb = direct_batch(kbar.len(), v, "direct_backward: kbar");
    assert_eq!(g.len(), nb * n_c * v, "direct_backward: g must hold nb × n_c × V numbers");
    assert_eq!(a.len(), nb * n_c * v, "direct_backward: a must hold nb × n_c × V numbers");
    assert_eq!(wbar.len(), n_c * v, "direct_backward: wbar must hold n_c × V numbers");
    for b in 0..nb {
        let kb = &kbar[b * v..][..v];
        for c in 0..n_c {
            let w = &wt[c * v..][..v];
            let gc = &g[(b * n_c + c) * v..][..v];
            for y0 in 0..l {
                for y1 in 0..l {
                    let mut sum = 0.0;
                    for x0 in 0..l {
                        let r0 = (x0 + l - y0) % l;
                        for x1 in 0..l {
                            let r1 = (x1 + l - y1) % l;
                            sum += w[r0 * l + r1] * kb[x0 * l + x1];
                        }
                    }
                    a[(b * n_c + c) * v + y0 * l + y1] = sum;
                }
            }
            for r0 in 0..l {
                for r1 in 0..l {
                    let mut sum = 0.0;
                    for x0 in 0..l {
                        let y0 = (x0 + l - r0) % l;
                        for x1 in 0..l {
                            let y1 = (x1 + l - r1) % l;
                            sum += kb[x0 * l + x1] * gc[y0 * l + y1];
                        }
                    }
                    wbar[c * v + r0 * l + r1] += sum;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator of uniform numbers in (−1, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
        fn vec(&mut self, n: usize) -> Vec<f64> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    fn abs(x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v.abs()).collect()
    }

    fn max_err<R: Real>(got: &[R], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        got.iter().zip(want).map(|(g, w)| (g.f64() - w).abs()).fold(0.0, f64::max)
    }

    fn max(x: &[f64]) -> f64 {
        x.iter().cloned().fold(0.0, f64::max)
    }

    /// Compares forward and backward with the direct sums; returns the largest error
    /// relative to the scale (the direct sums of absolute values).
    fn check<R: Real>(l: usize, n_c: usize, nb: usize, seed: u64) -> f64 {
        let v = l * l;
        let mut rng = Lcg(seed);
        // Inputs rounded to R, so the oracle sees exactly what the FFT sees.
        let round = |x: Vec<f64>| -> Vec<f64> { x.into_iter().map(|v| R::of(v).f64()).collect() };
        let wt = round(rng.vec(n_c * v));
        let g = round(rng.vec(nb * n_c * v));
        let kbar = round(rng.vec(nb * v));
        let wt_r: Vec<R> = wt.iter().map(|&x| R::of(x)).collect();
        let g_r: Vec<R> = g.iter().map(|&x| R::of(x)).collect();
        let kbar_r: Vec<R> = kbar.iter().map(|&x| R::of(x)).collect();

        let conv = FftConv::<R>::new(l, n_c);
        let ker = conv.prepare(&wt_r);
        let mut s = conv.scratch(nb);

        let mut out_d = vec![0.0; nb * v];
        direct_forward(l, n_c, &wt, &g, &mut out_d);
        let mut scale_f = vec![0.0; nb * v];
        direct_forward(l, n_c, &abs(&wt), &abs(&g), &mut scale_f);
        let mut out = vec![R::nan(); nb * v];
        conv.forward(&ker, &g_r, &mut out, &mut s);
        let ef = max_err(&out, &out_d) / max(&scale_f);

        let mut a_d = vec![0.0; nb * n_c * v];
        let mut wbar_d = vec![0.0; n_c * v];
        direct_backward(l, n_c, &wt, &kbar, &g, &mut a_d, &mut wbar_d);
        let mut scale_a = vec![0.0; nb * n_c * v];
        let mut scale_w = vec![0.0; n_c * v];
        direct_backward(l, n_c, &abs(&wt), &abs(&kbar), &abs(&g), &mut scale_a, &mut scale_w);
        let mut a = vec![R::nan(); nb * n_c * v];
        let mut wbar = vec![R::zero(); n_c * v];
        conv.backward(&ker, &kbar_r, &g_r, &mut a, &mut wbar, &mut s);
        let ea = max_err(&a, &a_d) / max(&scale_a);
        let ew = max_err(&wbar, &wbar_d) / max(&scale_w);
        // A second call accumulates: twice the gradient, and a is overwritten again.
        a.iter_mut().for_each(|x| *x = R::nan());
        conv.backward(&ker, &kbar_r, &g_r, &mut a, &mut wbar, &mut s);
        let wbar2: Vec<f64> = wbar_d.iter().map(|x| 2.0 * x).collect();
        let ew2 = max_err(&wbar, &wbar2) / (2.0 * max(&scale_w));
        let ea2 = max_err(&a, &a_d) / max(&scale_a);
        // The VJP alone: the same a, and W̄ untouched.
        a.iter_mut().for_each(|x| *x = R::nan());
        conv.backward_input(&ker, &kbar_r, &mut a, &mut s);
        let ea3 = max_err(&a, &a_d) / max(&scale_a);
        [ef, ea, ew, ew2, ea2, ea3].into_iter().fold(0.0, f64::max)
    }

    fn sweep<R: Real>(tol: f64) -> f64 {
        let mut worst: f64 = 0.0;
        let mut seed = 1;
        for &l in &[2, 3, 4, 5, 6, 7, 12, 16] {
            for &n_c in &[1, 3, 50] {
                for &nb in &[1, 3] {
                    seed += 1;
                    let e = check::<R>(l, n_c, nb, seed);
                    assert!(e <= tol, "L = {l}, n_c = {n_c}, nb = {nb}: relative error {e:e} > {tol:e}");
                    worst = worst.max(e);
                }
            }
        }
        worst
    }

    /// Batches longer than the blocks of fields (at L = 64 in f64, the accumulators
    /// hold 2 fields and the work buffer 1; here both are forced small at small L).
    #[test]
    fn chunked_batches() {
        for &(l, n_c, nb) in &[(5, 3, 5), (6, 50, 3), (4, 1, 4)] {
            let v = l * l;
            let mut rng = Lcg(77 + l as u64);
            let wt = rng.vec(n_c * v);
            let g = rng.vec(nb * n_c * v);
            let kbar = rng.vec(nb * v);
            let mut conv = FftConv::<f64>::new(l, n_c);
            conv.acc_fields = 2;
            conv.work_fields = if l == 6 { 2 } else { 1 };
            let ker = conv.prepare(&wt);
            let mut s = conv.scratch(nb);
            let mut out = vec![f64::NAN; nb * v];
            conv.forward(&ker, &g, &mut out, &mut s);
            let mut out_d = vec![0.0; nb * v];
            direct_forward(l, n_c, &wt, &g, &mut out_d);
            assert!(max_err(&out, &out_d) < 1e-12 * n_c as f64 * v as f64);
            let mut a = vec![f64::NAN; nb * n_c * v];
            let mut wbar = vec![0.5; n_c * v];
            conv.backward(&ker, &kbar, &g, &mut a, &mut wbar, &mut s);
            let mut a_d = vec![0.0; nb * n_c * v];
            let mut wbar_d = vec![0.5; n_c * v];
            direct_backward(l, n_c, &wt, &kbar, &g, &mut a_d, &mut wbar_d);
            assert!(max_err(&a, &a_d) < 1e-12 * v as f64);
            assert!(max_err(&wbar, &wbar_d) < 1e-12 * (nb * v) as f64);
            a.iter_mut().for_each(|x| *x = f64::NAN);
            conv.backward_input(&ker, &kbar, &mut a, &mut s);
            assert!(max_err(&a, &a_d) < 1e-12 * v as f64);
            // A smaller batch than the scratch's capacity.
            let mut out1 = vec![f64::NAN; v];
            conv.forward(&ker, &g[..n_c * v], &mut out1, &mut s);
            assert!(max_err(&out1, &out_d[..v]) < 1e-12 * n_c as f64 * v as f64);
        }
    }

    /// The kept spectra change nothing: forward_keep gives forward's bits, backward_kept
    /// backward's (odd and even n_c, blocks of several fields, a smaller batch than the
    /// spectra hold), and stale spectra are never used.
    fn kept_spectra_give_the_same_bits<R: Real>() {
        for &(l, n_c, nb, cap) in &[(6, 5, 3, 4), (8, 4, 5, 5), (32, 3, 2, 2)] {
            let v = l * l;
            let mut rng = Lcg(900 + l as u64);
            let to = |x: Vec<f64>| x.into_iter().map(R::of).collect::<Vec<R>>();
            let (wt, g, kbar) = (to(rng.vec(n_c * v)), to(rng.vec(nb * n_c * v)), to(rng.vec(nb * v)));
            let mut conv = FftConv::<R>::new(l, n_c);
            conv.work_fields = 2;
            let ker = conv.prepare(&wt);
            let (mut s, mut sp) = (conv.scratch(cap), conv.spectra(cap));
            let (mut out, mut out_k) = (vec![R::zero(); nb * v], vec![R::nan(); nb * v]);
            conv.forward(&ker, &g, &mut out, &mut s);
            assert!(!sp.holds(nb));
            conv.forward_keep(&ker, &g, &mut out_k, &mut s, &mut sp);
            assert!(sp.holds(nb) && !sp.holds(nb - 1));
            let bits = |x: &[R]| x.iter().map(|y| y.f64().to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&out_k), "L = {l}: forward_keep");
            let (mut a, mut a_k) = (vec![R::nan(); nb * n_c * v], vec![R::nan(); nb * n_c * v]);
            let (mut wb, mut wb_k) = (vec![R::of(0.25); n_c * v], vec![R::of(0.25); n_c * v]);
            conv.backward(&ker, &kbar, &g, &mut a, &mut wb, &mut s);
            // the kept path must not read g: give it zeros
            let zeros = vec![R::zero(); g.len()];
            conv.backward_kept(&ker, &kbar, &zeros, &sp, &mut a_k, &mut wb_k, &mut s);
            assert_eq!(bits(&a), bits(&a_k), "L = {l}: backward_kept, a");
            assert_eq!(bits(&wb), bits(&wb_k), "L = {l}: backward_kept, wbar");
            assert!(a.iter().all(|x| x.is_finite()) && wb.iter().any(|&x| x != R::of(0.25)));
            sp.invalidate();
            assert!(!sp.holds(nb));
        }
    }

    #[test]
    fn kept_spectra_give_the_same_bits_f64() {
        kept_spectra_give_the_same_bits::<f64>();
    }

    #[test]
    fn kept_spectra_give_the_same_bits_f32() {
        kept_spectra_give_the_same_bits::<f32>();
    }

    #[test]
    #[should_panic(expected = "are not those of a forward pass")]
    fn stale_spectra_are_refused() {
        let conv = FftConv::<f64>::new(4, 2);
        let ker = conv.prepare(&[0.0; 32]);
        let (mut s, mut sp) = (conv.scratch(2), conv.spectra(2));
        let mut out = vec![0.0; 32];
        conv.forward_keep(&ker, &[0.0; 64], &mut out, &mut s, &mut sp);
        sp.invalidate();
        let (mut a, mut wb) = (vec![0.0; 64], vec![0.0; 32]);
        conv.backward_kept(&ker, &[0.0; 32], &[0.0; 64], &sp, &mut a, &mut wb, &mut s);
    }

    #[test]
    #[should_panic(expected = "exceeds the scratch's capacity")]
    fn batch_over_capacity_panics() {
        let conv = FftConv::<f64>::new(4, 2);
        let ker = conv.prepare(&[0.0; 32]);
        let mut s = conv.scratch(1);
        let mut out = vec![0.0; 32];
        conv.forward(&ker, &[0.0; 64], &mut out, &mut s);
    }

    #[test]
    #[should_panic(expected = "not a multiple")]
    fn ragged_input_panics() {
        let conv = FftConv::<f64>::new(4, 2);
        let ker = conv.prepare(&[0.0; 32]);
        let mut s = conv.scratch(2);
        let mut out = vec![0.0; 16];
        conv.forward(&ker, &[0.0; 33], &mut out, &mut s);
    }

    #[test]
    fn prepare_into_reuses_and_portable_agrees() {
        let (l, n_c) = (6, 5);
        let v = l * l;
        let mut rng = Lcg(5);
        let (w1, w2, g) = (rng.vec(n_c * v), rng.vec(n_c * v), rng.vec(2 * n_c * v));
        let conv = FftConv::<f64>::new(l, n_c);
        let mut ker = conv.prepare(&w1);
        conv.prepare_into(&w2, &mut ker);
        let mut s = conv.scratch(2);
        let mut out = vec![0.0; 2 * v];
        conv.forward(&ker, &g, &mut out, &mut s);
        let portable = FftConv::<f64>::new_portable(l, n_c);
        let ker_p = portable.prepare(&w2);
        let mut out_p = vec![0.0; 2 * v];
        portable.forward(&ker_p, &g, &mut out_p, &mut portable.scratch(2));
        let mut out_d = vec![0.0; 2 * v];
        direct_forward(l, n_c, &w2, &g, &mut out_d);
        assert!(max_err(&out, &out_d) < 1e-13);
        assert!(max_err(&out_p, &out_d) < 1e-13);
    }

    /// The AVX kernels give bit-identical results to the scalar code.
    fn simd_matches_scalar<R: Real>() {
        for &(l, n_c, nb) in &[(2, 1, 1), (3, 3, 2), (5, 4, 3), (7, 5, 2), (8, 6, 3), (12, 3, 2), (13, 2, 1)] {
            let v = l * l;
            let mut rng = Lcg(1000 + l as u64);
            let to = |x: Vec<f64>| -> Vec<R> { x.into_iter().map(R::of).collect() };
            let (wt, g, kbar) = (to(rng.vec(n_c * v)), to(rng.vec(nb * n_c * v)), to(rng.vec(nb * v)));
            let mut results = Vec::new();
            for simd in [true, false] {
                let mut conv = FftConv::<R>::new(l, n_c);
                conv.simd = simd && conv.simd;
                let ker = conv.prepare(&wt);
                let mut s = conv.scratch(nb);
                let mut out = vec![R::zero(); nb * v];
                conv.forward(&ker, &g, &mut out, &mut s);
                let mut a = vec![R::zero(); nb * n_c * v];
                let mut wbar = vec![R::zero(); n_c * v];
                conv.backward(&ker, &kbar, &g, &mut a, &mut wbar, &mut s);
                let bits: Vec<u64> = ker
                    .q
                    .iter()
                    .flat_map(|c| [c.re, c.im])
                    .chain(out)
                    .chain(a)
                    .chain(wbar)
                    .map(|x| x.f64().to_bits())
                    .collect();
                results.push(bits);
            }
            assert!(results[0] == results[1], "L = {l}: SIMD and scalar kernels differ");
        }
    }

    #[test]
    fn simd_matches_scalar_f64() {
        simd_matches_scalar::<f64>();
    }

    #[test]
    fn simd_matches_scalar_f32() {
        simd_matches_scalar::<f32>();
    }

    #[test]
    fn transposes() {
        for l in 2..20 {
            let m: Vec<C<f64>> = (0..l * l).map(|i| C::new(i as f64, -(i as f64))).collect();
            let m32: Vec<C<f32>> = m.iter().map(|c| C::new(c.re as f32, c.im as f32)).collect();
            for simd in [false, true] {
                let mut t = m.clone();
                kern::transpose(simd, l, &mut t);
                let mut t32 = m32.clone();
                kern::transpose(simd, l, &mut t32);
                for i in 0..l {
                    for j in 0..l {
                        assert_eq!(t[i * l + j], m[j * l + i], "L = {l}");
                        assert_eq!(t32[i * l + j], m32[j * l + i], "L = {l}");
                    }
                }
            }
        }
    }

    /// The production sizes (one field per block at L = 32 and 64), against the direct
    /// sums with few channels.
    #[test]
    fn large_lattices() {
        for &(l, n_c, nb, seed) in &[(32, 3, 2, 11), (64, 2, 1, 12), (33, 1, 2, 13)] {
            let e = check::<f64>(l, n_c, nb, seed);
            assert!(e <= 1e-12, "L = {l}: relative error {e:e}");
            let e32 = check::<f32>(l, n_c, nb, seed);
            assert!(e32 <= 1e-5, "L = {l} (f32): relative error {e32:e}");
            eprintln!("L = {l}: largest error relative to the absolute-value sum: f64 {e:e}, f32 {e32:e}");
        }
    }

    /// A field's results do not depend on the rest of the batch, bit for bit.
    fn batch_independent<R: Real>() {
        for &(l, n_c, nb) in &[(6, 5, 9), (32, 3, 3)] {
            let v = l * l;
            let mut rng = Lcg(31 + l as u64);
            let to = |x: Vec<f64>| -> Vec<R> { x.into_iter().map(R::of).collect() };
            let (wt, g, kbar) = (to(rng.vec(n_c * v)), to(rng.vec(nb * n_c * v)), to(rng.vec(nb * v)));
            let conv = FftConv::<R>::new(l, n_c);
            let ker = conv.prepare(&wt);
            let mut s = conv.scratch(nb);
            let mut out = vec![R::zero(); nb * v];
            let mut a = vec![R::zero(); nb * n_c * v];
            let mut wbar = vec![R::zero(); n_c * v];
            conv.forward(&ker, &g, &mut out, &mut s);
            conv.backward(&ker, &kbar, &g, &mut a, &mut wbar, &mut s);
            let mut s1 = conv.scratch(1);
            for b in 0..nb {
                let mut out1 = vec![R::zero(); v];
                let mut a1 = vec![R::zero(); n_c * v];
                let gb = &g[b * n_c * v..(b + 1) * n_c * v];
                conv.forward(&ker, gb, &mut out1, &mut s1);
                conv.backward(&ker, &kbar[b * v..(b + 1) * v], gb, &mut a1, &mut wbar, &mut s1);
                let same = |x: &[R], y: &[R]| x.iter().zip(y).all(|(p, q)| p.f64().to_bits() == q.f64().to_bits());
                assert!(same(&out1, &out[b * v..(b + 1) * v]), "L = {l}, field {b}: out depends on the batch");
                assert!(same(&a1, &a[b * n_c * v..(b + 1) * n_c * v]), "L = {l}, field {b}: a depends on the batch");
            }
        }
    }

    #[test]
    fn batch_independent_f64() {
        batch_independent::<f64>();
    }

    #[test]
    fn batch_independent_f32() {
        batch_independent::<f32>();
    }

    #[test]
    fn thread_safety() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<FftConv<f64>>();
        send_sync::<FftKernel<f32>>();
        send::<FftScratch<f64>>();
    }

    #[test]
    fn matches_direct_f64() {
        let worst = sweep::<f64>(1e-12);
        eprintln!("f64: largest error relative to the absolute-value sum: {worst:e}");
    }

    #[test]
    fn matches_direct_f32() {
        let worst = sweep::<f32>(1e-5);
        eprintln!("f32: largest error relative to the absolute-value sum: {worst:e}");
    }
}
