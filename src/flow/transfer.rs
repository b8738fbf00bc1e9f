//! Transfer of a trained flow to a larger lattice (the follow-up's approach): the kernel W is
//! indexed by displacement orbits, and an orbit's canonical folded distances (a ≤ b) mean the
//! same displacement on any lattice, so each orbit of the small lattice seeds the same orbit of
//! the large one; orbits that only exist on the large lattice (b > L_small/2) start at zero.
//! Frequencies, feature mixing and time mixing are copied unchanged.

use super::config::KernelSymmetry;
use super::model::Flow;
use crate::error::{Error, Result};

impl Flow {
    /// Sets this flow's parameters from `small`, a flow of the same architecture on a lattice
    /// no larger than this one (the optimiser state and counters start fresh).
    ///
    /// Errors: a larger source lattice, or a different architecture.
    pub fn transfer_from(&mut self, small: &Flow) -> Result<()> {
        let (ls, l) = (small.lattice.size(), self.lattice.size());
        if ls > l {
            return Err(Error::invalid(format!("transfer: the source lattice L = {ls} is larger than L = {l}")));
        }
        let (a, b) = (&small.config.arch, &self.config.arch);
        let mut a_steps = a.clone();
        a_steps.ode_steps = b.ode_steps;
        if a_steps != *b {
            return Err(Error::invalid("transfer: the source flow has another architecture".to_string()));
        }
        let (sl, ll) = (&small.layout, &self.layout);
        let per_orbit = sl.n_tc * sl.n_c;
        let sp = small.params();
        let mut p = vec![0.0; ll.total];
        match b.symmetry {
            KernelSymmetry::Full => {
                // orbit index b(b+1)/2 + a is the same on both lattices for b ≤ L_small/2
                p[ll.w.start..ll.w.start + sl.n_orb * per_orbit].copy_from_slice(&sp[sl.w.clone()]);
            }
            KernelSymmetry::Translations => {
                // displacement (s0, s1) with |s_i| ≤ L_small/2, signed, maps to the same one
                let half = (ls / 2) as isize;
                for r in 0..l * l {
                    let signed = |x: usize| if x <= l / 2 { x as isize } else { x as isize - l as isize };
                    let (s0, s1) = (signed(r / l), signed(r % l));
                    if s0.abs() > half || s1.abs() > half {
                        continue;
                    }
                    let wrap = |s: isize| s.rem_euclid(ls as isize) as usize;
                    let rs = wrap(s0) * ls + wrap(s1);
                    let dst = ll.w.start + r * per_orbit;
                    let src = sl.w.start + rs * per_orbit;
                    p[dst..dst + per_orbit].copy_from_slice(&sp[src..src + per_orbit]);
                }
            }
        }
        for ((_, rs), (_, rl)) in sl.groups().into_iter().zip(ll.groups()).skip(1) {
            p[rl].copy_from_slice(&sp[rs]);
        }
        self.set_params(&p)
    }
}
