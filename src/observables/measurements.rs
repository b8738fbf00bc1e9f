//! Per-configuration measurements of φ⁴ fields, streamed into bins (SPEC §6).
//!
//! Memory stays bounded however long the chain: at most `max_records` records are kept per
//! primary observable, each the mean of `record_size` consecutive configurations. When the
//! records fill up, neighbouring pairs are merged and the record size doubles (a power of
//! two). Up to `max_records` configurations, every record is one configuration and the
//! analysis is the unbinned one. The configuration-level covariance of the primaries is
//! accumulated exactly, so τ_int is still reported in units of configurations.

use serde::{Deserialize, Serialize};

use crate::error::{check_finite, check_len, Error, Result};
use crate::lattice::Lattice;

/// The default bound on records kept per primary observable (2¹⁶: 19 MB at L = 64).
pub const DEFAULT_MAX_RECORDS: usize = 1 << 16;

/// The fewest records allowed (the jackknife wants ≥ 20 bins of a few records).
pub const MIN_MAX_RECORDS: usize = 64;

/// Index of M among the primaries.
pub(crate) const P_M: usize = 0;
/// Index of |M|.
pub(crate) const P_ABS_M: usize = 1;
/// Index of M².
pub(crate) const P_M2: usize = 2;
/// Index of M⁴.
pub(crate) const P_M4: usize = 3;
/// Index of C̃(0); C̃(t) is at P_CT + t.
pub(crate) const P_CT: usize = 4;

/// Streaming measurements of a sequence of fields on an L × L lattice (SPEC §6):
/// M = (1/V) Σ_x φ_x, |M|, M², M⁴, and the zero-momentum slice correlator
///
///   C̃(t) = (1/L) Σ_{x0} (1/V) Σ_y φ_y φ_{y+(x0,t)},  averaged over both axes,
///
/// so that G̃(t) = ⟨C̃(t)⟩ − ⟨M⟩² and L Σ_{t<L} C̃(t) = V M². It is computed from row and
/// column sums, C̃(t) = (1/(L V)) Σ_j S_j S_{j+t}, in O(V + L²) per field. Since C̃(t) = C̃(L − t)
/// exactly, only t = 0..=⌊L/2⌋ is stored.
///
/// The series accessors return records (bin means of `record_size()` configurations); the
/// configurations of an incomplete last record are counted in `n_measured()` and in the
/// covariance, but enter the analysis only once their record is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    l: usize,
    max_records: usize,
    record_size: usize,
    /// series[k][i]: primary k of record i (k: M, |M|, M², M⁴, C̃(0..=⌊L/2⌋)).
    series: Vec<Vec<f64>>,
    /// Sums of the primaries of the configurations of the incomplete record.
    partial: Vec<f64>,
    partial_n: usize,
    /// Configurations measured in total.
    n_measured: u64,
    /// The first configuration's primaries: the shift that keeps the moments accurate.
    shift: Vec<f64>,
    /// Σ (p − shift) over all configurations.
    sum: Vec<f64>,
    /// Σ (p − shift)(p − shift)ᵀ over all configurations, row-major n_prim × n_prim.
    outer: Vec<f64>,
}

impl Measurements {
    /// No measurements yet, for an L × L lattice (L ≥ 2), with the default record bound.
    pub fn new(l: usize) -> Result<Self> {
        Self::with_max_records(l, DEFAULT_MAX_RECORDS)
    }

    /// No measurements yet, keeping at most `max_records` (even, ≥ [`MIN_MAX_RECORDS`]) records.
    pub fn with_max_records(l: usize, max_records: usize) -> Result<Self> {
        Lattice::new(l)?;
        if max_records < MIN_MAX_RECORDS || max_records % 2 != 0 {
            return Err(Error::invalid(format!(
                "Measurements: max_records = {max_records} must be even and at least {MIN_MAX_RECORDS}"
            )));
        }
        let n_prim = P_CT + l / 2 + 1;
        Ok(Measurements {
            l,
            max_records,
            record_size: 1,
            series: vec![Vec::new(); n_prim],
            partial: vec![0.0; n_prim],
            partial_n: 0,
            n_measured: 0,
            shift: Vec::new(),
            sum: vec![0.0; n_prim],
            outer: vec![0.0; n_prim * n_prim],
        })
    }

    /// Measures one field (length V, x1 fastest, finite entries) and appends the results.
    pub fn push(&mut self, phi: &[f64]) -> Result<()> {
        check_len("Measurements::push: phi", phi.len(), self.l * self.l)?;
        check_finite("Measurements::push: phi", phi)?;
        self.measure(phi);
        Ok(())
    }

    /// Measures a batch of fields stored one after another (length n·V); nothing is appended
    /// unless the whole batch is valid.
    pub fn push_batch(&mut self, phi: &[f64]) -> Result<()> {
        let v = self.l * self.l;
        if phi.len() % v != 0 {
            return Err(Error::length("Measurements::push_batch: phi", phi.len(), (phi.len() / v + 1) * v));
        }
        check_finite("Measurements::push_batch: phi", phi)?;
        for field in phi.chunks_exact(v) {
            self.measure(field);
        }
        Ok(())
    }

