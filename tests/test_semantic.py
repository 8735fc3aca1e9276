"""Semantic metrics (DINOv2 / CLIP embedding distances) and population distances (FD, KID, CMMD).

The population distances are checked against reference implementations on the same features (FD:
the scipy ``sqrtm`` formula of pytorch-fid / clean-fid; KID and CMMD: direct O(n^2) loops); the
embeddings against transformers' own model output, with tiny randomly initialised checkpoints
saved into a temporary folder (nothing is downloaded).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ripbench import population as pop
from ripbench.errors import WeightsError

# -- population distances against references ---------------------------------------------------------

def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated, non-trivial covariance
    return rng.normal(size=(n, d)) @ mix + shift + rng.normal(size=d) * 0.1


def _fd_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance (scipy.linalg.sqrtm) on the same features."""
    from scipy import linalg

    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2))
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize(("n", "m", "d"), [(300, 250, 24), (40, 40, 64), (30, 50, 64)])
def test_fd_agrees_with_scipy_sqrtm_formula(n: int, m: int, d: int) -> None:
    x, y = _features(n, d, 0), _features(m, d, 1, shift=0.3)
    ours, reference = pop.frechet_distance(x, y), _fd_scipy(x, y)
    assert reference > 1.0
    assert ours == pytest.approx(reference, rel=1e-4)
    assert pop.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def _kid_direct(x: np.ndarray, y: np.ndarray, paired: bool) -> float:
    d, m = x.shape[1], len(x)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1.0) ** 3)

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    if paired:
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    else:
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("paired", [False, True])
def test_kid_agrees_with_direct_unbiased_mmd(paired: bool) -> None:
    x, y = _features(25, 6, 2), _features(25, 6, 3, shift=0.5)
    assert pop.kid(x, y, paired=paired) == pytest.approx(_kid_direct(x, y, paired), rel=1e-9)
    # in subsets (fewer than the features): the mean of the same MMD over the drawn subsets
    rng = np.random.default_rng(7)
    expected = []
    for _ in range(5):
        i = rng.choice(25, 10, replace=False)
        j = i if paired else rng.choice(25, 10, replace=False)
        expected.append(_kid_direct(x[i], y[j], paired))
    got = pop.kid(x, y, paired=paired, subsets=5, subset_size=10, seed=7)
    assert got == pytest.approx(float(np.mean(expected)), rel=1e-9)


def test_paired_kid_of_identical_sets_is_zero_and_unpaired_is_not() -> None:
    x = _features(20, 5, 4)
    assert pop.kid(x, x, paired=True) == pytest.approx(0.0, abs=1e-12)
    assert pop.kid(x, x) < 0  # the independent-sets estimator counts each image's own pair as a cross pair


def test_cmmd_agrees_with_direct_rbf_mmd() -> None:
    x, y = _features(15, 8, 5), _features(12, 8, 6, shift=0.2)
    xu = x / np.linalg.norm(x, axis=1, keepdims=True)
    yu = y / np.linalg.norm(y, axis=1, keepdims=True)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * 10.0**2)))

    def mean_k(a: np.ndarray, b: np.ndarray) -> float:
        return sum(k(p, q) for p in a for q in b) / (len(a) * len(b))

    reference = 1000.0 * (mean_k(xu, xu) + mean_k(yu, yu) - 2 * mean_k(xu, yu))
    assert pop.cmmd(x, y) == pytest.approx(reference, rel=1e-7)
    assert reference > 0
    assert pop.CMMD_SIGMA == 10.0 and pop.CMMD_SCALE == 1000.0  # google-research/cmmd distance.py


def test_precision_recall_of_a_collapsed_set() -> None:
    real = _features(60, 4, 8)
    collapsed = np.repeat(real[:1], 60, axis=0) + 1e-3 * _features(60, 4, 9)  # every fake near one real point
    precision, recall = pop.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.2
    assert pop.precision_recall(real, real) == (1.0, 1.0)


def test_paired_bootstrap_interval_holds_the_estimate() -> None:
    x, y = _features(30, 4, 10), _features(30, 4, 11, shift=1.0)
    est, lo, hi = pop.paired_bootstrap(pop.frechet_distance, x, y, n_boot=100, seed=0)
    assert lo <= est <= hi and lo > 0
    assert pop.paired_bootstrap(pop.frechet_distance, x, y, n_boot=100, seed=0) == (est, lo, hi)


