"""Un-trained neural network reconstruction (ConvDecoder; Darestani, Heckel 2021).

``build_generator`` makes a ConvDecoder, Deep Decoder or small DIP with its fixed random
input; ``fit_untrained`` fits it to multi-coil k-space (with or without sensitivity maps),
applies data consistency and averages independent runs, optionally stopping early on a
held-out part of the sampled k-space; ``data_consistency`` is Step 2 on
its own.
"""

from .architectures import (ARCHITECTURES, DEFAULT_INPUT_SIZE, DEFAULTS, ConvDecoder,
                            DeepDecoder, SkipNet, build_generator, count_parameters,
                            layer_sizes, resolve_config)
from .fit import (DEFAULT_ITERS, DEFAULT_LR, EarlyStopping, coil_images_from_output,
                  data_consistency, derive_seed, fit_network, fit_untrained, holdout_split,
                  reconstruct_slice, sampling_pattern)

__all__ = ["ARCHITECTURES", "DEFAULTS", "DEFAULT_INPUT_SIZE", "DEFAULT_ITERS", "DEFAULT_LR",
           "ConvDecoder", "DeepDecoder", "SkipNet", "build_generator", "count_parameters",
           "layer_sizes", "resolve_config", "coil_images_from_output", "data_consistency",
           "derive_seed", "EarlyStopping", "fit_network", "fit_untrained", "holdout_split",
           "reconstruct_slice", "sampling_pattern"]
