"""Tests of the toy DDPM and the Gaussian toy reproduction (ripbench.repro)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from ripbench.errors import ConfigError
from ripbench.repro._ddpm import DDPMSchedule, ToyDenoiser, train_denoiser
from ripbench.repro.toy_gaussians import K_STD, gaussian1d, grid2d, label_hallucinations, run_toy_repro


@pytest.fixture(scope="module")
def schedules() -> tuple[DDPMSchedule, DDPMScheduler]:
    ours = DDPMSchedule.linear(1000, 0.001, 0.2)
    ref = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.001,
        beta_end=0.2,
        beta_schedule="linear",
        variance_type="fixed_large",
        clip_sample=False,
        prediction_type="epsilon",
    )
    ref.set_timesteps(1000)
    return ours, ref


def test_alphas_cumprod_match_diffusers(schedules: tuple[DDPMSchedule, DDPMScheduler]) -> None:
    ours, ref = schedules
    np.testing.assert_allclose(ours.betas.numpy(), ref.betas.double().numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        ours.alphas_cumprod.numpy(), ref.alphas_cumprod.double().numpy(), rtol=2e-5, atol=1e-12
    )
    assert ours.alphas_cumprod_prev[0] == 1.0


def test_add_noise_matches_diffusers(schedules: tuple[DDPMSchedule, DDPMScheduler]) -> None:
    ours, ref = schedules
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    t = torch.tensor([0, 1, 10, 100, 500, 999])
    torch.testing.assert_close(
        ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t), rtol=1e-4, atol=1e-5
    )


def test_x0_hat_inverts_the_forward_process(schedules: tuple[DDPMSchedule, DDPMScheduler]) -> None:
    ours, _ = schedules
    x0, noise = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    for t in (0, 9, 150):
        x_t = ours.add_noise(x0, noise, torch.full((5,), t))
        torch.testing.assert_close(ours.predict_x0(x_t, noise, t), x0)


def test_posterior_mean_is_the_gaussian_conditional(schedules: tuple[DDPMSchedule, DDPMScheduler]) -> None:
    ours, _ = schedules
    # q(x_{t-1} | x_t, x0) for scalar data: condition the joint Gaussian of (x_{t-1}, x_t) given x0.
    t, x0, x_t = 7, 0.8, 0.3
    abar_prev = float(ours.alphas_cumprod_prev[t])
    beta = float(ours.betas[t])
    prior_mean, prior_var = math.sqrt(abar_prev) * x0, 1 - abar_prev  # x_{t-1} | x0
    gain = (
        prior_var * math.sqrt(1 - beta) / ((1 - beta) * prior_var + beta)
    )  # x_t = sqrt(1-beta) x_{t-1} + noise
    expected = prior_mean + gain * (x_t - math.sqrt(1 - beta) * prior_mean)
    got = ours.posterior_mean(
        torch.tensor(x0, dtype=torch.float64), torch.tensor(x_t, dtype=torch.float64), t
    )
    assert got.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("t", [800, 500, 10, 1, 0])
def test_step_matches_diffusers_fixed_large(schedules: tuple[DDPMSchedule, DDPMScheduler], t: int) -> None:
    ours, ref = schedules
    gen = torch.Generator().manual_seed(t)
    x_t, eps = torch.randn(8, 2, generator=gen), torch.randn(8, 2, generator=gen)
    out = ref.step(eps, t, x_t, generator=torch.Generator().manual_seed(123))
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(123))
    x_prev, x0_hat = ours.step(x_t, eps, t, noise)
    torch.testing.assert_close(x0_hat, out.pred_original_sample, rtol=2e-4, atol=2e-4)
    torch.testing.assert_close(x_prev, out.prev_sample, rtol=2e-4, atol=2e-4)


def test_step_stays_finite_where_float32_alphas_cumprod_underflow(
    schedules: tuple[DDPMSchedule, DDPMScheduler],
) -> None:
    # abar_999 ~ 4e-44 is 0 in diffusers' float32 table (x0_hat = inf there); our float64 schedule copes.
    ours, ref = schedules
    assert ref.alphas_cumprod[999] == 0
    x_prev, x0_hat = ours.step(torch.randn(4, 2), torch.randn(4, 2), 999, torch.randn(4, 2))
    assert torch.isfinite(x_prev).all() and torch.isfinite(x0_hat).all()


def test_toy_denoiser_matches_the_paper_size_and_batches_time() -> None:
    torch.manual_seed(0)
    model = ToyDenoiser(dim=1)
    assert sum(p.numel() for p in model.parameters()) == 66_817  # "about 67k"
    model2 = ToyDenoiser(dim=2)
    x = torch.randn(5, 2)
    with torch.no_grad():
        per_item = model2(x, torch.tensor([3, 3, 3, 3, 3]))
        shared = model2(x, torch.tensor(3))
        mixed = model2(x, torch.tensor([3, 900, 3, 1, 3]))
    torch.testing.assert_close(per_item, shared)
    torch.testing.assert_close(mixed[[0, 2, 4]], shared[[0, 2, 4]])


def test_sampler_records_the_last_steps_oldest_first() -> None:
    sched = DDPMSchedule.linear(20, 0.001, 0.2)

    class Zero(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

    gen = torch.Generator().manual_seed(0)
    x, traj = sched.sample(Zero(), (3, 2), record_last=4, generator=gen, progress=False)
    assert traj.shape == (4, 3, 2)
    # At t = 0 the posterior mean is x0_hat itself (abar_{-1} = 1), so the sample equals the last record.
    torch.testing.assert_close(x, traj[-1])
    assert not torch.equal(traj[0], traj[-1])  # earlier records come from earlier steps


def _train_tiny(ema_decay: float, record: list[list[torch.Tensor]] | None = None) -> ToyDenoiser:
    """Five Adam steps of a width-8 denoiser on fixed data; ``record`` collects the iterate of every step."""
    torch.manual_seed(0)
    model = ToyDenoiser(dim=2, width=8)
    if record is not None:
        model.register_forward_pre_hook(
            lambda m, args: (
                record.append([p.detach().clone() for p in m.parameters()]) if m.training else None
            )
        )
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    train_denoiser(
        model,
        data,
        DDPMSchedule.linear(1000, 0.001, 0.2),
        steps=5,
        batch_size=16,
        lr=1e-2,
        focus_steps=50,
        focus_reweight=False,
        ema_decay=ema_decay,
        generator=torch.Generator().manual_seed(2),
        progress=False,
    )
    return model


def test_ema_is_the_warmed_up_average_of_the_iterates() -> None:
    iterates: list[list[torch.Tensor]] = []
    plain = _train_tiny(0.0, iterates)  # the EMA does not change the training trajectory
    iterates.append([p.detach() for p in plain.parameters()])
    decay = 0.9
    ema = iterates[0]
    for step, after in enumerate(iterates[1:]):
        d = min(decay, (1.0 + step) / (10.0 + step))
        ema = [d * e + (1.0 - d) * a for e, a in zip(ema, after, strict=True)]
    averaged = _train_tiny(decay)
    for got, want in zip(averaged.parameters(), ema, strict=True):
        torch.testing.assert_close(got.detach(), want)
    assert not torch.equal(next(averaged.parameters()), next(plain.parameters()))
    with pytest.raises(ValueError):
        train_denoiser(
            plain, torch.zeros(4, 2), DDPMSchedule.linear(10), steps=1, batch_size=2, ema_decay=1.0
        )


def test_mixtures_and_ground_truth() -> None:
    g1, g2 = gaussian1d(), grid2d()
    assert g1.modes.flatten().tolist() == [1.0, 2.0, 3.0] and g1.std == 0.05
    assert g2.modes.shape == (25, 2)
    assert 2.828 < 4.0 / g2.modes[-1, 1].item() < 2.830  # modes 2 (i, j) / 2.829, the corner at (4, 4)
    assert label_hallucinations(torch.tensor([[1.0 + 0.99 * K_STD * 0.05], [1.5], [0.0]]), g1).tolist() == [
        False,
        True,
        True,
    ]
    data = g2.sample(50_000, torch.Generator().manual_seed(0))
    assert label_hallucinations(data, g2).float().mean() < 1e-3  # the true distribution stays in support


def test_unknown_dataset_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError):
        run_toy_repro(tmp_path, fast=True, datasets=("moons",), progress=False)


@pytest.mark.slow
def test_fast_1d_reproduction_scores_hallucinations_higher(tmp_path) -> None:
    report = run_toy_repro(tmp_path, fast=True, seed=0, progress=False, datasets=("gaussian1d",))
    res = report["results"]["gaussian1d"]
    assert res["hallucination_rate"] > 0
    assert res["mean_score_hallucinated"] > res["mean_score_in_support"]
    assert res["auroc"] > 0.5
    assert res["detection"]["retention"] == pytest.approx(0.96, abs=0.06)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["results"]["gaussian1d"]["window_steps"] == 10
    text = (tmp_path / "report.md").read_text()
    assert "| gaussian1d |" in text and "Precision (half-width of the 95% intervals" in text
    assert "SMOKE RUN (--fast)" in text.splitlines()[0] and "not compared with the paper" in text
    assert "consistent with" not in report["verdict"] and "below the paper" not in report["verdict"]
    for name in report["figures"]:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".*tmp"))


# --- the authors' recipe: resumable training, shipped weights -----------------------------------------


def _tiny_recipe(**kw):
    from ripbench.repro.toy_training import AuthorsRecipe

    return AuthorsRecipe(**{"n_data": 400, "batch_size": 100, "steps": 8, "checkpoint_every": 2,
                            "snapshot_every": 4, **kw})


def test_authors_recipe_resumes_to_the_same_weights(tmp_path) -> None:
    from safetensors.torch import load_file

    from ripbench.repro.toy_training import train

    recipe = _tiny_recipe()
    whole = train(tmp_path / "a", recipe, progress=False)
    train(tmp_path / "b", recipe, until_step=4, progress=False)  # an interrupted session
    resumed = train(tmp_path / "b", recipe, progress=False)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert whole["loss"] == resumed["loss"] and resumed["step"] == 8 and resumed["items"] == 800
    assert resumed["snapshots"] == ["snapshots/step-000004.safetensors", "snapshots/step-000008.safetensors"]
    # a different recipe in the same folder is refused, naming what differs; file cadence is not a difference
    with pytest.raises(ConfigError, match="lr"):
        train(tmp_path / "b", _tiny_recipe(lr=2e-3), progress=False)
    assert train(tmp_path / "b", _tiny_recipe(checkpoint_every=4), progress=False)["step"] == 8


def test_resuming_with_other_thread_count_warns_and_is_recorded(tmp_path) -> None:
    from ripbench.repro.toy_training import train

    recipe = _tiny_recipe()
    threads = torch.get_num_threads()
    train(tmp_path, recipe, until_step=4, progress=False)
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match=f"trained with {threads} torch threads"):
            log = train(tmp_path, recipe, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert log["thread_changes"] == [{"step": 4, "threads": threads + 1}] and log["threads"] == threads


def test_authors_recipe_uses_xavier_init_and_fixed_order_batches() -> None:
    from ripbench.repro.toy_training import AuthorsRecipe, xavier_init_

    model = xavier_init_(ToyDenoiser(2))
    bound = math.sqrt(6.0 / (128 + 128))
    assert model.fc1.weight.abs().max() <= bound and model.t_proj.bias.abs().max() == 0
    with pytest.raises(ConfigError, match="multiple"):
        AuthorsRecipe(n_data=1000, batch_size=300)
    assert AuthorsRecipe().steps * AuthorsRecipe().batch_size == 10**9  # the released code's 1e9 items


@pytest.mark.slow
def test_toy_report_on_authors_weights(tmp_path, monkeypatch) -> None:
    import ripbench.repro.toy_gaussians as toy
    from ripbench.repro.toy_training import train

    folder = tmp_path / "weights"
    train(folder, _tiny_recipe(), progress=False)
    monkeypatch.setattr(toy, "AUTHORS_WEIGHTS_DIR", folder)
    monkeypatch.setattr(toy, "ABLATION_SAMPLES", 500)
    curve = toy.snapshot_curve(folder, n_samples=500)
    assert [row["step"] for row in curve] == [4, 8] and (folder / "curve.json").is_file()
    report = toy.run_toy_repro(tmp_path / "out", datasets=("grid2d",), samples=2000, progress=False)
    res = report["results"]["grid2d"]
    assert res["recipe"] == "authors" and res["n_samples"] + res["n_nonfinite"] == 2000
    assert [row["band"] for row in res.get("by_distance", [])] in ([], ["near-mode tail", "intermediate",
                                                                     "between modes"])
    assert res["curve"] == curve and res["ema_ablation"]["n_samples"] is not None
    text = (tmp_path / "out" / "report.md").read_text()
    assert "the authors' recipe" in text and "detector against training items" in text
