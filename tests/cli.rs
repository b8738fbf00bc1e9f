//! Drives the `eqflow` binary: training, exact resume, JSON output, one-line errors, `.npy`
//! output and the report's plots.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eqflow"))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("eqflow-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    exe().args(args).output().expect("the eqflow binary runs")
}

fn json_of(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.trim().lines().count(), 1, "stdout must be exactly one JSON object: {out}");
    serde_json::from_str(out.trim()).expect("stdout parses as JSON")
}

const THEORY: [&str; 6] = ["--lattice", "4", "--m2", "-4", "--lambda", "8"];

fn train(out: &Path, steps: &str, resume: Option<&Path>) -> serde_json::Value {
    let out = out.to_str().unwrap();
    let mut args = vec!["train", "--steps", steps, "--out", out, "--threads", "2", "--ess-samples", "50", "--json"];
    match resume {
        Some(r) => args.extend(["--resume", r.to_str().unwrap()]),
        None => args.extend(THEORY.iter().copied().chain(["--batch", "16"])),
    }
    json_of(&run(&args))
}

#[test]
fn train_resume_is_exact_and_json_has_the_fields() {
    let d = dir("train");
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    let ja = train(&a, "8", None);
    for k in ["flow", "log", "steps_done", "seconds", "loss", "ess", "interrupted"] {
        assert!(ja.get(k).is_some(), "train --json lacks '{k}': {ja}");
    }
    assert_eq!(ja["steps_done"], 8);
    train(&b, "3", None);
    let jb = train(&b, "8", Some(&b));
    assert_eq!(jb["steps_done"], 8);
    let (fa, fb) = (eqflow::io::load(&a, 1).unwrap(), eqflow::io::load(&b, 1).unwrap());
    assert_eq!(fa.params(), fb.params(), "a resumed run must equal the uninterrupted one bit for bit");
    assert_eq!(fa.adam.m, fb.adam.m);
    // the log holds one line per step of both invocations
    let log_b = d.join("b.safetensors.log.jsonl");
    let log = std::fs::read_to_string(&log_b).unwrap();
    assert_eq!(log.lines().count(), 8);
    // an invocation killed between checkpoints leaves log lines past the checkpoint: a resume
    // drops them, so every step is logged once
    let c = d.join("c.safetensors");
    train(&c, "3", None);
    let log_c = d.join("c.safetensors.log.jsonl");
    let mut text = std::fs::read_to_string(&log_c).unwrap();
    text.push_str("{\"ess\":0.5,\"loss\":1.0,\"lr\":0.001,\"seconds\":1.0,\"step\":4}\n");
    text.push_str("{\"ess\":0.5,\"loss\":1.0,\"lr\":0.001,\"seconds\":2.0,\"step\":5}\n");
    std::fs::write(&log_c, text).unwrap();
    train(&c, "8", Some(&c));
    let steps: Vec<u64> = std::fs::read_to_string(&log_c)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<u64>>(), "one log line per step after a resume");
    // changing the theory or batch on resume is refused
    let o = run(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--steps",
        "9",
        "--out",
        b.to_str().unwrap(),
        "--lattice",
        "6",
        "--m2",
        "-4",
        "--lambda",
        "8",
    ]);
    assert_one_line_error(&o, "L = 4");
}

