//! Counter-based random numbers (Philox4x32-10), keyed by (seed, stream, index),
//! so a sample's noise depends only on its key, never on thread count or order.
//! The same function runs on the GPU.

/// Purposes of random streams; part of the counter so they never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    /// Prior draws for training batches (index = step).
    Train = 1,
    /// Prior draws for sampling (index = sample counter).
    Sample = 2,
    /// Parameter initialisation.
    Init = 3,
    /// Metropolis accept/reject uniforms.
    Metropolis = 4,
    /// HMC momenta and accept/reject.
    Hmc = 5,
    /// Fresh draws for ESS estimates.
    Ess = 6,
    /// Coin flips of the Z2 global flip update of chains.
    Flip = 7,
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds.
#[inline]
pub fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [((p1 >> 32) as u32) ^ c[1] ^ k[0], p1 as u32, ((p0 >> 32) as u32) ^ c[3] ^ k[1], p0 as u32];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// A random stream: one key, a 64-bit index and a 32-bit sub-counter.
#[derive(Debug, Clone, Copy)]
pub struct Rng {
    key: [u32; 2],
    stream: u32,
    index: u64,
}

impl Rng {
    /// The stream `stream` of `seed`, at position `index` (e.g. sample number).
    pub fn new(seed: u64, stream: Stream, index: u64) -> Self {
        Rng { key: [seed as u32, (seed >> 32) as u32], stream: stream as u32, index }
    }
    /// Four random words for sub-counter `j` of this (stream, index).
    #[inline]
    pub fn block(&self, j: u32) -> [u32; 4] {
        philox4x32([j, self.index as u32, (self.index >> 32) as u32, self.stream], self.key)
    }
    /// Fills `out` with standard normals (Box–Muller), element k depending only on k.
    pub fn fill_normal(&self, out: &mut [f64]) {
        for (j, pair) in out.chunks_mut(2).enumerate() {
            let b = self.block(j as u32);
            let u1 = to_open01(b[0], b[1]);
            let u2 = to_unit(b[2], b[3]);
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
            pair[0] = r * c;
            if pair.len() > 1 {
                pair[1] = r * s;
            }
        }
    }
    /// The k-th uniform in [0, 1) of this (stream, index).
    pub fn uniform(&self, k: u32) -> f64 {
        let b = self.block(k);
        to_unit(b[0], b[1])
    }
}

/// A uniform in [0, 1) with 53 random bits.
#[inline]
fn to_unit(a: u32, b: u32) -> f64 {
    let x = ((a as u64) << 21) ^ (b as u64);
    (x & ((1u64 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform in (0, 1] (safe for log).
#[inline]
fn to_open01(a: u32, b: u32) -> f64 {
    1.0 - to_unit(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer() {
        // Random123's known-answer vector for philox4x32-10 with counter and key all ones
        let r = philox4x32([u32::MAX; 4], [u32::MAX; 2]);
        assert_eq!(r, [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        let r = philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]);
        assert_eq!(r, [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut x = vec![0.0; 200_000];
        Rng::new(7, Stream::Sample, 3).fill_normal(&mut x);
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        let v = x.iter().map(|a| a * a).sum::<f64>() / n;
        let k = x.iter().map(|a| a.powi(4)).sum::<f64>() / n;
        assert!(m.abs() < 5.0 * (1.0 / n).sqrt());
        assert!((v - 1.0).abs() < 5.0 * (2.0 / n).sqrt());
        assert!((k - 3.0).abs() < 5.0 * (96.0 / n).sqrt());
        let mut y = vec![0.0; 7];
        Rng::new(7, Stream::Sample, 4).fill_normal(&mut y);
        assert_ne!(x[0], y[0]);
    }
}
