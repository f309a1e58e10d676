"""Sampling from Gibbs densities exp(-E(x)): the unadjusted Langevin algorithm."""
