"""The runner behind `imgrec run`: order, manifest, failures, timeouts, resume; and the profiles."""
from __future__ import annotations

import json

import nbformat

import pytest

from conftest import write_notebook
from imgrec_helpers import profiles, running
from imgrec_helpers.course import manifest as run_manifest
from imgrec_helpers.course import runner
from imgrec_helpers.errors import ImgrecError


WRITE_MARK = "import pathlib; pathlib.Path(RUN_DIR, f'{PROFILE}-{SEED}.txt').write_text('ran')"


@pytest.fixture
def course(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "01_first.ipynb", WRITE_MARK, "print('hello from 01')")
    write_notebook(folder / "02_second.ipynb", "x = 1", "raise ValueError('broken on purpose')")
    return folder


def test_profiles_in_one_place():
    assert set(profiles.PROFILES) == {"full", "quick", "smoke"} and profiles.DEFAULT_PROFILE == "quick"
    keys = [set(p) for p in profiles.PROFILES.values()]
    assert keys[0] == keys[1] == keys[2]
    full = profiles.profile_settings("full")
    assert (full["train_images"], full["epochs"], full["batch_size"]) == (None, 30, 64)  # the reference recipe
    with pytest.raises(ImgrecError, match="unknown profile 'huge'"):
        profiles.profile_settings("huge")


def test_run_writes_executed_copies_and_manifest_and_names_the_failure(course, tmp_path):
    out = tmp_path / "run"
    lines = []
    with pytest.raises(ImgrecError) as err:
        runner.run_course("smoke", out, notebooks_dir=course, seed=7, report=False, log=lines.append)
    message = str(err.value)
    assert "02_second.ipynb" in message and "code cell 3 [raise ValueError(" in message and "ValueError: broken on purpose" in message
    assert (out / "smoke-7.txt").read_text() == "ran"  # parameters reached the notebook
    assert (out / "01_first.ipynb").is_file() and not (out / "02_second.ipynb").exists()
    assert (out / "02_second.failed.ipynb").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"] == "smoke" and manifest["seed"] == 7 and manifest["status"] == "failed"
    assert manifest["notebooks"]["01_first.ipynb"]["status"] == "ok"
    assert manifest["notebooks"]["02_second.ipynb"]["status"] == "failed"
    assert {"tensorflow", "keras", "python"} <= set(manifest["versions"]) and manifest["hardware"]["cores"]
    assert any(line.startswith("[1/2] 01_first: ok (") for line in lines)
    executed = nbformat.read(out / "01_first.ipynb", as_version=4)
    assert "hello from 01" in "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert not list(out.glob(".*partial*"))
    failed = nbformat.read(out / "02_second.failed.ipynb", as_version=4)
    error = next(o for c in failed.cells for o in c.get("outputs", []) if o.output_type == "error")
    assert len(error.traceback) > 1  # a bug keeps its whole traceback


def test_the_course_errors_are_one_line_in_a_notebook(tmp_path):
    """An ImgrecError (a bad parameter, a missing photo) is shown in the notebook as its one line, without
    the helper code's frames; the cell still fails, so the run stops there and names it."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "01_photo.ipynb", "from imgrec_helpers import data", "data.load_image('/no/such/photo.jpg', 32)")
    with pytest.raises(ImgrecError) as err:
        runner.run_course("smoke", tmp_path / "run", notebooks_dir=folder, report=False, log=lambda s: None)
    assert "ImageError: /no/such/photo.jpg: no such image file" in str(err.value)
    failed = nbformat.read(tmp_path / "run" / "01_photo.failed.ipynb", as_version=4)
    errors = [o for c in failed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert [e.traceback for e in errors] == [["ImageError: /no/such/photo.jpg: no such image file; check the path"]]


@pytest.mark.parametrize("seed", [-1, 2**32, "abc", 4.2, True])
def test_a_seed_that_numpy_cannot_take_is_one_line(seed, tmp_path):
    with pytest.raises(ImgrecError, match=r"^SEED = .*: use a whole number from 0 to 4,294,967,295 "):
        running.start_lesson("02", "smoke", seed, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_a_run_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ImgrecError, match=r"^cannot create the run folder .*taken"):
        running.start_lesson("02", "smoke", 42, tmp_path / "taken", quiet=True)


def test_resume_skips_completed_notebooks(course, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ImgrecError):
        runner.run_course("smoke", out, notebooks_dir=course, report=False, log=lambda s: None)
    (out / "smoke-42.txt").unlink()
    write_notebook(course / "02_second.ipynb", "print('fixed')")  # the student fixes notebook 02
    lines = []
    manifest = runner.run_course("smoke", out, notebooks_dir=course, resume=True, report=False, log=lines.append)
    assert manifest["status"] == "ok" and not (out / "smoke-42.txt").exists()  # 01 was not run again
    assert any("01_first: already completed, skipped" in line for line in lines)
    assert not (out / "02_second.failed.ipynb").exists() and (out / "02_second.ipynb").is_file()
    with pytest.raises(ImgrecError, match="same --profile"):
        runner.run_course("quick", out, notebooks_dir=course, resume=True, report=False, log=lambda s: None)


def test_timeout_names_the_notebook(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(folder / "01_slow.ipynb", "import time; time.sleep(120)")
    with pytest.raises(ImgrecError, match=r"01_slow.ipynb timed out after 8 s"):
        runner.run_course("smoke", tmp_path / "run", notebooks_dir=folder, timeout=8, report=False,
                           log=lambda s: None)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["notebooks"]["01_slow.ipynb"]["status"] == "timeout"


def test_selection_and_bad_names(course, tmp_path):
    with pytest.raises(ImgrecError, match="unknown notebook '07'"):
        runner.run_course("smoke", tmp_path / "r", notebooks=["07"], notebooks_dir=course, report=False)
    with pytest.raises(ImgrecError, match="nothing to resume"):
        runner.run_course("smoke", tmp_path / "empty", notebooks_dir=course, resume=True, report=False)
    manifest = runner.run_course("smoke", tmp_path / "one", notebooks=["01"], notebooks_dir=course,
                                  report=False, log=lambda s: None)
    assert list(manifest["notebooks"]) == ["01_first.ipynb"] and manifest["status"] == "ok"


def test_seed_makes_numbers_repeat(tmp_path):
    """start_lesson seeds Python, NumPy and Keras with the lesson's SEED (keras.utils.set_random_seed)."""
    import random

    import keras
    import numpy as np

    running.start_lesson("01", "smoke", 3, tmp_path, quiet=True)
    a, r = np.random.rand(3), random.random()
    k = keras.random.uniform((2,), seed=None)
    running.start_lesson("01", "smoke", 3, tmp_path, quiet=True)
    assert np.array_equal(a, np.random.rand(3)) and r == random.random()
    assert np.array_equal(np.asarray(k), np.asarray(keras.random.uniform((2,), seed=None)))