@pytest.mark.parametrize("metric", ["fd", "kid", "cmmd"])
def test_gram_bootstrap_gives_the_same_numbers_as_recomputing(metric: str) -> None:
    x = _features(40, 48, 12)
    y = x + 0.5 * _features(40, 48, 13)  # iterates near their originals: the paired case
    generic = {"fd": pop.frechet_distance, "kid": lambda a, b: pop.kid(a, b, paired=True), "cmmd": pop.cmmd}
    fast = pop.population_bootstrap(metric, x, y, n_boot=60, seed=3)
    slow = pop.paired_bootstrap(generic[metric], x, y, n_boot=60, seed=3)
    assert fast == pytest.approx(slow, rel=1e-9, abs=1e-12)
    assert fast[1] <= fast[0] <= fast[2]


def test_fd_and_cmmd_intervals_never_go_below_zero() -> None:
    """FD and CMMD are squared distances: the bias-shifted interval is cut at 0; KID (unbiased) is not."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    raw = pop.paired_bootstrap(pop.cmmd, x, y, n_boot=200, seed=0)
    assert raw[1] < 0  # the bias-shifted percentile interval alone goes below 0 here
    for metric in ("fd", "cmmd"):
        est, lo, hi = pop.population_bootstrap(metric, x, y, n_boot=200, seed=0)
        assert 0.0 <= lo <= est <= hi, (metric, est, lo, hi)
    assert pop.population_bootstrap("cmmd", x, y, n_boot=200, seed=0)[2] == pytest.approx(raw[2])
    _, kid_lo, _ = pop.population_bootstrap("kid", x, y, n_boot=200, seed=0)
    assert np.isfinite(kid_lo)


# -- embeddings with tiny checkpoints --------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny randomly initialised DINOv2 and CLIP checkpoints (save_pretrained; nothing downloaded)."""
    from ripbench.metrics.semantic import save_random_checkpoint

    root = tmp_path_factory.mktemp("semantic")
    return {kind: save_random_checkpoint(kind, root / kind) for kind in ("dinov2", "clip")}


def _images(n: int = 5, h: int = 48, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["dinov2", "clip"])
def test_embedding_is_transformers_model_output(kind: str, checkpoints: dict[str, Path]) -> None:
    import transformers

    from ripbench.metrics import get_metric_spec

    metric = get_metric_spec(kind).build("cpu", model=str(checkpoints[kind]))
    a, b = _images(seed=1), _images(seed=2)
    cls = transformers.Dinov2Model if kind == "dinov2" else transformers.CLIPVisionModelWithProjection
    reference = cls.from_pretrained(str(checkpoints[kind])).eval()
    preprocess = metric.backbone.preprocess  # type: ignore[attr-defined]
    with torch.no_grad():
        out_a, out_b = (reference(pixel_values=preprocess(x)) for x in (a, b))
    field = "pooler_output" if kind == "dinov2" else "image_embeds"
    ea, eb = getattr(out_a, field), getattr(out_b, field)
    assert torch.allclose(metric.prepare(a), ea, atol=1e-5)
    expected = 1 - torch.nn.functional.cosine_similarity(ea, eb)
    whole, per_pixel = metric.compare(metric.prepare(a), metric.prepare(b))
    assert per_pixel is None and torch.allclose(whole, expected, atol=1e-5)
    assert torch.equal(metric.compare(metric.prepare(a), metric.prepare(a))[0], torch.zeros(len(a)))


@pytest.mark.parametrize("kind", ["dinov2", "clip"])
def test_preprocessing_matches_the_checkpoints_image_processor(kind: str, checkpoints: dict[str, Path]) -> None:
    from transformers import AutoImageProcessor

    from ripbench.metrics.semantic import load_backbone

    backbone = load_backbone(kind, str(checkpoints[kind]))
    processor = AutoImageProcessor.from_pretrained(str(checkpoints[kind]))
    edge = backbone.preprocess.shortest_edge
    assert edge is not None and backbone.preprocess.crop is not None
    rng = np.random.default_rng(3)
    for h, w in [(edge, edge), (edge + 8, edge + 24)]:  # crop only / resize and crop
        pixels = rng.integers(0, 256, size=(2, h, w, 3), dtype=np.uint8)
        theirs = processor(images=list(pixels), return_tensors="pt")["pixel_values"].float()
        ours = backbone.preprocess(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)
        assert ours.shape == theirs.shape
        if (h, w) == (edge, edge):
            assert torch.allclose(ours, theirs, atol=1e-4)
        else:  # the processor resizes 8-bit pixels with its own bicubic filter: close, not identical
            assert (ours - theirs).abs().mean() < 0.1


