//! Tests of the CUDA backend. Without a GPU: the struct mirrors against the C header, the
//! kernel names against the PTX, the no-device paths, and the sampler's kernel sequence on
//! the CPU twins against the CPU flow. With a driver and a device: every kernel against its
//! CPU twin on random inputs (outputs poisoned with NaN before each run; f32 normwise
//! relative error < 1e-5, f64 < 1e-12; NaN never passes), and the whole sampler. Without one
//! the GPU tests print "skipped: no CUDA driver" (or "no CUDA device") and pass.

use super::conv::{Conv, ConvPath};
use super::device::{self, Device, SOURCES};
use super::emulate::{emulator, Emulator};
use super::launch::{self, FeatureDims, FieldDims, Launcher, Pod, RealOut, SpectralMix, ENTRIES};
use super::sampler::{self, sample_on_twins, CudaFlow};
use super::{args, train, twin, Elem};
use crate::error::Status;
use crate::flow::config::{Architecture, FeatureKind};
use crate::flow::model::{Flow, FlowConfig, Precision, Samples};
use crate::rng::{Rng, Stream};
use crate::train::Gradient;
use std::sync::Arc;

fn noise(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut x = vec![0.0; n];
    Rng::new(seed, Stream::Init, 4242).fill_normal(&mut x);
    x.iter().map(|v| v * scale).collect()
}

/// max |got − want| / max |want|, with NaN anywhere in `got` (or a length mismatch) failing.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got.iter().all(|x| x.is_finite()), "{what}: non-finite output");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(f64::MIN_POSITIVE);
    let err = got.iter().zip(want).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
    assert!(err < tol, "{what}: relative error {err:e} >= {tol:e}");
}

fn to64<R: Elem>(x: &[R]) -> Vec<f64> {
    x.iter().map(|v| v.f64()).collect()
}

fn tol<R: Elem>() -> f64 {
    if R::SUFFIX == "f32" {
        1e-5
    } else {
        1e-12
    }
}

/// A flow at side `l` with random vector-field weights (the initial W = 0 is the identity).
fn random_flow(l: usize, arch: Architecture, precision: Precision, seed: u64) -> Flow {
    let mut c = FlowConfig::new(l, -4.0, 6.975);
    c.arch = arch;
    c.sample_precision = precision;
    c.seed = seed;
    let mut f = Flow::new(c, 1).unwrap();
    let mut p = f.params().to_vec();
    let w = f.layout.w.clone();
    let scale = 0.3 / ((f.layout.n_c * f.volume()) as f64).sqrt();
    let r = noise(w.len(), seed + 1, scale);
    p[w].copy_from_slice(&r);
    f.set_params(&p).unwrap();
    f
}

fn small(mut a: Architecture, steps: usize) -> Architecture {
    a.ode_steps = steps;
    a
}

fn assert_samples(what: &str, got: &Samples, want: &Samples, tol: f64) {
    assert_close(&format!("{what}: phi"), &got.phi, &want.phi, tol);
    assert_close(&format!("{what}: log q"), &got.log_q, &want.log_q, tol);
    assert_close(&format!("{what}: S"), &got.action, &want.action, tol);
}

// ---------------------------------------------------------------- no GPU needed

