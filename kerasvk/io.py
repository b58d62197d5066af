"""Atomic file writing for everything kerasvk leaves on disk (run folders, plots, exports, samples).

Every artefact is written to a hidden temporary path in the destination folder, then moved into place
with ``os.replace`` (atomic on POSIX), so a crash or a kill never leaves a half-written file where
something reads it: readers see the previous file or the new one. Temporary files are removed when the
write fails. Files end with mode ``0666 & ~umask`` and folders ``0777 & ~umask`` (``mkstemp`` and
``mkdtemp`` would leave 0600/0700), so a TF Serving process running as another user can read an export.

This module is at the bottom of the import graph: it imports nothing from kerasvk, and no TensorFlow or
Keras at import time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_dir",
    "write_bytes",
    "write_text",
    "write_json",
    "read_json",
    "save_figure",
    "save_model",
    "json_default",
    "remove_stale_temporaries",
    "safe_name",
    "symlinked_folders",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_readable(path: Path, directory: bool) -> None:
    mode = (0o777 if directory else 0o666) & ~_umask()
    os.chmod(path, mode)
    if directory:
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o777 & ~_umask())
            for f in files:
                os.chmod(os.path.join(root, f), 0o666 & ~_umask())


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary file path next to ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` defaults to ``path``'s own (some writers pick the format from it: ``.png``, ``.keras``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix if suffix is None else suffix, prefix=f".tmp-{path.stem}-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _make_readable(tmp, directory=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path, *, overwrite=False):
    """Yield a temporary folder next to ``path``; on success it is renamed to ``path``.

    With ``overwrite=False`` an existing ``path`` is never replaced (``FileExistsError``), which is what
    a versioned export needs. On error the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; it is never overwritten.")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
        _make_readable(tmp, directory=True)
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} appeared while it was being written; it is never overwritten.")
            old = Path(tempfile.mkdtemp(prefix=f".old-{path.name}-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str, encoding="utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def json_default(o):
    """JSON for NumPy scalars/arrays, tuples and paths (anything else: its ``str``)."""
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def write_json(obj, path) -> Path:
    """Write ``obj`` as indented JSON (NumPy values converted) atomically."""
    return write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def read_json(path, what="file"):
    """Read a JSON file; a missing or corrupt file raises ``FileNotFoundError``/``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at {path}.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Corrupt {what} {path}: {e}") from None


def save_figure(fig, path, dpi=110) -> Path:
    """Save a matplotlib figure to ``path`` atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def save_model(model, path) -> Path:
    """``model.save(path)`` (a ``.keras`` file) atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path


def remove_stale_temporaries(folder, max_depth=2) -> list[Path]:
    """Remove the ``.tmp-*``/``.old-*`` leftovers of writes killed mid-way under ``folder`` (to ``max_depth``).

    A SIGKILL gives ``atomic_path``/``atomic_dir`` no chance to clean up; their temporaries are hidden
    and never read, and this removes them when the same run folder is used again. Symlinks are not
    followed. Returns what was removed.
    """
    removed = []
    for e in _scan(folder, max_depth, lambda e: e.name.startswith((".tmp-", ".old-")) and not e.is_symlink()):
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            os.unlink(e.path)
        removed.append(Path(e.path))
    return removed


def _scan(folder, max_depth, take) -> list:
    """The ``os.DirEntry``s under ``folder`` (to ``max_depth``) for which ``take(entry)`` holds. Symlinks are
    never followed; a taken entry is not descended into; an unreadable folder is skipped."""
    taken = []

    def walk(d, depth):
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            if take(e):
                taken.append(e)
            elif depth < max_depth and e.is_dir(follow_symlinks=False):
                walk(e.path, depth + 1)

    if Path(folder).is_dir():
        walk(folder, 0)
    return taken


def safe_name(name, what="name") -> str:
    """``name`` if it is one plain path component (no ``/``, ``\\``, ``..``, absolute path or NUL), else ``ValueError``.

    For names the user gives that become folders under a base path (export names), so a write never
    lands outside that base.
    """
    text = os.fspath(name) if isinstance(name, os.PathLike) else name
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must be a non-empty string. Received: {what}={name!r}")
    if text in (".", "..") or "/" in text or "\\" in text or "\0" in text or os.path.isabs(text):
        raise ValueError(
            f"{what} must be a plain name (letters, digits, '-', '_', '.'; no '/', '..' or absolute path), so "
            f"nothing is written outside its base folder. Received: {what}={name!r}"
        )
    return text


def symlinked_folders(folder, max_depth=2) -> list[Path]:
    """Symlinks to folders inside ``folder`` (to ``max_depth``, never followed): where a write would leave it.

    A file symlink is harmless to every writer here (``os.replace`` replaces the link itself, the file it
    points to is untouched), but a write *into* a symlinked folder (``run/plots/x.png``, TensorBoard's
    ``run/logs``) lands wherever the link points. Callers refuse such a folder before writing anything.
    ``folder`` itself may be a symlink (the path the user chose).
    """
    return sorted(Path(e.path) for e in _scan(folder, max_depth, lambda e: e.is_symlink() and os.path.isdir(e.path)))
