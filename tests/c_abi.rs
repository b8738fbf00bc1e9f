//! Drives the C ABI from C, C++, Fortran and Julia: builds the programs in tests/c, tests/cpp,
//! tests/fortran, examples/ and bindings/ against target/<profile>/libeqflow.so, runs them, and
//! checks their output (for the C misuse test, numbers equal to the Rust API's for the same seeds).

use eqflow::flow::{Flow, FlowConfig};
use eqflow::mcmc::metropolis::Chain;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>, found from this test executable (target/<profile>/deps/c_abi-*).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).expect("test executable is not under target/<profile>/deps").to_path_buf()
}

/// The directory holding libeqflow.so: target/<profile>/deps, where `cargo test` has just built
/// the cdylib (the copy in target/<profile> is refreshed only by `cargo build` and may be
/// stale); if it is missing there, `cargo build --lib` makes it.
fn lib_dir() -> PathBuf {
    let name = format!("{}eqflow{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let deps = profile_dir().join("deps");
    if deps.join(&name).exists() {
        return deps;
    }
    let dir = profile_dir();
    let lib = dir.join(&name);
    if !lib.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--lib", "-j", "1"]).current_dir(root());
        let profile = dir.file_name().unwrap().to_str().unwrap();
        if profile == "release" {
            cmd.arg("--release");
        } else if profile != "debug" {
            cmd.args(["--profile", profile]);
        }
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let st = cmd.status().expect("running cargo build --lib");
        assert!(st.success() && lib.exists(), "cargo build --lib did not produce {}", lib.display());
    }
    dir
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_abi").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn on_path(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

fn run(cmd: &mut Command) -> Output {
    // cargo test puts target/<profile> on LD_LIBRARY_PATH, which beats the programs' rpath and
    // may hold a stale copy of the library: load the one just built
    let mut path = lib_dir().into_os_string();
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        path.push(":");
        path.push(old);
    }
    cmd.env("LD_LIBRARY_PATH", path);
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Compiles `sources` with `compiler` and `flags` into an executable linked to libeqflow.
fn build(compiler: &str, flags: &[&str], sources: &[PathBuf], exe: &Path, extra: &[&str]) {
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg(format!("-I{}", root().join("include").display()))
        .args(sources)
        .arg("-o")
        .arg(exe)
        .arg(format!("-L{}", lib.display()))
        .arg("-leqflow")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(extra);
    run(&mut cmd);
}

const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];

fn results(stdout: &str, key: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("RESULT {key} ")))
        .unwrap_or_else(|| panic!("no 'RESULT {key}' line in:\n{stdout}"));
    line.split_whitespace().skip(2).map(|x| x.parse().unwrap()).collect()
}

#[test]
fn c_misuse_gives_statuses_and_the_same_numbers_as_rust() {
    let dir = scratch("misuse");
    let exe = dir.join("misuse");
    build("cc", C_FLAGS, &[root().join("tests/c/misuse.c")], &exe, &["-lm"]);
    let out = run(Command::new(&exe).arg(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("misuse: all checks passed"), "{stdout}");
    assert!(stdout.contains(&format!("RESULT version {}", env!("CARGO_PKG_VERSION"))), "{stdout}");

    // the same calls through the Rust API
    let mut c = FlowConfig::new(4, -4.0, 6.008);
    c.arch.n_frequencies = 4;
    c.arch.ode_steps = 9;
    c.train.batch_size = 8;
    c.seed = 42;
    let mut f = Flow::new(c, 1).unwrap();
    f.train_step().unwrap();
    let st = f.train_step().unwrap();
    assert_eq!(results(&stdout, "train"), vec![st.loss, st.ess]);
    let s = f.sample(3).unwrap();
    let mut want = vec![s.phi.iter().sum::<f64>()];
    for i in 0..3 {
        want.extend([s.log_q[i], s.action[i]]);
    }
    assert_eq!(results(&stdout, "sample"), want);
    f.sample(1).unwrap();
    assert_eq!(results(&stdout, "ess"), vec![f.ess(16).unwrap()]);
    let mut chain = Chain::new(&f, 7);
    let flags = chain.step(5).unwrap();
    let cs = chain.stats();
    let mut want = vec![cs.proposed as f64, cs.accepted as f64];
    want.extend(flags.iter().map(|&a| a as u8 as f64));
    assert_eq!(results(&stdout, "chain"), want);
}

#[test]
fn c_minimal_example_runs_cleanly() {
    let dir = scratch("minimal");
    let exe = dir.join("minimal");
    build("cc", C_FLAGS, &[root().join("examples/c/minimal.c")], &exe, &["-lm"]);
    let flow_file = dir.join("flow.safetensors");
    let out = run(Command::new(&exe).arg(&flow_file));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("trained 5 steps") && stdout.contains("minimal: ok"), "{stdout}");
    assert!(flow_file.exists());
    if on_path("valgrind") {
        let out = run(Command::new("valgrind")
            .args(["--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite", "-q"])
            .arg(&exe)
            .arg(dir.join("flow_vg.safetensors")));
        assert!(String::from_utf8_lossy(&out.stdout).contains("minimal: ok"));
    } else {
        eprintln!("skipped valgrind: not found");
    }
}

