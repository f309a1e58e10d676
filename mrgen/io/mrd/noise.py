"""Noise pre-whitening from the noise-scan readouts (ACQ_IS_NOISE_MEASUREMENT).

The receiver noise of C channels is correlated with covariance Psi (C x C), estimated from
noise-only samples X (C, N) as X X^H / N. With the Cholesky factor Psi = L L^H, multiplying
every k-space sample's coil vector by W = L^-1 makes the noise white with unit variance per
channel (W Psi W^H = I), which the reconstructions' least-squares data terms assume.

Noise variance grows with the receiver bandwidth, i.e. falls with the dwell time: a noise scan
sampled with dwell time t_n whitens data sampled with dwell time t_d after scaling W by
sqrt(t_d / t_n) (as Gadgetron's noise adjustment does).
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError


def noise_covariance(samples: np.ndarray) -> np.ndarray:
    """Psi = X X^H / N (complex128) of noise samples X (C, N)."""
    x = samples.astype(np.complex128)
    return x @ x.conj().T / x.shape[1]


def whitening_matrix(covariance: np.ndarray, source: str, dwell_ratio: float = 1.0):
    """W = sqrt(dwell_ratio) L^-1 with covariance = L L^H; ``dwell_ratio`` = data dwell time
    over noise dwell time. DataError when the covariance is not positive definite (a dead or
    duplicated channel)."""
    try:
        lower = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        raise DataError(f"{source}: the noise covariance is not positive definite (a dead or "
                        "duplicated channel?); use --no-prewhiten") from None
    inverse = np.linalg.solve(lower, np.eye(len(lower), dtype=lower.dtype))
    return np.sqrt(dwell_ratio) * inverse


def whiten(kspace: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply the whitening matrix over the coil axis of k-space (S, C, H, W); zeros (samples
    not acquired) stay exactly zero."""
    slices, coils = kspace.shape[:2]
    # (C, C) @ (S, C, H*W): one BLAS product per slice, in the data's single precision
    white = np.matmul(matrix.astype(np.complex64), kspace.reshape(slices, coils, -1))
    return white.reshape(kspace.shape)