#[test]
fn args_match_header() {
    // the embedded copy, so the test also runs where the sources are not (scripts/gpu-check.sh)
    let text = device::HEADER;
    // every struct of the header has a mirror, and no mirror lacks a struct
    let mut declared: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("typedef struct "))
        .map(|l| l.trim_end_matches('{').trim().to_string())
        .collect();
    let layouts = args::layouts();
    let mut mirrored: Vec<String> = layouts.iter().map(|l| l.0.to_string()).collect();
    declared.sort();
    mirrored.sort();
    assert_eq!(declared, mirrored, "structs of eqflow_kernel_args.h vs src/cuda/args.rs");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let dir = std::env::temp_dir().join(format!("eqflow-args-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("eqflow_kernel_args.h"), text).unwrap();
    let mut prog =
        "#include <stdio.h>\n#include <stddef.h>\n#include \"eqflow_kernel_args.h\"\nint main(void) {\n".to_string();
    for (name, _, fields) in &layouts {
        prog += &format!("  printf(\"{name} %zu\\n\", sizeof({name}));\n");
        for (f, _) in fields {
            prog += &format!("  printf(\"{name}.{f} %zu\\n\", offsetof({name}, {f}));\n");
        }
    }
    prog += "  return 0;\n}\n";
    std::fs::write(dir.join("layout.c"), prog).unwrap();
    let exe = dir.join("layout");
    let built = std::process::Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(dir.join("layout.c"))
        .status();
    match built {
        Err(e) => {
            eprintln!("skipped: no C compiler ({cc}: {e})");
            return;
        }
        Ok(s) => assert!(s.success(), "compiling the layout program failed"),
    }
    let out = std::process::Command::new(&exe).output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let mut c: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in out.lines() {
        let (k, v) = line.split_once(' ').unwrap();
        c.insert(k.to_string(), v.parse().unwrap());
    }
    for (name, size, fields) in &layouts {
        assert_eq!(c[*name], *size, "sizeof({name})");
        for (f, off) in fields {
            assert_eq!(c[&format!("{name}.{f}")], *off, "offsetof({name}, {f})");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn field_constants_match_the_header_and_blocks_cover_the_pairs() {
    let header = device::HEADER;
    let define = |name: &str| -> usize {
        let line = header.lines().find(|l| l.starts_with(&format!("#define {name} "))).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    assert_eq!(launch::field_lmax::<f32>(), define("FIELD_LMAX_F32"));
    assert_eq!(launch::field_lmax::<f64>(), define("FIELD_LMAX_F64"));
    assert_eq!(launch::FIELD_SMALL_LMAX, define("FIELD_SMALL_LMAX"));
    for l in (2..=64).step_by(2) {
        let (h, t) = (l / 2 + 1, launch::field_threads(l) as usize);
        let max =
            if l <= launch::FIELD_SMALL_LMAX { define("FIELD_SMALL_MAX_THREADS") } else { define("FIELD_MAX_THREADS") };
        // the kernel's ACC: one column pair per thread on the small entry points, two otherwise
        let acc = if l <= launch::FIELD_SMALL_LMAX { 1 } else { 2 };
        assert!(t % 32 == 0 && t <= max, "L = {l}: {t} threads");
        assert!(l / 2 * h <= acc * t, "L = {l}: column pairs without a thread");
        assert!(l * h.div_ceil(2) <= 2 * t, "L = {l}: row pairs in more than two rounds");
    }
    assert_eq!(launch::field_threads(32), 288);
    assert_eq!(launch::field_threads(64), 544);
}

#[test]
fn launched_entry_points_are_exactly_the_kernels() {
    // every launch names an entry point of its file's PTX, and every kernel is launched
    let mut launched = Vec::new();
    for (file, name, typed) in ENTRIES {
        let src = SOURCES.iter().find(|s| s.name == file).unwrap_or_else(|| panic!("no kernel file {file}"));
        let names: Vec<String> =
            if typed { vec![format!("{name}_f32"), format!("{name}_f64")] } else { vec![name.into()] };
        for n in names {
            assert!(src.ptx.contains(&format!(".entry {n}(")), "{file}.ptx has no entry {n}");
            launched.push(n);
        }
    }
    let mut kernels: Vec<String> = SOURCES
        .iter()
        .flat_map(|s| s.cu.lines())
        .filter_map(super::emulate::entry_declaration)
        .map(|l| l.split('(').next().unwrap().to_string())
        .collect();
    kernels.sort();
    launched.sort();
    assert_eq!(kernels, launched);
}

#[test]
fn ptx_targets_compute_70_with_the_stated_isa() {
    for s in &SOURCES {
        assert!(s.ptx.contains("\n.target sm_70\n"), "{}.ptx: not compute_70", s.name);
        let isa = device::PTX_ISA.split(' ').next().unwrap();
        assert!(s.ptx.contains(&format!("\n.version {isa}\n")), "{}.ptx: not PTX ISA {isa}", s.name);
        let standalone = device::standalone_source(s.cu);
        assert!(!standalone.contains("#include"), "{}.cu: an #include NVRTC would not find", s.name);
        assert!(standalone.contains("EQFLOW_KERNEL_ARGS_H"));
    }
}

#[test]
fn no_driver_means_no_device_and_no_abort() {
    if device::driver_present() {
        eprintln!("skipped: a CUDA driver is present (this test checks machines without one)");
        return;
    }
    assert!(!device::available());
    assert_eq!(device::driver_version(), None);
    let e = device::device_count().unwrap_err();
    assert_eq!(e.status, Status::NoDevice);
    assert!(e.message.contains("libcuda.so.1"), "{}", e.message);
    let e = Device::new(0).unwrap_err();
    assert_eq!(e.status, Status::NoDevice);
    let flow = random_flow(3, small(Architecture::seed(), 2), Precision::F64, 1);
    assert!(Device::new(0).and_then(|d| CudaFlow::new(&flow, d)).is_err());
}

#[test]
fn kernel_sequence_on_twins_reproduces_the_cpu_flow() {
    let mut refined = small(Architecture::refined(), 4);
    refined.n_frequencies = 5;
    refined.feature_mixing = Some(4);
    refined.time_mixing = Some(3);
    refined.time_kernel_size = 5;
    let mut non_odd = small(Architecture::seed(), 3);
    non_odd.features = FeatureKind::NonOdd;
    non_odd.n_frequencies = 6;
    non_odd.linear_feature = true;
    let mut seed = small(Architecture::seed(), 9);
    seed.n_frequencies = 8;
    for (name, arch, l) in [("seed", seed, 5), ("refined", refined, 4), ("non-odd", non_odd, 3)] {
        for precision in [Precision::F64, Precision::F32] {
            let mut flow = random_flow(l, arch.clone(), precision, 11);
            let want = flow.sample_at(Stream::Sample, 7, 10).unwrap();
            // in chunks of 4 fields: 4 + 4 + 2
            let got = sample_on_twins(&flow, Stream::Sample, 7, 10, 4).unwrap();
            // f32: the CPU flow convolves by FFT or orbits, the twins densely
            let t = if precision == Precision::F64 { 1e-12 } else { 1e-5 };
            assert_samples(&format!("{name} {precision:?}"), &got, &want, t);
            // the flow moved the fields: the test is not one of the identity map
            let prior = twin::prior_normal::<f64>(flow.config.seed, Stream::Sample, 7, 10, l * l);
            let moved = got.phi.iter().zip(&prior).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(moved > 1e-2, "{name}: the flow barely moved the fields ({moved:e})");
        }
    }
}

/// The configurations of `gpu_sampler_matches_cpu_flow`.
fn sampler_cases() -> Vec<(&'static str, Architecture, usize)> {
    let mut refined = small(Architecture::refined(), 10);
    refined.n_frequencies = 9;
    vec![("seed", small(Architecture::seed(), 18), 6), ("refined", refined, 5)]
}

#[test]
fn sampler_tolerances_hold_between_cpu_summation_orders() {
    // the twins convolve densely, the CPU flow by FFT (L = 6) or orbits (L = 5): the GPU
    // test's tolerances must hold between two such orders of summation
    for (name, arch, l) in sampler_cases() {
        for precision in [Precision::F64, Precision::F32] {
            let mut flow = random_flow(l, arch.clone(), precision, 3);
            let want = flow.sample_at(Stream::Sample, 40, 33).unwrap();
            let got = sample_on_twins(&flow, Stream::Sample, 40, 33, 8).unwrap();
            let t = if precision == Precision::F64 { 1e-12 } else { 1e-4 };
            assert_samples(&format!("{name} {precision:?}"), &got, &want, t);
        }
    }
}

#[test]
fn metropolis_twin_is_the_chains_accept_reject() {
    // a target close to the prior (a light free field on 2 × 2 sites), so that the chain
    // both accepts and rejects
    let mut c = FlowConfig::new(2, 1.0, 0.0);
    c.arch = small(Architecture::seed(), 3);
    let flow = Flow::new(c, 1).unwrap();
    let (seed, m) = (77u64, 200usize);
    let mut chain = crate::mcmc::metropolis::Chain::new(&flow, seed);
    let flags = chain.step(m as u64).unwrap();
    let v = flow.volume();
    let mut z = vec![0.0; m * v];
    for (i, zi) in z.chunks_mut(v).enumerate() {
        Rng::new(seed, Stream::Sample, i as u64).fill_normal(zi);
    }
    let prop = flow.snapshot().push_forward(&z).unwrap();
    let u = twin::uniform(seed, Stream::Metropolis, 0, 0, m);
    let (state, accepted) = twin::metropolis(&prop.log_q, &prop.action, &u, None);
    assert_eq!(accepted.iter().map(|&a| a == 1).collect::<Vec<_>>(), flags);
    let n_acc = flags.iter().filter(|&&a| a).count();
    assert!((5..195).contains(&n_acc), "a trivial chain: {n_acc} of {m} accepted");
    let last = *state.last().unwrap() as usize;
    assert_eq!(chain.state().unwrap().phi, prop.phi[last * v..(last + 1) * v]);
}

// ---------------------------------------------------------------- on a GPU

/// The device, or None (printing why) on machines without one.
fn gpu() -> Option<Arc<Device>> {
    if !device::driver_present() {
        eprintln!("skipped: no CUDA driver");
        return None;
    }
    match Device::new(0) {
        Ok(d) => Some(d),
        Err(e) if e.status == Status::NoDevice => {
            eprintln!("skipped: no CUDA device ({})", e.message);
            None
        }
        Err(e) => panic!("CUDA device 0: {e}"),
    }
}

fn up<L: Launcher, T: Pod>(d: &L, x: &[T]) -> L::Buf<T> {
    d.upload(x).unwrap()
}

fn down<L: Launcher, T: Pod>(d: &L, x: &L::Buf<T>) -> Vec<T> {
    d.download(x).unwrap()
}

/// An output buffer of n NaNs.
fn poisoned<L: Launcher, R: Elem>(d: &L, n: usize) -> L::Buf<R> {
    up(d, &vec![R::nan(); n])
}

/// The kernel-against-twin checks, written once for the device and the host emulation.
mod checks {
    use super::*;

    pub fn rng<L: Launcher>(d: &L) {
        for (seed, stream, index) in
            [(0u64, Stream::Sample, 0u64), (u64::MAX, Stream::Train, 1 << 40), (12345, Stream::Hmc, 77)]
        {
            let mut out = up(d, &vec![0xdead_beefu32; 4 * 37]);
            launch::philox_words(d, &mut out, seed, stream as u32, index, 37).unwrap();
            assert_eq!(down(d, &out), twin::philox_words(seed, stream, index, 37));
            let mut u = poisoned::<L, f64>(d, 50);
            launch::uniform(d, &mut u, seed, stream as u32, index, 3, 50).unwrap();
            assert_eq!(down(d, &u), twin::uniform(seed, stream, index, 3, 50));
        }
        fn normals<L: Launcher, R: Elem>(d: &L) {
            for (n, v) in [(3, 25), (4, 36), (1, 1)] {
                let mut z = poisoned::<L, R>(d, n * v);
                launch::prior_normal(d, &mut z, 99, Stream::Sample as u32, 5, n, v).unwrap();
                let want = twin::prior_normal::<R>(99, Stream::Sample, 5, n, v);
                // the Philox words are exact; log, sqrt and sincos may differ in the last ulp
                assert_close(&format!("normals {}", R::SUFFIX), &to64(&down(d, &z)), &to64(&want), tol::<R>());
            }
        }
        normals::<L, f32>(d);
        normals::<L, f64>(d);
    }

    pub fn action<L: Launcher>(d: &L) {
        fn run<L: Launcher, R: Elem>(d: &L) {
            // l = 17 with 5 fields: more sites than threads per block, and a partial last block
            for l in [2, 3, 8, 17] {
                let n = 5;
                let phi: Vec<R> = noise(n * l * l, l as u64, 1.0).iter().map(|&x| R::of(x)).collect();
                let p = up(d, &phi);
                let mut s = poisoned::<L, f64>(d, n);
                launch::action(d, &p, &mut s, -4.0, 6.975, n, l).unwrap();
                assert_close("action", &down(d, &s), &twin::action(&phi, -4.0, 6.975, l), 1e-12);
                let mut f = poisoned::<L, f64>(d, n * l * l);
                launch::force(d, &p, &mut f, -4.0, 6.975, n, l).unwrap();
                assert_close("force", &down(d, &f), &twin::force(&phi, -4.0, 6.975, l), 1e-12);
            }
        }
        run::<L, f32>(d);
        run::<L, f64>(d);
    }

    pub fn field<L: Launcher>(d: &L) {
        fn run<L: Launcher, R: Elem>(d: &L) {
            let r = |n: usize, seed: u64, s: f64| -> Vec<R> { noise(n, seed, s).iter().map(|&x| R::of(x)).collect() };
            for (l, n, n_omega, kind, linear) in [
                (3, 2, 4, FeatureKind::Odd, false),
                (6, 3, 7, FeatureKind::NonOdd, true),
                (8, 2, 5, FeatureKind::Odd, true),
            ] {
                let v = l * l;
                let n_h = if kind == FeatureKind::Odd { n_omega } else { 2 * n_omega + 1 } + linear as usize;
                let (u, omega) = (r(n * v, 1, 1.0), r(n_omega, 2, 1.0));
                let (th, tp) = twin::features(&u, &omega, kind, linear, v);
                let (du, dom) = (up(d, &u), up(d, &omega));
                let (mut h, mut hp) = (poisoned::<L, R>(d, n * n_h * v), poisoned::<L, R>(d, n * n_h * v));
                let dims = FeatureDims { n, v, n_omega, n_h, kind: (kind == FeatureKind::NonOdd) as u32, linear };
                launch::features(d, &du, &dom, &mut h, &mut hp, dims).unwrap();
                assert_close("features h", &to64(&down(d, &h)), &to64(&th), tol::<R>());
                assert_close("features h'", &to64(&down(d, &hp)), &to64(&tp), tol::<R>());

                let n_c = 3;
                let f = r(n_c * n_h, 3, 0.3);
                let mut g = poisoned::<L, R>(d, n * n_c * v);
                launch::mix(d, &up(d, &f), &h, &mut g, n, v, n_h, n_c).unwrap();
                let tg = twin::mix(&f, &th, n_c, n_h, v);
                assert_close("mix", &to64(&down(d, &g)), &to64(&tg), tol::<R>());

                let w = r(n_c * v, 4, 0.2);
                let mut out = poisoned::<L, R>(d, n * v);
                launch::conv_direct(d, &up(d, &w), &g, &mut out, n, l, n_c).unwrap();
                let want = twin::conv(&w, &tg, l, n_c);
                assert_close("conv", &to64(&down(d, &out)), &to64(&want), tol::<R>());
                // and against the direct sum of the CPU code, in f64
                let mut direct = vec![0.0; n * v];
                crate::flow::conv::direct::forward(l, n_c, &to64(&w), &to64(&tg), &mut direct);
                assert_close("conv (direct sum)", &to64(&down(d, &out)), &direct, tol::<R>());

                let beta = r(n_h, 5, 0.5);
                let mut div = poisoned::<L, f64>(d, n);
                launch::divergence(d, &hp, &up(d, &beta), &mut div, n, v, n_h).unwrap();
                assert_close("divergence", &down(d, &div), &twin::divergence(&tp, &beta, v), tol::<R>());

                let mut lr = poisoned::<L, f64>(d, n);
                launch::log_prior(d, &du, &mut lr, n, v).unwrap();
                assert_close("log prior", &down(d, &lr), &twin::log_prior(&u, v), 1e-12);
            }
        }
        run::<L, f32>(d);
        run::<L, f64>(d);
    }

    pub fn rk4<L: Launcher>(d: &L) {
        fn run<L: Launcher, R: Elem>(d: &L) {
            let r = |n: usize, seed: u64| -> Vec<R> { noise(n, seed, 1.0).iter().map(|&x| R::of(x)).collect() };
            let (n, v) = (3, 25);
            let (phi, k) = (r(n * v, 1), r(n * v, 2));
            let c = R::of(0.5 / 54.0);
            let mut u = poisoned::<L, R>(d, n * v);
            launch::rk4_point(d, &up(d, &phi), &up(d, &k), &mut u, c.f64(), n * v).unwrap();
            assert_close("rk4 point", &to64(&down(d, &u)), &to64(&twin::rk4_point(&phi, &k, c)), tol::<R>());
            let ks: Vec<Vec<R>> = (0..4).map(|i| r(n * v, 10 + i)).collect();
            let ds: Vec<Vec<f64>> = (0..4).map(|i| noise(n, 20 + i, 1.0)).collect();
            let nd0 = noise(n, 30, 1.0);
            let mut cur = up(d, &phi);
            let kd: Vec<L::Buf<R>> = ks.iter().map(|x| up(d, x)).collect();
            let dd: Vec<L::Buf<f64>> = ds.iter().map(|x| up(d, x)).collect();
            let mut nd = up(d, &nd0);
            launch::rk4_combine(
                d,
                &mut cur,
                [&kd[0], &kd[1], &kd[2], &kd[3]],
                [&dd[0], &dd[1], &dd[2], &dd[3]],
                &mut nd,
                1.0 / 54.0,
                n,
                v,
            )
            .unwrap();
            let (mut tc, mut tn) = (phi.clone(), nd0.clone());
            twin::rk4_combine(
                &mut tc,
                [&ks[0], &ks[1], &ks[2], &ks[3]],
                [&ds[0], &ds[1], &ds[2], &ds[3]],
                &mut tn,
                1.0 / 54.0,
            );
            assert_close("rk4 combine", &to64(&down(d, &cur)), &to64(&tc), tol::<R>());
            assert_close("rk4 log-density", &down(d, &nd), &tn, 1e-12);
        }
        run::<L, f32>(d);
        run::<L, f64>(d);
    }

    pub fn metropolis<L: Launcher>(d: &L) {
        let m = 500;
        let log_q = noise(m, 1, 3.0);
        let mut action = noise(m, 2, 3.0);
        action[17] = f64::NAN;
        action[18] = f64::INFINITY;
        for cur in [None, Some((0.5, -1.0))] {
            let got = sampler::metropolis(d, 9, 1000, &log_q, &action, cur).unwrap();
            let u = twin::uniform(9, Stream::Metropolis, 1000, 0, m);
            assert_eq!(got, twin::metropolis(&log_q, &action, &u, cur));
        }
    }

    /// spectral.cu: each pass against its twin, and the convolution by both paths (conv.rs)
    /// against the direct sums of `flow::conv::direct`.
    pub fn spectral<L: Launcher>(d: &L) {
        fn run<L: Launcher, R: Elem>(d: &L) {
            let r = |n: usize, seed: u64| -> Vec<R> { noise(n, seed, 1.0).iter().map(|&x| R::of(x)).collect() };
            let t = tol::<R>();
            // L = 2, 8, 16, 64 by the FFT form of the passes, 3, 5, 6 by the DFT form
            for (l, n, n_c) in [(2, 2, 1), (3, 3, 2), (5, 2, 3), (6, 3, 2), (8, 2, 3), (16, 2, 2), (64, 1, 2)] {
                let (v, sl) = (l * l, |m: usize| launch::spectrum_len(m, l));
                let conv = Conv::<L, R>::new(d, ConvPath::Spectral, l, n_c).unwrap();
                let tw = conv.twiddles().unwrap();
                let what = |p: &str| format!("{p} (L = {l}, {})", R::SUFFIX);
                // the passes, each on inputs rounded to R
                let x = r(n * n_c * v, 1);
                let mut rows = poisoned::<L, R>(d, sl(n * n_c));
                launch::dft_rows(d, tw, &up(d, &x), &mut rows, n * n_c, l).unwrap();
                assert_close(&what("dft rows"), &to64(&down(d, &rows)), &twin::spectral::dft_rows(&to64(&x), l), t);
                let s = r(sl(n * n_c), 2);
                for inverse in [false, true] {
                    let mut cols = poisoned::<L, R>(d, sl(n * n_c));
                    launch::dft_cols(d, tw, &up(d, &s), &mut cols, n * n_c, l, inverse).unwrap();
                    let want = twin::spectral::dft_cols(&to64(&s), l, inverse);
                    assert_close(&what("dft cols"), &to64(&down(d, &cols)), &want, t);
                }
                let mut real = poisoned::<L, R>(d, n * n_c * v);
                launch::dft_c2r(d, tw, &up(d, &s), RealOut::Write(&mut real), n * n_c, l, 0.3).unwrap();
                let want = twin::spectral::dft_c2r(&to64(&s), l, 0.3);
                assert_close(&what("dft c2r"), &to64(&down(d, &real)), &want, t);
                let base = noise(n * n_c * v + 5, 3, 1.0);
                let mut acc = up(d, &base);
                launch::dft_c2r(d, tw, &up(d, &s), RealOut::Add(&mut acc, 5), n * n_c, l, 0.3).unwrap();
                let mut want_acc = base.clone();
                want_acc[5..].iter_mut().zip(&want).for_each(|(a, w)| *a += w);
                assert_close(&what("dft c2r (add)"), &down(d, &acc), &want_acc, t);
                for (mode, nw, nx, no) in [
                    (SpectralMix::Forward, n_c, n * n_c, n),
                    (SpectralMix::Input, n_c, n, n * n_c),
                    (SpectralMix::Kernel, n, n * n_c, n_c),
                ] {
                    let (w, x) = (r(sl(nw), 4), r(sl(nx), 5));
                    let mut out = poisoned::<L, R>(d, sl(no));
                    launch::spectral_mix(d, mode, &up(d, &w), &up(d, &x), &mut out, n, l, n_c).unwrap();
                    let want = twin::spectral::mix(mode as u32, &to64(&w), &to64(&x), n, l, n_c);
                    assert_close(&what(&format!("spectral mix {mode:?}")), &to64(&down(d, &out)), &want, t);
                }
                // the convolution, forward and backward, by both paths against the direct sums
                let (w, g, kbar) = (r(n_c * v, 6), r(n * n_c * v, 7), r(n * v, 8));
                let mut want = vec![0.0; n * v];
                crate::flow::conv::direct::forward(l, n_c, &to64(&w), &to64(&g), &mut want);
                let mut want_a = vec![0.0; n * n_c * v];
                let mut want_wbar = vec![0.0; n_c * v];
                crate::flow::conv::direct::backward(
                    l,
                    n_c,
                    &to64(&w),
                    &to64(&kbar),
                    &to64(&g),
                    &mut want_a,
                    &mut want_wbar,
                );
                let dims = FieldDims { n_slots: 3, n_c, n_h: 1, n_tc: 1, n_orb: 1, l };
                let wbar0 = noise(3 * n_c * v, 9, 1.0);
                let mut want_all = wbar0.clone();
                want_all[n_c * v..2 * n_c * v].iter_mut().zip(&want_wbar).for_each(|(a, w)| *a += w);
                for path in [ConvPath::Direct, ConvPath::Spectral] {
                    let c = Conv::<L, R>::new(d, path, l, n_c).unwrap();
                    let p = c.prepare(d, up(d, &w)).unwrap();
                    let mut s = c.scratch(d, n + 1).unwrap();
                    let (dg, dk) = (up(d, &g), up(d, &kbar));
                    let mut out = poisoned::<L, R>(d, n * v);
                    c.forward(d, &p, &dg, &mut out, n, &mut s).unwrap();
                    assert_close(&what(&format!("{path:?} forward")), &to64(&down(d, &out)), &want, t);
                    let mut a = poisoned::<L, R>(d, n * n_c * v);
                    let mut wbar = up(d, &wbar0);
                    c.backward(d, &p, &dk, &dg, &mut a, &mut wbar, true, n, 1, dims, &mut s).unwrap();
                    assert_close(&what(&format!("{path:?} backward a")), &to64(&down(d, &a)), &want_a, t);
                    assert_close(&what(&format!("{path:?} backward wbar")), &down(d, &wbar), &want_all, t);
                    // a alone: the same a; the spectral path leaves wbar as it was
                    let mut a = poisoned::<L, R>(d, n * n_c * v);
                    let mut wbar = up(d, &wbar0);
                    c.backward(d, &p, &dk, &dg, &mut a, &mut wbar, false, n, 1, dims, &mut s).unwrap();
                    assert_close(&what(&format!("{path:?} backward a alone")), &to64(&down(d, &a)), &want_a, t);
                    if path == ConvPath::Spectral {
                        assert_eq!(down(d, &wbar), wbar0, "{}", what("spectral backward a alone: wbar untouched"));
                    }
                    if path == ConvPath::Spectral {
                        let mut small = c.scratch(d, n - 1).unwrap();
                        let err = c.forward(d, &p, &dg, &mut out, n, &mut small).unwrap_err();
                        assert!(err.message.contains("scratch"), "{}", err.message);
                    }
                }
            }
        }
        run::<L, f32>(d);
        run::<L, f64>(d);
    }

    /// The sampler's kernel sequence (Pipeline, in chunks) against the CPU flow.
    /// field.cu against the unfused sequence's twins (features, convolution, divergence) in
    /// f64, for odd and even sides up to the largest it fuses, every feature kind.
    pub fn field_stage<L: Launcher>(d: &L) {
        fn run<L: Launcher, R: Elem>(d: &L) {
            let r = |n: usize, seed: u64, s: f64| -> Vec<R> { noise(n, seed, s).iter().map(|&x| R::of(x)).collect() };
            let lmax = launch::field_lmax::<R>();
            for (l, n, n_omega, kind, linear) in [
                (2, 3, 3, FeatureKind::Odd, false),
                (4, 2, 4, FeatureKind::Odd, false),
                (6, 3, 3, FeatureKind::NonOdd, true),
                (8, 2, 5, FeatureKind::Odd, true),
                (14, 2, 2, FeatureKind::NonOdd, false),
                (32, 2, 6, FeatureKind::Odd, false),
                (34, 1, 2, FeatureKind::NonOdd, true),
                (lmax - 2, 1, 2, FeatureKind::Odd, false),
                (lmax, 1, 2, FeatureKind::Odd, true),
            ] {
                let v = l * l;
                let n_h = if kind == FeatureKind::Odd { n_omega } else { 2 * n_omega + 1 } + linear as usize;
                let (u, omega, w, beta) = (r(n * v, 1, 1.0), r(n_omega, 2, 1.0), r(n_h * v, 4, 0.2), r(n_h, 5, 0.5));
                let (th, tp) = twin::features(&to64(&u), &to64(&omega), kind, linear, v);
                let want_k = twin::conv(&to64(&w), &th, l, n_h);
                let want_div = twin::divergence(&tp, &to64(&beta), v);
                let conv = Conv::<L, R>::new(d, ConvPath::Spectral, l, n_h).unwrap();
                let p = conv.prepare(d, up(d, &w)).unwrap();
                let (dom, dbeta) = (up(d, &omega), up(d, &beta));
                let (mut k, mut div) = (poisoned::<L, R>(d, n * v), poisoned::<L, f64>(d, n));
                let dims = FeatureDims { n, v, n_omega, n_h, kind: (kind == FeatureKind::NonOdd) as u32, linear };
                let s = conv.field_stage(&p, &dom, &dbeta).unwrap();
                launch::field_stage(d, s, &up(d, &u), &mut k, &mut div, l, dims).unwrap();
                let what = |x: &str| format!("field stage {x} (L = {l}, {kind:?}, linear {linear}, {})", R::SUFFIX);
                assert_close(&what("k"), &to64(&down(d, &k)), &want_k, tol::<R>());
                assert_close(&what("div"), &down(d, &div), &want_div, tol::<R>());
            }
            // refused: sides it does not fuse (odd, too large), rows that do not match the kind
            let (dom, dbeta) = (up(d, &r(1, 2, 1.0)), up(d, &r(1, 5, 1.0)));
            for l in [5, lmax + 1, lmax + 2] {
                let conv = Conv::<L, R>::new(d, ConvPath::Spectral, l, 1).unwrap();
                assert!(!conv.fuses());
                let p = conv.prepare(d, up(d, &r(l * l, 4, 0.2))).unwrap();
                let du = up(d, &r(l * l, 1, 1.0));
                let (mut k, mut div) = (poisoned::<L, R>(d, l * l), poisoned::<L, f64>(d, 1));
                let dims = FeatureDims { n: 1, v: l * l, n_omega: 1, n_h: 1, kind: 0, linear: false };
                let s = conv.field_stage(&p, &dom, &dbeta).unwrap();
                assert!(launch::field_stage(d, s, &du, &mut k, &mut div, l, dims).is_err(), "L = {l}");
            }
            let l = 6;
            let conv = Conv::<L, R>::new(d, ConvPath::Spectral, l, 1).unwrap();
            let p = conv.prepare(d, up(d, &r(l * l, 4, 0.2))).unwrap();
            let du = up(d, &r(l * l, 1, 1.0));
            let (mut k, mut div) = (poisoned::<L, R>(d, l * l), poisoned::<L, f64>(d, 1));
            let dims = FeatureDims { n: 1, v: l * l, n_omega: 1, n_h: 1, kind: 0, linear: false };
            let s = conv.field_stage(&p, &dom, &dbeta).unwrap();
            launch::field_stage(d, s, &du, &mut k, &mut div, 6, dims).unwrap();
            let s = conv.field_stage(&p, &dom, &dbeta).unwrap();
            let bad = FeatureDims { n_h: 2, ..dims };
            assert!(launch::field_stage(d, s, &du, &mut k, &mut div, 6, bad).is_err());
            let direct = Conv::<L, R>::new(d, ConvPath::Direct, 6, 1).unwrap();
            let p = direct.prepare(d, up(d, &r(36, 4, 0.2))).unwrap();
            assert!(direct.field_stage(&p, &dom, &dbeta).is_err());
        }
        run::<L, f32>(d);
        run::<L, f64>(d);
    }

    pub fn pipeline<L: Launcher>(d: &L) {
        fn run<L: Launcher, R: Elem>(d: &L, flow: &Flow, want: &Samples, t: f64, what: &str) {
            // the spectral path with and without fused stages (fused where there is no mixing)
            for (path, fused) in [(ConvPath::Direct, false), (ConvPath::Spectral, false), (ConvPath::Spectral, true)] {
                let mut p = sampler::Pipeline::<R, L>::with_path(flow, d, path).unwrap();
                p.set_fused(fused);
                assert_eq!(p.fused(), fused && flow.config.arch.feature_mixing.is_none(), "{what}");
                p.set_chunk_fields(8); // 33 fields: four chunks of 8 and one of 1
                let got = p.sample(d, flow.config.seed, Stream::Sample, 40, 33).unwrap();
                assert_samples(&format!("{what} {path:?} fused {fused}"), &got, want, t);
            }
        }
        for (name, arch, l) in sampler_cases() {
            for precision in [Precision::F64, Precision::F32] {
                let mut flow = random_flow(l, arch.clone(), precision, 3);
                let want = flow.sample_at(Stream::Sample, 40, 33).unwrap();
                let what = format!("{name} {precision:?}");
                match precision {
                    Precision::F64 => run::<L, f64>(d, &flow, &want, 1e-12, &what),
                    Precision::F32 => run::<L, f32>(d, &flow, &want, 1e-4, &what),
                }
            }
        }
    }
}

#[test]
fn gpu_rng_is_bit_exact() {
    let Some(d) = gpu() else { return };
    checks::rng(&*d);
}

#[test]
fn gpu_action_and_force_match_cpu() {
    let Some(d) = gpu() else { return };
    checks::action(&*d);
}

#[test]
fn gpu_features_mix_conv_divergence_match_cpu() {
    let Some(d) = gpu() else { return };
    checks::field(&*d);
}

#[test]
fn gpu_spectral_convolution_matches_cpu() {
    let Some(d) = gpu() else { return };
    checks::spectral(&*d);
}

#[test]
fn gpu_rk4_matches_cpu() {
    let Some(d) = gpu() else { return };
    checks::rk4(&*d);
}

#[test]
fn gpu_field_stage_matches_cpu() {
    let Some(d) = gpu() else { return };
    checks::field_stage(&*d);
}

#[test]
fn gpu_kernel_sequence_reproduces_the_cpu_flow() {
    let Some(d) = gpu() else { return };
    checks::pipeline(&*d);
}

#[test]
fn gpu_metropolis_matches_cpu() {
    let Some(d) = gpu() else { return };
    checks::metropolis(&*d);
}

#[test]
fn gpu_sampler_matches_cpu_flow() {
    let Some(d) = gpu() else { return };
    for (name, arch, l) in sampler_cases() {
        for precision in [Precision::F64, Precision::F32] {
            let mut flow = random_flow(l, arch.clone(), precision, 3);
            let mut cuda = CudaFlow::new(&flow, d.clone()).unwrap();
            cuda.set_chunk_fields(8); // 33 fields: four chunks of 8 and one of 1
            let want = flow.sample_at(Stream::Sample, 40, 33).unwrap();
            let got = cuda.sample_at(Stream::Sample, 40, 33).unwrap();
            // f32 through 18 RK4 steps: rounding differences of the two orders of summation grow
            let t = if precision == Precision::F64 { 1e-12 } else { 1e-4 };
            assert_samples(&format!("GPU {name} {precision:?}"), &got, &want, t);
            let z = twin::prior_normal::<f64>(flow.config.seed, Stream::Sample, 40, 33, l * l);
            assert_samples(
                &format!("GPU push_forward {name} {precision:?}"),
                &cuda.push_forward(&z).unwrap(),
                &want,
                t,
            );
        }
    }
}

// ---------------------------------------------------------------- the kernels on the host

#[test]
fn emulated_kernels_match_their_twins() {
    let Some(e) = emulator() else { return };
    checks::rng(e);
    checks::action(e);
    checks::field(e);
    checks::rk4(e);
    checks::metropolis(e);
    checks::spectral(e);
    checks::field_stage(e);
}

#[test]
fn emulated_kernel_sequence_reproduces_the_cpu_flow() {
    let Some(e) = emulator() else { return };
    checks::pipeline(e);
}

/// The sampler's kernel sequence on the host emulation, as a chain's pusher.
struct EmulatedPusher(sampler::Pipeline<f64, Emulator>, &'static Emulator);

impl crate::mcmc::metropolis::Push for EmulatedPusher {
    fn push_forward(&mut self, z: &[f64]) -> crate::error::Result<Samples> {
        self.0.push_forward_host(self.1, z)
    }
}

#[test]
fn emulated_device_proposals_give_the_cpu_chain() {
    let Some(e) = emulator() else { return };
    // a weak flow on 4 × 4 sites, so that the chain both accepts and rejects
    let flow = random_flow(4, small(Architecture::seed(), 6), Precision::F64, 3);
    let mut plain = crate::mcmc::metropolis::Chain::new(&flow, 21);
    let mut pushed = crate::mcmc::metropolis::Chain::new(&flow, 21);
    let p = sampler::Pipeline::with_path(&flow, e, ConvPath::Spectral).unwrap();
    pushed.set_pusher(Some(Box::new(EmulatedPusher(p, e))));
    assert!(pushed.has_pusher());
    let (a, b) = (plain.step(300).unwrap(), pushed.step(300).unwrap());
    assert_eq!(a, b, "accept flags");
    let n_acc = a.iter().filter(|&&x| x).count();
    assert!((5..295).contains(&n_acc), "a trivial chain: {n_acc} of 300 accepted");
    let (sa, sb) = (plain.state().unwrap(), pushed.state().unwrap());
    assert_close("chain state", &sb.phi, &sa.phi, 1e-12);
    assert_close("chain log q", &[sb.log_q], &[sa.log_q], 1e-12);
    // a host action cannot run on the device: setting one drops the pusher
    struct Same(crate::Action);
    impl crate::flow::CustomAction for Same {
        fn evaluate(&self, phi: &[f64], action: &mut [f64], _force: Option<&mut [f64]>) -> crate::error::Result<()> {
            for (s, p) in action.iter_mut().zip(phi.chunks(16)) {
                *s = self.0.action_one(p);
            }
            Ok(())
        }
    }
    pushed.set_custom_action(Some(Arc::new(Same(flow.action))));
    assert!(!pushed.has_pusher());
}

#[test]
fn emulator_catches_writes_past_the_end_and_bad_launches() {
    let Some(e) = emulator() else { return };
    // the launch code sizes the grid from n; a buffer one field too short is refused before launch
    let phi = up(e, &[0.5f64; 2 * 9]);
    let mut short = poisoned::<Emulator, f64>(e, 2 * 9 - 1);
    let err = launch::force(e, &phi, &mut short, -4.0, 1.0, 2, 3).unwrap_err();
    assert!(err.message.contains("buffer out"), "{}", err.message);
    // a kernel told that its output is longer than it is writes into the guard, and the
    // download says so
    let mut out = poisoned::<Emulator, f64>(e, 9);
    let a = crate::cuda::args::ActionArgs {
        phi: e.addr(&phi),
        out: e.addr_mut(&mut out),
        m2: -4.0,
        lambda: 1.0,
        n: 2,
        l: 3,
    };
    e.launch_kernel("action", "eqflow_force_f64", 1, 256, a).unwrap();
    let err = e.download(&out).unwrap_err();
    assert!(err.message.contains("past the end"), "{}", err.message);
    // launch geometry the device would refuse
    let err = e.launch_kernel("action", "eqflow_force_f64", 1, 2048, a).unwrap_err();
    assert!(err.message.contains("geometry"), "{}", err.message);
}

#[test]
fn cuda_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Device>();
    check::<CudaFlow>();
}

/// The run-time fallback: the embedded sources, made standalone, compiled by NVRTC through
/// cudarc (dynamically loaded). Needs libnvrtc on the library path (scripts/build-ptx.sh's
/// wheel: LD_LIBRARY_PATH=$EQFLOW_PTX_VENV/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib).
#[test]
fn nvrtc_fallback_compiles_the_embedded_sources() {
    let Some((major, minor)) = device::nvrtc_version() else {
        eprintln!("skipped: no NVRTC (libnvrtc not on the library path)");
        return;
    };
    // what the run-time fallback would compile for the oldest device (CUDA 13's NVRTC rejects
    // compute_70: compute_75 there)
    let arch = device::nvrtc_arch(70, major);
    assert_eq!(arch, if major >= 13 { "compute_75" } else { "compute_70" });
    assert_eq!(device::nvrtc_arch(90, major), "compute_90");
    assert_eq!(device::nvrtc_arch(86, 12), "compute_86");
    for s in &SOURCES {
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(arch),
            options: vec!["--std=c++17".into()],
            name: Some(format!("{}.cu", s.name)),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(device::standalone_source(s.cu), opts)
            .unwrap_or_else(|e| panic!("{}.cu: {e:?}", s.name))
            .to_src();
        for line in s.ptx.lines().filter(|l| l.starts_with(".visible .entry ")) {
            assert!(ptx.contains(line), "{}.cu: NVRTC {major}.{minor} output lacks '{line}'", s.name);
        }
        if (major, minor) == (12, 4) {
            // the same compiler and options as scripts/build-ptx.sh: the same PTX, up to
            // comments (NVRTC numbers its call sequences per process, not per program)
            let ptx = ptx.trim_end_matches('\0');
            let code =
                |p: &str| p.lines().map(|l| l.split("//").next().unwrap().trim_end().to_string()).collect::<Vec<_>>();
            if code(ptx) != code(s.ptx) {
                let dump = std::env::temp_dir().join(format!("eqflow-nvrtc-{}.ptx", s.name));
                std::fs::write(&dump, ptx).unwrap();
                panic!("{}.cu: NVRTC 12.4 output (in {}) differs from kernels/ptx/", s.name, dump.display());
            }
        }
    }
}

#[test]
#[should_panic(expected = "non-finite output")]
fn comparison_rejects_nan() {
    assert_close("poisoned", &[1.0, f64::NAN], &[1.0, 2.0], 1.0);
}

#[test]
#[should_panic(expected = "relative error")]
fn comparison_rejects_a_relative_error_at_the_tolerance() {
    assert_close("off", &[1.0, 2.0 + 2e-5], &[1.0, 2.0], 1e-5);
}

// ---------------------------------------------------------------- training

/// Architectures of the training tests: small, every feature path (mixing, non-odd, linear).
fn training_cases() -> Vec<(&'static str, Architecture, usize)> {
    let mut refined = small(Architecture::refined(), 3);
    refined.n_frequencies = 4;
    refined.feature_mixing = Some(3);
    refined.time_mixing = Some(4);
    refined.time_kernel_size = 5;
    let mut non_odd = small(Architecture::seed(), 2);
    non_odd.features = FeatureKind::NonOdd;
    non_odd.n_frequencies = 3;
    non_odd.linear_feature = true;
    non_odd.time_kernel_size = 3;
    let mut seed = small(Architecture::seed(), 4);
    seed.n_frequencies = 5;
    seed.time_kernel_size = 5;
    vec![("seed", seed, 4), ("refined", refined, 3), ("non-odd", non_odd, 5)]
}

/// The training kernels' loss and gradient against `Flow::loss_and_grad_of` (the CPU's
/// back-propagation, itself checked against finite differences in tests/).
fn check_training<L: Launcher>(d: &L) {
    fn run<L: Launcher, R: Elem>(d: &L, flow: &mut Flow, z: &[f64], what: &str, t: (f64, f64)) {
        let (loss, s, grad) = flow.loss_and_grad_of(z).unwrap();
        for path in [ConvPath::Direct, ConvPath::Spectral] {
            let tr = train::Trainer::<R, L>::with_path(flow, d, path).unwrap();
            let (gl, gs, gg) = tr.loss_and_grad_host(d, z).unwrap();
            let what = format!("{what} {path:?}");
            assert_close(&format!("{what}: loss"), &[gl], &[loss], t.0);
            assert_close(&format!("{what}: log q"), &gs.log_q, &s.log_q, t.0);
            assert_close(&format!("{what}: S"), &gs.action, &s.action, t.0);
            // every parameter group on its own scale: none can hide behind a larger one
            for (name, r) in flow.layout.groups() {
                assert_close(&format!("{what}: gradient {name}"), &gg[r.clone()], &grad[r], t.1);
            }
        }
        assert!(grad.iter().any(|&g| g.abs() > 1e-6), "{what}: a zero gradient tests nothing");
    }
    for (name, arch, l) in training_cases() {
        for (precision, gradient) in [
            (Precision::F64, Gradient::Total),
            (Precision::F32, Gradient::Total),
            (Precision::F64, Gradient::Path),
            (Precision::F32, Gradient::Path),
        ] {
            let mut flow = random_flow(l, arch.clone(), precision, 5);
            flow.config.precision = precision;
            flow.config.train.gradient = gradient;
            let z = noise(7 * l * l, 17, 1.0);
            let what = format!("{name} {precision:?} {gradient:?} gradient");
            match precision {
                Precision::F64 => run::<L, f64>(d, &mut flow, &z, &what, (1e-12, 1e-10)),
                Precision::F32 => run::<L, f32>(d, &mut flow, &z, &what, (1e-5, 1e-3)),
            }
        }
    }
}

#[test]
fn emulated_training_gradient_matches_the_cpu() {
    let Some(e) = emulator() else { return };
    check_training(e);
}

#[test]
fn gpu_training_gradient_matches_the_cpu() {
    let Some(d) = gpu() else { return };
    check_training(&*d);
}

#[test]
fn emulated_training_steps_follow_the_cpu_steps() {
    let Some(e) = emulator() else { return };
    let (name, arch, l) = training_cases().remove(1);
    // micro-batches, and coarse integration for the first step (N_t 3 → 1 → 3)
    // (the path gradient switched on after the trainer was made: the step follows the flow)
    for (micro, coarse, path, gradient) in
        [(0usize, 0usize, ConvPath::Direct, Gradient::Total), (3, 1, ConvPath::Spectral, Gradient::Path)]
    {
        let mut cpu = random_flow(l, arch.clone(), Precision::F64, 9);
        cpu.config.precision = Precision::F64;
        cpu.config.train.batch_size = 8;
        cpu.config.train.micro_batch = micro;
        cpu.config.train.coarse_ode_steps = coarse;
        cpu.config.train.coarse_steps = 1;
        let mut dev = cpu.snapshot();
        let mut tr = train::Trainer::<f64, Emulator>::with_path(&dev, e, path).unwrap();
        cpu.config.train.gradient = gradient;
        dev.config.train.gradient = gradient;
        for _ in 0..2 {
            let a = cpu.train_step().unwrap();
            let b = train::train_step(e, &mut tr, &mut dev).unwrap();
            assert_close(&format!("{name} {micro:?}: loss"), &[b.loss], &[a.loss], 1e-12);
            assert_close(&format!("{name} {micro:?}: ESS"), &[b.ess], &[a.ess], 1e-10);
        }
        assert_eq!(dev.steps_done, 2);
        assert_close(&format!("{name} {micro:?}: parameters"), dev.params(), cpu.params(), 1e-10);
        assert!(cpu.params().iter().zip(random_flow(l, arch.clone(), Precision::F64, 9).params()).any(|(a, b)| a != b));
    }
}
