//! Markov chains: the reference HMC sampler and independence Metropolis with flow proposals.

pub mod checkpoint;
pub mod hmc;
pub mod metropolis;
pub mod proposal;
