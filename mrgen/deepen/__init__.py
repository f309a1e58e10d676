"""DEEPEN (Chand, Jacob 2025): an end-to-end trained posterior energy, its MAP estimate and samples.

- ``model``: the energy network E_theta (complex image -> one non-negative number), the
  posterior cost C(x) = 1/2 ||A x - b||^2 + E(x), the data normalisation, the model kind
  "deepen-energy" of its model files (``mrgen.model_files``);
- ``training``: maximum likelihood of the posterior (Eq. 8-13) on the shared engine;
- ``recon``: majorise-minimise MAP (Eq. 14-15) and Langevin posterior sampling (Eq. 16).
"""
