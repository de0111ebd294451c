"""Bad input and hostile situations, fed as a user would: the `imgrec` command as a subprocess, real
files, real file systems (a small tmpfs for a full disk, a read-only mount, folders without
permission). Each case checks: non-zero exit, exactly one `error:` line on the real stderr that says
what to do, no traceback and no library log, nothing half-written, earlier outputs intact.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, fake_batches, write_archive, write_batches, write_notebook
from imgrec_helpers import data, persistence
from imgrec_helpers.course import manifest as run_manifest
from imgrec_helpers.errors import DataError, ImageError

PY = sys.executable


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must keep TensorFlow quiet by itself
    env.update(extra)
    return env


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply even to root (who otherwise reads
    everything): root without the capabilities to override them; nothing for other users."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to test permissions as root")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def imgrec(*args: str, nobody: bool = False, env: dict[str, str] | None = None, timeout: float = 180,
           script: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m imgrec_helpers ARGS` (or a script calling cli.main) and capture the real stderr."""
    cmd = [PY, "-c", script, *args] if script else [PY, "-m", "imgrec_helpers", *args]
    if nobody:
        cmd = _without_root_powers() + cmd
    return subprocess.run(cmd, capture_output=True, text=True, env=env or _env(), timeout=timeout, cwd="/")


def one_line_error(proc: subprocess.CompletedProcess, *phrases: str) -> str:
    assert proc.returncode not in (0, None), (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    for phrase in phrases:
        assert phrase in line, (phrase, line)
    return line


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------------------------
# Places: a folder everybody can enter, a small disk, a read-only disk
# --------------------------------------------------------------------------------------------


@pytest.fixture
def public(tmp_path_factory):
    """A folder under /tmp that an unprivileged user may enter (pytest's own is 0700 for root)."""
    folder = Path(tempfile.mkdtemp(prefix="imgrec-public-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for p in folder.rglob("*"):
        with contextlib.suppress(OSError):
            p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _mounted(folder: Path, size_kb: int, read_only: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(folder)],
                          capture_output=True)
    if proc.returncode != 0:
        pytest.skip("needs a small tmpfs (mount -t tmpfs as root) to fill or freeze a real file system")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(public):
    with _mounted(public / "disk", 1024) as folder:
        yield folder


@pytest.fixture
def read_only_disk(public):
    """(folder, make) : call make() with files written, then the file system becomes read-only."""
    with _mounted(public / "ro", 4096) as folder:
        def freeze():
            assert subprocess.run(["mount", "-o", "remount,ro", str(folder)]).returncode == 0
        yield folder, freeze


# --------------------------------------------------------------------------------------------
# Models and photos
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="imgrec-models-", dir="/tmp"))
    folder.chmod(0o755)
    tiny = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    vector = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3, activation="softmax")])
    grey = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    out = {"tiny": persistence.save_model(tiny, folder / "tiny.keras", ["apple", "boat", "cat"]),
           "vector": persistence.save_model(vector, folder / "vector.keras", ["apple", "boat", "cat"]),
           "grey": persistence.save_model(grey, folder / "grey.keras", ["apple", "boat", "cat"])}
    for p in out.values():
        p.chmod(0o644)
    yield out
    shutil.rmtree(folder, ignore_errors=True)


