"""Whether the Hugging Face Hub can be used now: one answer for every loader (pipelines, the VAE
control, the semantic backbones), so an offline machine gets one clear error at once instead of
a minute of retries. Torch-free.
"""

from __future__ import annotations

import os

__all__ = ["HUB_PROBE_SECONDS", "hub_offline_reason", "use_cache_only"]


#: Seconds :func:`hub_offline_reason` waits for the Hub's host to answer (name lookup included).
HUB_PROBE_SECONDS = 3.0


def hub_offline_reason(timeout: float = HUB_PROBE_SECONDS) -> str | None:
    """Why the Hugging Face Hub cannot be used now (``HF_HUB_OFFLINE`` set, or its host unreachable
    within ``timeout`` seconds), or ``None`` when it answers.

    Checked once before loading a Hub id, so that an offline machine gets one clear error at once
    instead of a minute of retries.
    """
    import socket
    import threading
    from urllib.parse import urlparse

    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    if constants.HF_HUB_OFFLINE or flag.upper() in ("1", "ON", "YES", "TRUE"):
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # a name lookup has no timeout of its own
    thread.start()
    thread.join(timeout)
    return None if answered and answered[0] else f"{host} cannot be reached (no network)"


def use_cache_only(local_files_only: bool, is_local: bool) -> tuple[bool, str | None]:
    """``(local_files_only to pass to from_pretrained, why the Hub is offline or None)`` for loading a
    checkpoint: a local folder or an explicit ``local_files_only`` needs no probe; otherwise, when the Hub
    cannot be reached, only the local cache is read (no retries) and the reason is returned for the error."""
    offline = None if local_files_only or is_local else hub_offline_reason()
    return local_files_only or offline is not None, offline
