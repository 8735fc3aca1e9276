"""A small DDPM for low-dimensional toy data: schedule, ancestral sampler and the paper's MLP.

This follows the released code of Aithal et al. (mode interpolation, NeurIPS 2024) for the
Gaussian toy experiments: ``T = 1000`` steps, betas linear from 0.001 to 0.2, epsilon
prediction trained with an unweighted MSE, ancestral sampling with the "fixed large" reverse
variance ``sigma_t^2 = beta_t``, no clipping of ``x0_hat``. The closed forms match diffusers'
``DDPMScheduler(beta_schedule="linear", variance_type="fixed_large", clip_sample=False)``
(checked in ``tests/test_repro_toy.py``); the schedule is kept in float64 here.

Example
-------
>>> sched = DDPMSchedule.linear(1000, 0.001, 0.2)
>>> model = ToyDenoiser(dim=1)
>>> sum(p.numel() for p in model.parameters())
66817
>>> x, traj = sched.sample(model, (4, 1), record_last=10, generator=torch.Generator().manual_seed(0),
...                        progress=False)
>>> tuple(x.shape), tuple(traj.shape)
((4, 1), (10, 4, 1))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ripbench.training.ema import ema_update, warmup_decay

__all__ = ["DDPMSchedule", "ToyDenoiser", "sinusoidal_embedding", "train_denoiser"]


@dataclass(frozen=True)
class DDPMSchedule:
    """Discrete DDPM noise schedule (float64, on the CPU) with the closed forms used for sampling.

    Why not ``diffusers.DDPMScheduler``, whose closed forms these are (``tests/test_repro_toy.py``
    checks them against it): the paper's toy schedule has betas up to 0.2, so ``abar_t`` falls to
    about 4e-44 at ``t = 999``, which is 0 in the scheduler's float32 table; its ``x0`` prediction
    there is ``inf``. The reproduction needs float64, betas included: the scheduler's float32 betas
    would also change the evaluation of the shipped toy weights in ``ripbench/weights/toy-grid2d``.

    Attributes:
        betas: ``T`` forward-process variances ``beta_t``, ``t = 0 .. T-1``.
    """

    betas: torch.Tensor

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 0.001, beta_end: float = 0.2) -> DDPMSchedule:
        """Betas linear from ``beta_start`` to ``beta_end`` (the paper's toy schedule by default)."""
        return cls(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))

    @property
    def num_steps(self) -> int:
        """Number of diffusion steps ``T``."""
        return int(self.betas.shape[0])

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """``abar_t = prod_{s <= t} (1 - beta_s)``."""
        return torch.cumprod(1.0 - self.betas, dim=0)

    @property
    def alphas_cumprod_prev(self) -> torch.Tensor:
        """``abar_{t-1}``, with ``abar_{-1} = 1``."""
        return torch.cat([self.betas.new_ones(1), self.alphas_cumprod[:-1]])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` for per-item steps ``t``."""
        abar = self.alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[t]
        abar = abar.reshape(-1, *([1] * (x0.ndim - 1)))
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """Unclipped clean-sample prediction ``sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps``."""
        abar = float(self.alphas_cumprod[t])
        return math.sqrt(1.0 / abar) * x_t - math.sqrt(1.0 / abar - 1.0) * eps

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """Mean of ``q(x_{t-1} | x_t, x0)``."""
        beta, abar = float(self.betas[t]), float(self.alphas_cumprod[t])
        abar_prev = float(self.alphas_cumprod_prev[t])
        coef_x0 = beta * math.sqrt(abar_prev) / (1.0 - abar)
        coef_xt = math.sqrt(1.0 - beta) * (1.0 - abar_prev) / (1.0 - abar)
        return coef_x0 * x0 + coef_xt * x_t

    def step(
        self, x_t: torch.Tensor, eps: torch.Tensor, t: int, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One ancestral reverse step with the fixed-large variance ``beta_t`` (no noise at ``t = 0``).

        Returns:
            ``(x_{t-1}, x0_hat)``.
        """
        x0_hat = self.predict_x0(x_t, eps, t)
        mean = self.posterior_mean(x0_hat, x_t, t)
        if t == 0:
            return mean, x0_hat
        if noise is None:
            noise = torch.randn_like(x_t)
        return mean + math.sqrt(float(self.betas[t])) * noise, x0_hat

    @torch.inference_mode()
    def sample(
        self,
        model: nn.Module,
        shape: tuple[int, ...],
        *,
        record_last: int = 10,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        progress: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling from pure noise, recording ``x0_hat`` at the last ``record_last`` steps.

        Args:
            model: ``eps_hat = model(x_t, t)`` with ``t`` a 0-d long tensor.
            shape: ``B x ...`` shape of the samples.
            record_last: number of final steps whose ``x0_hat`` is returned (``t = record_last-1 .. 0``).
            generator: random generator on ``device`` (for reproducible samples).
            device: where to sample; defaults to the model's device.

        Returns:
            ``(samples, x0_trajectory)`` with the trajectory ``record_last x B x ...``, oldest first.
        """
        if device is None:
            device = next(model.parameters()).device
        x = torch.randn(shape, generator=generator, device=device)
        traj = torch.empty((record_last, *shape), device=device)
        for t in tqdm(range(self.num_steps - 1, -1, -1), desc="sampling", disable=not progress, leave=False):
            eps = model(x, torch.tensor(t, device=device))
            noise = torch.randn(shape, generator=generator, device=device) if t > 0 else None
            x, x0_hat = self.step(x, eps, t, noise)
            if t < record_last:
                traj[record_last - 1 - t] = x0_hat
        return x, traj


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """DDPM's sinusoidal time embedding: ``[sin(t w_i), cos(t w_i)]``, ``w_i = 10000^(-i/(dim/2-1))``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1)
    )
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ToyDenoiser(nn.Module):
    """The paper's toy noise predictor (about 67k parameters for width 128).

    ``x -> Linear(no bias) -> 3 x residual block -> LayerNorm -> Linear``; the residual blocks
    share one weight set and compute ``h + fc2(act(norm2(fc1(act(norm1(h))) + enc(temb))))`` with
    ``temb = act(Linear(sinusoidal(t)))`` and ``act`` = LeakyReLU(0.02). Because the blocks share
    their weights, the time term ``enc(temb)`` is computed once per distinct ``t`` (same function,
    less work than the released code, which recomputes it in every block).
    """

    def __init__(self, dim: int, width: int = 128, num_blocks: int = 3) -> None:
        super().__init__()
        self.width, self.num_blocks = width, num_blocks
        self.in_fc = nn.Linear(dim, width, bias=False)
        self.t_proj = nn.Linear(width, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width, bias=False)
        self.fc2 = nn.Linear(width, width, bias=False)
        self.enc = nn.Linear(width, width)
        self.out_norm = nn.LayerNorm(width)
        self.out_fc = nn.Linear(width, dim)

    def _time_term(self, t: torch.Tensor) -> torch.Tensor:
        return self.enc(F.leaky_relu(self.t_proj(sinusoidal_embedding(t, self.width)), 0.02))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict the noise in ``x`` (``B x dim``) at step ``t`` (0-d, or ``B`` long tensor)."""
        if t.ndim == 0:
            temb = self._time_term(t.reshape(1))
        else:
            steps, inverse = torch.unique(t, return_inverse=True)
            temb = self._time_term(steps)[inverse]
        h = self.in_fc(x)
        for _ in range(self.num_blocks):
            out = self.fc1(F.leaky_relu(self.norm1(h), 0.02)) + temb
            h = h + self.fc2(F.leaky_relu(self.norm2(out), 0.02))
        return self.out_fc(self.out_norm(h))


def train_denoiser(
    model: nn.Module,
    data: torch.Tensor,
    schedule: DDPMSchedule,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    cosine_decay: bool = False,
    focus_steps: int = 0,
    ema_decay: float = 0.0,
    focus_reweight: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "training",
) -> list[float]:
    """Train ``model`` to predict the noise (MSE, uniform ``t``, Adam) on random batches of ``data``.

    ``cosine_decay`` anneals the learning rate from ``lr`` to 0 over the steps (the released code
    keeps it constant over far more steps; annealing sharpens a model trained on a small budget).

    ``focus_steps > 0`` draws half of every batch's ``t`` uniformly from ``[0, focus_steps)`` and half
    from ``[0, T)``, and weights each item's loss by ``1 / (T p(t))``: the expected loss (and its
    minimiser) is the paper's uniform-``t`` MSE, but the final low-noise steps, which set how sharp
    the learned modes are and get only a few items of a uniform batch, are seen far more often.
    ``focus_reweight=False`` drops those importance weights, so the items with ``t < focus_steps``
    count about ``T / (2 focus_steps)`` times more than under the uniform loss. The minimiser at
    every ``t`` is unchanged (the posterior-mean noise), so the model is still the paper's DDPM;
    only the trade-off between steps, under a small budget, moves towards the low-noise steps.

    ``ema_decay > 0`` keeps an exponential moving average of the weights (decay ``ema_decay``,
    bias-corrected over the first steps) and loads it into ``model`` at the end: the standard DDPM
    practice, which averages out the optimiser's noise around the minimum.

    Returns:
        The loss of every step.
    """
    device = data.device
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}.")
    num_steps = schedule.num_steps
    if not 0 <= focus_steps <= num_steps:
        raise ValueError(f"focus_steps must lie in [0, {num_steps}], got {focus_steps}.")
    # Importance weights 1 / (T p(t)) of the mixture "half uniform on [0, focus), half uniform on [0, T)".
    p_t = torch.full((num_steps,), 1.0 / num_steps, device=device)
    if focus_steps:
        p_t = 0.5 * p_t
        p_t[:focus_steps] += 0.5 / focus_steps
    weight_t = 1.0 / (num_steps * p_t) if focus_reweight else torch.ones_like(p_t)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1)) if cosine_decay else None
    params = [p for p in model.parameters() if p.requires_grad]
    ema = [p.detach().clone() for p in params] if ema_decay else []
    model.train()
    losses: list[torch.Tensor] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        idx = torch.randint(data.shape[0], (batch_size,), generator=generator, device=device)
        x0 = data[idx]
        t = torch.randint(num_steps, (batch_size,), generator=generator, device=device)
        if focus_steps:
            half = batch_size // 2
            t[:half] = torch.randint(focus_steps, (half,), generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        err = (model(schedule.add_noise(x0, noise, t), t) - noise).pow(2).flatten(1).mean(1)
        loss = (weight_t[t] * err).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema:  # warmed up (1 + n) / (10 + n) so early steps do not keep the random initialisation
            ema_update(ema, params, warmup_decay(step, ema_decay))
        losses.append(loss.detach())
        if progress and step % 100 == 99:
            bar.set_postfix(loss=f"{torch.stack(losses[-100:]).mean().item():.4f}")
    if ema:
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in params], ema)
    model.eval()
    return torch.stack(losses).tolist() if losses else []
