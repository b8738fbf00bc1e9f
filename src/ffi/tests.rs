//! Unit tests of the boundary: panics, poisoning, BUSY, struct sizes.

use super::boundary::{boundary, lock};
use super::chain::*;
use super::context::*;
use super::flow::*;
use super::status::*;
use super::*;
use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn last() -> String {
    unsafe { CStr::from_ptr(eqflow_last_error_message()) }.to_string_lossy().into_owned()
}

unsafe fn small_flow() -> (*mut eqflow_context, *mut eqflow_flow) {
    let mut cp = std::mem::zeroed::<eqflow_context_params>();
    eqflow_context_params_init(&mut cp, std::mem::size_of_val(&cp));
    let mut ctx = null_mut();
    assert_eq!(eqflow_context_new(&cp, &mut ctx), EQFLOW_STATUS_OK);
    let mut fp = std::mem::zeroed::<eqflow_flow_params>();
    eqflow_flow_params_init(&mut fp, std::mem::size_of_val(&fp));
    fp.lattice_size = 3;
    fp.n_frequencies = 4;
    fp.ode_steps = 9;
    fp.batch_size = 8;
    let mut f = null_mut();
    assert_eq!(eqflow_flow_new(ctx, &fp, &mut f), EQFLOW_STATUS_OK, "{}", last());
    (ctx, f)
}

#[test]
fn panic_becomes_status_and_poisons_the_handle() {
    unsafe {
        let (ctx, f) = small_flow();
        let s = boundary("eqflow_test", || {
            let _g = lock(&(*f).inner, "flow")?;
            panic!("deliberate");
        });
        assert_eq!(s, EQFLOW_STATUS_PANIC);
        assert!(last().contains("eqflow_test") && last().contains("deliberate"), "{}", last());
        let s = eqflow_flow_train(f, 1, null_mut());
        assert_eq!(s, EQFLOW_STATUS_POISONED);
        assert!(last().starts_with("eqflow_flow_train: argument 'flow'"), "{}", last());
        eqflow_flow_free(f);
        eqflow_context_free(ctx);
    }
}

#[test]
fn a_handle_in_use_is_busy() {
    unsafe {
        let (ctx, f) = small_flow();
        let g = (*f).inner.lock().unwrap();
        let mut e = 0.0;
        assert_eq!(eqflow_flow_ess(f, 4, &mut e), EQFLOW_STATUS_BUSY);
        assert!(last().contains("eqflow_flow_ess") && last().contains("'flow'"), "{}", last());
        let mut v = 0;
        assert_eq!(eqflow_flow_lattice_volume(f, &mut v), EQFLOW_STATUS_OK);
        assert_eq!(v, 9);
        drop(g);
        assert_eq!(eqflow_flow_ess(f, 4, &mut e), EQFLOW_STATUS_OK);
        assert!(last().is_empty());
        let mut c = null_mut();
        assert_eq!(eqflow_chain_new(f, 1, &mut c), EQFLOW_STATUS_OK);
        let gc = (*c).inner.lock().unwrap();
        assert_eq!(eqflow_chain_step(c, 1, null_mut(), 0, null_mut(), 0, null_mut()), EQFLOW_STATUS_BUSY);
        drop(gc);
        assert_eq!(eqflow_chain_step(c, 1, null_mut(), 0, null_mut(), 0, null_mut()), EQFLOW_STATUS_OK);
        eqflow_chain_free(c);
        eqflow_flow_free(f);
        eqflow_context_free(ctx);
    }
}

#[test]
fn struct_size_is_checked() {
    unsafe {
        let mut cp = std::mem::zeroed::<eqflow_context_params>();
        eqflow_context_params_init(&mut cp, std::mem::size_of_val(&cp));
        cp.struct_size -= 4;
        let mut ctx = null_mut();
        assert_eq!(eqflow_context_new(&cp, &mut ctx), EQFLOW_STATUS_BAD_STRUCT_SIZE);
        assert!(ctx.is_null());
        assert!(last().contains("struct_size"), "{}", last());
        assert_eq!(eqflow_context_new(null(), &mut ctx), EQFLOW_STATUS_NULL_POINTER);
        assert_eq!(last(), "eqflow_context_new: argument 'p' is NULL");
    }
}

#[test]
fn status_names_and_version() {
    let name = |s| unsafe { CStr::from_ptr(eqflow_status_name(s)) }.to_str().unwrap();
    assert_eq!(name(EQFLOW_STATUS_BUSY), "EQFLOW_STATUS_BUSY");
    assert_eq!(name(12345), "EQFLOW_STATUS_UNKNOWN");
    assert_eq!(code(crate::error::Status::NoConvergence), EQFLOW_STATUS_NO_CONVERGENCE);
    let v = unsafe { CStr::from_ptr(eqflow_version_string()) }.to_str().unwrap();
    let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(eqflow_version_hex(), (parts[0] << 16) | (parts[1] << 8) | parts[2]);
}

