//! Hybrid Monte Carlo for the φ⁴ action (SPEC §2): the reference sampler that the flow's
//! chains are compared with.
//!
//! H(φ, π) = ½ Σ_x π_x² + S(φ), leapfrog integration with the force ∂S/∂φ of
//! [`Action::force_one`], and an exact Metropolis accept/reject on ΔH. Trajectory k draws its
//! momenta from `Rng::new(seed, Stream::Hmc, k).fill_normal` and its accept uniform from the
//! same stream's sub-counter `u32::MAX` (never reached by the momenta), so a chain depends only
//! on (seed, initial state, parameters), bit for bit.

use crate::action::Action;
use crate::error::{check_finite, check_len, Error, Result};
use crate::rng::{Rng, Stream};

/// The sub-counter of a trajectory's stream that gives its accept/reject uniform.
const ACCEPT_COUNTER: u32 = u32::MAX;

/// Parameters of an HMC chain.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HmcParams {
    /// The leapfrog step size ε (finite, > 0).
    pub step_size: f64,
    /// The number of leapfrog steps per trajectory (≥ 1).
    pub n_leapfrog: usize,
    /// The seed of the chain's random stream.
    pub seed: u64,
}

impl HmcParams {
    /// Checks the parameters: a finite positive step size and at least one leapfrog step.
    pub fn validate(&self) -> Result<()> {
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(Error::invalid(format!("HMC step_size = {}: must be finite and > 0", self.step_size)));
        }
        if self.n_leapfrog == 0 {
            return Err(Error::invalid("HMC n_leapfrog = 0: must be at least 1"));
        }
        Ok(())
    }
}

/// Integrates Hamilton's equations of H = ½π² + S(φ) for `n` leapfrog steps of size `eps`
/// (kick ε/2, then n − 1 drift–kick pairs, a drift and a final kick ε/2), in place.
/// The map is symplectic and reversible: negating π and integrating again returns to the start.
/// `n = 0` leaves both unchanged.
///
/// Errors: `phi` or `pi` not of length V.
pub fn leapfrog(action: &Action, phi: &mut [f64], pi: &mut [f64], eps: f64, n: usize) -> Result<()> {
    let v = action.lattice.volume();
    check_len("leapfrog: phi", phi.len(), v)?;
    check_len("leapfrog: pi", pi.len(), v)?;
    let mut force = vec![0.0; v];
    let kick = |phi: &[f64], pi: &mut [f64], force: &mut [f64], h: f64| {
        action.force_one(phi, force);
        for (p, f) in pi.iter_mut().zip(force.iter()) {
            *p -= h * f;
        }
    };
    if n == 0 {
        return Ok(());
    }
    kick(phi, pi, &mut force, 0.5 * eps);
    for step in 0..n {
        for (x, p) in phi.iter_mut().zip(pi.iter()) {
            *x += eps * p;
        }
        let h = if step + 1 == n { 0.5 * eps } else { eps };
        kick(phi, pi, &mut force, h);
    }
    Ok(())
}

/// ½ Σ π².
fn kinetic(pi: &[f64]) -> f64 {
    0.5 * pi.iter().map(|p| p * p).sum::<f64>()
}

/// An HMC chain: the current configuration, its action, and counters.
///
/// Plain data (`Send + Sync`); methods that advance the chain take `&mut self`.
#[derive(Debug, Clone)]
pub struct Hmc {
    action: Action,
    params: HmcParams,
    phi: Vec<f64>,
    s: f64,
    trajectory: u64,
    proposed: u64,
    accepted: u64,
    last_delta_h: f64,
    pi: Vec<f64>,
    proposal: Vec<f64>,
}

impl Hmc {
    /// A chain for `action` starting at `initial` (length V, finite), or at φ = 0 if `None`.
    ///
    /// Errors: invalid parameters, a wrong length, non-finite entries or a non-finite action.
    pub fn new(action: Action, params: HmcParams, initial: Option<&[f64]>) -> Result<Self> {
        params.validate()?;
        let v = action.lattice.volume();
        let mut hmc = Hmc {
            action,
            params,
            phi: vec![0.0; v],
            s: action.action_one(&vec![0.0; v]),
            trajectory: 0,
            proposed: 0,
            accepted: 0,
            last_delta_h: f64::NAN,
            pi: vec![0.0; v],
            proposal: vec![0.0; v],
        };
        if let Some(phi) = initial {
            hmc.set_state(phi)?;
        }
        Ok(hmc)
    }

