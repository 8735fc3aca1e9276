"""Small file helpers shared by every module that writes files: atomic writes, hashing, a background writer,
and the one place image files (inputs, masks) are opened (:func:`open_image`).

Every file ripbench writes goes through a temporary name in the same folder, is flushed to
disk (fsync) and then renamed into place, so a crash or Ctrl-C never leaves a half-written
file under its final name. Files get the usual shareable mode (``0666 & ~umask``).

Example
-------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
>>> atomic_write_text(path, "hi")
>>> path.read_text(), sha256_file(path)[:12]
('hi', '8f434346648f')
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import InputError, RipbenchError, add_note

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["BackgroundWriter", "atomic_save", "atomic_write_bytes", "atomic_write_text", "open_image",
           "sha256_file"]


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# mkstemp creates 0600 files; results are meant to be shared, so use the usual mode
_FILE_MODE = _default_file_mode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file + rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: Path, writer: Any) -> None:
    """Call ``writer(tmp_path)`` to produce a file, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb") as fh:  # on disk before it gets its final name
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file (weights provenance in manifests)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def open_image(path: str | Path | BinaryIO, what: str = "image", *, name: str | None = None
               ) -> Iterator[Image.Image]:
    """Open an image file with Pillow, decoded, for the ``with`` block; every failure is one :class:`InputError`.

    A decompression bomb (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``: Pillow's warning is
    treated as the error it becomes at twice the limit) is refused before it is decoded; a file
    Pillow cannot read, and a failure while the block converts the pixels, name the file.
    ``what`` says what the file is (``"image"``, ``"mask file"``). Errors ripbench raises inside
    the block pass through unchanged. ``path`` may be an open binary file (encoded bytes), named
    in messages by ``name``.

    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "m.png"
    >>> _ = bad.write_text("not a PNG")
    >>> with open_image(bad, "mask file") as img:  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    ripbench.errors.InputError: cannot read mask file .../m.png: cannot identify image file ...
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    label = name if name is not None else path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                yield img
    except RipbenchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{what} {label} is too large to decode safely ({exc}); shrink it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError) as exc:
        raise InputError(f"cannot read {what} {label}: {exc}") from None


class BackgroundWriter:
    """Runs writes (PNG snapshots, Parquet parts) on one worker thread, in order, off the run loop's path.

    * Every write should be atomic (:func:`atomic_save`): an interrupted write leaves nothing
      under its final name.
    * An error in a write is raised in the caller's thread at the next :meth:`submit`,
      :meth:`flush` or :meth:`close` (with the failing write's name), never swallowed; later
      queued writes are skipped once one has failed.
    * At most ``max_pending`` writes wait: a loop faster than the disk slows down instead of
      holding every image in memory.
    * Used as a context manager it always waits for the queued writes when leaving (after an
      exception or Ctrl-C too, so finished results reach the disk); an error raised then does
      not hide the original exception.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with BackgroundWriter() as writer:
    ...     writer.submit(atomic_write_text, folder / "a.txt", "done")
    >>> (folder / "a.txt").read_text()
    'done'
    """

    def __init__(self, max_pending: int = 8, name: str = "ripbench-writer") -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue(max_pending)
        self._error: BaseException | None = None
        self._failed_write = ""
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, args = item
                if self._error is None:
                    try:
                        fn(*args)
                    except BaseException as exc:  # handed to the caller's thread
                        self._error = exc
                        target = next((a for a in args if isinstance(a, (str, os.PathLike))), None)
                        self._failed_write = str(target) if target is not None else getattr(fn, "__qualname__", "?")
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        """Raise the failed write's error (again at every call: once failed, the writer stays failed)."""
        if self._error is not None:
            from .errors import ResultsError

            detail = getattr(self._error, "strerror", None) or self._error
            raise ResultsError(f"cannot write {self._failed_write}: {detail}") from self._error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` (blocks while ``max_pending`` writes wait); raise an earlier write's error."""
        if self._closed:
            raise RuntimeError("BackgroundWriter is closed")
        self._raise()
        self._queue.put((fn, args))

    def flush(self) -> None:
        """Wait until every queued write is done; raise the first error."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Wait for the queued writes, stop the worker and raise the first error."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except RuntimeError as error:  # keep the original exception; say what else went wrong
            if exc is not None:
                add_note(exc, str(error))
