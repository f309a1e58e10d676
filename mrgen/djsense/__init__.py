"""Deep J-Sense (Arvinte et al. 2021): unrolled alternating optimisation of image and map kernels.

``model``: the operators, the networks and the unrolled model (also MoDL and L2 J-Sense);
``training``: supervised end-to-end training on the shared engine (``mrgen train djsense``).
"""

from .model import (KIND, MODES, DJSense, DJSenseConfig, KernelModel, acs_scale,  # noqa: F401
                    build_model, linear_convolution)