@pytest.mark.parametrize("kind", ["dinov2", "clip"])
def test_batch_size_does_not_change_embeddings(kind: str, checkpoints: dict[str, Path]) -> None:
    from ripbench.metrics.semantic import load_backbone

    backbone = load_backbone(kind, str(checkpoints[kind]))
    images = _images(6, 36, 36, seed=4)
    together = backbone.embed(images)
    alone = torch.cat([backbone.embed(images[i : i + 1]) for i in range(6)])
    halves = torch.cat([backbone.embed(images[:3]), backbone.embed(images[3:])])
    assert torch.allclose(together, alone, atol=1e-5) and torch.allclose(together, halves, atol=1e-5)


def test_a_whole_clip_model_checkpoint_gives_its_image_features(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    """The Hub's CLIP checkpoints (openai/clip-*) hold the whole model: the vision tower and its projection
    are loaded from it, with the projection size of the whole model's config."""
    import transformers

    from ripbench.metrics.semantic import load_backbone

    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 100, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8}, projection_dim=24)  # not the vision config's default
    whole = transformers.CLIPModel(config).eval()
    whole.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text((checkpoints["clip"] / "preprocessor_config.json").read_text())
    backbone = load_backbone("clip", str(tmp_path))
    images = _images(3, 40, 40, seed=5)
    with torch.no_grad():
        reference = whole.get_image_features(pixel_values=backbone.preprocess(images))
    reference = getattr(reference, "pooler_output", reference)
    assert backbone.dim == 24 and torch.allclose(backbone.embed(images), reference, atol=1e-5)


def test_provenance_names_model_revision_and_weights_hash(checkpoints: dict[str, Path]) -> None:
    from ripbench.io import sha256_file
    from ripbench.metrics import get_metric_spec

    record = get_metric_spec("dinov2").build("cpu", model=str(checkpoints["dinov2"])).provenance()
    assert record["model"] == str(checkpoints["dinov2"]) and record["revision"] is None  # a local folder
    assert record["weights_sha256"] == sha256_file(checkpoints["dinov2"] / "model.safetensors")
    assert record["embedding_dim"] == 32 and record["preprocess"]["crop"] == (32, 32)
    json.dumps(record)