    /// One trajectory: fresh Gaussian momenta, `n_leapfrog` leapfrog steps, and an exact
    /// Metropolis accept/reject with probability min(1, exp(−ΔH)). A non-finite ΔH (the
    /// integrator blew up) is a rejection. Returns whether the proposal was accepted; on
    /// rejection the state is unchanged. Every call advances the trajectory counter.
    pub fn trajectory(&mut self) -> Result<bool> {
        let rng = Rng::new(self.params.seed, Stream::Hmc, self.trajectory);
        self.trajectory += 1;
        rng.fill_normal(&mut self.pi);
        let h0 = kinetic(&self.pi) + self.s;
        self.proposal.copy_from_slice(&self.phi);
        leapfrog(&self.action, &mut self.proposal, &mut self.pi, self.params.step_size, self.params.n_leapfrog)?;
        let s1 = self.action.action_one(&self.proposal);
        let delta_h = kinetic(&self.pi) + s1 - h0;
        self.last_delta_h = delta_h;
        self.proposed += 1;
        // u ∈ [0, 1) and exp(−ΔH) ≥ 1 for ΔH ≤ 0, so downhill moves are always taken
        let accept = delta_h.is_finite() && rng.uniform(ACCEPT_COUNTER) < (-delta_h).exp();
        if accept {
            std::mem::swap(&mut self.phi, &mut self.proposal);
            self.s = s1;
            self.accepted += 1;
        }
        Ok(accept)
    }

    /// Adapts the step size during a warm-up of `n_trajectories` trajectories (which advance
    /// the chain as usual) so that the mean acceptance probability min(1, exp(−ΔH)) approaches
    /// `target_acceptance` ∈ (0, 1): a Robbins–Monro iteration
    /// log ε ← log ε + (a_k − target) / (k + 1)^0.6, a_k the k-th trajectory's acceptance
    /// probability. The final step size is the geometric mean of ε over the second half of the
    /// warm-up; `n_leapfrog` is kept, so the trajectory length changes with ε. Afterwards the
    /// accept counters are reset (the trajectory counter is not: no random number is reused).
    /// Returns the new step size.
    ///
    /// Errors: a target outside (0, 1).
    pub fn tune_step_size(&mut self, target_acceptance: f64, n_trajectories: usize) -> Result<f64> {
        if !(target_acceptance > 0.0 && target_acceptance < 1.0) {
            return Err(Error::invalid(format!(
                "tune_step_size: target_acceptance = {target_acceptance}: must be in (0, 1)"
            )));
        }
        let mut log_eps = self.params.step_size.ln();
        let (mut sum, mut count) = (0.0, 0usize);
        for k in 0..n_trajectories {
            self.trajectory()?;
            let a = if self.last_delta_h.is_finite() { (-self.last_delta_h).exp().min(1.0) } else { 0.0 };
            log_eps += (a - target_acceptance) / ((k + 1) as f64).powf(0.6);
            self.params.step_size = log_eps.exp();
            if 2 * k >= n_trajectories {
                sum += log_eps;
                count += 1;
            }
        }
        if count > 0 {
            self.params.step_size = (sum / count as f64).exp();
        }
        self.proposed = 0;
        self.accepted = 0;
        Ok(self.params.step_size)
    }

    /// The current configuration.
    pub fn state(&self) -> &[f64] {
        &self.phi
    }

    /// Replaces the current configuration (length V, finite, with a finite action).
    /// Counters are kept.
    pub fn set_state(&mut self, phi: &[f64]) -> Result<()> {
        check_len("Hmc::set_state: phi", phi.len(), self.action.lattice.volume())?;
        check_finite("Hmc::set_state: phi", phi)?;
        let s = self.action.action_one(phi);
        if !s.is_finite() {
            return Err(Error::non_finite(format!("Hmc::set_state: the action of the configuration is {s}")));
        }
        self.phi.copy_from_slice(phi);
        self.s = s;
        Ok(())
    }

    /// S of the current configuration.
    pub fn action_value(&self) -> f64 {
        self.s
    }

    /// The action sampled.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The current parameters (the step size after any tuning).
    pub fn params(&self) -> HmcParams {
        self.params
    }