def _photo(path: Path, size=(40, 30), colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _with_info(source: Path, target: Path, info) -> Path:
    """A copy of a .keras file whose imgrec.json entry is replaced by ``info`` (any JSON)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            if item.filename != persistence.MODEL_INFO_ENTRY:
                dst.writestr(item, src.read(item.filename))
        dst.writestr(persistence.MODEL_INFO_ENTRY, info if isinstance(info, str) else json.dumps(info))
    return target


# --------------------------------------------------------------------------------------------
# 1. load_image on every size
# --------------------------------------------------------------------------------------------


def test_center_box_is_always_inside_the_image_on_thousands_of_sizes():
    rng = random.Random(12)
    common = [224, 160, 96, 32, 299, 1, 2, 3]
    for _ in range(20000):
        w, h = rng.randint(1, 8000), rng.randint(1, 8000)
        target = (rng.choice(common + [rng.randint(1, 1000)]), rng.choice(common + [rng.randint(1, 1000)]))
        left, top, right, bottom = box = data.center_box(w, h, target)
        assert all(isinstance(v, int) for v in box)
        assert 0 <= left < right <= w and 0 <= top < bottom <= h, (w, h, target, box)
        cw, ch = right - left, bottom - top
        assert cw == w or ch == h  # the largest such box
        ideal = min(w / target[0], h / target[1])
        assert abs(cw - target[0] * ideal) <= 1 and abs(ch - target[1] * ideal) <= 1
        assert abs((left + right) - w) <= 1 and abs((top + bottom) - h) <= 1  # centred


def test_load_image_never_fails_on_random_photo_and_target_sizes(tmp_path):
    rng = random.Random(7)
    for i in range(400):
        w, h = rng.randint(1, 700), rng.randint(1, 700)
        size = rng.choice([224, 160, 96, 32, rng.randint(1, 300), (rng.randint(1, 300), rng.randint(1, 300))])
        path = tmp_path / f"p{i % 7}.{'jpg' if i % 2 else 'png'}"
        Image.new("RGB", (w, h), (i % 255, 80, 160)).save(path)
        arr = data.load_image(path, size)
        want = (size, size) if isinstance(size, int) else size
        assert arr.shape == (want[1], want[0], 3) and arr.dtype == np.uint8


@pytest.mark.parametrize("size", [0, -1, -224, 2.5, True, (0, 10), (10,), "224", 10**6])
def test_load_image_refuses_sizes_that_are_not_sizes(tmp_path, size):
    path = _photo(tmp_path / "a.png")
    with pytest.raises(ImageError) as err:
        data.load_image(path, size)
    assert "image size must be a whole number of pixels" in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------
# 2 and 9. Options anywhere; one line on the real stderr, before TensorFlow
# --------------------------------------------------------------------------------------------


def test_options_between_model_and_images(models, public, capsys):
    a, b = _photo(public / "a.png"), _photo(public / "b.png", (70, 20))
    proc = imgrec("predict", str(models["tiny"]), "--top", "2", "--json", str(a), str(b))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["image"] for x in lines] == [str(a), str(b)] and all(len(x["predictions"]) == 2 for x in lines)
    from imgrec_helpers.course import cli  # the options after the images: the same parser, here in this process

    assert cli.main(["predict", str(models["tiny"]), str(a), str(b), "--json", "--top", "2"]) == 0
    assert capsys.readouterr().out == proc.stdout


@pytest.mark.parametrize("args,phrase", [
    (["predict", "mobilenet-0.25", "/no/such/photo.jpg"], "no such image file"),
    (["predict", "mobilenet-0.25", "--top", "0", "x.jpg"], "--top"),
    (["predict", "mobilenet-0.25", "--top", "many", "x.jpg"], "not a whole number"),
    (["predict", "no-such-net", "/etc/hostname"], "unknown pretrained model"),
    (["run", "--timeout", "0"], "positive, finite"),
    (["run", "--timeout", "-5"], "positive, finite"),
    (["run", "--timeout", "nan"], "positive, finite"),
    (["run", "--timeout", "inf"], "positive, finite"),
    (["run", "--seed", "-1"], "--seed"),
    (["run", "--profile", "huge"], "invalid choice"),
    (["fly"], "invalid choice"),
    (["evaluate", "/no/model.keras", "/tmp"], "no such model file"),
    (["bench", "--data-home", "/no/such/home"], "does not exist"),
])
def test_usage_and_path_errors_are_one_line_before_tensorflow(args, phrase):
    proc = imgrec(*args, timeout=60)
    one_line_error(proc, phrase)
    assert proc.returncode == 2


def test_an_unreadable_photo_among_good_ones_after_tensorflow_started(models, public):
    good = _photo(public / "good.png")
    bad = public / "bad.jpg"
    bad.write_bytes(b"not a photo at all")
    proc = imgrec("predict", str(models["tiny"]), str(good), str(bad), str(good), "--json")
    one_line_error(proc, "bad.jpg", "not a readable image", "replace it")  # and no TensorFlow / absl / CUDA line
    assert [json.loads(x)["image"] for x in proc.stdout.splitlines()] == [str(good), str(good)]


# --------------------------------------------------------------------------------------------
# 3. Operating-system errors
# --------------------------------------------------------------------------------------------


def test_path_longer_than_the_file_system_allows(models, public):
    long = str(public / ("x" * 300 + ".jpg"))
    one_line_error(imgrec("predict", str(models["tiny"]), long), "file name too long", "shorter")
    one_line_error(imgrec("run", "--out", str(public / ("r" * 300)), "01"), "file name too long", "shorter")
    one_line_error(imgrec("evaluate", str(models["tiny"]), str(public / ("d" * 300))), "file name too long")
    assert list(public.iterdir()) == []


def test_folders_that_cannot_be_searched_or_files_that_cannot_be_read(models, public):
    locked = public / "locked"
    photo = _photo(locked / "cat.png")
    locked.chmod(0o000)
    one_line_error(imgrec("predict", str(models["tiny"]), str(photo), nobody=True), "cat.png", "permission denied")
    evalroot = public / "eval"
    _photo(evalroot / "apple" / "a.png")
    _photo(evalroot / "cat" / "inner" / "b.png")
    (evalroot / "cat" / "inner").chmod(0o000)
    one_line_error(imgrec("evaluate", str(models["tiny"]), str(evalroot), nobody=True), "inner", "permission denied")
    model = public / "secret.keras"
    shutil.copy(models["tiny"], model)
    model.chmod(0o000)
    line = one_line_error(imgrec("predict", str(model), str(_photo(public / "ok.png")), nobody=True),
                          "secret.keras", "permission denied")
    assert "not a zip" not in line


def test_out_that_is_a_file_or_read_only(public, read_only_disk):
    target = public / "notes.txt"
    target.write_text("keep me")
    one_line_error(imgrec("run", "--out", str(target), "01"), "is a file, not a folder")
    assert target.read_text() == "keep me"
    folder, freeze = read_only_disk
    freeze()
    one_line_error(imgrec("run", "--out", str(folder / "run"), "01"), "read-only file system", "writable")


def _fake_run(folder: Path, status: str = "ok") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"profile": "smoke", "seed": 42, "status": status, "notebooks": {"01_x.ipynb": {"status": status}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_report_on_a_read_only_run_folder_keeps_the_old_report(read_only_disk):
    folder, freeze = read_only_disk
    run = _fake_run(folder / "run")
    assert imgrec("report", str(run)).returncode == 0
    before = (run / "report.html").read_bytes()
    freeze()
    one_line_error(imgrec("report", str(run)), "read-only file system", "cp -r")
    assert (run / "report.html").read_bytes() == before


def test_broken_pipe_stops_quietly(models, public):
    photo = _photo(public / "a.png")
    proc = subprocess.Popen(f"{PY} -m imgrec_helpers predict {models['tiny']} --json "
                            + " ".join([str(photo)] * 3000) + " | head -n 1",
                            shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), cwd="/")
    out, err = proc.communicate(timeout=180)
    assert len(out.splitlines()) == 1 and json.loads(out)["image"] == str(photo)
    assert err == "", err  # no BrokenPipeError, no traceback, nothing at all


@pytest.mark.parametrize("content,phrase", [
    ("", "empty"), ("[1, 2, 3]", "not an imgrec run manifest"), ('{"profile": "smoke", "se', "truncated"),
    ('{"name": "webpack", "version": 3}', "not an imgrec run manifest"),
])
def test_bad_manifests_for_resume_and_report(public, content, phrase):
    run = public / "run"
    run.mkdir()
    (run / "manifest.json").write_text(content)
    before = sorted(p.name for p in run.iterdir())
    one_line_error(imgrec("run", "--resume", str(run), "--profile", "smoke"), "manifest.json", phrase)
    one_line_error(imgrec("report", str(run)), "manifest.json", phrase)
    one_line_error(imgrec("run", "--out", str(run), "--profile", "smoke", "01"), "manifest.json", "another --out")
    assert sorted(p.name for p in run.iterdir()) == before  # no logs/, no report.html
    assert (run / "manifest.json").read_text() == content


def test_resume_on_a_folder_that_is_not_a_run_creates_nothing(public):
    (public / "photos").mkdir()
    _photo(public / "photos" / "a.png")
    one_line_error(imgrec("run", "--resume", str(public / "photos")), "nothing to resume")
    assert [p.name for p in (public / "photos").iterdir()] == ["a.png"]


@pytest.mark.parametrize("info,phrase", [
    ({"class_names": "apple", "input_scale": "0-1"}, "class_names"),
    ({"class_names": [1, 2, 3], "input_scale": "0-1"}, "class_names"),
    ({"class_names": ["a", "a", "b"], "input_scale": "0-1"}, "repeat"),
    ({"class_names": ["a", "b", "c"], "input_scale": "0-2"}, "unknown input_scale"),
    ({"class_names": ["a", "b", "c"], "input_scale": 255}, "unknown input_scale"),
    ({"class_names": ["a", "b", "c"], "input_shape": "32x32"}, "input_shape"),
    (["a", "b", "c"], "not an object"),
    ("{not json", "not valid JSON"),
])
def test_model_info_of_the_wrong_type(models, public, info, phrase):
    model = _with_info(models["tiny"], public / "odd.keras", info)
    one_line_error(imgrec("predict", str(model), str(_photo(public / "a.png"))), "odd.keras", phrase, "save")


@pytest.mark.parametrize("name", ["vector", "grey"])
def test_model_whose_input_is_not_rgb_images(models, public, name):
    one_line_error(imgrec("predict", str(models[name]), str(_photo(public / "a.png"))), "takes input of shape")


def test_unreadable_keras_file_is_not_called_a_zip_problem_when_it_is_truncated(models, public):
    cut = public / "cut.keras"
    cut.write_bytes(models["tiny"].read_bytes()[:300])
    one_line_error(imgrec("predict", str(cut), str(_photo(public / "a.png"))), "cut.keras")


# --------------------------------------------------------------------------------------------
# CIFAR-10: batches that are not what they claim, caches that cannot be written, data homes that are not
# --------------------------------------------------------------------------------------------


def _one(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_empty_batch_in_an_extracted_folder(tmp_path, isolated_cache):
    batches = fake_batches()
    batches["data_batch_2"] = (np.zeros((0, 3072), np.uint8), [])
    write_batches(tmp_path / "cifar-10-batches-py", batches)
    with pytest.raises(DataError) as err:
        data.load_cifar10(tmp_path)
    assert "data_batch_2" in _one(err) and "empty CIFAR-10 batch" in _one(err)


def test_float_pixels_are_refused_not_cast(tmp_path, isolated_cache):
    batches = fake_batches()
    batches["test_batch"] = (np.random.default_rng(0).random((4, 3072)), [0, 1, 2, 3])
    write_batches(tmp_path / "cifar-10-batches-py", batches)
    with pytest.raises(DataError) as err:
        data.load_cifar10(tmp_path)
    assert "test_batch" in _one(err) and "pixels are float64" in _one(err) and "not converted" in _one(err)


def test_label_outside_0_9_in_an_archive_names_the_archive_and_the_labels(tmp_path, isolated_cache):
    batches = fake_batches()
    data_1, labels = batches["data_batch_4"]
    batches["data_batch_4"] = (data_1, labels[:-1] + [10])
    write_archive(tmp_path / "cifar-10-python.tar.gz", batches)
    with pytest.raises(DataError) as err:
        data.load_cifar10(tmp_path)
    message = _one(err)
    assert "cifar-10-python.tar.gz" in message and "data_batch_4" in message and "outside 0-9" in message
    assert ".partial" not in message and str(isolated_cache) not in message
    assert not isolated_cache.exists() or not list(isolated_cache.iterdir())


def test_cache_path_that_is_a_file_does_not_blame_the_archive(fake_home, tmp_path, monkeypatch):
    blocker = tmp_path / "cache-file"
    blocker.write_text("x")
    monkeypatch.setenv("IMGREC_CACHE_DIR", str(blocker))
    archive = fake_home / "cifar-10-python.tar.gz"
    before = archive.read_bytes()
    with pytest.raises(DataError) as err:
        data.load_cifar10(fake_home)
    message = _one(err)
    assert "cache" in message and "IMGREC_CACHE_DIR" in message and "is fine" in message
    assert "corrupt" not in message and "delete it" not in message
    assert archive.read_bytes() == before


def test_full_cache_disk_says_full_not_corrupt(fake_home, small_disk, monkeypatch):
    (small_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 40 * 1024))
    monkeypatch.setenv("IMGREC_CACHE_DIR", str(small_disk / "cache"))
    with pytest.raises(DataError) as err:
        data.load_cifar10(fake_home)
    message = _one(err)
    assert "the disk is full" in message and str(small_disk) in message and "corrupt" not in message
    assert [p.name for p in (small_disk / "cache").iterdir()] == []  # no half-extracted folder


def test_data_home_that_does_not_exist_or_is_a_file(tmp_path, isolated_cache):
    for home, phrase in ((tmp_path / "typo", "does not exist"), (tmp_path / "file", "is a file")):
        if phrase == "is a file":
            home.write_text("x")
        with pytest.raises(DataError) as err:
            data.load_cifar10(home)  # downloads nothing
        assert phrase in _one(err) and str(home) in _one(err)
    assert not isolated_cache.exists()
    proc = imgrec("predict", "--list", env=_env(IMGREC_DATA_HOME=str(tmp_path / "typo")))
    one_line_error(proc, "does not exist", "IMGREC_DATA_HOME")


# --------------------------------------------------------------------------------------------
# 7. evaluate sees what Keras sees
# --------------------------------------------------------------------------------------------


def test_evaluate_counts_sub_folders_and_skips_hidden_and_macos_companions(models, public):
    root = public / "eval"
    _photo(root / "apple" / "a.png")
    _photo(root / "apple" / "more" / "deeper" / "b.jpg")
    _photo(root / "cat" / "c.png")
    (root / "cat" / "._c.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS resource fork
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    (root / ".Trashes").mkdir()
    proc = imgrec("evaluate", str(models["tiny"]), str(root))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "/ 2 " in proc.stdout.splitlines()[0] and proc.stdout.rstrip().endswith("on 3 images")
    import keras

    keras_paths = keras.utils.image_dataset_from_directory(root, batch_size=None, image_size=(8, 8),
                                                           verbose=False).file_paths
    # the same images as Keras, sub-folders included; Keras also takes the hidden files (and would
    # fail decoding the macOS companion), which are not photos: we skip them
    assert {Path(p) for p in keras_paths if not Path(p).name.startswith(".")} == {
        root / "apple" / "a.png", root / "apple" / "more" / "deeper" / "b.jpg", root / "cat" / "c.png"}


# --------------------------------------------------------------------------------------------
# 5. Ctrl-C advice
# --------------------------------------------------------------------------------------------


def test_ctrl_c_in_predict_does_not_suggest_resume(models, public):
    photo = _photo(public / "a.png")
    # 100,000 times the photo (half a minute of predicting): Ctrl-C surely comes before the end, also on a
    # machine busy with other tests. The command starts with Ctrl-C's default action, as from a terminal: a
    # test session started in the background of a script (`.ci/run &`) has SIGINT ignored, and children
    # inherit that (which imgrec respects, as nohup expects)
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a handler is reset to the default at exec
    try:
        proc = subprocess.Popen([PY, "-m", "imgrec_helpers", "predict", str(models["tiny"]), *[photo.name] * 100_000],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=photo.parent)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    assert proc.stdout.readline()  # predicting now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"{len(out.splitlines())} lines of results, then: {err[-1500:]}"
    assert len(err.splitlines()) == 1 and "imgrec predict again" in err and "--resume" not in err, err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, on purpose
def test_ctrl_c_swallowed_by_a_finalizer_still_stops_predict(models, public, capsys, monkeypatch):
    """Python raises Ctrl-C's KeyboardInterrupt in whatever runs at that moment; inside a finalizer (TensorFlow
    objects have many) it is printed as "Exception ignored" and lost. imgrec predict still stops, at the next result."""
    import signal
    import threading

    from imgrec_helpers.course import cli, prediction

    monkeypatch.setattr(cli, "_CTRL_C", threading.Event())
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # leave this test process's own handlers alone
    original = prediction.Predictor.predict_files

    class Finalized:
        def __del__(self):
            cli._interrupt(signal.SIGINT, None)  # Ctrl-C arriving while a finalizer runs

    def predict_files(self, paths, k=3, **kwargs):
        for i, item in enumerate(original(self, paths, k, **kwargs)):
            if i == 1:
                Finalized()  # made and dropped at once: its KeyboardInterrupt is swallowed
            yield item

    monkeypatch.setattr(prediction.Predictor, "predict_files", predict_files)
    photo = _photo(public / "a.png")
    assert cli.main(["predict", str(models["tiny"]), *[str(photo)] * 200]) == 130
    out, err = capsys.readouterr()
    assert out.count(str(photo)) == 1 and "interrupted; the predictions printed above are complete" in err


# --------------------------------------------------------------------------------------------
# 4. A full disk during a run; 8. the umask
# --------------------------------------------------------------------------------------------


def _run_script(folder: Path) -> str:
    """`imgrec ARGS` with the runner pointed at a folder of test notebooks."""
    return ("import functools, sys; from imgrec_helpers.course import cli, runner; "
            f"runner.run_course = functools.partial(runner.run_course, notebooks_dir={str(folder)!r}); "
            "sys.exit(cli.main(sys.argv[1:]))")


def test_disk_full_during_a_run_leaves_only_files_that_parse(public, small_disk):
    course = public / "nb"
    course.mkdir()
    write_notebook(course / "01_fine.ipynb", "print('one')")
    write_notebook(course / "02_fill.ipynb", "print('x' * 2000)",
              "import pathlib\ntry:\n    with open(pathlib.Path(RUN_DIR, 'big.bin'), 'wb') as f:\n"
              "        for _ in range(400): f.write(b'x' * 65536)\nexcept OSError as exc:\n    print(exc)",
              "print('y' * 300_000)  # papermill cannot save this: its copy is cut short")
    out = small_disk / "run"
    proc = imgrec("run", "--out", str(out), "--profile", "smoke", script=_run_script(course))
    line = one_line_error(proc, "02_fill.ipynb", "full", str(small_disk))
    assert "is full" in line and "free some space" in line
    for nb in out.glob("*.ipynb"):
        json.loads(nb.read_text())  # every executed copy parses
    assert not list(out.glob(".*partial*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "running" not in {nb["status"] for nb in manifest["notebooks"].values()}
    assert manifest["notebooks"]["01_fine.ipynb"]["status"] == "ok" and (out / "01_fine.ipynb").is_file()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_respect_the_umask(public, umask):
    folder = public / f"u{umask:o}"
    script = f"""