    /// The primaries of one field: M, |M|, M², M⁴, C̃(0..=⌊L/2⌋).
    pub(crate) fn primaries(&self, phi: &[f64]) -> Vec<f64> {
        let l = self.l;
        let v = l * l;
        let mut rows = vec![0.0; l]; // R_{x0} = Σ_{x1} φ(x0, x1)
        let mut cols = vec![0.0; l]; // S_{x1} = Σ_{x0} φ(x0, x1)
        for (x0, row) in phi.chunks_exact(l).enumerate() {
            for (x1, &p) in row.iter().enumerate() {
                rows[x0] += p;
                cols[x1] += p;
            }
        }
        let m = rows.iter().sum::<f64>() / v as f64;
        let m2 = m * m;
        let mut p = vec![m, m.abs(), m2, m2 * m2];
        let norm = 1.0 / (2.0 * (l * v) as f64);
        for t in 0..=l / 2 {
            let mut c = 0.0;
            for j in 0..l {
                let k = (j + t) % l;
                c += rows[j] * rows[k] + cols[j] * cols[k];
            }
            p.push(c * norm);
        }
        p
    }

    fn measure(&mut self, phi: &[f64]) {
        let p = self.primaries(phi);
        let n_prim = p.len();
        if self.shift.is_empty() {
            self.shift = p.clone();
        }
        let d: Vec<f64> = p.iter().zip(&self.shift).map(|(a, s)| a - s).collect();
        for (a, row) in d.iter().zip(self.outer.chunks_exact_mut(n_prim)) {
            for (o, b) in row.iter_mut().zip(&d) {
                *o += a * b;
            }
        }
        for (s, x) in self.sum.iter_mut().zip(&d) {
            *s += x;
        }
        self.n_measured += 1;
        for (acc, x) in self.partial.iter_mut().zip(&p) {
            *acc += x;
        }
        self.partial_n += 1;
        if self.partial_n == self.record_size {
            let b = self.record_size as f64;
            for (s, acc) in self.series.iter_mut().zip(self.partial.iter_mut()) {
                s.push(*acc / b);
                *acc = 0.0;
            }
            self.partial_n = 0;
            if self.series[0].len() == self.max_records {
                self.merge_pairs();
            }
        }
    }

    /// Halves the records: neighbouring pairs become one record of twice the size.
    fn merge_pairs(&mut self) {
        for s in &mut self.series {
            let merged: Vec<f64> = s.chunks_exact(2).map(|c| 0.5 * (c[0] + c[1])).collect();
            *s = merged;
        }
        self.record_size *= 2;
    }

    /// The lattice size L.
    pub fn l(&self) -> usize {
        self.l
    }
    /// The number of configurations in complete records (those the analysis uses).
    pub fn len(&self) -> usize {
        self.series[0].len() * self.record_size
    }
    /// Whether no record is complete yet.
    pub fn is_empty(&self) -> bool {
        self.series[0].is_empty()
    }
    /// The number of configurations measured, including an incomplete last record.
    pub fn n_measured(&self) -> u64 {
        self.n_measured
    }
    /// Configurations per record (1 until `max_records` configurations were measured).
    pub fn record_size(&self) -> usize {
        self.record_size
    }
    /// The number of complete records.
    pub fn n_records(&self) -> usize {
        self.series[0].len()
    }
    /// The records of primary k (see the P_* indices).
    pub(crate) fn primary(&self, k: usize) -> &[f64] {
        &self.series[k]
    }
    /// The series (records) of M = (1/V) Σ_x φ_x.
    pub fn m(&self) -> &[f64] {
        &self.series[P_M]
    }
    /// The series of |M|.
    pub fn abs_m(&self) -> &[f64] {
        &self.series[P_ABS_M]
    }
    /// The series of M².
    pub fn m2(&self) -> &[f64] {
        &self.series[P_M2]
    }
    /// The series of M⁴.
    pub fn m4(&self) -> &[f64] {
        &self.series[P_M4]
    }
    /// The series of C̃(t) for any t (taken mod L; C̃(t) = C̃(L − t)).
    pub fn ctilde(&self, t: usize) -> &[f64] {
        let t = t % self.l;
        &self.series[P_CT + t.min(self.l - t)]
    }

    /// The configuration-level variance of Σ_k g_k p_k for a gradient over the primaries
    /// (pairs (k, g_k)), from all configurations measured: gᵀ C g.
    pub(crate) fn projected_variance(&self, grad: &[(usize, f64)]) -> f64 {
        let n = self.n_measured as f64;
        if self.n_measured < 2 {
            return f64::NAN;
        }
        let n_prim = self.sum.len();
        let mut var = 0.0;
        for &(a, ga) in grad {
            for &(b, gb) in grad {
                let c = self.outer[a * n_prim + b] / n - (self.sum[a] / n) * (self.sum[b] / n);
                var += ga * gb * c;
            }
        }
        var * n / (n - 1.0)
    }

    /// Forgets every measurement (e.g. after thermalisation), keeping L and the record bound.
    pub fn clear(&mut self) {
        *self = Measurements::with_max_records(self.l, self.max_records).expect("validated at creation");
    }

