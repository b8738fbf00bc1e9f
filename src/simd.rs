//! Run-time CPU dispatch for the flow's element-wise loops.
//!
//! The library is built for the baseline x86-64 target (SSE2), so loops that the compiler
//! vectorises run four f32 lanes wide unless they are compiled again with wider vectors.
//! [`run_wide`] (through `wide!`) runs a closure inside a function compiled with AVX2 where the CPU has it: the
//! closure (and whatever `#[inline(always)]` code it calls) is inlined there and vectorised
//! eight f32 lanes wide.
//!
//! Results do not depend on the CPU: Rust never contracts `a * b + c` into a fused
//! multiply-add, and the loops written for this (fixed [`crate::flow::features::LANES`]
//! partial sums) perform the same IEEE operations in the same order at every width, so the
//! AVX2 and baseline builds give the same bits (tested).

/// Evaluates an expression inside [`run_wide`], the closure marked `#[inline(always)]` so that
/// it is compiled into the AVX2 function (closures the expression calls must be too).
macro_rules! wide {
    ($e:expr) => {
        $crate::simd::run_wide(
            #[inline(always)]
            || $e,
        )
    };
}
pub(crate) use wide;

/// Runs `f`, compiled with AVX2 where the CPU supports it (otherwise as built). Use it
/// through the `wide!` macro, which makes sure the closure is inlined.
#[inline(always)]
pub fn run_wide<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T>(f: impl FnOnce() -> T) -> T {
            f()
        }
        if has_avx2() {
            // SAFETY: the CPU supports the feature the function was compiled for.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Whether [`run_wide`] takes its AVX2 path.
#[inline(always)]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs `f` as built, never with AVX2 (the reference of the dispatch tests).
#[inline(always)]
pub fn baseline<T>(f: impl FnOnce() -> T) -> T {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_and_baseline_loops_give_the_same_bits() {
        // a loop of the features' kind: products and LANES-way partial sums
        let n = 1037;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1.37e-3 - 0.6).collect();
        let y: Vec<f32> = (0..n).map(|i| ((i * 104729) % 997) as f32 * -2.1e-3 + 1.1).collect();
        let run = |x: &[f32], y: &[f32]| {
            let mut out = vec![0.0f32; x.len()];
            let mut acc = [0.0f32; 8];
            for ((o, a), b) in out.chunks_mut(8).zip(x.chunks(8)).zip(y.chunks(8)) {
                for i in 0..o.len() {
                    o[i] = a[i] * b[i] - 0.3 * a[i];
                    acc[i] += o[i] * b[i];
                }
            }
            (out, acc)
        };
        let (w, b) = (wide!(run(&x, &y)), baseline(|| run(&x, &y)));
        assert!(w.0.iter().zip(&b.0).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(w.1.iter().zip(&b.1).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(w.1.iter().any(|&a| a != 0.0));
    }
}
