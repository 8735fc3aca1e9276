"""Named random streams: every random draw of a run comes from a key, never from a position.

A trajectory is one image under one mask policy and one seed (run through one model). Its
**key** is a stable hash of ``(seed, image id, mask policy label)``; the mask of iteration
``k`` and the model's noise at ``k`` are drawn from ``(key, k, purpose)``:

* **independent across images**: two images of one run (even with identical pixels but
  different ids) get different mask sequences and different noise;
* **paired across models, on purpose**: the model is *not* part of the key, so every model
  sees the same masks and the same noise seeds for the same image / seed / policy. Model
  comparisons are therefore paired by design (compare per trajectory, e.g. Wilcoxon);
* **independent of the batch size, the order of work, resuming and the process count**:
  nothing positional enters the key.

The hash is SHA-256 of a canonical JSON text, so keys are the same on every machine, Python
version and process (unlike :func:`hash`). Seeds handed to models are 63-bit integers
(``torch.Generator.manual_seed`` and ``numpy.random.default_rng`` take them); two different
(key, iteration) pairs collide with probability about ``n**2 / 2**64``.

Example
-------
>>> key = trajectory_key(0, "astronaut", "grid-64")
>>> key == trajectory_key(0, "astronaut", "grid-64"), key == trajectory_key(0, "camera", "grid-64")
(True, False)
>>> noise_seed(key, 1) != noise_seed(key, 2) and 0 <= noise_seed(key, 1) < 2**63
True
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

__all__ = ["KEY_VERSION", "noise_seed", "trajectory_key"]

#: Changes whenever the derivation changes (recorded in the manifest; part of the config fingerprint).
KEY_VERSION = "ripbench-keys-v1"
_NOISE = 0x4E4F495345  # "NOISE": the purpose tag of model noise


def trajectory_key(seed: int, image_id: str, mask_label: str) -> int:
    """The 63-bit key of the trajectory ``(seed, image id, mask policy label)``.

    Mask policies take it as their ``seed`` argument: ``policy(H, W, k, key)``.
    """
    text = json.dumps([KEY_VERSION, int(seed), str(image_id), str(mask_label)], separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def noise_seed(key: int, iteration: int) -> int:
    """The seed of the model's noise at ``iteration`` of the trajectory with ``key`` (63 bits)."""
    state = np.random.SeedSequence([int(key), int(iteration), _NOISE]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1