    /// The fraction of proposals accepted (NaN before the first trajectory).
    pub fn acceptance(&self) -> f64 {
        if self.proposed == 0 {
            f64::NAN
        } else {
            self.accepted as f64 / self.proposed as f64
        }
    }

    /// ΔH of the last trajectory (NaN before the first; may be ±∞ or NaN if it blew up).
    pub fn last_delta_h(&self) -> f64 {
        self.last_delta_h
    }

    /// The number of trajectories proposed (since construction or the last tuning).
    pub fn proposed(&self) -> u64 {
        self.proposed
    }

    /// The number of trajectories accepted (since construction or the last tuning).
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// The trajectory counter: the Philox index the next trajectory will use.
    pub fn trajectory_index(&self) -> u64 {
        self.trajectory
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Couplings;
    use crate::error::Status;
    use crate::lattice::Lattice;
    use crate::observables::{gamma_method, gamma_method_derived, summarize, Measurements};

    fn action(l: usize, m2: f64, lambda: f64) -> Action {
        Action::new(Lattice::new(l).unwrap(), Couplings::new(m2, lambda).unwrap())
    }

    fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut x = vec![0.0; n];
        Rng::new(seed, Stream::Sample, 0).fill_normal(&mut x);
        x
    }

    /// Runs `n` trajectories after `therm`, recording M and (1/V) Σ φ² per trajectory.
    fn run_chain(hmc: &mut Hmc, therm: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
        for _ in 0..therm {
            hmc.trajectory().unwrap();
        }
        let v = hmc.state().len() as f64;
        let mut m = Vec::with_capacity(n);
        let mut phi2 = Vec::with_capacity(n);
        for _ in 0..n {
            hmc.trajectory().unwrap();
            m.push(hmc.state().iter().sum::<f64>() / v);
            phi2.push(hmc.state().iter().map(|p| p * p).sum::<f64>() / v);
        }
        (m, phi2)
    }

    fn chi2_of(m: &[f64], v: f64) -> crate::observables::Estimate {
        let m2: Vec<f64> = m.iter().map(|x| x * x).collect();
        gamma_method_derived(&[m, &m2], &|a| v * (a[1] - a[0] * a[0])).unwrap()
    }

    #[test]
    fn leapfrog_is_reversible_and_second_order() {
        let a = action(6, -4.0, 6.975);
        let phi0: Vec<f64> = normals(36, 1).iter().map(|x| 0.5 * x).collect();
        let pi0 = normals(36, 2);
        let (mut phi, mut pi) = (phi0.clone(), pi0.clone());
        leapfrog(&a, &mut phi, &mut pi, 0.02, 50).unwrap();
        let moved = phi.iter().zip(&phi0).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(moved > 0.1);
        pi.iter_mut().for_each(|p| *p = -*p);
        leapfrog(&a, &mut phi, &mut pi, 0.02, 50).unwrap();
        let err_phi = phi.iter().zip(&phi0).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let err_pi = pi.iter().zip(&pi0).map(|(x, y)| (x + y).abs()).fold(0.0, f64::max);
        println!("leapfrog reversibility: |dphi| {err_phi:.1e}, |dpi| {err_pi:.1e}");
        assert!(err_phi < 1e-12 && err_pi < 1e-12);
        // ΔH over a fixed trajectory length shrinks as ε²
        let dh = |eps: f64, n: usize| {
            let (mut phi, mut pi) = (phi0.clone(), pi0.clone());
            let h0 = kinetic(&pi) + a.action_one(&phi);
            leapfrog(&a, &mut phi, &mut pi, eps, n).unwrap();
            kinetic(&pi) + a.action_one(&phi) - h0
        };
        let (d1, d2) = (dh(0.01, 40), dh(0.005, 80));
        println!("dH at eps 0.01: {d1:.3e}, at 0.005: {d2:.3e}, ratio {:.3}", d1 / d2);
        assert!((d1 / d2 - 4.0).abs() < 0.4);
        assert!(leapfrog(&a, &mut phi, &mut pi[..35], 0.1, 1).is_err());
    }