    /// Every number of the state, flat (for checkpoints), and the integers describing it:
    /// [l, max_records, record_size, partial_n, n_measured, n_records, shift length].
    pub(crate) fn to_flat(&self) -> (Vec<f64>, [u64; 7]) {
        let mut flat: Vec<f64> = self.series.iter().flatten().copied().collect();
        flat.extend_from_slice(&self.partial);
        flat.extend_from_slice(&self.sum);
        flat.extend_from_slice(&self.outer);
        flat.extend_from_slice(&self.shift);
        let ints = [
            self.l as u64,
            self.max_records as u64,
            self.record_size as u64,
            self.partial_n as u64,
            self.n_measured,
            self.n_records() as u64,
            self.shift.len() as u64,
        ];
        (flat, ints)
    }

    /// The inverse of [`Measurements::to_flat`], validated (a corrupt checkpoint is an error).
    pub(crate) fn from_flat(flat: &[f64], ints: [u64; 7]) -> Result<Self> {
        let bad = || Error::bad_file("measurements: inconsistent sizes");
        let us = |x: u64| usize::try_from(x).map_err(|_| bad());
        let (l, max_records) = (us(ints[0])?, us(ints[1])?);
        if l > 1 << 16 {
            return Err(bad());
        }
        let mut m = Measurements::with_max_records(l, max_records).map_err(|_| bad())?;
        let n_prim = m.series.len();
        let (n_rec, shift_len) = (us(ints[5])?, us(ints[6])?);
        let need = n_rec
            .checked_mul(n_prim)
            .and_then(|x| x.checked_add(2 * n_prim + n_prim * n_prim + shift_len))
            .ok_or_else(bad)?;
        if flat.len() != need {
            return Err(bad());
        }
        let mut rest = flat;
        let mut take = |n: usize| {
            let (a, b) = rest.split_at(n);
            rest = b;
            a.to_vec()
        };
        for s in &mut m.series {
            *s = take(n_rec);
        }
        m.partial = take(n_prim);
        m.sum = take(n_prim);
        m.outer = take(n_prim * n_prim);
        m.shift = take(shift_len);
        m.record_size = us(ints[2])?;
        m.partial_n = us(ints[3])?;
        m.n_measured = ints[4];
        m.validate()?;
        Ok(m)
    }

    /// Checks the internal consistency of a deserialised value (lengths, record size).
    pub(crate) fn validate(&self) -> Result<()> {
        let fresh = Measurements::with_max_records(self.l, self.max_records)?;
        let n_prim = fresh.series.len();
        let n_rec = self.series.first().map_or(0, |s| s.len());
        let ok = self.series.len() == n_prim
            && self.series.iter().all(|s| s.len() == n_rec)
            && n_rec < self.max_records
            && self.record_size.is_power_of_two()
            && self.partial.len() == n_prim
            && self.partial_n < self.record_size
            && self.sum.len() == n_prim
            && self.outer.len() == n_prim * n_prim
            && (self.shift.is_empty() || self.shift.len() == n_prim)
            && n_rec.checked_mul(self.record_size).and_then(|x| x.checked_add(self.partial_n))
                == usize::try_from(self.n_measured).ok();
        if !ok {
            return Err(Error::bad_file("measurements: inconsistent lengths or counters"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_and_keep_exact_means() {
        let l = 4;
        let mut binned = Measurements::with_max_records(l, 64).unwrap();
        let mut exact = Measurements::with_max_records(l, 1 << 12).unwrap();
        let mut phi = vec![0.0; l * l];
        for i in 0..1000 {
            crate::rng::Rng::new(3, crate::rng::Stream::Sample, i).fill_normal(&mut phi);
            binned.push(&phi).unwrap();
            exact.push(&phi).unwrap();
        }
        // 1000 configurations, at most 64 records: records of 16 (62 records = 992 configs)
        assert_eq!(binned.record_size(), 16);
        assert_eq!(binned.n_records(), 62);
        assert_eq!(binned.len(), 992);
        assert_eq!(binned.n_measured(), 1000);
        assert_eq!(exact.record_size(), 1);
        for k in 0..binned.series.len() {
            let mb = binned.series[k].iter().sum::<f64>() / 62.0;
            let me = exact.series[k][..992].iter().sum::<f64>() / 992.0;
            assert!((mb - me).abs() < 1e-13, "primary {k}: {mb} vs {me}");
        }
        // the configuration-level variance from the moments equals the direct one
        let m = exact.m();
        let mean = m.iter().sum::<f64>() / 1000.0;
        let direct = m.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 999.0;
        let v = binned.projected_variance(&[(P_M, 1.0)]);
        assert!((v / direct - 1.0).abs() < 1e-10, "{v} vs {direct}");
        let mut c = binned.clone();
        c.clear();
        assert_eq!((c.n_measured(), c.n_records(), c.record_size()), (0, 0, 1));
        assert!(binned.validate().is_ok());
        assert!(Measurements::with_max_records(4, 63).is_err());
        assert!(Measurements::with_max_records(4, 10).is_err());
    }
}
