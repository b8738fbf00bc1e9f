//! Transfer to a larger lattice: a kernel of short range seeds the same flow on any lattice, so
//! a configuration tiled from the small lattice maps to the tiled image (and log q scales with V).

mod common;
use common::*;
use eqflow::flow::{Architecture, Flow, KernelSymmetry};

fn tile(x: &[f64], ls: usize, l: usize) -> Vec<f64> {
    let mut out = vec![0.0; l * l];
    for x0 in 0..l {
        for x1 in 0..l {
            out[x0 * l + x1] = x[(x0 % ls) * ls + x1 % ls];
        }
    }
    out
}

fn check(arch: Architecture) {
    let (ls, l) = (4, 8);
    let mut small = random_flow(ls, arch.clone(), 0.5, 3);
    // keep only displacements shorter than L_small/2 so that tiling is exact
    let mut p = small.params().to_vec();
    let per = small.layout.n_tc * small.layout.n_c;
    for r in 0..ls * ls {
        let fold = |x: usize| x.min(ls - x);
        let far = fold(r / ls) >= ls / 2 || fold(r % ls) >= ls / 2;
        let o = small.layout.orbit_of[r];
        if far {
            for k in 0..per {
                p[small.layout.w.start + o * per + k] = 0.0;
            }
        }
    }
    small.set_params(&p).unwrap();
    let mut big = random_flow(l, arch, 0.0, 9);
    big.transfer_from(&small).unwrap();
    let z = noise(ls * ls, 4);
    let s = small.push_forward(&z).unwrap();
    let b = big.push_forward(&tile(&z, ls, l)).unwrap();
    let want = tile(&s.phi, ls, l);
    let err = b.phi.iter().zip(&want).map(|(a, w)| (a - w).abs()).fold(0.0, f64::max);
    let ratio = (l * l / (ls * ls)) as f64;
    println!("transfer 4 → 8: |Δφ| {err:.1e}, log q {} vs {} × {}", b.log_q[0], ratio, s.log_q[0]);
    assert!(err < 1e-12);
    assert!((b.log_q[0] - ratio * s.log_q[0]).abs() < 1e-9 * b.log_q[0].abs());
    // the same lattice: identical parameters
    let mut same = random_flow(ls, small.config.arch.clone(), 0.0, 1);
    same.transfer_from(&small).unwrap();
    assert_eq!(same.params(), small.params());
    // errors: a larger source, another architecture
    assert!(small.transfer_from(&big).is_err());
    let mut other = random_flow(l, small_arch(true), 0.0, 1);
    assert!(other.transfer_from(&small).is_err());
}

#[test]
fn transfer_of_short_range_kernels_is_exact_on_tiled_fields() {
    check(small_arch(false));
    let mut t = small_arch(false);
    t.symmetry = KernelSymmetry::Translations;
    check(t);
    let _: Option<Flow> = None;
}

