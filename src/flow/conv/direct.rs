//! The direct O(V² n_c) sums: the oracle the fast convolutions are tested against.

/// Gaussian test data of length n (shared by the convolution tests).
#[cfg(test)]
pub(crate) fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut x = vec![0.0; n];
    crate::rng::Rng::new(seed, crate::rng::Stream::Init, 99).fill_normal(&mut x);
    x
}

/// out[b][x] = Σ_c Σ_y W[c][(x − y) mod L] g[b][c][y].
pub fn forward(l: usize, n_c: usize, wt: &[f64], g: &[f64], out: &mut [f64]) {
    let v = l * l;
    let nb = out.len() / v;
    for b in 0..nb {
        for x in 0..v {
            let (x0, x1) = (x / l, x % l);
            let mut acc = 0.0;
            for c in 0..n_c {
                for y in 0..v {
                    let (y0, y1) = (y / l, y % l);
                    let r = ((x0 + l - y0) % l) * l + (x1 + l - y1) % l;
                    acc += wt[c * v + r] * g[(b * n_c + c) * v + y];
                }
            }
            out[b * v + x] = acc;
        }
    }
}

/// a[b][c][y] = Σ_x W[c][(x − y) mod L] k̄[b][x];  W̄[c][r] += Σ_b Σ_x k̄[b][x] g[b][c][(x − r) mod L].
pub fn backward(l: usize, n_c: usize, wt: &[f64], kbar: &[f64], g: &[f64], a: &mut [f64], wbar: &mut [f64]) {
    let v = l * l;
    let nb = kbar.len() / v;
    let disp = |x: usize, y: usize| ((x / l + l - y / l) % l) * l + (x % l + l - y % l) % l;
    for b in 0..nb {
        for c in 0..n_c {
            for y in 0..v {
                a[(b * n_c + c) * v + y] = (0..v).map(|x| wt[c * v + disp(x, y)] * kbar[b * v + x]).sum();
            }
            for x in 0..v {
                for y in 0..v {
                    wbar[c * v + disp(x, y)] += kbar[b * v + x] * g[(b * n_c + c) * v + y];
                }
            }
        }
    }
}
