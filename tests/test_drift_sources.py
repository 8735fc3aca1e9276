"""Where the drift comes from (issue 19): the VAE round-trip control, the hand-off between iterations,
region findings that name the right cause, and the drift decomposition of runs reported together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ripbench import analysis, findings
from ripbench.cli import main
from ripbench.config import ExperimentConfig, load_preset, validate_config
from ripbench.errors import ConfigError
from ripbench.handoff import Handoff
from ripbench.metrics.catalog import LPIPS_SPEC, MSE_SPEC, PSNR_SPEC, SSIM_SPEC
from ripbench.models import Inpainter, InpaintResult, create_inpainter
from ripbench.models.vae_roundtrip import VAERoundTrip
from ripbench.run import run_experiment
from ripbench.testing import check_inpainter, sample_inputs
from tests.tiny_pipelines import _tiny_vae, tiny_sd_inpaint

# -- the hand-off --------------------------------------------------------------------------------

def _photo_like(batch: int = 2, size: int = 64) -> torch.Tensor:
    images, _, _ = sample_inputs(batch, size, seed=3)
    g = torch.Generator().manual_seed(1)
    return (images + 0.01 * torch.randn(images.shape, generator=g)).clamp(0, 1)


def test_uint8_is_rounding_png_is_uint8_jpeg100_close_but_not_equal() -> None:
    x = _photo_like()
    rounded = torch.round(x.clamp(0, 1) * 255) / 255
    uint8 = Handoff.parse("uint8").apply(x)
    assert torch.equal(uint8, rounded) and not torch.equal(uint8, x)
    assert torch.equal(Handoff.parse("png").apply(x), uint8)
    jpeg = Handoff.parse("jpeg:100").apply(x)
    assert jpeg.shape == x.shape and jpeg.dtype == x.dtype
    assert not torch.equal(jpeg, uint8)  # chroma subsampling and the DCT lose something even at 100
    assert (jpeg - uint8).abs().mean() < 0.02 and (Handoff.parse("jpeg:30").apply(x) - uint8).abs().mean() > \
        (jpeg - uint8).abs().mean()
    assert torch.equal(Handoff.parse("float").apply(x), x)
    kept = x.clone()  # in place: the loop's own copy
    assert Handoff.parse("uint8").apply(kept, inplace=True) is kept and torch.equal(kept, rounded)


@pytest.mark.parametrize("text", ["jpeg:0", "jpeg:101", "jpg", "uint16", "jpeg:"])
def test_bad_handoff_is_a_config_error(text: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Handoff.parse(text)
    res = CliRunner().invoke(main, ["run", "--model", "biharmonic", "--set", f"handoff={text}",
                                    "--output-dir", str(tmp_path), "--no-progress"])
    assert res.exit_code == 2 and "handoff" in res.output and "Traceback" not in res.output
    assert f"unknown hand-off {text!r}" in res.output  # as typed (YAML reads `jpeg:` as a mapping)


def test_handoff_written_with_a_space_in_yaml_is_the_jpeg_hand_off() -> None:
    from ripbench.config import validate_config

    assert validate_config({"handoff": {"jpeg": 90}}).handoff == "jpeg:90"  # `--set "handoff=jpeg: 90"`


def test_handoff_is_in_the_fingerprint_only_when_not_float() -> None:
    base = ExperimentConfig()
    assert base.handoff == "float"
    assert ExperimentConfig(handoff="JPEG:90").handoff == "jpeg:90"
    fingerprints = {h: ExperimentConfig(handoff=h).fingerprint() for h in ("float", "uint8", "png", "jpeg:90")}
    assert len(set(fingerprints.values())) == 4
    # runs made before the hand-off was a setting (all float) keep their fingerprint: the default
    # config's, recorded before the hand-off (and the hf input fields) existed
    assert fingerprints["float"] == "f0b265a710b1563f"


class Recorder(Inpainter):
    """Deterministic pixel model that records every input it gets (to see what the loop hands on)."""

    name = "recorder"
    space = "pixel"
    inputs: ClassVar[list[torch.Tensor]] = []
    outputs: ClassVar[list[torch.Tensor]] = []

    def inpaint(self, images, masks, seeds):
        Recorder.inputs.append(images.clone())
        out = torch.where(masks > 0.5, images * 0.7 + 0.1003, images)
        Recorder.outputs.append(out.clone())
        return InpaintResult(images=out)


def _recorded(tmp_path: Path, handoff: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    Recorder.inputs, Recorder.outputs = [], []
    cfg = validate_config({"name": f"rec-{handoff.replace(':', '')}", "iterations": 2, "size": 32, "seeds": [0],
                           "inputs": {"source": "samples", "names": ["coffee"]}, "masks": [{"policy": "grid", "size": 16}],
                           "models": [{"name": "tests.test_drift_sources:Recorder"}], "metrics": {"names": ["mse"]},
                           "handoff": handoff, "output_dir": str(tmp_path)})
    result = run_experiment(cfg, progress=False)
    assert result.manifest["config"]["handoff"] == handoff
    return list(Recorder.inputs), list(Recorder.outputs)


def test_the_next_iteration_receives_the_rounded_output(tmp_path: Path) -> None:
    (f_in, f_out), (u_in, u_out) = _recorded(tmp_path, "float"), _recorded(tmp_path, "uint8")
    assert torch.equal(f_in[1], f_out[0])  # float: the output as it is
    # uint8: the original and every output, rounded to 8 bits (the model's float output, then rounded)
    assert torch.equal(u_in[0], torch.round(f_in[0] * 255) / 255)
    assert torch.equal(u_in[1], torch.round(u_out[0].clamp(0, 1) * 255) / 255)
    assert not torch.equal(u_in[1], u_out[0])
    p_in, _ = _recorded(tmp_path, "png")
    assert all(torch.equal(a, b) for a, b in zip(p_in, u_in))  # png is uint8


# -- the VAE round-trip control ----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_vae():
    """A tiny VAE trained for a few steps to reconstruct smooth images: lossy, so round trips accumulate."""
    torch.manual_seed(0)
    vae = _tiny_vae()
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for step in range(25):
        x = sample_inputs(4, 32, seed=step)[0] * 2 - 1
        loss = ((vae.decode(vae.encode(x).latent_dist.mode()).sample - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return vae.eval()


def test_vae_roundtrip_drifts_more_with_every_round_trip(trained_vae) -> None:
    model = VAERoundTrip(trained_vae, device="cpu")
    images, masks, seeds = sample_inputs(2, 32, seed=99)
    x, mse = images, []
    for _ in range(6):
        x = model.inpaint(x, masks, seeds).images
        mse.append(float(((x - images) ** 2).mean()))
    assert mse[0] > 1e-4  # one round trip already changes the image
    assert all(b > a for a, b in zip(mse, mse[1:])), mse  # and every further one adds to it


def test_vae_roundtrip_passes_the_conformance_kit_as_a_control(tmp_path: Path) -> None:
    pipe = tiny_sd_inpaint(tmp_path / "tok")
    model = VAERoundTrip(pipe, device="cpu")
    notes = check_inpainter(model)
    assert any("ignores the mask" in n for n in notes)
    assert model.space == "latent" and model.ignores == {"mask", "seeds"}
    ident = model.identity()
    assert ident["vae"] == "AutoencoderKL" and ident["dtype"] == "float32" and "vae_config" in ident


def test_a_control_that_does_not_ignore_what_it_declares_fails_the_kit() -> None:
    from ripbench.errors import ModelContractError

    class Liar(Inpainter):
        name = "liar"
        ignores = frozenset({"mask"})

        def inpaint(self, images, masks, seeds):
            return InpaintResult(images=(images * 0.9 + 0.05 * masks).clamp(0, 1))

    with pytest.raises(ModelContractError) as err:
        check_inpainter(Liar())
    assert err.value.rules == ["declared-ignores"]


@pytest.fixture(scope="module")
def saved_pipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("drift_pipe")
    tiny_sd_inpaint(root / "tok", in_channels=9).save_pretrained(root / "sd9")
    return root / "sd9"


def test_vae_roundtrip_loads_the_vae_of_a_pipeline_folder_or_a_vae_folder(saved_pipe: Path, tmp_path: Path) -> None:
    from diffusers import AutoencoderKL

    model = create_inpainter("vae-roundtrip", model=str(saved_pipe), device="cpu", local_files_only=True, dtype="bf16")
    assert model.vae.dtype == torch.bfloat16 and model.identity()["dtype"] == "bfloat16"
    AutoencoderKL.from_pretrained(saved_pipe, subfolder="vae").save_pretrained(tmp_path / "vae")
    alone = create_inpainter("vae-roundtrip", model=str(tmp_path / "vae"), device="cpu")
    images, masks, seeds = sample_inputs(2, 32)
    assert torch.allclose(alone.inpaint(images, masks, seeds).images,
                          create_inpainter("vae-roundtrip", model=str(saved_pipe), device="cpu")
                          .inpaint(images, masks, seeds).images)
    from ripbench.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="does not exist"):
        create_inpainter("vae-roundtrip", model=str(tmp_path / "nothing"), device="cpu")


# -- end to end: rip-paper, its ablation, the VAE control, a hand-off variant, one report ------------

def _cli(*args: str) -> None:
    res = CliRunner().invoke(main, [*args, *(["--no-progress"] if args[0] == "run" else [])])
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_rip_paper_vae_handoff_and_the_combined_report(saved_pipe: Path, tmp_path: Path, monkeypatch) -> None:
    import diffusers

    out = tmp_path / "res"
    small = ["-n", "3", "--size", "32", "--mask", "grid:16", "--set", "seeds=[0,1]",
             "--set", "inputs.names=[coffee]", "--set", "metrics.names=[ssim,mse]", "--output-dir", str(out)]
    model = ["--model", str(saved_pipe), "--model-opt", "steps=2", "--model-opt", "local_files_only=true",
             "--model-opt", "device=cpu"]
    _cli("run", "--preset", "rip-paper", *model, "--model-opt", "paste_back=false", *small, "--name", "total")
    _cli("run", "--preset", "rip-paper-pasteback", *model, "--model-opt", "paste_back=true", *small,
         "--name", "pasteback")
    _cli("run", "--preset", "rip-paper", *model, "--model-opt", "paste_back=false", *small, "--set", "handoff=float",
         "--name", "total-float")

    def no_denoiser(*args, **kwargs):
        raise AssertionError("the VAE control ran a denoiser")

    monkeypatch.setattr(diffusers.UNet2DConditionModel, "forward", no_denoiser)
    _cli("run", "--preset", "rip-paper-vae", *small, "--set", f"models.0.options.model={saved_pipe}",
         "--set", "models.0.options.local_files_only=true", "--set", "models.0.options.device=cpu", "--name", "vae")
    manifest = json.loads((out / "vae" / "manifest.json").read_text())
    assert manifest["config"]["handoff"] == "uint8" and manifest["models"]["vae-roundtrip"]["space"] == "latent"
    assert manifest["models"]["vae-roundtrip"]["ignores"] == ["mask", "seeds"]
    assert json.loads((out / "total-float" / "manifest.json").read_text())["config"]["handoff"] == "float"
    vae_rows = pd.read_parquet(next((out / "vae").glob("**/*.parquet")))
    later = vae_rows[vae_rows["iteration"] > 0]
    assert (later["mse_orig_never"] > 0).all()  # the VAE moves pixels no mask touched

    _cli("report", *(str(out / n) for n in ("total", "pasteback", "vae", "total-float")), "--out", str(out / "rep"),
         "--n-boot", "200")
    summary = (out / "rep" / "summary.md").read_text()
    assert "Where the drift comes from" in summary
    parts = pd.read_csv(out / "rep" / "decomposition.csv")
    assert {"total", "pasteback", "feedback", "vae", "handoff:total:float"} <= set(parts["component"])
    assert (parts.loc[parts["iteration"] == 3, "n"] == 2).all()
    final = parts[parts["iteration"] == 3].set_index("component")["mean"]
    assert final["feedback"] == pytest.approx(final["total"] - final["pasteback"])
    sentence = next(line for line in summary.splitlines() if "n = 2 shared trajectories" in line)
    assert "dominates" in sentence or "does not establish" in sentence
    assert "not a share of the total" in summary  # differences of a non-additive distance are read as such
    control = next(line for line in summary.splitlines() if line.startswith("- vae / vae-roundtrip / grid-16, at"))
    assert "ignores the mask" in control and "(denoiser drift)" not in control  # a control has no denoiser
    total = next(line for line in summary.splitlines() if line.startswith("- total / ") and ", at iteration" in line)
    assert "(denoiser drift)" in total and "VAE / pipeline drift" in total
    assert "hand-off between iterations" in (out / "rep" / "report.html").read_text()

    _cli("report", str(out / "pasteback"), str(out / "vae"), "--out", str(out / "rep2"), "--n-boot", "100")
    summary = (out / "rep2" / "summary.md").read_text()  # no total run: the section says why there is none
    assert "No decomposition: it needs" in summary and "pasteback: pasteback / " in summary


# -- region findings name the right cause ---------------------------------------------------------

def test_metric_specs_declare_their_reach() -> None:
    assert MSE_SPEC.reach_px() == 0 and PSNR_SPEC.reach_px() == 0 and MSE_SPEC.pixel_local
    assert SSIM_SPEC.reach_px() == 5 and not SSIM_SPEC.pixel_local
    assert LPIPS_SPEC.reach_px(net="alex") == 101 and LPIPS_SPEC.reach_px(net="squeeze") > 101
    assert not LPIPS_SPEC.pixel_local and LPIPS_SPEC.describe()["reach"] == "depends on options"


def test_biharmonic_region_finding_reports_mse_0_and_no_vae(tmp_path: Path) -> None:
    cfg = validate_config({"name": "bh", "iterations": 3, "size": 64, "seeds": [0, 1],
                           "inputs": {"source": "samples", "names": ["coffee", "astronaut"]},
                           "masks": [{"policy": "grid", "size": 16}], "models": [{"name": "biharmonic"}],
                           "metrics": {"names": ["ssim", "mse"]}, "output_dir": str(tmp_path)})
    result = run_experiment(cfg, progress=False)
    assert result.manifest["models"]["biharmonic"]["space"] == "pixel"
    table = analysis.load_runs(result.run_dir)
    later = table[table["iteration"] > 0]
    assert (later["mse_orig_never"] == 0).all() and (later["ssim_orig_never"] < 1).any()  # context leakage
    regions = analysis.region_summary(table, "ssim_orig", ["model", "mask_label"], n_boot=100)
    local = analysis.region_summary(table, analysis.local_metric(table), ["model", "mask_label"], regions=["never"],
                                    n_boot=100)
    lines = findings.region_sentences(regions, ["model", "mask_label"], "ssim_orig", local=local,
                                      spaces=analysis.model_spaces(table), handoffs=analysis.run_handoffs(table),
                                      reach=5)
    assert len(lines) == 1
    text = lines[0]
    assert "pixel space (no VAE)" in text and "VAE / pipeline drift" not in text
    assert "MSE to original (lower is better) 0.000 (95% CI 0.000 to 0.000, n = 4)" in text
    assert "unchanged" in text and "context leakage" in text


def test_old_manifests_take_the_space_of_the_builtin_model() -> None:
    table = pd.DataFrame({"model": ["biharmonic", "shapes-ddpm"], "iteration": [0, 0]})
    table.attrs["manifest"] = {"config": {"models": [{"name": "biharmonic"}, {"name": "shapes-ddpm"},
                                                     {"name": "diffusers", "label": "sd"}]},
                               "models": {"biharmonic": {"name": "biharmonic"}, "shapes-ddpm": {"name": "x"},
                                          "sd": {"name": "sd"}}}
    # the quick preset's models have no VAE; a diffusers pipeline has one
    assert analysis.model_spaces(table) == {("biharmonic",): "pixel", ("shapes-ddpm",): "pixel", ("sd",): "latent"}


def test_a_latent_model_s_never_masked_change_is_vae_drift() -> None:
    regions = pd.DataFrame([
        {"model": "sd", "region": r, "column": f"lpips_orig_{r}", "n": 4, "mean": m, "lo": m - 0.01, "hi": m + 0.01}
        for r, m in (("never", 0.2), ("ever", 0.5))])
    regions.attrs["iteration"] = 10
    local = pd.DataFrame([{"model": "sd", "region": "never", "column": "mse_orig_never", "n": 4, "mean": 0.004,
                           "lo": 0.003, "hi": 0.005}])
    (text,) = findings.region_sentences(regions, ["model"], "lpips_orig", local=local, spaces={("sd",): "latent"},
                                        handoffs={"": "float"}, reach=101)
    assert "never-masked pixels (VAE / pipeline drift): MSE" in text and "partly context leakage" in text
    (plain,) = findings.region_sentences(regions, ["model"], "lpips_orig", local=local, spaces={}, reach=101)
    assert "does not declare whether it has a VAE" in plain


def test_presets_hand_off_what_the_paper_s_pipeline_hands_back() -> None:
    assert load_preset("rip-paper").handoff == "uint8" and load_preset("rip-paper-pasteback").handoff == "uint8"
    assert load_preset("quick").handoff == "float"
    vae = load_preset("rip-paper-vae")
    assert vae.models[0].name == "vae-roundtrip" and vae.handoff == "uint8"
    assert vae.models[0].options["model"] == load_preset("rip-paper").models[0].options["model"]
    assert [m["size"] for m in vae.masks] == [64, 128, 256] and vae.iterations == 100


def test_a_checkpoint_given_to_a_rip_paper_preset_keeps_the_preset_s_protocol() -> None:
    """`--preset rip-paper --model FOLDER` (the README's offline command) once dropped paste_back: false, the
    empty prompt and the 50 steps, so it silently ran the paste-back ablation; `--preset rip-paper-vae
    --model FOLDER` ran the whole pipeline, denoiser included, as the VAE control."""
    import yaml

    def models(*args: str) -> tuple[list[dict], str]:
        res = CliRunner().invoke(main, ["config", *args])
        assert res.exit_code == 0, res.output
        return yaml.safe_load(res.stdout)["models"], res.output

    (paper,), out = models("--preset", "rip-paper", "--model", "me/sd-inpaint", "--model-opt", "steps=20")
    assert paper["name"] == "diffusers" and paper["label"] == "sd-inpaint"
    assert paper["options"] == {"model": "me/sd-inpaint", "prompt": "", "negative_prompt": "", "steps": 20,
                                "paste_back": False}
    assert 'the preset\'s model options stay: prompt="", negative_prompt="", paste_back=false' in out
    (vae,), out = models("--preset", "rip-paper-vae", "--model", "me/sd-inpaint", "--model-opt", "dtype=fp32")
    assert vae["name"] == "vae-roundtrip" and vae["options"] == {"model": "me/sd-inpaint", "dtype": "fp32"}
    assert "VAE control's checkpoint" in out
    (other,), _ = models("--preset", "rip-paper", "--model", "biharmonic")  # a model by name replaces it
    assert other["name"] == "biharmonic" and other["options"] == {}