import os, sys
os.umask({umask})
from pathlib import Path
from imgrec_helpers import persistence
folder = Path({str(folder)!r})
persistence.write_json(folder / "sub" / "record.json", {{"a": 1}})
with persistence.atomic_dir(folder / "extracted") as tmp:
    (tmp / "x").write_text("y")
"""
    assert subprocess.run([PY, "-c", script], env=_env(), check=True).returncode == 0
    assert _mode(folder / "sub" / "record.json") == 0o666 & ~umask
    assert _mode(folder / "extracted") == 0o777 & ~umask
    assert _mode(folder / "sub") == 0o777 & ~umask


def test_run_outputs_respect_the_umask(public):
    course = public / "nb"
    course.mkdir()
    write_notebook(course / "01_fine.ipynb", "print('one')")
    out = public / "run"
    script = "import os; os.umask(0o022); " + _run_script(course)
    proc = imgrec("run", "--out", str(out), "--profile", "smoke", script=script)
    assert proc.returncode == 0, proc.stderr
    for name in ("01_fine.ipynb", "manifest.json", "report.html", "html/01_fine.html"):
        assert _mode(out / name) == 0o644, name


def test_manifest_update_on_a_full_disk_is_written_in_place(small_disk):
    path = small_disk / "manifest.json"
    manifest = {"profile": "smoke", "seed": 1, "status": "running", "notebooks": {"01_a.ipynb": {"status": "running"}}}
    run_manifest.write_manifest(path, manifest)
    with open(small_disk / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"x" * 4096)
            fh.flush()
    manifest["notebooks"]["01_a.ipynb"].update(status="failed", error="the disk is full " * 5)
    manifest["status"] = "failed"
    run_manifest.write_manifest(path, manifest)  # no room for a temporary copy: the old file's room is used
    assert json.loads(path.read_text()) == manifest
    assert not list(small_disk.glob(".*partial*"))


def test_fetch_onto_a_full_disk_is_one_line_and_leaves_nothing(small_disk, tmp_path, monkeypatch):
    """A data home on a disk that fills up during a fetch: one line naming the disk, no partial file left."""
    import hashlib

    from imgrec_helpers import sources

    payload = np.random.default_rng(0).integers(0, 256, 2 * 1024 * 1024, dtype=np.uint8).tobytes()  # 2 MB > 1 MB disk
    mirror = tmp_path / "mirror"
    (mirror / "images" / "big").mkdir(parents=True)
    (mirror / "images" / "big" / "photo.jpg").write_bytes(payload)
    row = sources.Copy("big", "images/big/photo.jpg", len(payload), False,
                       "sha256:" + hashlib.sha256(payload).hexdigest(), "https://example.invalid/photo.jpg")
    monkeypatch.setattr(sources, "registry", lambda: {row.path: (row,)})
    monkeypatch.setenv("IMGREC_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError) as err:
        sources.fetch(row.path, small_disk)
    message = str(err.value)
    assert "no space left on device" in message and "photo.jpg" in message and "\n" not in message
    assert [p for p in small_disk.rglob("*") if p.is_file()] == []
