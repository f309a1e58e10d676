"""MR contrasts from tissue probability maps: literature tissue values and signal equations.

Each voxel holds fractions p_t of grey matter, white matter and CSF (partial volumes); its
signal is the mix S = sum_t p_t S_t of the tissue signals of one sequence:

- spin echo:                S = PD (1 - e^(-TR/T1)) e^(-TE/T2)
- inversion recovery:       S = PD |1 - 2 e^(-TI/T1) + e^(-TR/T1)| e^(-TE/T2)
  (magnitude image; FLAIR is inversion recovery with the TI that nulls CSF,
  TI = T1_csf ln(2 / (1 + e^(-TR/T1_csf))), and the T1-weighted contrast is a T1-FLAIR,
  an inversion recovery with a short TI, as clinical T1w brain imaging at 1.5 T uses).

Tissue values at 1.5 T (T1, T2 in ms; PD relative to CSF = 1):
- grey and white matter T1 and T2: Stanisz et al. 2005 (G. J. Stanisz et al., "T1, T2
  relaxation and magnetization transfer in tissue at 3T", Magn Reson Med 54:507-512,
  Table 1, its 1.5 T column): WM T1 884 ms, T2 72 ms; GM T1 1124 ms, T2 95 ms;
- CSF, close to free water: T1 4300 ms, T2 2200 ms, inside the ranges of the usual tables
  (T1 4200-4500 ms, T2 2100-2300 ms); an approximation, the precise value matters little
  (CSF is nulled in FLAIR and T1w, brightest in T2w);
- proton density as water content relative to CSF: WM 0.69, GM 0.84 (the mean water content
  measured in 21 volunteers, 69.1 % and 83.7 %, in "A single-scan, rapid whole-brain protocol
  for quantitative water content mapping with neurobiological implications", Front Neurol
  10:1333, 2019), CSF 1.0.

Sequence parameters are typical clinical 1.5 T brain settings (``SEQUENCES``); each slice
draws them within +-``JITTER`` of these, so the corpus holds a range of weightings, not one.
With the nominal values: T2w CSF > GM > WM; T1w WM > GM > CSF; FLAIR GM > WM > CSF ~ 0;
PD GM > WM ~ CSF.
"""

from __future__ import annotations

import math

import numpy as np

TISSUES = {            # T1 ms, T2 ms, PD (see the module doc for the sources)
    "gm": (1124.0, 95.0, 0.84),
    "wm": (884.0, 72.0, 0.69),
    "csf": (4300.0, 2200.0, 1.0),
}

SEQUENCES = {          # kind, nominal TR, TE, TI (ms); FLAIR's TI nulls CSF
    "T1w": ("ir", 2000.0, 10.0, 850.0),
    "T2w": ("se", 4000.0, 100.0, None),
    "PD": ("se", 3000.0, 15.0, None),
    "FLAIR": ("ir", 9000.0, 120.0, "null-csf"),
}
JITTER = {"T1w": 0.05, "T2w": 0.1, "PD": 0.1, "FLAIR": 0.1}
SYNTHETIC = tuple(SEQUENCES)
TEMPLATE = "T1w-template"


def spin_echo(pd, t1, t2, tr: float, te: float):
    """S = PD (1 - e^(-TR/T1)) e^(-TE/T2)."""
    return pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)


def inversion_recovery(pd, t1, t2, tr: float, te: float, ti: float):
    """S = PD |1 - 2 e^(-TI/T1) + e^(-TR/T1)| e^(-TE/T2) (magnitude)."""
    return pd * np.abs(1.0 - 2.0 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / t2)


def null_time(t1: float, tr: float) -> float:
    """The inversion time that nulls a tissue of ``t1``: TI = T1 ln(2 / (1 + e^(-TR/T1)))."""
    return t1 * math.log(2.0 / (1.0 + math.exp(-tr / t1)))


def nominal_parameters(contrast: str) -> dict:
    """TR, TE (and TI) of ``contrast`` at their nominal values."""
    kind, tr, te, ti = SEQUENCES[contrast]
    return _complete(kind, tr, te, ti)


def draw_parameters(contrast: str, rng: np.random.Generator) -> dict:
    """TR, TE (and TI) drawn uniformly within +-JITTER of the nominal values; FLAIR's TI is
    the CSF null of the drawn TR."""
    kind, tr, te, ti = SEQUENCES[contrast]
    j = JITTER[contrast]
    factors = rng.uniform(1.0 - j, 1.0 + j, size=3)
    tr, te = tr * factors[0], te * factors[1]
    if isinstance(ti, float):
        ti = ti * factors[2]
    return _complete(kind, tr, te, ti)


def _complete(kind, tr, te, ti) -> dict:
    params = {"sequence": "inversion recovery" if kind == "ir" else "spin echo",
              "TR": round(float(tr), 3), "TE": round(float(te), 3)}
    if kind == "ir":
        ti = null_time(TISSUES["csf"][0], tr) if ti == "null-csf" else ti
        params["TI"] = round(float(ti), 3)
    return params


# Tissue sharpness: the template's maps are a population average, their boundaries blurred over
# a few millimetres by the spread of the subjects; one subject's are sharp (partial volume
# within a voxel). Each slice draws a temperature T log-uniformly in [CRISP_MIN, 1]: 1 keeps
# the average, small T comes close to a hard segmentation.
CRISP_MIN = 0.1


def draw_temperature(rng: np.random.Generator) -> float:
    return round(float(np.exp(rng.uniform(np.log(CRISP_MIN), 0.0))), 4)


def crisp_fractions(fractions: dict, temperature: float) -> dict:
    """Fractions p_t^(1/T) / sum_s p_s^(1/T) over the tissues and the background (1 - their
    sum): the same most likely tissue at every voxel, boundaries narrowed as T falls."""
    if temperature >= 1.0:
        return fractions
    names = list(fractions)
    stack = np.stack([np.clip(np.asarray(fractions[n], np.float64), 0.0, 1.0) for n in names])
    stack = np.concatenate([stack, np.clip(1.0 - stack.sum(0, keepdims=True), 0.0, 1.0)])
    # powers of the fractions divided by the largest, so that 1/T up to 10 stays in range
    powered = (stack / stack.max(0, keepdims=True).clip(1e-12)) ** (1.0 / temperature)
    powered /= powered.sum(0, keepdims=True)
    return {n: powered[i] for i, n in enumerate(names)}


def tissue_signal(tissue: str, params: dict) -> float:
    """The signal of one pure tissue under ``params`` (from ``draw_parameters``)."""
    t1, t2, pd = TISSUES[tissue]
    if "TI" in params:
        return float(inversion_recovery(pd, t1, t2, params["TR"], params["TE"], params["TI"]))
    return float(spin_echo(pd, t1, t2, params["TR"], params["TE"]))


def synthesize(fractions: dict, params: dict) -> np.ndarray:
    """S = sum_t p_t S_t over the tissues of ``fractions`` (name -> array of fractions)."""
    out = None
    for tissue, fraction in fractions.items():
        term = np.asarray(fraction, dtype=np.float64) * tissue_signal(tissue, params)
        out = term if out is None else out + term
    return out