#[test]
fn cpp_bindings_and_hmc_mix_example() {
    let dir = scratch("cpp");
    let exe = dir.join("hmc_mix");
    let inc = format!("-I{}", root().join("bindings/cpp").display());
    build(
        "g++",
        &["-std=c++17", "-Wall", "-Wextra", "-Werror", &inc],
        &[root().join("examples/cpp/hmc_mix.cpp")],
        &exe,
        &[],
    );
    let out = run(&mut Command::new(&exe));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hmc_mix: ok") && stdout.contains("caught: EQFLOW_STATUS_BAD_LENGTH"), "{stdout}");
    let value = |key: &str| -> f64 {
        let l = stdout.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no '{key}' in {stdout}"));
        l[key.len()..].trim().parse().unwrap()
    };
    let (hmc, flow, chi2) = (value("hmc acceptance"), value("flow acceptance"), value("chi2"));
    assert!(hmc > 0.3 && hmc <= 1.0, "{stdout}");
    assert!(flow > 0.0 && flow <= 1.0, "{stdout}");
    assert!(chi2.is_finite() && chi2 > 0.0, "{stdout}");
}

#[test]
fn header_compiles_as_cpp_and_twice() {
    let dir = scratch("twice");
    let src = dir.join("twice.cpp");
    std::fs::write(
        &src,
        "#include \"eqflow.h\"\n#include \"eqflow.h\"\nint main() { return eqflow_version_hex() == EQFLOW_VERSION_HEX ? 0 : 1; }\n",
    )
    .unwrap();
    let exe = dir.join("twice");
    build("g++", &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"], &[src], &exe, &[]);
    run(&mut Command::new(&exe));
}

#[test]
fn fortran_bindings_and_example() {
    if !on_path("gfortran") {
        eprintln!("skipped fortran: gfortran not found");
        return;
    }
    let dir = scratch("fortran");
    let exe = dir.join("train_sample");
    let modules = format!("-J{}", dir.display());
    build(
        "gfortran",
        &["-std=f2008", "-Wall", &modules],
        &[root().join("bindings/fortran/eqflow.f90"), root().join("examples/fortran/train_sample.f90")],
        &exe,
        &[],
    );
    let out = run(Command::new(&exe).current_dir(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("train_sample: ok") && stdout.contains("trained 5 steps"), "{stdout}");
    assert!(stdout.contains("expected error: eqflow_flow_sample: argument 'phi'"), "{stdout}");
}

/// Every integer #define of the header appears with the same value in the Fortran and Julia
/// bindings (they are written by hand, so this is what keeps them from drifting).
#[test]
fn bindings_mirror_every_header_constant() {
    let header = std::fs::read_to_string(root().join("include/eqflow.h")).unwrap();
    let fortran = std::fs::read_to_string(root().join("bindings/fortran/eqflow.f90")).unwrap();
    let julia = std::fs::read_to_string(root().join("bindings/julia/EqFlow.jl")).unwrap();
    let mut n = 0;
    for line in header.lines() {
        let mut w = line.split_whitespace();
        let (Some("#define"), Some(name), Some(value)) = (w.next(), w.next(), w.next()) else { continue };
        if !name.starts_with("EQFLOW_") || name.starts_with("EQFLOW_VERSION") || value.parse::<i64>().is_err() {
            continue;
        }
        n += 1;
        let f = format!("parameter :: {name} = {value}");
        assert!(fortran.contains(&f), "bindings/fortran/eqflow.f90 lacks '{f}'");
        let j = format!("const {name} = Int32({value})");
        assert!(julia.contains(&j), "bindings/julia/EqFlow.jl lacks '{j}'");
    }
    assert!(n > 20, "only {n} constants found in the header");
}

#[test]
fn julia_bindings_and_example() {
    if !on_path("julia") {
        eprintln!("skipped: julia not found");
        return;
    }
    let lib = lib_dir().join(format!("{}eqflow{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    let out = run(Command::new("julia")
        .arg("--startup-file=no")
        .arg(root().join("examples/julia/example.jl"))
        .env("EQFLOW_LIB", lib));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("example.jl: ok") && stdout.contains("caught: EQFLOW_STATUS_BAD_LENGTH"), "{stdout}");
}

#[test]
fn c_host_action_callback() {
    let dir = scratch("custom_action");
    let exe = dir.join("custom_action");
    build("cc", C_FLAGS, &[root().join("tests/c/custom_action.c")], &exe, &["-lm"]);
    let out = run(&mut Command::new(&exe));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("custom_action: ok"), "{stdout}");
    assert!(stdout.contains("the host action returned 3"), "{stdout}");
}

#[test]
fn c_hmc_and_observables() {
    let dir = scratch("hmc_observables");
    let exe = dir.join("hmc_observables");
    build("cc", C_FLAGS, &[root().join("tests/c/hmc_observables.c")], &exe, &["-lm"]);
    let out = run(&mut Command::new(&exe));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("hmc_observables: ok"), "{stdout}");
}

