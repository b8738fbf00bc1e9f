//! Markov chains: the reference HMC sampler and independence Metropolis with flow proposals.

pub mod hmc;
pub mod metropolis;