def test_no_weights_is_one_line_saying_how_to_supply_them(tmp_path: Path, checkpoints: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    from ripbench.metrics import get_metric_spec

    config_only = tmp_path / "config-only"
    transformers.Dinov2Config(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(config_only)
    (config_only / "preprocessor_config.json").write_text((checkpoints["dinov2"] / "preprocessor_config.json")
                                                          .read_text())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for kind, model in [("dinov2", str(config_only)), ("dinov2", str(tmp_path / "missing")),
                        ("dinov2", "no-such-org/no-such-model"), ("clip", str(checkpoints["dinov2"]))]:
        with pytest.raises(WeightsError) as info:
            get_metric_spec(kind).build("cpu", model=model)
        text = str(info.value)
        assert "\n" not in text and f"--set metrics.options.{kind}.model=PATH" in text, text
        hub_id = model if model.startswith("no-such-org") else "facebook/dinov2-small" if kind == "dinov2" else \
            "openai/clip-vit-base-patch32"  # a folder given is no Hub id to download: the default is named
        assert f"`hf download {hub_id} --local-dir PATH`" in text, text


def test_partial_weights_are_refused_never_random(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    from safetensors.torch import load_file, save_file

    from ripbench.metrics.semantic import load_backbone

    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (partial / name).write_text((checkpoints["clip"] / name).read_text())
    state = load_file(str(checkpoints["clip"] / "model.safetensors"))
    save_file({k: v for k, v in state.items() if "visual_projection" not in k}, str(partial / "model.safetensors"))
    with pytest.raises(WeightsError, match="random weights"):
        load_backbone("clip", str(partial))


# -- a run with the semantic metrics, its stored features and the report ---------------------------------

@pytest.mark.slow
def test_run_stores_features_and_report_shows_semantic_and_population_drift(
        tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    from click.testing import CliRunner

    from ripbench.analysis import feature_matrix, load_runs, population_drift
    from ripbench.cli import main
    from ripbench.store import RunStore

    from .conftest import genuine_weights

    weights = genuine_weights("alex")
    run_dir = tmp_path / "res" / "sem"
    args = ["run", "--no-progress", "-n", "3", "--size", "32", "--seeds", "0", "--model", "biharmonic",
            "--mask", "grid:8", "--mask", "grid:16", "--set", "inputs.names=[astronaut,coffee,camera]",
            "--set", "metrics.names=[lpips,ssim,dinov2,clip]",
            "--set", f"metrics.options.dinov2.model={checkpoints['dinov2']}",
            "--set", f"metrics.options.clip.model={checkpoints['clip']}",
            "--output-dir", str(tmp_path / "res"), "--name", "sem", "--batch-size", "2"]
    if weights is not None:
        args += ["--lpips-weights", str(weights)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for kind in ("dinov2", "clip"):
        record = manifest["metrics"][kind]
        assert record["model"] == str(checkpoints[kind]) and len(record["weights_sha256"]) == 64

    table = load_runs(run_dir)
    stored = RunStore(run_dir).load_features()
    assert len(stored["iteration"]) == len(table) and stored["dinov2"].dtype == np.float16
    for kind in ("dinov2", "clip"):  # the table's distances follow from the stored features
        feats = feature_matrix(table, kind).astype(np.float64)
        start = table.groupby("trajectory_id")["iteration"].transform("idxmin").to_numpy()
        a, b = feats, feats[start]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert np.allclose(1 - cos, table[f"{kind}_orig"], atol=2e-3)

    population = population_drift(table, ["model", "mask_label"], n_boot=20)
    assert set(population["metric"]) == {"fd_dinov2", "kid_dinov2", "cmmd_clip"}
    assert (population["n"] == 3).all() and population["fd_small_n"][population["metric"] == "fd_dinov2"].all()
    start = population[population["iteration"] == 0]
    assert np.allclose(start["value"], 0.0, atol=1e-9)
    final = population[population["iteration"] == 3]
    assert (final["lo"] <= final["value"]).all() and (final["value"] <= final["hi"]).all()
    assert (final.loc[final["metric"] != "kid_dinov2", "value"] > 0).all()  # unbiased KID may dip below 0

    result = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report" / "summary.md").read_text()
    assert "## Semantic and population drift" in text
    for phrase in ("DINOv2 distance to the original (lower is better)", "FD-DINOv2", "KID (DINOv2)",
                   "CMMD (CLIP)", "FD is biased"):
        assert phrase in text
    assert (tmp_path / "report" / "population.csv").is_file()
    assert (tmp_path / "report" / "figures" / "population_curves.png").is_file()
    assert "| biharmonic | grid-8 | 0 |" not in text  # the paper table: iterations 1, N/4, N/2, N (never 0)

    shutil.rmtree(run_dir / "features")  # the distances stay in the table: say the features are missing
    result = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "report2")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report2" / "summary.md").read_text()
    assert "no stored features" in text and "features missing or empty" in text
    assert "no dinov2 or clip metric" not in text


def test_population_sentences_say_when_n_is_unequal_and_intervals_overlap() -> None:
    from ripbench.report.population import _population_sentences

    rows = [("a", "fd_dinov2", "FD-DINOv2", 0.30, 0.10, 0.60, 6), ("b", "fd_dinov2", "FD-DINOv2", 0.25, 0.20, 0.31, 8),
            ("a", "cmmd_clip", "CMMD (CLIP)", 0.90, 0.80, 1.00, 1), ("b", "cmmd_clip", "CMMD (CLIP)", 0.10, 0.05, 0.2, 8)]
    population = pd.DataFrame([{"model": m, "iteration": 4, "metric": k, "label": lab, "value": v, "lo": lo, "hi": hi,
                                "n": n, "dim": 32, "fd_small_n": k == "fd_dinov2"} for m, k, lab, v, lo, hi, n in rows])
    fd, cmmd = _population_sentences(population, ["model"], 4)
    assert "furthest for a" in fd and "the groups' n differ (6-8 images)" in fd
    assert "overlaps that of b (0.250)" in fd and "does not establish" in fd
    assert "(n = 1 image)" in cmmd and "overlaps" not in cmmd and "n differ" not in cmmd


def test_features_written_twice_are_kept_once(tmp_path: Path) -> None:
    from ripbench.store import RunStore

    store = RunStore(tmp_path)
    batch = {"trajectory_id": np.array(["a", "a", "b"]), "iteration": np.array([0, 1, 0]),
             "dinov2": np.arange(6, dtype=np.float32).reshape(3, 2)}
    store.write_features(batch)
    store.write_features({**batch, "dinov2": batch["dinov2"] + 1})  # the same batch recomputed
    loaded = store.load_features()
    assert loaded["trajectory_id"].tolist() == ["a", "a", "b"] and loaded["dinov2"][0].tolist() == [1.0, 2.0]


def test_population_drift_pairs_each_image_with_its_original_and_leaves_failed_rows_out(tmp_path: Path) -> None:
    from ripbench.analysis import population_drift
    from ripbench.store import RunStore

    rng = np.random.default_rng(0)
    ids = [f"t{i}" for i in range(8)]
    originals = rng.normal(size=(8, 6))
    rows, feats = [], {"trajectory_id": [], "iteration": [], "dinov2": []}
    for k in range(3):
        for i, tid in enumerate(ids):
            failed = tid == "t0" and k == 2
            rows.append({"run": "r", "trajectory_id": tid, "iteration": k, "model": "m", "mask_label": "g",
                         "failed": failed})
            feats["trajectory_id"].append(tid)
            feats["iteration"].append(k)
            feats["dinov2"].append(originals[i] + 0.5 * k * rng.normal(size=6))
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # row order must not matter
    RunStore(tmp_path).write_features({k: np.asarray(v) for k, v in feats.items()})
    table.attrs["run_dirs"] = {"r": str(tmp_path)}
    got = population_drift(table, ["model"], metrics=["fd_dinov2"], n_boot=10)
    assert got["n"].tolist() == [8, 8, 7]  # the failed row is not observed
    stored = np.asarray(feats["dinov2"], dtype=np.float16).astype(np.float64)
    at2 = list(range(1, 8))
    expected = pop.frechet_distance(stored[at2], stored[[16 + i for i in at2]])
    assert got["value"].iloc[2] == pytest.approx(expected, rel=1e-5)


def test_preprocessing_reads_old_and_new_processor_configs() -> None:
    from ripbench.metrics.semantic import Preprocess

    # openai/clip-vit-base-patch32's preprocessor_config.json: sizes as plain integers (short side 224)
    old = Preprocess.from_config({"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
                                  "image_mean": [0.48145466, 0.4578275, 0.40821073],
                                  "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224})
    assert (old.shortest_edge, old.crop, old.mode) == (224, (224, 224), "bicubic")
    assert old.output_size(512, 768) == (224, 336) and old(torch.rand(2, 3, 512, 768)).shape == (2, 3, 224, 224)
    # facebook/dinov2-small's: short side 256, then a 224 crop
    new = Preprocess.from_config({"crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
                                  "do_normalize": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
                                  "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": {"shortest_edge": 256}})
    assert (new.shortest_edge, new.crop) == (256, (224, 224)) and new.output_size(300, 200) == (384, 256)


def test_missing_semantic_weights_are_not_mistaken_for_missing_lpips_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder) -> None:
    from ripbench.config import apply_overrides, load_preset
    from ripbench.run.experiment import metric_suite

    from .conftest import genuine_weights

    weights = genuine_weights("alex")  # LPIPS has its weights (from the environment, not the config)
    if weights is not None:
        monkeypatch.setenv("RIPBENCH_LPIPS_WEIGHTS", str(weights))
    config = apply_overrides(load_preset("quick"), [  # quick: LPIPS may be dropped when it has no weights
        "metrics.names=[lpips,ssim,dinov2]", f"metrics.options.dinov2.model={tmp_path / 'nothing'}"])
    assert not config.metrics.lpips_required and config.metrics.lpips_weights is None
    with pytest.raises(WeightsError, match="DINOv2 checkpoint folder not found"):
        metric_suite(config, torch.device("cpu"))
    assert not [w for w in recwarn if "LPIPS dropped" in str(w.message)]


def test_population_figure_says_why_a_panel_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ripbench.plots.curves as curves

    frame = pd.DataFrame([{"model": "m", "mask_label": "g", "iteration": k, "metric": metric, "label": metric,
                           "value": np.nan if metric == "fd_dinov2" else 0.1 * k, "lo": np.nan, "hi": np.nan, "n": 1,
                           "dim": 8, "fd_small_n": metric == "fd_dinov2"}
                          for k in (0, 1, 2) for metric in ("fd_dinov2", "cmmd_clip")])
    seen = []
    monkeypatch.setattr(curves, "save_figure", lambda fig, path, formats=None: seen.append(fig) or Path(path))
    curves.population_curves(frame, tmp_path / "p.png", ["model", "mask_label"])
    texts = [[t.get_text() for t in ax.texts] for ax in seen[0].axes if ax.get_ylabel()]
    assert texts[0][0].startswith("n/a: FD-DINOv2\nneeds at least 2") and "(n = 1)" in texts[0][0]
    assert texts[1] == []  # a panel with values has no such note
