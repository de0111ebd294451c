"""imgrec_helpers.data: the CIFAR-10 loader (every source, every failure) and the small data helpers."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from conftest import PER_BATCH, fake_batches, write_archive, write_batches
from imgrec_helpers import data, sources
from imgrec_helpers.errors import DataError, FileSystemError


def _expected(batches, names):
    x = np.concatenate([batches[n][0] for n in names]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.concatenate([batches[n][1] for n in names]).astype(np.uint8).reshape(-1, 1)
    return x, y


TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def test_loads_fake_archive_like_keras(fake_home):
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(fake_home)
    batches = fake_batches()
    ex, ey = _expected(batches, TRAIN)
    assert x_train.shape == (5 * PER_BATCH, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (5 * PER_BATCH, 1) and y_train.dtype == np.uint8
    assert np.array_equal(x_train, ex) and np.array_equal(y_train, ey)
    tx, ty = _expected(batches, ["test_batch"])
    assert np.array_equal(x_test, tx) and np.array_equal(y_test, ty)


def test_channel_layout_is_rgb_planes():
    # first 1024 values are red, then green, then blue: a pure red image stays red
    row = np.zeros(3072, np.uint8)
    row[:1024] = 255
    batches = {n: (np.stack([row] * 2), [0, 1]) for n in TRAIN + ["test_batch"]}
    folder = write_batches(__import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "cifar-10-batches-py", batches)
    (x, _), _ = data.load_cifar10(folder.parent)
    assert (x[..., 0] == 255).all() and (x[..., 1:] == 0).all()


@pytest.mark.parametrize("mode,name", [("w:xz", "cifar-10-python.tar.xz"), ("w:bz2", "cifar-10-python.tar.bz2"),
                                       ("w", "cifar-10-python.tar")])
def test_any_compression(tmp_path, isolated_cache, mode, name):
    write_archive(tmp_path / name, fake_batches())
    (x, _), _ = data.load_cifar10(tmp_path)
    assert x.shape == (5 * PER_BATCH, 32, 32, 3)


def test_extracted_folder_in_data_home(tmp_path, isolated_cache):
    write_batches(tmp_path / "cifar-10-batches-py", fake_batches())
    (x, _), (xt, _) = data.load_cifar10(tmp_path)
    assert len(x) == 5 * PER_BATCH and len(xt) == PER_BATCH
    assert not isolated_cache.exists()  # nothing extracted


def test_extracts_once_into_cache(fake_home, isolated_cache, monkeypatch):
    data.load_cifar10(fake_home)
    calls = []
    monkeypatch.setattr(data, "_extract_archive", lambda *a: calls.append(a))
    data.load_cifar10(fake_home)
    assert calls == []
    assert not (fake_home / "cifar-10-batches-py").exists()  # the data home is never written to


def test_same_archive_copied_or_touched_reuses_the_extraction(fake_home, isolated_cache, tmp_path, monkeypatch):
    first = data.cifar10_folder(fake_home)
    calls = []
    monkeypatch.setattr(data, "_extract_archive", lambda *a: calls.append(a))
    archive = fake_home / "cifar-10-python.tar.gz"
    os.utime(archive, ns=(1, 1))  # a data home copied anew: same bytes, new time
    copy = tmp_path / "other_home"
    copy.mkdir()
    shutil.copy(archive, copy / archive.name)
    assert data.cifar10_folder(fake_home) == first and data.cifar10_folder(copy) == first
    assert calls == []
    assert [p.name for p in isolated_cache.iterdir() if p.is_dir()] == [first.name]  # the cache does not grow


def test_processes_started_together_extract_once(fake_home, isolated_cache, monkeypatch):
    import threading
    import time

    real, calls = data._extract_archive, []

    def slow_extract(archive, target):
        calls.append(target)
        time.sleep(0.3)  # long enough for the other loader to arrive while this one extracts
        return real(archive, target)

    monkeypatch.setattr(data, "_extract_archive", slow_extract)
    found = []
    loaders = [threading.Thread(target=lambda: found.append(data.cifar10_folder(fake_home))) for _ in range(2)]
    for loader in loaders:
        loader.start()
    for loader in loaders:
        loader.join()
    assert len(calls) == 1 and len(found) == 2 and found[0] == found[1] and found[0].is_dir()


def test_archive_with_other_bytes_is_extracted_anew(fake_home, isolated_cache):
    first = data.cifar10_folder(fake_home)
    batches = fake_batches()
    batches["test_batch"] = (batches["test_batch"][0][::-1].copy(), batches["test_batch"][1][::-1])
    write_archive(fake_home / "cifar-10-python.tar.gz", batches)
    second = data.cifar10_folder(fake_home)
    assert second != first and second.is_dir()
    _, (x_test, _) = data.load_cifar10(fake_home)
    assert np.array_equal(x_test, _expected(batches, ["test_batch"])[0])


def test_extracting_removes_the_extractions_of_the_earlier_cache_scheme(fake_home, isolated_cache):
    """Earlier versions named extractions by the archive's path and time (12 hex digits); they are deleted
    when an archive is extracted, and nothing else in the cache is touched."""
    old = isolated_cache / "cifar-10-batches-py-0123456789ab"
    (old / "cifar-10-batches-py").mkdir(parents=True)
    (old / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x" * 100)
    kept = [isolated_cache / "cifar-10-batches-py-notmine", isolated_cache / "other-0123456789ab"]
    for folder in kept:
        folder.mkdir()
    (isolated_cache / "cifar-10-batches-py-abcdefabcdef").write_text("a file, not an extraction")
    folder = data.cifar10_folder(fake_home)
    assert folder.is_dir() and not old.exists()
    assert all(k.is_dir() for k in kept) and (isolated_cache / "cifar-10-batches-py-abcdefabcdef").is_file()


def test_read_only_cache_with_the_extraction_still_loads(fake_home, isolated_cache, monkeypatch):
    folder = data.cifar10_folder(fake_home)
    os.utime(fake_home / "cifar-10-python.tar.gz", ns=(2, 2))  # the pointer no longer matches

    def refuse(target, suffix=None):
        raise FileSystemError(f"cannot write {target}: read-only file system")

    monkeypatch.setattr(data, "atomic_path", refuse)
    assert data.cifar10_folder(fake_home) == folder  # found by content; no pointer written, no error
    assert not list(isolated_cache.glob(".*"))


def test_truncated_batch_then_recovery(fake_home, isolated_cache):
    folder = data.cifar10_folder(fake_home)
    batch = folder / "data_batch_3"
    good = batch.read_bytes()
    batch.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError) as err:
        data.load_cifar10(fake_home)
    message = str(err.value)
    assert "data_batch_3" in message and "truncated or corrupt" in message and "\n" not in message
    shutil.rmtree(folder)  # what the message says to do
    (x, _), _ = data.load_cifar10(fake_home)
    assert len(x) == 5 * PER_BATCH


def test_missing_batch_in_folder(tmp_path, isolated_cache):
    folder = write_batches(tmp_path / "cifar-10-batches-py", fake_batches())
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch.*missing"):
        data.load_cifar10(tmp_path)


def _no_partial_left(cache):
    return not cache.exists() or not any(p.name.endswith(".partial") or p.name.startswith(".") for p in cache.iterdir())


def test_corrupt_archive(tmp_path, isolated_cache):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(os.urandom(5000))
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*corrupt") as err:
        data.load_cifar10(tmp_path)
    assert "\n" not in str(err.value)
    assert _no_partial_left(isolated_cache)


def test_truncated_archive_leaves_no_half_extracted_cache(fake_home, isolated_cache):
    archive = fake_home / "cifar-10-python.tar.gz"
    content = archive.read_bytes()
    archive.write_bytes(content[: len(content) * 2 // 3])
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.load_cifar10(fake_home)
    assert not list(isolated_cache.glob("cifar-10-batches-py*")) and _no_partial_left(isolated_cache)
    archive.write_bytes(content)  # a good archive afterwards works
    (x, _), _ = data.load_cifar10(fake_home)
    assert len(x) == 5 * PER_BATCH


def test_archive_with_wrong_content(tmp_path, isolated_cache):
    write_archive(tmp_path / "cifar-10-python.tar.gz", {"data_batch_1": fake_batches()["data_batch_1"]})
    with pytest.raises(DataError, match="not a CIFAR-10 python archive.*missing data_batch_2"):
        data.load_cifar10(tmp_path)


def test_batch_with_wrong_shape(tmp_path, isolated_cache):
    batches = fake_batches()
    batches["data_batch_1"] = (np.zeros((4, 100), np.uint8), [0, 1, 2, 3])
    write_batches(tmp_path / "cifar-10-batches-py", batches)
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        data.load_cifar10(tmp_path)


def test_no_download_flag(tmp_path, isolated_cache):
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        data.load_cifar10(tmp_path, download=False)


def test_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGREC_DATA_HOME", str(tmp_path))
    assert sources.data_home() == tmp_path.resolve()
    assert sources.data_home(tmp_path / "x") == (tmp_path / "x").resolve()
    monkeypatch.delenv("IMGREC_DATA_HOME")
    assert sources.data_home().name == "data"


def test_small_helpers():
    labels = np.array([[0], [1], [1], [9]], np.uint8)
    assert data.class_counts(labels).tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    mean, std = data.channel_stats(images)
    assert np.allclose(mean, (images / 255.0).mean(axis=(0, 1, 2)))
    assert np.allclose(std, (images / 255.0).std(axis=(0, 1, 2)))


def test_stratified_subset_is_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    a = data.stratified_subset(labels, 100, seed=1)
    assert len(a) == 100 and (np.bincount(labels[a]) == 10).all()
    assert np.array_equal(a, data.stratified_subset(labels, 100, seed=1))
    assert not np.array_equal(a, data.stratified_subset(labels, 100, seed=2))
    assert len(data.stratified_subset(labels, None, 0)) == 500
    assert len(data.stratified_subset(labels, 500, 0)) == 500


@pytest.mark.parametrize("size,shown", [(-5, "-5"), (0, "0"), (501, "501"), (10**9, "1,000,000,000"), (2.5, "2.5"),
                                        ("100", "'100'"), (True, "True")])
def test_a_subset_size_that_is_not_a_number_of_images_is_one_line(size, shown):
    """TRAIN_IMAGES = -5 or 100_000 in a lesson: said in words, not a silent other subset or a NumPy error."""
    with pytest.raises(DataError) as err:
        data.stratified_subset(np.repeat(np.arange(10), 50), size, 0)
    assert str(err.value) == (f"{shown} images asked for, but there are 500: use a whole number from 1 to 500, "
                              "or None for all of them")


def test_real_cifar10_matches_the_official_batches(real_home):
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(real_home)
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert y_train.shape == (50000, 1) and y_test.shape == (10000, 1)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert (data.class_counts(y_train) == 5000).all() and (data.class_counts(y_test) == 1000).all()
    # the same arrays Keras' own batch reader gives for the same files
    from keras.src.datasets.cifar import load_batch

    folder = data.cifar10_folder(real_home)
    kx, ky = load_batch(str(folder / "test_batch"))
    assert np.array_equal(x_test, kx.transpose(0, 2, 3, 1)) and np.array_equal(y_test[:, 0], ky)
    mean, _ = data.channel_stats(x_train)
    assert np.allclose(mean, [0.4914, 0.4822, 0.4465], atol=5e-4)
