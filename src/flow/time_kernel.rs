//! Time kernels K(t) ∈ R^{d_t} (SPEC §3.1–3.2).

use super::config::TimeKernelKind;

/// Writes K(t) into `out` (length d_t).
pub fn eval(kind: TimeKernelKind, t: f64, out: &mut [f64]) {
    let d = out.len();
    match kind {
        TimeKernelKind::Hat => {
            // K_a(t) = max(0, 1 − (d_t−1)|t − t_a|), t_a = a/(d_t−1)
            let s = (d - 1) as f64;
            for (a, o) in out.iter_mut().enumerate() {
                *o = (1.0 - (s * t - a as f64).abs()).max(0.0);
            }
        }
        TimeKernelKind::Fourier => {
            // (1, sin 2πt, cos 2πt, sin 4πt, cos 4πt, ...)
            out[0] = 1.0;
            for k in 1..=(d - 1) / 2 {
                let (s, c) = (std::f64::consts::TAU * k as f64 * t).sin_cos();
                out[2 * k - 1] = s;
                out[2 * k] = c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hat_is_partition_of_unity_and_interpolates_nodes() {
        let mut k = vec![0.0; 10];
        for i in 0..=100 {
            let t = i as f64 / 100.0;
            eval(TimeKernelKind::Hat, t, &mut k);
            assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-14);
            assert!(k.iter().filter(|&&v| v > 0.0).count() <= 2);
        }
        eval(TimeKernelKind::Hat, 3.0 / 9.0, &mut k);
        assert!((k[3] - 1.0).abs() < 1e-14);
        let mut f = vec![0.0; 5];
        eval(TimeKernelKind::Fourier, 0.125, &mut f);
        assert!((f[1] - (std::f64::consts::PI / 4.0).sin()).abs() < 1e-15);
        assert!((f[4] - 0.0f64).abs() < 1e-15);
    }
}