    #[test]
    fn exp_minus_delta_h_averages_to_one() {
        let a = action(6, -4.0, 6.975);
        let params = HmcParams { step_size: 0.12, n_leapfrog: 8, seed: 3 };
        let mut hmc = Hmc::new(a, params, None).unwrap();
        for _ in 0..500 {
            hmc.trajectory().unwrap();
        }
        let w: Vec<f64> = (0..5000)
            .map(|_| {
                hmc.trajectory().unwrap();
                (-hmc.last_delta_h()).exp()
            })
            .collect();
        let e = gamma_method(&w).unwrap();
        println!(
            "<exp(-dH)> = {:.4} ± {:.4} (tau {:.2}), acceptance {:.3}",
            e.value,
            e.error,
            e.tau_int,
            hmc.acceptance()
        );
        assert!((e.value - 1.0).abs() < 3.0 * e.error);
        assert!(hmc.acceptance() > 0.5 && hmc.acceptance() < 0.99);
    }

    #[test]
    fn free_theory_matches_exact_values() {
        let (l, m2) = (5, 0.5);
        let v = (l * l) as f64;
        let tau = std::f64::consts::TAU;
        let mut phi2_exact = 0.0;
        for k0 in 0..l {
            for k1 in 0..l {
                let p2 = 4.0
                    * ((tau * k0 as f64 / l as f64 / 2.0).sin().powi(2)
                        + (tau * k1 as f64 / l as f64 / 2.0).sin().powi(2));
                phi2_exact += 1.0 / (p2 + m2);
            }
        }
        phi2_exact /= 2.0 * v;
        let chi2_exact = 1.0 / (2.0 * m2);
        let params = HmcParams { step_size: 0.15, n_leapfrog: 10, seed: 17 };
        let mut hmc = Hmc::new(action(l, m2, 0.0), params, None).unwrap();
        let (m, phi2) = run_chain(&mut hmc, 200, 100_000);
        let p = gamma_method(&phi2).unwrap();
        let c = chi2_of(&m, v);
        let mm = gamma_method(&m).unwrap();
        println!(
            "free L={l} m2={m2}: <phi^2> {:.5} ± {:.5} (exact {phi2_exact:.5}, tau {:.2}), chi2 {:.4} ± {:.4} (exact {chi2_exact}, tau {:.2}), acc {:.3}",
            p.value, p.error, p.tau_int, c.value, c.error, c.tau_int, hmc.acceptance()
        );
        assert!((p.value - phi2_exact).abs() < 3.0 * p.error);
        assert!((c.value - chi2_exact).abs() < 3.0 * c.error);
        assert!(mm.value.abs() < 3.0 * mm.error);
        assert!(p.error < 0.01 * phi2_exact && c.error < 0.05 * chi2_exact, "the test must be able to fail");
    }

    #[test]
    fn interacting_l6_reproduces_table_1() {
        let a = action(6, -4.0, 6.975);
        let params = HmcParams { step_size: 0.1, n_leapfrog: 10, seed: 2021 };
        let mut hmc = Hmc::new(a, params, None).unwrap();
        for _ in 0..1000 {
            hmc.trajectory().unwrap();
        }
        let mut meas = Measurements::new(6).unwrap();
        for _ in 0..1_000_000 {
            hmc.trajectory().unwrap();
            meas.push(hmc.state()).unwrap();
        }
        let s = summarize(&meas).unwrap();
        let c = &s.chi2;
        println!(
            "L=6 m2=-4 lambda=6.975: chi2 = {:.4} ± {:.4} (tau {:.2}), <|M|> = {:.4} ± {:.4} (tau {:.2}), \
             L m_p = {:.3} ± {:.3}, plateau m_p {:.4} ± {:.4}, Binder {:.4} ± {:.4}, acc {:.3}",
            c.value,
            c.error,
            c.tau_int,
            s.abs_m.value,
            s.abs_m.error,
            s.abs_m.tau_int,
            s.l_m_p.value,
            s.l_m_p.error,
            s.m_p_plateau.value,
            s.m_p_plateau.error,
            s.binder.value,
            s.binder.error,
            hmc.acceptance()
        );
        // Table 1 / independent HMC (SPEC §2): χ2 = 1.064(1), L·m_p = 3.97 (no error quoted)
        let sigma = (c.error * c.error + 0.001f64.powi(2)).sqrt();
        assert!((c.value - 1.064).abs() < 4.0 * sigma, "chi2 {} ± {}", c.value, c.error);
        assert!(c.error < 0.005);
        assert!((s.l_m_p.value - 3.97).abs() < 4.0 * s.l_m_p.error + 0.02, "L m_p {:?}", s.l_m_p);
    }