/// Widening (more frequencies, a finer time kernel) keeps the flow: same samples, same log q.
fn check_widening(arch: Architecture, freqs: usize, d_t: usize) {
    let l = 4;
    let mut small = random_flow(l, arch.clone(), 0.5, 5);
    let mut wide_arch = arch;
    wide_arch.n_frequencies = freqs;
    wide_arch.time_kernel_size = d_t;
    let mut wide = random_flow(l, wide_arch.clone(), 0.0, 8);
    wide.transfer_from(&small).unwrap();
    let z = noise(2 * l * l, 6);
    let (s, w) = (small.push_forward(&z).unwrap(), wide.push_forward(&z).unwrap());
    let err = s.phi.iter().zip(&w.phi).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let dlq = s.log_q.iter().zip(&w.log_q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("widen {:?} to {freqs} frequencies, d_t {d_t}: |Δφ| {err:.1e}, |Δlog q| {dlq:.1e}", wide_arch.time_kernel);
    assert!(err < 1e-12 && dlq < 1e-10, "{err} {dlq}");
    // the widened flow is not the small one's parameters by accident: it has new, trainable ones
    assert!(wide.params().len() > small.params().len());
    // and it can grow further on a larger lattice in one go
    let mut big = random_flow(2 * l, wide_arch, 0.0, 8);
    big.transfer_from(&small).unwrap();
}

#[test]
fn widening_keeps_the_flow_and_rejects_what_does_not_embed() {
    check_widening(small_arch(false), 5, 4);
    check_widening(small_arch(false), 5, 7); // hat 4 → 7 nodes
    check_widening(small_arch(false), 3, 10);
    check_widening(small_arch(true), 6, 7); // Fourier 3 → 7 modes, with both mixings
    let mut non_odd = small_arch(false);
    non_odd.features = eqflow::flow::FeatureKind::NonOdd;
    non_odd.linear_feature = true;
    check_widening(non_odd, 4, 4);
    let small = random_flow(4, small_arch(false), 0.5, 5);
    for (freqs, d_t, why) in [(2, 4, "fewer frequencies"), (3, 6, "hat 4 → 6"), (3, 3, "coarser")] {
        let mut a = small_arch(false);
        a.n_frequencies = freqs;
        a.time_kernel_size = d_t;
        let mut f = random_flow(4, a, 0.0, 1);
        let e = f.transfer_from(&small).unwrap_err();
        println!("{why}: {}", e.message);
    }
}

/// The dilated kernel against a direct evaluation on displacements (through each lattice's own
/// orbit table, not the orbit-index formula the method uses): displacement (x0, x1) with folded
/// distances beyond `keep` takes r^-p times the small kernel interpolated bilinearly at the
/// folded distances over r; the others keep the small kernel at the same displacement.
fn check_dilation(ls: usize, l: usize, power: f64, keep: usize) {
    let small = random_flow(ls, small_arch(false), 0.5, 3);
    let mut big = random_flow(l, small_arch(false), 0.0, 9);
    big.transfer_from(&small).unwrap();
    big.dilate_kernel(ls, power, keep).unwrap();
    let (sl, bl) = (&small.layout, &big.layout);
    let per = sl.n_tc * sl.n_c;
    assert_eq!(per, bl.n_tc * bl.n_c);
    let fold = |x: usize, n: usize| x.min(n - x);
    let ws = |i: usize, j: usize, k: usize| small.params()[sl.w.start + sl.orbit_of[i * ls + j] * per + k];
    let r = l as f64 / ls as f64;
    let mut worst = 0.0f64;
    for d in 0..l * l {
        let (a, b) = (fold(d / l, l), fold(d % l, l));
        for k in 0..per {
            let got = big.params()[bl.w.start + bl.orbit_of[d] * per + k];
            let want = if a.max(b) <= keep {
                ws(a, b, k)
            } else {
                let (x, y) = (a as f64 / r, b as f64 / r);
                let (i0, j0) = (x.floor() as usize, y.floor() as usize);
                let (i1, j1) = ((i0 + 1).min(ls / 2), (j0 + 1).min(ls / 2));
                let (fx, fy) = (x - i0 as f64, y - j0 as f64);
                r.powf(-power)
                    * ((1.0 - fx) * (1.0 - fy) * ws(i0, j0, k)
                        + fx * (1.0 - fy) * ws(i1, j0, k)
                        + (1.0 - fx) * fy * ws(i0, j1, k)
                        + fx * fy * ws(i1, j1, k))
            };
            worst = worst.max((got - want).abs());
        }
    }
    println!("dilate {ls} → {l}, power {power}, keep {keep}: max |ΔW| {worst:.1e}");
    assert!(worst < 1e-12);
    // everything but W is the plain transfer's
    let mut plain = random_flow(l, small_arch(false), 0.0, 9);
    plain.transfer_from(&small).unwrap();
    let (p, q) = (plain.params(), big.params());
    assert_eq!(p[..bl.w.start], q[..bl.w.start]);
    assert_eq!(p[bl.w.end..], q[bl.w.end..]);
}

#[test]
fn dilation_interpolates_the_small_kernel_and_rejects_what_it_cannot_do() {
    check_dilation(4, 8, 2.0, 0);
    check_dilation(4, 6, 1.0, 1);
    check_dilation(6, 10, 0.5, 3);
    let small = random_flow(4, small_arch(false), 0.5, 3);
    let mut big = random_flow(8, small_arch(false), 0.0, 9);
    big.transfer_from(&small).unwrap();
    assert!(big.dilate_kernel(8, 1.0, 0).is_err(), "a source as large as the flow");
    assert!(big.dilate_kernel(4, f64::NAN, 0).is_err(), "a NaN power");
    let mut t = small_arch(false);
    t.symmetry = KernelSymmetry::Translations;
    assert!(random_flow(8, t, 0.0, 1).dilate_kernel(4, 1.0, 0).is_err(), "translations only");
}