#[test]
fn restart_schedule_keeps_adam_and_resumes_bit_for_bit() {
    let d = dir("restart");
    let (c, e) = (d.join("c.safetensors"), d.join("e.safetensors"));
    let (cs, es) = (c.to_str().unwrap(), e.to_str().unwrap());
    train(&c, "3", None);
    train(&e, "3", None);
    let adam_before = eqflow::io::load(&c, 1).unwrap().adam;
    let restart = |f: &str, steps: &str| {
        json_of(&run(&[
            "train",
            "--resume",
            f,
            "--restart-schedule",
            "--lr",
            "1e-4",
            "--decay-steps",
            "100",
            "--batch",
            "24",
            "--steps",
            steps,
            "--out",
            f,
            "--threads",
            "2",
            "--ess-samples",
            "50",
            "--json",
        ]))
    };
    restart(cs, "6");
    // the same in two invocations: restart to 5, then a plain resume to 6
    restart(es, "5");
    train(&e, "6", Some(&e));
    let (fc, fe) = (eqflow::io::load(&c, 1).unwrap(), eqflow::io::load(&e, 1).unwrap());
    assert_eq!(fc.params(), fe.params(), "a restarted schedule must resume bit for bit");
    assert_eq!(fc.config.train.schedule_start, 3);
    assert_eq!(fc.config.train.batch_size, 24);
    assert_eq!(fc.adam.t, 6, "Adam's step count continues");
    assert_ne!(adam_before.m, vec![0.0; adam_before.m.len()], "the moments were not reset");
    // the log: steps 4.. run at the new rate, 1e-4 · 0.1^((step − 3) / 100)
    let log = std::fs::read_to_string(d.join("c.safetensors.log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    assert!((lines[0]["lr"].as_f64().unwrap() - 2e-3).abs() < 1e-15);
    for (k, l) in lines.iter().enumerate().skip(3) {
        let want = 1e-4 * 0.1f64.powf((k - 3) as f64 / 100.0);
        assert!((l["lr"].as_f64().unwrap() - want).abs() < 1e-18, "step {}: {l}", k + 1);
    }
    // --restart-schedule needs --lr; --lr alone on resume is refused with the hint
    let base = ["train", "--resume", cs, "--steps", "7", "--out", cs];
    assert_one_line_error(&run(&[&base[..], &["--restart-schedule"]].concat()), "needs --lr");
    assert_one_line_error(&run(&[&base[..], &["--lr", "1e-4"]].concat()), "--restart-schedule");
    assert_one_line_error(&run(&[&base[..], &["--restart-schedule", "--lr=-1"]].concat()), "must be positive");
    assert_one_line_error(
        &run(&[&base[..], &["--restart-schedule", "--lr", "1e-4", "--batch", "0"]].concat()),
        "--batch 0",
    );
    assert_one_line_error(&run(&[&base[..], &["--batch", "8"]].concat()), "--batch cannot change");
    assert_one_line_error(&run(&[&base[..], &["--gradient", "path"]].concat()), "--gradient cannot change");
    assert_one_line_error(
        &run(&[&base[..], &["--restart-schedule", "--lr", "1e-4", "--gradient", "exact"]].concat()),
        "unknown --gradient 'exact'",
    );
    // switching to path gradients late in a run
    let j = json_of(&run(&[
        &base[..],
        &["--restart-schedule", "--lr", "1e-4", "--gradient", "path", "--json", "--ess-samples", "20"],
    ]
    .concat()));
    assert_eq!(j["steps_done"], 7);
    assert_eq!(eqflow::io::load(&c, 1).unwrap().config.train.gradient, eqflow::train::Gradient::Path);
    // a coarse integration for the next 2 steps of a new schedule (counted from step 7)
    let coarse = ["--restart-schedule", "--lr", "1e-4", "--coarse-ode-steps", "9", "--coarse-steps", "2"];
    let base10 = ["train", "--resume", cs, "--steps", "10", "--out", cs];
    json_of(&run(&[&base10[..], &coarse[..], &["--json", "--ess-samples", "20"]].concat()));
    let t = eqflow::io::load(&c, 1).unwrap().config.train;
    assert_eq!((t.coarse_ode_steps, t.coarse_steps), (9, 9));
    let log = std::fs::read_to_string(d.join("c.safetensors.log.jsonl")).unwrap();
    let n_t: Vec<u64> = log
        .lines()
        .skip(7)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ode_steps"].as_u64().unwrap())
        .collect();
    assert_eq!(n_t, [9, 9, 54], "steps 8 and 9 coarse, 10 at the architecture's N_t");
    assert_one_line_error(
        &run(&[&base[..], &["--coarse-ode-steps", "9", "--coarse-steps", "2"]].concat()),
        "--coarse-ode-steps cannot change",
    );
    assert_one_line_error(&run(&[&base10[..], &coarse[..5]].concat()), "go together");
    let o = d.join("rn.safetensors");
    let rn = [&["train", "--arch", "realnvp", "--steps", "1", "--out", o.to_str().unwrap()][..], &THEORY[..]].concat();
    assert_one_line_error(&run(&[&rn[..], &["--gradient", "path"]].concat()), "not RealNVP");
}

fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("eqflow: error:"), "{err}");
    assert!(lines[0].contains(needle), "'{needle}' missing in: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_arguments_give_one_line_and_exit_2() {
    let d = dir("bad");
    let out = d.join("x.safetensors");
    let o = out.to_str().unwrap();
    assert_one_line_error(&run(&["train", "--preset", "L7", "--out", o]), "unknown preset 'L7'");
    assert_one_line_error(&run(&["train", "--lattice", "4", "--m2", "-4", "--lambda", "-1", "--out", o]), "lambda");
    assert_one_line_error(&run(&["train", "--lattice", "4", "--out", o]), "--m2");
    assert_one_line_error(&run(&["train", "--preset", "L6", "--arch", "deep", "--out", o]), "unknown architecture");
    assert_one_line_error(&run(&["sample", "--flow", d.join("missing").to_str().unwrap()]), "missing");
    std::fs::write(&out, b"not a flow").unwrap();
    assert_one_line_error(&run(&["sample", "--flow", o]), "safetensors");
    assert_one_line_error(&run(&["train", "--presett", "L6", "--out", o]), "--presett");
    assert_one_line_error(&run(&["hmc", "--preset", "L6", "--n", "3"]), "--n 3");
    assert_one_line_error(&run(&["train", "--preset", "L6", "--backend", "cuda", "--out", o]), "CUDA backend");
    assert_one_line_error(&run(&["train", "--preset", "L6", "--backend", "tpu", "--out", o]), "unknown backend");
    assert_one_line_error(&run(&["train", "--preset", "L6", "--init-dilate", "1", "--out", o]), "--init-from");
    // sampling on a GPU, where there is none (the test machines): one line naming the backend
    let f = d.join("f.safetensors");
    train(&f, "2", None);
    let fs = f.to_str().unwrap();
    assert_one_line_error(&run(&["sample", "--flow", fs, "--n", "20", "--backend", "cuda"]), "--backend cuda: ");
    assert_one_line_error(&run(&["sample", "--flow", fs, "--n", "20", "--backend", "tpu"]), "unknown backend");
}

#[test]
fn sample_hmc_reweight_and_report() {
    let d = dir("sample");
    let f = d.join("f.safetensors");
    train(&f, "20", None);
    let fs = f.to_str().unwrap();
    let npy = d.join("c.npy");
    let s = json_of(&run(&[
        "sample",
        "--flow",
        fs,
        "--n",
        "600",
        "--flip",
        "--out",
        npy.to_str().unwrap(),
        "--every",
        "3",
        "--dtype",
        "f16",
        "--reweight",
        "500",
        "--json",
    ]));
    for k in ["acceptance", "ess", "ess_error", "stats", "summary", "reweighted", "proposals_per_second"] {
        assert!(s.get(k).is_some(), "sample --json lacks '{k}'");
    }
    assert!(s["summary"]["chi2"]["value"].as_f64().unwrap().is_finite());
    assert!(s["ess_error"].as_f64().unwrap() > 0.0 && s["reweighted"]["ess_error"].as_f64().unwrap() > 0.0);
    assert!(s["summary"]["tau_int_abs_m"].as_f64().is_some());
    assert!(s["stats"]["flips_proposed"].as_u64().unwrap() > 200);
    // the reweighting samples and the fresh samples of the ESS follow the chain's seed: the same
    // seed, the same estimates; another seed, other ones
    let rw = |seed: &str| {
        let j = json_of(&run(&["sample", "--flow", fs, "--n", "50", "--reweight", "200", "--seed", seed, "--json"]));
        (j["reweighted"]["ess"].as_f64().unwrap(), j["ess"].as_f64().unwrap())
    };
    let (a, b) = (rw("3"), rw("4"));
    assert_eq!(a, rw("3"));
    assert_ne!(a.0, b.0, "--seed does not change the reweighting samples");
    assert_ne!(a.1, b.1, "--seed does not change the fresh samples of the ESS");
    // .npy: magic, header shape (200, 4, 4), float16 payload
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f2'") && header.contains("'shape': (200, 4, 4)"), "{header}");
    assert_eq!((10 + hlen) % 64, 0);
    assert_eq!(bytes.len(), 10 + hlen + 200 * 16 * 2);

    let hmc = json_of(&run(&["hmc", "--lattice", "4", "--m2", "-4", "--lambda", "8", "--n", "2000", "--json"]));
    assert!(hmc["summary"]["l_m_p"]["value"].as_f64().is_some());
    let hmc_path = d.join("hmc.json");
    std::fs::write(&hmc_path, hmc.to_string()).unwrap();
    let r = json_of(&run(&["reweight", "--flow", fs, "--n", "400", "--delta-lambda", "0.5", "--json"]));
    assert!(r["reweighted"]["log_z"]["value"].as_f64().unwrap().is_finite());

    let rep = d.join("report");
    let o = run(&[
        "report",
        "--flow",
        fs,
        "--hmc",
        hmc_path.to_str().unwrap(),
        "--n",
        "300",
        "--out",
        rep.to_str().unwrap(),
        "--json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("no TrueType font") {
        eprintln!("skipped the report check: {err}");
    } else {
        let j = json_of(&o);
        let files = j["files"].as_array().unwrap();
        assert_eq!(files.len(), 8, "{j}");
        for name in ["training", "correlator", "magnetization", "log_weights"] {
            for ext in ["svg", "png"] {
                let p = rep.join(format!("{name}.{ext}"));
                let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                assert!(len > 1000, "{} is empty or missing", p.display());
            }
        }
        let png = std::fs::read(rep.join("correlator.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    // an HMC reference for another lattice size is refused in one line
    let h6 = d.join("hmc6.json");
    let mut other = hmc.clone();
    other["summary"]["l"] = 6.into();
    std::fs::write(&h6, other.to_string()).unwrap();
    assert_one_line_error(
        &run(&["report", "--flow", fs, "--hmc", h6.to_str().unwrap(), "--out", rep.to_str().unwrap()]),
        "L = 6",
    );
}

#[test]
fn an_undefined_l_m_p_names_its_t() {
    // 100 HMC trajectories at L = 20 cannot resolve G̃(t) near L/2: L·m_p is NaN, and the
    // printout says at which t the effective mass is undefined
    let o = run(&["hmc", "--preset", "L20", "--n", "100"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let lmp = err.lines().find(|l| l.trim_start().starts_with("L·m_p")).expect("an L·m_p line");
    assert!(lmp.contains("NaN"), "expected an undefined L·m_p at n = 100: {err}");
    let note = err.lines().find(|l| l.contains("m_p(t) undefined at t = [")).expect("the undefined t named");
    assert!(note.contains("of 1..=10"), "{note}");
    // a resolved L·m_p prints no such line
    let o = run(&["hmc", "--lattice", "4", "--m2", "-4", "--lambda", "8", "--n", "2000"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("NaN") && !err.contains("undefined"), "{err}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let d = dir("sigint");
    let f = d.join("f.safetensors");
    let child = exe()
        .args(["train", "--steps", "1000000", "--out", f.to_str().unwrap(), "--batch", "8"])
        .args(THEORY)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = d.join("f.safetensors.log.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |s| s.lines().count()) < 3 {
        assert!(t0.elapsed().as_secs() < 60, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("--resume"), "{err}");
    let flow = eqflow::io::load(&f, 1).unwrap();
    assert!(flow.steps_done >= 3);
    let lines = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    assert_eq!(lines, flow.steps_done, "every logged step is in the checkpoint");
}

#[test]
fn init_from_a_smaller_lattice() {
    let d = dir("init");
    let small = d.join("s.safetensors");
    train(&small, "3", None);
    let big = d.join("b.safetensors");
    let (sm, bg) = (small.to_str().unwrap(), big.to_str().unwrap());
    // from the L = 4 flow to L = 8 with `extra` options
    let to_l8 = |extra: &[&str]| {
        let base = ["train", "--lattice", "8", "--m2", "-4", "--lambda", "6", "--steps", "1", "--init-from", sm];
        run(&[&base[..], extra].concat())
    };
    let j = json_of(&to_l8(&[
        "--batch",
        "4",
        "--ess-samples",
        "10",
        "--frequencies",
        "60",
        "--time-kernel-size",
        "19",
        "--out",
        bg,
        "--json",
    ]));
    assert_eq!(j["lattice"], 8);
    let arch = eqflow::io::load(&big, 1).unwrap().config.arch;
    assert_eq!((arch.n_frequencies, arch.time_kernel_size), (60, 19), "widened on the way");
    let w = d.join("w.safetensors");
    assert_one_line_error(&to_l8(&["--time-kernel-size", "12", "--out", w.to_str().unwrap()]), "does not embed");
    // the dilated transfer (its kernel is checked in tests/transfer.rs)
    let dl = d.join("dl.safetensors");
    let dls = dl.to_str().unwrap();
    let j = json_of(&to_l8(&[
        "--batch",
        "4",
        "--ess-samples",
        "10",
        "--init-dilate",
        "1",
        "--init-keep",
        "1",
        "--out",
        dls,
        "--json",
    ]));
    assert_eq!(j["steps_done"], 1);
    let o = run(&["train", "--resume", bg, "--steps", "2", "--frequencies", "70", "--out", bg]);
    assert_one_line_error(&o, "--frequencies cannot change");
    let o = run(&[
        "train",
        "--lattice",
        "2",
        "--m2",
        "-4",
        "--lambda",
        "6",
        "--steps",
        "1",
        "--init-from",
        big.to_str().unwrap(),
        "--out",
        d.join("c.safetensors").to_str().unwrap(),
    ]);
    assert_one_line_error(&o, "larger");
}

/// `--arch realnvp`: the baseline trains, resumes bit for bit, samples and reweights through
/// the same commands; what only the continuous flow has is refused in one line.
#[test]
fn realnvp_through_the_same_commands() {
    let d = dir("realnvp");
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    let args = |out: &Path, steps: &'static str| -> Vec<String> {
        let mut v: Vec<String> =
            ["train", "--arch", "realnvp", "--batch", "16", "--threads", "2", "--ess-samples", "50"]
                .iter()
                .chain(THEORY.iter())
                .map(|s| s.to_string())
                .collect();
        v.extend(["--steps".into(), steps.into(), "--out".into(), out.to_str().unwrap().into(), "--json".into()]);
        v
    };
    let run_s = |v: Vec<String>| run(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let ja = json_of(&run_s(args(&a, "6")));
    assert_eq!(ja["kind"], "RealNvp");
    json_of(&run_s(args(&b, "2")));
    let mut resume = args(&b, "6");
    resume.retain(|s| !["--arch", "realnvp", "--batch", "16"].contains(&s.as_str()));
    resume.extend(["--resume".into(), b.to_str().unwrap().into()]);
    let jb = json_of(&run_s(resume));
    assert_eq!(jb["steps_done"], 6);
    let (fa, fb) = (eqflow::realnvp::load(&a, 1).unwrap(), eqflow::realnvp::load(&b, 1).unwrap());
    assert_eq!(fa.params(), fb.params(), "a resumed RealNVP run must equal the uninterrupted one bit for bit");
    let js = json_of(&run(&["sample", "--flow", a.to_str().unwrap(), "--n", "300", "--reweight", "100", "--json"]));
    let acc = js["acceptance"].as_f64().unwrap();
    assert!(acc > 0.0 && acc < 1.0, "{js}");
    let o = a.to_str().unwrap();
    let mut bad = args(&d.join("c.safetensors"), "1");
    bad.extend(["--init-from".into(), o.into()]);
    assert_one_line_error(&run_s(bad), "RealNVP");
    let mut bad = args(&d.join("c.safetensors"), "1");
    bad.extend(["--micro-batch".into(), "4".into()]);
    assert_one_line_error(&run_s(bad), "RealNVP");
    let o = run(&["train", "--resume", o, "--steps", "7", "--micro-batch", "4", "--out", o]);
    assert_one_line_error(&o, "RealNVP");
}

#[test]
fn gap_reports_the_discretisation_gap_and_shrinks_with_more_steps() {
    let d = dir("gap");
    let f = d.join("f.safetensors");
    let t = train(&f, "30", None);
    // training measures the gap of small lattices at the end
    assert!(t["gap"]["spread"].as_f64().unwrap() >= 0.0, "train --json: {t}");
    assert_eq!(t["gap"]["ode_steps"], 54);
    let fs = f.to_str().unwrap();
    let gap = |steps: &str| json_of(&run(&["gap", "--flow", fs, "--n", "3", "--ode-steps", steps, "--json"]));
    let (coarse, fine) = (gap("9"), gap("54"));
    for k in ["integrated", "exact", "mean_gap", "spread", "max_deviation", "log_w_spread"] {
        assert!(coarse.get(k).is_some(), "gap --json lacks '{k}'");
    }
    assert_eq!(coarse["ode_steps"], 9);
    assert_eq!(coarse["exact"].as_array().unwrap().len(), 3);
    let m = |v: &serde_json::Value| v["mean_gap"].as_f64().unwrap().abs();
    assert!(m(&coarse) > m(&fine), "gap at N_t 9: {}, at 54: {}", m(&coarse), m(&fine));
    // sampling with more steps: the option reaches the chain
    let s = json_of(&run(&["sample", "--flow", fs, "--n", "50", "--reweight", "0", "--ode-steps", "18", "--json"]));
    assert!(s["acceptance"].as_f64().unwrap() > 0.0);
    assert_one_line_error(&run(&["gap", "--flow", fs, "--n", "1"]), "--n 1");
    // a new flow can integrate more finely; a checkpoint keeps its N_t
    let g = d.join("g.safetensors");
    let gs = g.to_str().unwrap();
    let t = json_of(&run(&[
        "train",
        "--steps",
        "2",
        "--out",
        gs,
        "--ode-steps",
        "108",
        "--json",
        "--lattice",
        "4",
        "--m2",
        "-4",
        "--lambda",
        "8",
    ]));
    assert_eq!(t["gap"]["ode_steps"], 108);
    assert_one_line_error(
        &run(&["train", "--resume", gs, "--steps", "4", "--out", gs, "--ode-steps", "54"]),
        "--ode-steps",
    );
}