    #[test]
    fn same_seed_gives_a_bit_identical_chain() {
        let a = action(4, -4.0, 6.975);
        let params = HmcParams { step_size: 0.1, n_leapfrog: 5, seed: 99 };
        let start = normals(16, 5);
        let run = |p: HmcParams| {
            let mut hmc = Hmc::new(a, p, Some(&start)).unwrap();
            let trace: Vec<(bool, u64)> =
                (0..200).map(|_| (hmc.trajectory().unwrap(), hmc.last_delta_h().to_bits())).collect();
            (trace, hmc.state().iter().map(|x| x.to_bits()).collect::<Vec<_>>(), hmc.accepted())
        };
        let (t1, s1, a1) = run(params);
        let (t2, s2, a2) = run(params);
        assert_eq!((t1, s1, a1), (t2.clone(), s2.clone(), a2));
        let (t3, s3, _) = run(HmcParams { seed: 100, ..params });
        assert_ne!(s3, s2);
        assert_ne!(t3, t2);
    }

    #[test]
    fn invalid_parameters_and_states_are_typed_errors() {
        let a = action(4, 0.5, 0.1);
        let ok = HmcParams { step_size: 0.1, n_leapfrog: 5, seed: 0 };
        for bad in [
            HmcParams { step_size: 0.0, ..ok },
            HmcParams { step_size: -0.1, ..ok },
            HmcParams { step_size: f64::NAN, ..ok },
            HmcParams { step_size: f64::INFINITY, ..ok },
            HmcParams { n_leapfrog: 0, ..ok },
        ] {
            assert_eq!(Hmc::new(a, bad, None).unwrap_err().status, Status::InvalidArgument);
        }
        assert_eq!(Hmc::new(a, ok, Some(&[0.0; 15])).unwrap_err().status, Status::BadLength);
        let mut nan = [0.0; 16];
        nan[3] = f64::NAN;
        assert_eq!(Hmc::new(a, ok, Some(&nan)).unwrap_err().status, Status::InvalidArgument);
        let mut hmc = Hmc::new(a, ok, None).unwrap();
        assert!(hmc.acceptance().is_nan() && hmc.last_delta_h().is_nan());
        assert_eq!(hmc.action_value(), 0.0);
        assert!(hmc.set_state(&nan).is_err());
        assert_eq!(hmc.set_state(&[1e100; 16]).unwrap_err().status, Status::NonFinite);
        hmc.set_state(&[0.5; 16]).unwrap();
        assert_eq!(hmc.action_value(), a.action_one(&[0.5; 16]));
        assert!(hmc.tune_step_size(1.0, 10).is_err() && hmc.tune_step_size(f64::NAN, 10).is_err());
    }

    #[test]
    fn a_blown_up_trajectory_is_a_counted_rejection() {
        let a = action(4, -4.0, 6.975);
        let start = normals(16, 8);
        let mut hmc = Hmc::new(a, HmcParams { step_size: 1e3, n_leapfrog: 10, seed: 1 }, Some(&start)).unwrap();
        assert!(!hmc.trajectory().unwrap());
        assert!(!hmc.last_delta_h().is_finite(), "dH = {}", hmc.last_delta_h());
        assert_eq!((hmc.proposed(), hmc.accepted(), hmc.acceptance()), (1, 0, 0.0));
        assert_eq!(hmc.state(), &start[..]);
        assert_eq!(hmc.trajectory_index(), 1);
    }

    #[test]
    fn tuning_reaches_the_target_acceptance() {
        let a = action(6, -4.0, 6.975);
        let mut hmc = Hmc::new(a, HmcParams { step_size: 0.5, n_leapfrog: 10, seed: 7 }, None).unwrap();
        let eps = hmc.tune_step_size(0.8, 2000).unwrap();
        assert_eq!(hmc.proposed(), 0);
        assert_eq!(hmc.params().step_size, eps);
        let n = 4000;
        for _ in 0..n {
            hmc.trajectory().unwrap();
        }
        println!("tuned step size {eps:.4}: acceptance {:.3} (target 0.8)", hmc.acceptance());
        assert!((hmc.acceptance() - 0.8).abs() < 0.06);
    }
}
