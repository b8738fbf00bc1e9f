//! How far a flow's density is from invariant: log q over the images of a configuration
//! under every symmetry of the theory (the 8·L² lattice symmetries of
//! `Lattice::symmetries` times the global flip φ → −φ, SPEC §2). An exactly equivariant
//! flow gives a spread at rounding level; RealNVP does not (the paper's Fig. 2).
//! Works for any flow through its log q function.

use crate::error::{Error, Result};
use crate::lattice::{Lattice, Symmetry};

/// The spread of log q over the symmetry images of one configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// max − min of log q over the distinct images (NaN if any log q is non-finite).
    pub range: f64,
    /// Population standard deviation of log q over the distinct images (NaN likewise).
    pub std: f64,
    /// The number of distinct images (16·L² for L ≥ 3; fewer at L = 2).
    pub images: usize,
}

/// The distinct symmetries of the theory on `lattice`: the lattice group with and without
/// the flip, without the duplicates that coincide as maps at L = 2 (SPEC §3.1).
pub fn distinct_symmetries(lattice: &Lattice) -> Vec<Symmetry> {
    let probe: Vec<f64> = (0..lattice.volume()).map(|i| i as f64).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in lattice.symmetries() {
        let image: Vec<u64> = lattice.transform(s, &probe).iter().map(|x| x.to_bits()).collect();
        if seen.insert(image) {
            out.push(s);
        }
    }
    let flipped: Vec<Symmetry> = out.iter().map(|&s| Symmetry { flip: true, ..s }).collect();
    out.extend(flipped);
    out
}

/// Values per call of the log q function (32 MB of images), so large lattices stream.
const BATCH_VALUES: usize = 1 << 22;

/// For each configuration in `configs` (n × V), log q of all its distinct symmetry images,
/// evaluated with `log_prob` (on batches of images, in order: one call per configuration
/// unless 16·L²·V exceeds 2²² values), and the spread of those values. An image set with a
/// non-finite log q gives NaN.
pub fn symmetry_stats(
    log_prob: impl FnMut(&[f64]) -> Result<Vec<f64>>,
    lattice: &Lattice,
    configs: &[f64],
) -> Result<Vec<Spread>> {
    stats_batched(log_prob, lattice, configs, BATCH_VALUES)
}

fn stats_batched(
    mut log_prob: impl FnMut(&[f64]) -> Result<Vec<f64>>,
    lattice: &Lattice,
    configs: &[f64],
    batch_values: usize,
) -> Result<Vec<Spread>> {
    let v = lattice.volume();
    if configs.len() % v != 0 {
        return Err(Error::length("symmetry_spread: configs", configs.len(), v * (configs.len() / v + 1)));
    }
    let syms = distinct_symmetries(lattice);
    let per_call = (batch_values / v).clamp(1, syms.len());
    let mut images = vec![0.0; per_call * v];
    let mut out = Vec::with_capacity(configs.len() / v);
    let mut lq = Vec::with_capacity(syms.len());
    for phi in configs.chunks_exact(v) {
        lq.clear();
        for batch in syms.chunks(per_call) {
            let imgs = &mut images[..batch.len() * v];
            for (&s, img) in batch.iter().zip(imgs.chunks_exact_mut(v)) {
                img.copy_from_slice(&lattice.transform(s, phi));
            }
            let q = log_prob(imgs)?;
            if q.len() != batch.len() {
                return Err(Error::length("symmetry_spread: log_prob result", q.len(), batch.len()));
            }
            lq.extend(q);
        }
        out.push(spread(&lq));
    }
    Ok(out)
}

/// max − min of log q over the distinct symmetry images of each configuration
/// (`symmetry_stats` gives the standard deviation too).
pub fn symmetry_spread(
    log_prob: impl FnMut(&[f64]) -> Result<Vec<f64>>,
    lattice: &Lattice,
    configs: &[f64],
) -> Result<Vec<f64>> {
    Ok(symmetry_stats(log_prob, lattice, configs)?.iter().map(|s| s.range).collect())
}

fn spread(x: &[f64]) -> Spread {
    let images = x.len();
    if x.iter().any(|v| !v.is_finite()) {
        return Spread { range: f64::NAN, std: f64::NAN, images };
    }
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = x.iter().cloned().fold(f64::INFINITY, f64::min);
    // deviations from the first value, so near-equal values do not lose their spread to the
    // rounding of a large sum
    let d: Vec<f64> = x.iter().map(|v| v - x[0]).collect();
    let mean = d.iter().sum::<f64>() / images as f64;
    let var = d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / images as f64;
    Spread { range: max - min, std: var.sqrt(), images }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_images() {
        assert_eq!(distinct_symmetries(&Lattice::new(3).unwrap()).len(), 16 * 9);
        assert_eq!(distinct_symmetries(&Lattice::new(4).unwrap()).len(), 16 * 16);
        // at L = 2 the 32 lattice maps collapse to 8 distinct permutations
        assert_eq!(distinct_symmetries(&Lattice::new(2).unwrap()).len(), 16);
    }

    #[test]
    fn invariant_and_non_invariant_densities() {
        let lat = Lattice::new(4).unwrap();
        let phi: Vec<f64> = (0..32).map(|i| ((i * 7) % 11) as f64 / 11.0 - 0.4).collect();
        // Σ φ² is invariant
        let inv = |p: &[f64]| Ok(p.chunks(16).map(|c| c.iter().map(|x| x * x).sum()).collect());
        let s = symmetry_stats(inv, &lat, &phi).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.range < 1e-13 && s.std < 1e-13 && s.images == 256));
        // φ at site 0 is not; neither is Σ φ (under the flip)
        let site0 = |p: &[f64]| Ok(p.chunks(16).map(|c| c[0]).collect());
        assert!(symmetry_spread(site0, &lat, &phi).unwrap().iter().all(|&r| r > 0.1));
        let mag = |p: &[f64]| Ok(p.chunks(16).map(|c| c.iter().sum()).collect());
        assert!(symmetry_spread(mag, &lat, &phi).unwrap().iter().all(|&r| r > 0.1));
        assert!(symmetry_spread(inv, &lat, &phi[..15]).is_err());
        let bad = |_: &[f64]| Ok(vec![0.0; 3]);
        assert!(symmetry_spread(bad, &lat, &phi).is_err());
        // batches of 5 images give the same numbers as one call per configuration
        let mut calls = 0;
        let counted = |p: &[f64]| {
            calls += 1;
            site0(p)
        };
        assert_eq!(stats_batched(counted, &lat, &phi, 5 * 16).unwrap(), symmetry_stats(site0, &lat, &phi).unwrap());
        assert_eq!(calls, 2 * 256_usize.div_ceil(5));
        let nan = |p: &[f64]| Ok(p.chunks(16).map(|c| if c[0] > 0.5 { f64::NAN } else { 0.0 }).collect());
        assert!(symmetry_spread(nan, &lat, &phi).unwrap().iter().all(|r| r.is_nan()));
    }
}