#[test]
fn cuda_context_without_a_device_is_no_device_with_a_message() {
    unsafe {
        let mut cp = std::mem::zeroed::<eqflow_context_params>();
        eqflow_context_params_init(&mut cp, std::mem::size_of_val(&cp));
        cp.backend = EQFLOW_BACKEND_CUDA;
        let mut ctx = 0x1 as *mut eqflow_context;
        let s = eqflow_context_new(&cp, &mut ctx);
        if crate::cuda::available() {
            assert_eq!(eqflow_backend_available(EQFLOW_BACKEND_CUDA), 1);
            assert_eq!(s, EQFLOW_STATUS_OK, "{}", last());
            cuda_flow_follows_the_cpu_flow(ctx);
            eqflow_context_free(ctx);
            return;
        }
        assert_eq!(eqflow_backend_available(EQFLOW_BACKEND_CUDA), 0);
        assert_eq!(s, EQFLOW_STATUS_NO_DEVICE);
        assert_eq!(ctx, 0x1 as *mut eqflow_context, "output written on failure");
        let m = last();
        assert!(m.starts_with("eqflow_context_new") && m.contains("EQFLOW_BACKEND_CUDA"), "{m}");
        assert!(m.contains("libcuda.so.1") || m.contains("no CUDA device") || m.contains("cuInit"), "{m}");
    }
}

/// On a GPU: a flow made in the CUDA context `ctx` trains, samples and reports its ESS as the
/// same flow on the CPU does (f64 compute on both, so the tolerances are tight).
unsafe fn cuda_flow_follows_the_cpu_flow(ctx: *mut eqflow_context) {
    let (cpu_ctx, _) = small_flow();
    let mut fp = std::mem::zeroed::<eqflow_flow_params>();
    eqflow_flow_params_init(&mut fp, std::mem::size_of_val(&fp));
    fp.lattice_size = 4;
    fp.n_frequencies = 4;
    fp.ode_steps = 9;
    fp.batch_size = 16;
    fp.precision = EQFLOW_PRECISION_F64;
    let (mut g, mut c) = (null_mut(), null_mut());
    assert_eq!(eqflow_flow_new(ctx, &fp, &mut g), EQFLOW_STATUS_OK, "{}", last());
    assert_eq!(eqflow_flow_new(cpu_ctx, &fp, &mut c), EQFLOW_STATUS_OK, "{}", last());
    assert_eq!(eqflow_flow_train(g, 3, null_mut()), EQFLOW_STATUS_OK, "{}", last());
    assert_eq!(eqflow_flow_train(c, 3, null_mut()), EQFLOW_STATUS_OK, "{}", last());
    let n = 8;
    let (mut pg, mut qg, mut sg) = (vec![0.0; n * 16], vec![0.0; n], vec![0.0; n]);
    let (mut pc, mut qc, mut sc) = (vec![0.0; n * 16], vec![0.0; n], vec![0.0; n]);
    for (f, p, q, s) in [(g, &mut pg, &mut qg, &mut sg), (c, &mut pc, &mut qc, &mut sc)] {
        let st = eqflow_flow_sample(f, n, p.as_mut_ptr(), p.len(), q.as_mut_ptr(), q.len(), s.as_mut_ptr(), s.len());
        assert_eq!(st, EQFLOW_STATUS_OK, "{}", last());
    }
    let close = |a: &[f64], b: &[f64], what: &str| {
        let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let err = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale;
        assert!(err < 1e-9, "CUDA vs CPU flow: {what} differs by {err:e}");
    };
    close(&pg, &pc, "samples after 3 training steps");
    close(&qg, &qc, "log q");
    close(&sg, &sc, "S");
    let (mut eg, mut ec) = (0.0, 0.0);
    assert_eq!(eqflow_flow_ess(g, 64, &mut eg), EQFLOW_STATUS_OK, "{}", last());
    assert_eq!(eqflow_flow_ess(c, 64, &mut ec), EQFLOW_STATUS_OK, "{}", last());
    close(&[eg], &[ec], "ESS");
    // chains: the CUDA flow's pushes its proposals on the device, with the same decisions
    let steps = 200;
    let mut fields = [vec![0.0; steps * 16], vec![0.0; steps * 16]];
    let mut flags = [vec![0u8; steps], vec![0u8; steps]];
    for (i, f) in [g, c].into_iter().enumerate() {
        let mut ch = null_mut();
        assert_eq!(eqflow_chain_new(f, 5, &mut ch), EQFLOW_STATUS_OK, "{}", last());
        let (p, a) = (&mut fields[i], &mut flags[i]);
        let st = eqflow_chain_step(ch, steps, p.as_mut_ptr(), p.len(), a.as_mut_ptr(), a.len(), null_mut());
        assert_eq!(st, EQFLOW_STATUS_OK, "{}", last());
        eqflow_chain_free(ch);
    }
    assert_eq!(flags[0], flags[1], "CUDA vs CPU chain: accept flags");
    close(&fields[0], &fields[1], "chain states");
    eqflow_flow_free(g);
    eqflow_flow_free(c);
    eqflow_context_free(cpu_ctx);
}

