"""Shared fixtures: a CIFAR-format archive made by the tests, and the real data home when present."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent
PER_BATCH = 20  # images per fake batch: 5 train batches + 1 test batch


def fake_batches(seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Six small batches in the official layout: (N, 3072) uint8 rows of 1024 R, 1024 G, 1024 B."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(i % 10) for i in range(PER_BATCH)]
        out[name] = (data, labels)
    return out


def write_batches(folder: Path, batches) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in batches.items():
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, fh)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}))
    return folder


def write_archive(path: Path, batches, mode: str = "w:gz", folder: str = "cifar-10-batches-py") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, (data, labels) in batches.items():
            payload = pickle.dumps({b"labels": labels, b"data": data})
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Extraction cache in a temp folder, so tests never touch ~/.cache/imgrec."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("IMGREC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def fake_home(tmp_path, isolated_cache) -> Path:
    """A data home with a fake cifar-10-python.tar.gz."""
    home = tmp_path / "home"
    write_archive(home / "cifar-10-python.tar.gz", fake_batches())
    return home


def _real_home() -> Path | None:
    env = os.environ.get("IMGREC_DATA_HOME")
    if not env:
        return None
    home = Path(env)
    has_cifar = (home / "cifar-10-batches-py").is_dir() or any(home.glob("cifar-10-python.tar*"))
    return home if has_cifar and (home / "images").is_dir() else None


@pytest.fixture(scope="session")
def real_home() -> Path:
    """The real data home (IMGREC_DATA_HOME with CIFAR-10 and photos), or skip."""
    home = _real_home()
    if home is None:
        pytest.skip("needs IMGREC_DATA_HOME pointing at a data home with the real CIFAR-10 and photos")
    return home
