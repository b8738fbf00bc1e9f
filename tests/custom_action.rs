//! A host-supplied action: it reproduces the built-in φ⁴ results exactly when it computes the
//! same thing, it is only called on the calling thread, and its failures become errors.

use eqflow::flow::model::CustomAction;
use eqflow::flow::{Flow, FlowConfig};
use eqflow::mcmc::metropolis::Chain;
use std::sync::{Arc, Mutex};

/// φ⁴ written independently (neighbour sums by explicit coordinates), recording its threads.
struct Phi4 {
    l: usize,
    m2: f64,
    lambda: f64,
    threads: Mutex<Vec<std::thread::ThreadId>>,
}

impl CustomAction for Phi4 {
    fn evaluate(&self, phi: &[f64], action: &mut [f64], force: Option<&mut [f64]>) -> eqflow::Result<()> {
        self.threads.lock().unwrap().push(std::thread::current().id());
        let l = self.l;
        let v = l * l;
        let at = |f: &[f64], a: usize, b: usize| f[(a % l) * l + b % l];
        let mut force = force;
        for (n, f) in phi.chunks(v).enumerate() {
            let mut s = 0.0;
            for a in 0..l {
                for b in 0..l {
                    let p = at(f, a, b);
                    s += (at(f, a + 1, b) - p).powi(2) + (at(f, a, b + 1) - p).powi(2);
                    s += self.m2 * p * p + self.lambda * p.powi(4);
                    if let Some(fo) = force.as_deref_mut() {
                        let nb = at(f, a + 1, b) + at(f, a + l - 1, b) + at(f, a, b + 1) + at(f, a, b + l - 1);
                        fo[n * v + a * l + b] =
                            2.0 * (4.0 * p - nb) + 2.0 * self.m2 * p + 4.0 * self.lambda * p.powi(3);
                    }
                }
            }
            action[n] = s;
        }
        Ok(())
    }
}

#[test]
fn custom_phi4_matches_builtin_and_runs_on_the_calling_thread() {
    let mut cfg = FlowConfig::new(4, -4.0, 6.0);
    cfg.arch.n_frequencies = 4;
    cfg.arch.ode_steps = 9;
    cfg.train.batch_size = 20;
    let mut a = Flow::new(cfg.clone(), 2).unwrap();
    let mut b = Flow::new(cfg, 2).unwrap();
    let custom = Arc::new(Phi4 { l: 4, m2: -4.0, lambda: 6.0, threads: Mutex::new(Vec::new()) });
    b.set_custom_action(Some(custom.clone()));
    for _ in 0..3 {
        let (sa, sb) = (a.train_step().unwrap(), b.train_step().unwrap());
        assert!((sa.loss - sb.loss).abs() < 1e-10 * sa.loss.abs().max(1.0), "{} vs {}", sa.loss, sb.loss);
    }
    for (x, y) in a.params().iter().zip(b.params()) {
        assert!((x - y).abs() < 1e-9 * x.abs().max(1.0));
    }
    let (pa, pb) = (a.sample(10).unwrap(), b.sample(10).unwrap());
    for (x, y) in pa.action.iter().zip(&pb.action) {
        assert!((x - y).abs() < 1e-9 * x.abs());
    }
    let mut chain = Chain::new(&b, 3);
    chain.step(50).unwrap();
    let me = std::thread::current().id();
    let seen = custom.threads.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|&t| t == me), "the custom action ran on a worker thread");
}

struct Failing;
impl CustomAction for Failing {
    fn evaluate(&self, _: &[f64], _: &mut [f64], _: Option<&mut [f64]>) -> eqflow::Result<()> {
        Err(eqflow::Error::invalid("host action refused"))
    }
}

#[test]
fn a_failing_custom_action_is_an_error_and_changes_nothing() {
    let mut cfg = FlowConfig::new(3, 1.0, 1.0);
    cfg.arch.n_frequencies = 2;
    cfg.arch.ode_steps = 3;
    let mut f = Flow::new(cfg, 1).unwrap();
    let p0 = f.params().to_vec();
    f.set_custom_action(Some(Arc::new(Failing)));
    let e = f.train_step().unwrap_err();
    assert!(e.message.contains("host action refused"));
    assert_eq!(f.params(), &p0[..]);
    assert!(f.sample(2).is_err());
}
