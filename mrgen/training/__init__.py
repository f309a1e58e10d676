"""Training the learned models: the shared engine (engine.py), distributed context
(distributed.py), self-describing model files (checkpoint.py), training images (data.py) and
the methods (prior.py: maximum-likelihood training of the energy prior)."""
