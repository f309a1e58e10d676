"""Image priors as energies R(u): the learned energy network and Charbonnier TV."""
