"""The authors' toy training recipe, resumable: the 2D grid DDPM of Aithal et al. as their code trains it.

The released code (locuslab/diffusion-model-hallucination, ``train_toy.py`` with ``run.sh``) trains the
toy denoiser (:class:`~ripbench.repro._ddpm.ToyDenoiser`) with

* Xavier-uniform weights and zero biases in every linear layer (their ``DEFAULT_INITIALIZER``),
  LayerNorm at its default;
* the data set in a fixed order (modes round-robin), cut into consecutive batches of 10,000, one epoch
  being one pass (10 batches for the 2D grid's 100,000 points), 10,000 epochs: 100,000 Adam steps,
  1e9 training items;
* Adam at a constant learning rate of 1e-3 (betas 0.9, 0.999), no warm-up, no gradient clipping;
* ``t`` uniform on ``0 .. T-1``, epsilon prediction, unweighted MSE; no EMA.

:class:`AuthorsRecipe` holds exactly that; :func:`train` runs it in a folder and **checkpoints**: every
``checkpoint_every`` steps the model, the optimiser, the random generator and the loss log are written
atomically (``state.pt``), so an interrupted run resumes where it stopped and ends with the same weights,
bit for bit, as an uninterrupted one (``tests/test_repro_toy.py``). Every ``snapshot_every`` steps the
weights are also kept as ``snapshots/step-<n>.safetensors`` so the removed share can be measured against
the number of training items seen. An exponential moving average of the weights (decay 0.999) is kept
on the side as an **ablation** only (``ema.safetensors``); the recipe's model is the raw weights.

The recipe takes about 0.13 s a step on one CPU core (about 3.7 hours for the full 100,000 steps), longer
than one working session; ``max_seconds`` stops cleanly at a checkpoint and the next call resumes.

Example
-------
>>> recipe = AuthorsRecipe(n_data=200, batch_size=100, steps=4, checkpoint_every=2, snapshot_every=2)
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     state = train(d, recipe, progress=False)
...     state["step"], state["items"]
(4, 400)
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from tqdm.auto import tqdm

from ripbench.errors import ConfigError
from ripbench.io import atomic_save, atomic_write_text
from ripbench.repro._ddpm import DDPMSchedule, ToyDenoiser
from ripbench.training.ema import ema_update

__all__ = ["AuthorsRecipe", "load_model", "train", "xavier_init_"]

#: File names inside a training folder.
STATE_FILE, MODEL_FILE, EMA_FILE, LOG_FILE, SNAPSHOTS = (
    "state.pt", "model.safetensors", "ema.safetensors", "training.json", "snapshots")


@dataclass(frozen=True)
class AuthorsRecipe:
    """The released code's 2D recipe (``run.sh``: ``--size 100_000 --batch-size 10000 --epochs 10000``).

    ``steps`` defaults to 10,000 epochs of ``n_data / batch_size`` batches. ``seed`` seeds the data,
    the initialisation and the generator of ``t`` and the noise.
    """

    dataset: str = "grid2d"
    n_data: int = 100_000
    batch_size: int = 10_000
    steps: int = 100_000
    lr: float = 1e-3
    width: int = 128
    num_steps: int = 1000
    beta_start: float = 0.001
    beta_end: float = 0.2
    seed: int = 0
    ema_decay: float = 0.999
    checkpoint_every: int = 1000
    snapshot_every: int = 10_000

    def __post_init__(self) -> None:
        if self.n_data % self.batch_size:
            raise ConfigError(f"n_data ({self.n_data}) must be a multiple of batch_size ({self.batch_size}): "
                              "the recipe cuts the data into whole consecutive batches.")
        for name in ("steps", "checkpoint_every", "snapshot_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")


#: Recipe fields that change the weights (how often files are written does not).
_TRAINING_FIELDS = ("dataset", "n_data", "batch_size", "steps", "lr", "width", "num_steps", "beta_start", "beta_end",
                    "seed", "ema_decay")


M = TypeVar("M", bound=nn.Module)


def xavier_init_(model: M) -> M:
    """Xavier-uniform weights and zero biases in every ``nn.Linear`` (the released code's initialiser)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _mixture(name: str) -> Any:
    from ripbench.repro.toy_gaussians import DATASETS

    if name not in DATASETS:
        raise ConfigError(f"Unknown toy data set {name!r}; choose from {sorted(DATASETS)}.")
    return DATASETS[name]()


def _fresh(recipe: AuthorsRecipe) -> tuple[torch.Tensor, ToyDenoiser, torch.optim.Adam, torch.Generator]:
    mixture = _mixture(recipe.dataset)
    data = mixture.sample(recipe.n_data, torch.Generator().manual_seed(recipe.seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = xavier_init_(ToyDenoiser(mixture.dim, width=recipe.width))
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    return data, model, optimizer, gen


def _save_weights(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    atomic_save(path, lambda p: save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(p),
                                          metadata=meta))


def load_model(path: str | Path, recipe: AuthorsRecipe | None = None) -> ToyDenoiser:
    """A :class:`ToyDenoiser` with the weights of a ``.safetensors`` file written by :func:`train`."""
    from safetensors.torch import load_file

    recipe = recipe or AuthorsRecipe()
    model = ToyDenoiser(_mixture(recipe.dataset).dim, width=recipe.width)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def train(folder: str | Path, recipe: AuthorsRecipe | None = None, *, until_step: int | None = None,
          max_seconds: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume training) the toy DDPM on the authors' recipe in ``folder``.

    Args:
        folder: training folder; a ``state.pt`` there is resumed (the recipe must be the same).
        recipe: the recipe (:class:`AuthorsRecipe` by default).
        until_step: stop at this step (default: ``recipe.steps``).
        max_seconds: stop at the first checkpoint after this much wall time (a later call resumes).
        progress: show a progress bar.

    Returns:
        The training log (also ``training.json``): recipe, ``step``, ``items``, ``seconds`` (summed over
        sessions), ``loss`` (mean loss of every ``checkpoint_every`` steps) and ``snapshots``.

    Raises:
        ConfigError: when ``folder`` holds a run of another recipe.
    """
    recipe = recipe or AuthorsRecipe()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    until = recipe.steps if until_step is None else min(int(until_step), recipe.steps)
    data, model, optimizer, gen = _fresh(recipe)
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    log: dict[str, Any] = {"recipe": asdict(recipe), "step": 0, "items": 0, "seconds": 0.0, "loss": [],
                           "snapshots": [], "torch": str(torch.__version__), "threads": torch.get_num_threads()}
    state_path = folder / STATE_FILE
    if state_path.exists():
        from torch.torch_version import TorchVersion

        with torch.serialization.safe_globals([TorchVersion]):  # tensors and plain data only: no pickled code
            state = torch.load(state_path, weights_only=True)
        changed = sorted(k for k in _TRAINING_FIELDS if state["recipe"].get(k) != asdict(recipe)[k])
        if changed:
            raise ConfigError(f"{folder} holds a training run of another recipe (differs in {', '.join(changed)}); "
                              "use another folder or the same recipe to resume.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        for e, v in zip(ema, state["ema"], strict=True):
            e.copy_(v)
        log = state["log"]
        threads = torch.get_num_threads()
        if log.get("threads") not in (None, threads):
            warnings.warn(f"{folder} was trained with {log['threads']} torch threads and resumes with {threads}: the "
                          "result is close to, but not bit-identical with, an uninterrupted run (set --threads "
                          f"{log['threads']} for that).", stacklevel=2)
            log.setdefault("thread_changes", []).append({"step": log["step"], "threads": threads})
    schedule = DDPMSchedule.linear(recipe.num_steps, recipe.beta_start, recipe.beta_end)
    abar = schedule.alphas_cumprod.float()
    batches = recipe.n_data // recipe.batch_size
    start_wall, step, pending = time.perf_counter(), log["step"], []
    session_start, base_seconds = step, float(log.get("seconds", 0.0))

    def checkpoint() -> None:
        log["step"], log["items"] = step, step * recipe.batch_size
        log["seconds"] = round(base_seconds + time.perf_counter() - start_wall, 1)
        meta = {"step": str(step), "recipe": json.dumps(asdict(recipe))}
        _save_weights(folder / MODEL_FILE, dict(model.state_dict()), meta)
        ema_state = {k: e for (k, _), e in zip(model.named_parameters(), ema, strict=True)}
        ema_state.update({k: v for k, v in model.state_dict().items() if k not in ema_state})
        _save_weights(folder / EMA_FILE, ema_state, meta)
        if step % recipe.snapshot_every == 0 or step == recipe.steps:
            name = f"{SNAPSHOTS}/step-{step:06d}.safetensors"
            _save_weights(folder / name, dict(model.state_dict()), meta)
            if name not in log["snapshots"]:
                log["snapshots"].append(name)
        state = {"recipe": asdict(recipe), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "generator": gen.get_state(), "ema": [e.clone() for e in ema], "log": log}
        atomic_save(state_path, lambda p: torch.save(state, p))
        atomic_write_text(folder / LOG_FILE, json.dumps(log, indent=1) + "\n")

    model.train()
    bar = tqdm(total=until, initial=step, desc=f"{recipe.dataset} (authors' recipe)", disable=not progress)
    while step < until:
        i = step % batches
        x0 = data[i * recipe.batch_size:(i + 1) * recipe.batch_size]
        t = torch.randint(recipe.num_steps, (recipe.batch_size,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t].unsqueeze(1)
        loss = (model(a.sqrt() * x0 + (1.0 - a).sqrt() * noise, t) - noise).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(ema, params, recipe.ema_decay)  # the ablation's EMA: constant decay, no warm-up
        pending.append(loss.detach())
        step += 1
        bar.update(1)
        if step % recipe.checkpoint_every == 0 or step == until:
            log["loss"].append([step, float(torch.stack(pending).mean())])
            pending = []
            checkpoint()
            bar.set_postfix(loss=f"{log['loss'][-1][1]:.4f}")
            if max_seconds is not None and time.perf_counter() - start_wall >= max_seconds:
                break
    bar.close()
    model.eval()
    log["session_steps"] = step - session_start
    if not math.isfinite(log["loss"][-1][1] if log["loss"] else 0.0):
        raise ConfigError(f"Training diverged (loss {log['loss'][-1][1]}) at step {step}.")
    return log