#[test]
fn restarted_schedule_continues_bit_for_bit_after_save_and_load() {
    unsafe {
        // log q of fixed configurations: a function of the parameters alone (sampling would
        // advance the draw counter)
        let phi: Vec<f64> = (0..2 * 9).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
        let sample = |f: *mut eqflow_flow| {
            let mut q = vec![0.0; 2];
            let st = eqflow_flow_log_prob(f, phi.as_ptr(), phi.len(), q.as_mut_ptr(), q.len());
            assert_eq!(st, EQFLOW_STATUS_OK, "{}", last());
            q
        };
        let (ca, a) = small_flow();
        let (cb, b) = small_flow();
        let (cc, c) = small_flow();
        for f in [a, b, c] {
            assert_eq!(eqflow_flow_train(f, 2, null_mut()), EQFLOW_STATUS_OK, "{}", last());
        }
        for f in [a, b] {
            assert_eq!(eqflow_flow_restart_schedule(f, 1e-4, 50.0, 1), EQFLOW_STATUS_OK, "{}", last());
        }
        assert_eq!(eqflow_flow_train(a, 3, null_mut()), EQFLOW_STATUS_OK);
        assert_eq!(eqflow_flow_train(b, 1, null_mut()), EQFLOW_STATUS_OK);
        assert_eq!(eqflow_flow_train(c, 3, null_mut()), EQFLOW_STATUS_OK);
        let path = std::env::temp_dir().join(format!("eqflow-restart-{}.safetensors", std::process::id()));
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(eqflow_flow_save(b, cpath.as_ptr()), EQFLOW_STATUS_OK, "{}", last());
        let mut b2 = null_mut();
        assert_eq!(eqflow_flow_load(cb, cpath.as_ptr(), &mut b2), EQFLOW_STATUS_OK, "{}", last());
        let _ = std::fs::remove_file(&path);
        assert_eq!(eqflow_flow_train(b2, 2, null_mut()), EQFLOW_STATUS_OK);
        assert_eq!(sample(a), sample(b2), "restart + save + load must continue bit for bit");
        assert_ne!(sample(a), sample(c), "the new rate must change the steps");
        // bad arguments: a typed error, the flow untouched
        assert_eq!(eqflow_flow_restart_schedule(a, f64::NAN, 0.0, 0), EQFLOW_STATUS_INVALID_ARGUMENT);
        assert!(last().contains("eqflow_flow_restart_schedule") && last().contains("learning rate"), "{}", last());
        assert_eq!(eqflow_flow_restart_schedule(a, 1e-3, -5.0, 0), EQFLOW_STATUS_INVALID_ARGUMENT);
        assert!(last().contains("decay steps"), "{}", last());
        assert_eq!(eqflow_flow_restart_schedule(null_mut(), 1e-3, 0.0, 0), EQFLOW_STATUS_NULL_POINTER);
        assert_eq!(sample(a), sample(b2));
        // path gradients: a different step from the same state
        assert_eq!(eqflow_flow_set_gradient(a, 7), EQFLOW_STATUS_INVALID_ARGUMENT);
        assert!(last().contains("'gradient' = 7"), "{}", last());
        assert_eq!(eqflow_flow_set_gradient(a, EQFLOW_GRADIENT_PATH), EQFLOW_STATUS_OK, "{}", last());
        assert_eq!(eqflow_flow_train(a, 1, null_mut()), EQFLOW_STATUS_OK, "{}", last());
        assert_eq!(eqflow_flow_train(b2, 1, null_mut()), EQFLOW_STATUS_OK, "{}", last());
        assert_ne!(sample(a), sample(b2), "the path step must differ from the total one");
        for f in [a, b, b2, c] {
            eqflow_flow_free(f);
        }
        for x in [ca, cb, cc] {
            eqflow_context_free(x);
        }
    }
}