def test_killed_run_keeps_previous_outputs_and_the_next_run_works(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(folder / "01_fast.ipynb", "print('one')")
    write_notebook(folder / "02_slow.ipynb", "import time, os; time.sleep(float(os.environ.get('SLOW', '0')))",
              "print('two')")
    out = tmp_path / "run"
    runner.run_course("smoke", out, notebooks_dir=folder, report=False, log=lambda s: None)
    good = (out / "02_slow.ipynb").read_bytes()

    script = (f"from imgrec_helpers.course.runner import run_course; "
              f"run_course('smoke', {str(out)!r}, notebooks_dir={str(folder)!r}, report=False)")
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ, SLOW="60"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until notebook 02 is executing
        time.sleep(0.5)
        try:
            if json.loads((out / "manifest.json").read_text())["notebooks"]["02_slow.ipynb"]["status"] == "running":
                break
        except (ValueError, KeyError, OSError):
            pass
    with pytest.raises(ImgrecError, match=rf"another imgrec run \(process {proc.pid} on .*\) is still writing"):
        runner.run_course("smoke", out, notebooks_dir=folder, report=False, log=lambda s: None)  # not at once
    time.sleep(4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert (out / "02_slow.ipynb").read_bytes() == good  # the previous executed copy is intact
    manifest = json.loads((out / "manifest.json").read_text())  # still valid JSON
    assert manifest["notebooks"]["02_slow.ipynb"]["status"] == "running" and manifest["pid"] == proc.pid
    read = run_manifest.read_manifest(out)  # the runner is gone: read as interrupted, saying so
    assert read["status"] == "interrupted" and f"process {proc.pid}" in read["note"]
    assert read["notebooks"]["02_slow.ipynb"]["status"] == "interrupted"
    assert read["notebooks"]["01_fast.ipynb"]["status"] == "ok"
    time.sleep(2)  # the kernel exits when the runner that started it died; nothing keeps writing
    manifest = runner.run_course("smoke", out, notebooks_dir=folder, report=False, log=lambda s: None)
    assert manifest["status"] == "ok"
    nbformat.validate(nbformat.read(out / "02_slow.ipynb", as_version=4))


def test_sigterm_is_recorded_as_interrupted(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(folder / "01_slow.ipynb", "import time; time.sleep(60)")
    out = tmp_path / "run"
    script = ("import signal, sys; from imgrec_helpers.course import cli, runner; "
              "signal.signal(signal.SIGTERM, cli._interrupt); "
              f"runner.run_course('smoke', {str(out)!r}, notebooks_dir={str(folder)!r}, report=False)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "logs" / "01_slow.log").exists():
        time.sleep(0.3)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["notebooks"]["01_slow.ipynb"]["status"] == "interrupted"
    assert not list(out.glob(".*partial*"))


def test_a_running_manifest_is_only_settled_when_its_runner_is_gone(tmp_path, monkeypatch):
    import os
    import platform

    base = {"profile": "smoke", "seed": 42, "status": "running", "host": platform.node(),
            "notebooks": {"01.ipynb": {"status": "ok"}, "02.ipynb": {"status": "running"}}}
    for pid, status in [(os.getpid(), "running"), (2 ** 22 + 12345, "interrupted")]:  # alive; no such process
        (tmp_path / "manifest.json").write_text(json.dumps({**base, "pid": pid}))
        assert run_manifest.read_manifest(tmp_path)["status"] == status
    for other in [{"host": "another-machine"}, {"pid": 0}, {"pid": -1}, {"pid": True}, {"pid": None}]:
        (tmp_path / "manifest.json").write_text(json.dumps({**base, "pid": 2 ** 22 + 12345, **other}))
        assert run_manifest.read_manifest(tmp_path)["status"] == "running", other  # cannot tell: as written
    me = run_manifest.process_identity(os.getpid())
    if me is not None:  # Linux: a live process that took a killed runner's id is not that runner
        (tmp_path / "manifest.json").write_text(json.dumps({**base, "pid": os.getpid(), "process": me}))
        assert run_manifest.read_manifest(tmp_path)["status"] == "running"
        for other in [me.split(":")[0] + ":1", "another-boot-id:" + me.split(":")[1]]:
            (tmp_path / "manifest.json").write_text(json.dumps({**base, "pid": os.getpid(), "process": other}))
            assert run_manifest.read_manifest(tmp_path)["status"] == "interrupted", other
    from imgrec_helpers.course.report import write_report

    (tmp_path / "manifest.json").write_text(json.dumps({**base, "pid": 2 ** 22 + 12345}))
    html = write_report(tmp_path).read_text()
    assert "interrupted</b>: its runner (process 4206649) ended without recording how (killed?)" in html


def _lesson(tmp_path, profile: str = "quick") -> running.Lesson:
    from imgrec_helpers.profiles import profile_settings

    return running.Lesson("02", profile, 42, tmp_path, tmp_path, profile_settings(profile))


@pytest.mark.parametrize("key, value, message", [
    ("epochs", 0, r"^EPOCHS = 0: use a whole number of at least 1, or None for the profile's value \(3\)$"),
    ("epochs", -1, r"^EPOCHS = -1: use a whole number of at least 1"),
    ("epochs", 2.5, r"^EPOCHS = 2.5: use a whole number"),
    ("epochs", "3", r"^EPOCHS = '3': use a whole number"),
    ("batch_size", True, r"^BATCH_SIZE = True: use a whole number"),
    ("train_images", 0, r"^TRAIN_IMAGES = 0: .*or None for the profile's value \(all\)$"),
    ("min_test_accuracy", 70, r"^MIN_TEST_ACCURACY = 70: use a number from 0 to 1, or None"),
    ("min_test_accuracy", float("nan"), r"^MIN_TEST_ACCURACY = nan: use a number from 0 to 1"),
    ("curve_sizes", [], r"^CURVE_SIZES = \[\]: use a list of training-set sizes, whole numbers of at least 1, .*"
                        r"\(\[100, 300, 1000\]\)$"),
    ("curve_sizes", 100, r"^CURVE_SIZES = 100: use a list"),
    ("curve_sizes", "100", r"^CURVE_SIZES = '100': use a list"),
    ("curve_sizes", [100, 0], r"^CURVE_SIZES = \[100, 0\]: use a list"),
    ("curve_sizes", [100, 2.5], r"^CURVE_SIZES = \[100, 2.5\]: use a list"),
])
def test_a_bad_lesson_parameter_is_one_line_naming_it(tmp_path, key, value, message):
    with pytest.raises(ImgrecError, match=message):
        _lesson(tmp_path).setting(key, value)


def test_lesson_setting_takes_the_override_or_the_profile_value(tmp_path):
    import numpy as np

    lesson = _lesson(tmp_path)
    assert lesson.setting("epochs") == 3 and lesson.setting("epochs", None) == 3
    assert lesson.setting("epochs", 1) == 1 and lesson.setting("batch_size", np.int64(32)) == 32
    assert lesson.setting("min_test_accuracy", 0) == 0 and lesson.setting("min_test_accuracy", 0.5) == 0.5
    assert lesson.setting("curve_sizes", (50, 200)) == [50, 200]
    sizes = lesson.setting("curve_sizes")
    sizes.append(5)  # a copy: the profile's own list is untouched
    assert lesson.setting("curve_sizes") == [100, 300, 1000]


@pytest.mark.parametrize("value, kwargs, message", [
    (0, {"above_minimum": True}, r"^LEARNING_RATE = 0: use a number above 0$"),
    ("1e-3", {"above_minimum": True}, r"^LEARNING_RATE = '1e-3': use a number above 0$"),
    (float("inf"), {}, r"^LEARNING_RATE = inf: use a number of at least 0$"),
    (10**400, {"whole": True, "maximum": 10}, r"^LEARNING_RATE = 1000000000000000000000000000000000000\.\.\.: "
                                              r"use a whole number from 0 to 10$"),
])
def test_check_parameter_refuses_in_words(value, kwargs, message):
    with pytest.raises(ImgrecError, match=message):
        running.check_parameter("LEARNING_RATE", value, **kwargs)
    assert running.check_parameter("LEARNING_RATE", 1e-3, above_minimum=True) == 1e-3