#[test]
fn c_two_threads_on_one_flow_get_busy() {
    let dir = scratch("threads");
    let exe = dir.join("threads");
    build("cc", C_FLAGS, &[root().join("tests/c/threads.c")], &exe, &["-lm", "-pthread"]);
    let out = run(&mut Command::new(&exe));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("threads: ok"), "{stdout}");
}

#[test]
fn fortran_bindings_of_the_newer_functions() {
    if !on_path("gfortran") {
        eprintln!("skipped fortran: gfortran not found");
        return;
    }
    let dir = scratch("fortran_new_api");
    let exe = dir.join("new_api");
    let modules = format!("-J{}", dir.display());
    build(
        "gfortran",
        &["-std=f2008", "-Wall", &modules],
        &[root().join("bindings/fortran/eqflow.f90"), root().join("tests/fortran/new_api.f90")],
        &exe,
        &[],
    );
    let out = run(Command::new(&exe).current_dir(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("new_api: ok"), "{stdout}");
}

#[test]
fn cpp_bindings_of_the_newer_functions() {
    let dir = scratch("cpp_bindings");
    let exe = dir.join("bindings");
    let inc = format!("-I{}", root().join("bindings/cpp").display());
    build(
        "g++",
        &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", &inc],
        &[root().join("tests/cpp/bindings.cpp")],
        &exe,
        &[],
    );
    let out = run(Command::new(&exe).arg(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("bindings.cpp: ok"), "{stdout}");
}

#[test]
fn c_conventions_layouts_hopping_form_float_samples_struct_sizes() {
    let dir = scratch("conventions");
    let exe = dir.join("conventions");
    build("cc", C_FLAGS, &[root().join("tests/c/conventions.c")], &exe, &["-lm"]);
    let out = run(Command::new(&exe).arg(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("conventions: ok"), "{stdout}");
    for layout in ["x1-fastest", "x0-fastest", "even-odd"] {
        assert!(stdout.contains(&format!("L = 5 {layout}: fields permuted as documented")), "{stdout}");
    }
}

#[test]
fn c_chain_features_run_observables_flip_checkpoint_reweight_memory() {
    let dir = scratch("chain_features");
    let exe = dir.join("chain_features");
    build("cc", C_FLAGS, &[root().join("tests/c/chain_features.c")], &exe, &["-lm"]);
    let out = run(Command::new(&exe).arg(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("chain_features: ok"), "{stdout}");
    // the same program under valgrind: no invalid access, no definite leak, also on the error
    // paths (out of memory, corrupt files) and after the flow is freed under a running chain
    if on_path("valgrind") {
        let vg = scratch("chain_features_vg");
        let out = run(Command::new("valgrind")
            .args(["--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite", "-q"])
            .arg(&exe)
            .arg(&vg));
        assert!(String::from_utf8_lossy(&out.stdout).contains("chain_features: ok"));
    } else {
        eprintln!("skipped valgrind: not found");
    }
}

/// examples/cpp/long_chain.cpp at L = 8: 200000 steps in blocks of 20000 with eqflow_chain_run
/// keep the peak RSS within 10 MB of what it was after the first block.
#[test]
fn cpp_long_chain_runs_in_bounded_memory() {
    let dir = scratch("long_chain");
    let exe = dir.join("long_chain");
    let inc = format!("-I{}", root().join("bindings/cpp").display());
    build(
        "g++",
        &["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", &inc],
        &[root().join("examples/cpp/long_chain.cpp")],
        &exe,
        &[],
    );
    let out = run(Command::new(&exe).args(["8", "200000", "20000"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("long_chain: ok") && stdout.contains("block 10:"), "{stdout}");
    let rss = results(&stdout, "peak_rss_kib");
    let (first, last) = (rss[0], rss[1]);
    assert!(first > 0.0 && last >= first, "{stdout}");
    assert!(last - first < 10.0 * 1024.0, "peak RSS grew from {first} KiB to {last} KiB:\n{stdout}");
    let rate = results(&stdout, "steps_per_second")[0];
    eprintln!("long_chain L = 8: {rate:.0} steps/s, peak RSS {first} KiB after block 1, {last} KiB at the end");
    assert!(rate > 0.0, "{stdout}");
}

#[test]
fn c_realnvp_behind_the_same_api() {
    let dir = scratch("realnvp");
    let exe = dir.join("realnvp");
    build("cc", C_FLAGS, &[root().join("tests/c/realnvp.c")], &exe, &["-lm"]);
    let out = run(Command::new(&exe).arg(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("realnvp: ok"), "{stdout}");
}

#[test]
fn c_checkpoint_of_a_chain_with_a_host_action() {
    let dir = scratch("host_checkpoint");
    let exe = dir.join("host_checkpoint");
    build("cc", C_FLAGS, &[root().join("tests/c/host_checkpoint.c")], &exe, &["-lm"]);
    let out = run(Command::new(&exe).arg(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("host-action checkpoint: refused until the action is set"), "{stdout}");
}
