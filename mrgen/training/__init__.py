"""Training the learned models: the shared engine (engine.py), distributed context
(distributed.py), training images (data.py) and the methods (prior.py: maximum-likelihood
training of the energy prior). The model files they write are ``mrgen.model_files``."""
