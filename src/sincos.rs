//! Vectorised sine and cosine of whole slices, with run-time CPU feature dispatch.
//!
//! Cody–Waite reduction by π/2 and the fdlibm (f64) / Cephes (f32) minimax polynomials
//! on [−π/4, π/4], written branch-free so LLVM vectorises the loop. Only plain IEEE
//! multiplies and adds are used (no fused operations), so every dispatch path gives
//! bit-identical results: the flow's output does not depend on the CPU it runs on.
//! Accuracy: a few ulp for |x| < 1e5 (f64), a few ulp for |x| < 1e3 (f32).

#![allow(clippy::excessive_precision)] // published coefficients, kept digit for digit

macro_rules! sincos_kernel {
    ($name:ident, $t:ty, $u:ty, $magic:expr, $shift:expr, $p1:expr, $p2:expr, $p3:expr, $sin:expr, $cos:expr) => {
        #[inline(always)]
        fn $name(x: &[$t], s: &mut [$t], c: &mut [$t]) {
            let n = x.len().min(s.len()).min(c.len());
            let (x, s, c) = (&x[..n], &mut s[..n], &mut c[..n]);
            const TWO_OVER_PI: $t = std::f64::consts::FRAC_2_PI as $t;
            for i in 0..n {
                let xi = x[i];
                // round to nearest with the magic constant: the low bits of `t` hold q
                let t = xi * TWO_OVER_PI + $magic;
                let q = t - $magic;
                let r = ((xi - q * $p1) - q * $p2) - q * $p3;
                let z = r * r;
                let sp: $t = $sin(r, z);
                let cp: $t = $cos(z);
                let qb = t.to_bits();
                // odd quadrant: swap sin and cos; sin negated in quadrants 2, 3; cos in 1, 2
                let swap = (0 as $u).wrapping_sub(qb & 1);
                let (spb, cpb) = (sp.to_bits(), cp.to_bits());
                let sv = (spb & !swap) | (cpb & swap);
                let cv = (cpb & !swap) | (spb & swap);
                s[i] = <$t>::from_bits(sv ^ ((qb & 2) << $shift));
                c[i] = <$t>::from_bits(cv ^ ((qb.wrapping_add(1) & 2) << $shift));
            }
        }
    };
}

sincos_kernel!(
    kernel_f64,
    f64,
    u64,
    6755399441055744.0f64,
    62,
    1.57079632673412561417e+00,
    6.07710050630396597660e-11,
    2.02226624871116645580e-21,
    |r: f64, z: f64| r + r
        * z
        * (-1.66666666666666324348e-01
            + z * (8.33333333332248946124e-03
                + z * (-1.98412698298579493134e-04
                    + z * (2.75573137070700676789e-06
                        + z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10))))),
    |z: f64| 1.0 - 0.5 * z
        + z * z
            * (4.16666666666666019037e-02
                + z * (-1.38888888888741095749e-03
                    + z * (2.48015872894767294178e-05
                        + z * (-2.75573143513906633035e-07
                            + z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11)))))
);

sincos_kernel!(
    kernel_f32,
    f32,
    u32,
    12582912.0f32,
    30,
    1.5703125f32,
    4.837512969970703125e-4f32,
    7.54978995489188216e-8f32,
    |r: f32, z: f32| r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4)),
    |z: f32| 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5))
);

macro_rules! dispatch {
    ($pub_name:ident, $t:ty, $kernel:ident) => {
        /// sin and cos of every element of `x` into `s` and `c` (the shortest length wins).
        pub fn $pub_name(x: &[$t], s: &mut [$t], c: &mut [$t]) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
                unsafe fn avx512(x: &[$t], s: &mut [$t], c: &mut [$t]) {
                    $kernel(x, s, c)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2(x: &[$t], s: &mut [$t], c: &mut [$t]) {
                    $kernel(x, s, c)
                }
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
                {
                    // SAFETY: the CPU supports the features the function was compiled for.
                    return unsafe { avx512(x, s, c) };
                }
                if is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2(x, s, c) };
                }
            }
            $kernel(x, s, c)
        }
    };
}

dispatch!(sincos_f64, f64, kernel_f64);
dispatch!(sincos_f32, f32, kernel_f32);

/// The portable (non-dispatched) f64 kernel, for tests of dispatch equality.
pub fn sincos_f64_portable(x: &[f64], s: &mut [f64], c: &mut [f64]) {
    kernel_f64(x, s, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_matches_libm() {
        let x: Vec<f64> = (0..200_001).map(|i| (i as f64 - 100_000.0) * 1.37e-3 * 7.3).collect();
        let (mut s, mut c) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        sincos_f64(&x, &mut s, &mut c);
        let (mut s2, mut c2) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        sincos_f64_portable(&x, &mut s2, &mut c2);
        for i in 0..x.len() {
            assert!((s[i] - x[i].sin()).abs() < 4e-16, "sin {}: {} vs {}", x[i], s[i], x[i].sin());
            assert!((c[i] - x[i].cos()).abs() < 4e-16, "cos {}: {} vs {}", x[i], c[i], x[i].cos());
            assert_eq!(s[i].to_bits(), s2[i].to_bits());
            assert_eq!(c[i].to_bits(), c2[i].to_bits());
        }
        let mut one = [0.0; 1];
        let mut two = [0.0; 1];
        sincos_f64(&[f64::NAN], &mut one, &mut two);
        assert!(one[0].is_nan() && two[0].is_nan());
    }

    #[test]
    fn f32_matches_libm() {
        let x: Vec<f32> = (0..100_001).map(|i| (i as f32 - 50_000.0) * 2.1e-3).collect();
        let (mut s, mut c) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        sincos_f32(&x, &mut s, &mut c);
        for i in 0..x.len() {
            let xd = x[i] as f64;
            assert!((s[i] as f64 - xd.sin()).abs() < 3e-7, "sin {}: {}", x[i], s[i]);
            assert!((c[i] as f64 - xd.cos()).abs() < 3e-7, "cos {}: {}", x[i], c[i]);
        }
    }
}
