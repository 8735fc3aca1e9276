"""The exponential moving average of weights that every ripbench training loop keeps (one helper).

``ema <- decay * ema + (1 - decay) * params`` in place (``torch._foreach_lerp_``), with the
warm-up of diffusers' ``EMAModel`` (``(1 + n) / (10 + n)``, capped at the maximum decay) so that
early steps do not keep the random initialisation. It is not ``EMAModel`` itself because that
updates with another sequence of floating-point operations: the shipped weights
(``ripbench/weights/``) were made with this one, and their training is reproducible bit for bit.

>>> import torch
>>> ema, params = [torch.zeros(2)], [torch.ones(2)]
>>> ema_update(ema, params, warmup_decay(0, 0.999))
>>> ema[0].tolist(), warmup_decay(10**6, 0.999)
([0.8999999761581421, 0.8999999761581421], 0.999)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

__all__ = ["ema_update", "warmup_decay"]


def warmup_decay(step: int, max_decay: float) -> float:
    """The decay of update number ``step``: ``(1 + step) / (10 + step)``, at most ``max_decay``."""
    return min(max_decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: Sequence[torch.Tensor], params: Iterable[torch.Tensor], decay: float) -> None:
    """Move each tensor of ``ema`` towards its parameter: ``ema += (1 - decay) * (param - ema)``."""
    torch._foreach_lerp_(list(ema), [p.detach() for p in params], 1.0 - decay)
