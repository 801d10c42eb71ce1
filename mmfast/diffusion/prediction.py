"""What the denoiser predicts, and how each prediction converts to the noise the samplers use.

With x_t = alpha x0 + sigma eps (alpha^2 + sigma^2 = 1), a model may predict
  eps: the noise (the release; DDPM);
  x0:  the clean data;
  v:   alpha eps - sigma x0 (Salimans & Ho 2022), whose scale stays near 1 at every noise level.
Each determines the others given x_t, so every sampler is written once, for eps.
"""

from __future__ import annotations

from torch import Tensor

from mmfast.choice import Choice


class Prediction(Choice):
    EPS = "eps"
    V = "v"
    X0 = "x0"


PREDICTIONS = tuple(p.value for p in Prediction)


def check_prediction(prediction: str) -> Prediction:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return Prediction(prediction)


def prediction_target(
    prediction: str, x0: Tensor, noise: Tensor, alpha: Tensor | float, sigma: Tensor | float
) -> Tensor:
    """The regression target of `prediction` for data x0 noised with `noise` at (alpha, sigma)."""
    kind = check_prediction(prediction)
    if kind is Prediction.EPS:
        return noise
    if kind is Prediction.X0:
        return x0
    return alpha * noise - sigma * x0


def eps_from_prediction(
    prediction: str, out: Tensor, x_t: Tensor, alpha: Tensor | float, sigma: Tensor | float
) -> Tensor:
    """The noise implied by the model output `out` at state x_t with (alpha, sigma)."""
    kind = check_prediction(prediction)
    if kind is Prediction.EPS:
        return out
    if kind is Prediction.X0:
        return (x_t - alpha * out) / sigma
    return alpha * out + sigma * x_t
