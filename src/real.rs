//! The floating-point types the bulk compute runs in (f64 for tests and exactness,
//! f32 for speed), with the few primitives the flow needs: GEMM and sincos.

use rustfft::num_traits::Float;
use rustfft::FftNum;

/// A floating-point type for bulk compute. Log-densities, actions and losses are
/// always accumulated in f64, whatever `Real` is.
pub trait Real: FftNum + Float + Default + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static {
    /// Converts from f64 (rounding for f32).
    fn of(x: f64) -> Self;
    /// Converts to f64 (exact).
    fn f64(self) -> f64;
    /// C ← α A B + β C for row-major/strided matrices (single-threaded, deterministic).
    /// A is m×k, B is k×n, C is m×n; strides in elements.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        rsa: isize,
        csa: isize,
        b: &[Self],
        rsb: isize,
        csb: isize,
        beta: Self,
        c: &mut [Self],
        rsc: isize,
        csc: isize,
    );
    /// s[i] = sin(x[i]), c[i] = cos(x[i]) (vectorised, run-time CPU dispatch).
    fn sincos(x: &[Self], s: &mut [Self], c: &mut [Self]);
}

/// Checks that a strided m×n matrix fits in a slice of length `len`.
fn fits(m: usize, n: usize, rs: isize, cs: isize, len: usize) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    rs >= 0 && cs >= 0 && (m - 1) * (rs as usize) + (n - 1) * (cs as usize) < len
}

macro_rules! impl_real {
    ($t:ty, $gemm:path, $sincos:path) => {
        impl Real for $t {
            #[inline]
            fn of(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn f64(self) -> f64 {
                self as f64
            }
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                rsa: isize,
                csa: isize,
                b: &[Self],
                rsb: isize,
                csb: isize,
                beta: Self,
                c: &mut [Self],
                rsc: isize,
                csc: isize,
            ) {
                assert!(fits(m, k, rsa, csa, a.len()), "gemm: A out of bounds");
                assert!(fits(k, n, rsb, csb, b.len()), "gemm: B out of bounds");
                assert!(fits(m, n, rsc, csc, c.len()), "gemm: C out of bounds");
                if m == 0 || n == 0 {
                    return;
                }
                // SAFETY: the three asserts above check every accessed element is in bounds.
                unsafe {
                    $gemm(m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), rsc, csc)
                }
            }
            fn sincos(x: &[Self], s: &mut [Self], c: &mut [Self]) {
                $sincos(x, s, c)
            }
        }
    };
}

impl_real!(f64, matrixmultiply::dgemm, crate::sincos::sincos_f64);
impl_real!(f32, matrixmultiply::sgemm, crate::sincos::sincos_f32);
