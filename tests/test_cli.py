"""The imgrec command: predict's output formats and the one-line errors for bad input."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from imgrec_helpers import persistence
from imgrec_helpers.course import cli


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    return persistence.save_model(model, path, class_names=["apple", "boat", "cat"], input_scale="0-1"), model


@pytest.fixture
def photos(tmp_path):
    paths = []
    for i, mode in enumerate(["RGB", "L", "RGBA"]):
        p = tmp_path / f"photo{i}.png"
        Image.new(mode, (60 + i * 10, 45)).save(p)
        paths.append(p)
    return paths


def test_predict_text(saved_model, photos, capsys):
    assert cli.main(["predict", str(saved_model[0]), str(photos[0]), "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(photos[0]) and len(out) == 3
    assert out[1].strip().endswith(("apple", "boat", "cat")) and "%" in out[1]


def test_predict_json_matches_the_model(saved_model, photos, capsys):
    from imgrec_helpers import data

    path, model = saved_model
    assert cli.main(["predict", str(path), *map(str, photos), "--top", "3", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in photos]
    for line, photo in zip(lines, photos):
        preds = line["predictions"]
        assert [set(p) for p in preds] == [{"label", "probability"}] * 3
        assert abs(sum(p["probability"] for p in preds) - 1) < 1e-4
        expected = model.predict(data.load_image(photo, 32)[None] / 255.0, verbose=0)[0]
        assert preds[0]["label"] == ["apple", "boat", "cat"][int(expected.argmax())]
        assert abs(preds[0]["probability"] - float(expected.max())) < 1e-5


@pytest.mark.parametrize("make,expect", [
    (lambda t: t / "missing.jpg", "no such image file"),
    (lambda t: t, "a folder with no image files in it"),
])
def test_predict_bad_image_paths(saved_model, tmp_path, capsys, make, expect):
    assert cli.main(["predict", str(saved_model[0]), str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expect in err and "Traceback" not in err and err.count("\n") == 1


def test_predict_a_folder_labels_the_images_in_it(saved_model, photos, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(photos[0].read_bytes())
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "sub" / "deeper.png")  # not searched: only the folder itself
    single = tmp_path.parent / f"{tmp_path.name}-single.png"
    Image.new("RGB", (40, 40)).save(single)
    assert cli.main(["predict", str(saved_model[0]), str(tmp_path), str(single), "--json"]) == 0
    shown = [json.loads(line)["image"] for line in capsys.readouterr().out.splitlines()]
    assert shown == [str(p) for p in sorted(photos)] + [str(single)]


def test_file_names_with_control_characters_or_other_bytes_print_as_one_line(saved_model, tmp_path, capsys):
    """A newline or a terminal escape sequence in a file name cannot break the one-line-per-result output
    or recolour the terminal; a name whose bytes are not UTF-8 prints as backslash escapes."""
    names = ["new\nline.png", "colour\x1b[31m.png", "tab\t.png"]
    for name in names:
        Image.new("RGB", (40, 40)).save(tmp_path / name)
    odd = os.fsdecode(b"latin-\xe9t\xe9.png")  # not UTF-8: Python keeps the bytes as surrogates
    Image.new("RGB", (40, 40)).save(tmp_path / odd)
    assert cli.main(["predict", str(saved_model[0]), str(tmp_path), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\t" not in out and all(line.isprintable() for line in out.splitlines())
    lines = out.splitlines()
    assert len(lines) == 8  # a name line and one prediction line for each of the 4 photos
    assert {line.rsplit("/", 1)[1] for line in lines[::2]} == {
        "new\\nline.png", "colour\\x1b[31m.png", "tab\\t.png", "latin-\\xe9t\\xe9.png"}


def test_a_strict_utf8_terminal_gets_an_error_line_not_a_traceback(tmp_path):
    """On a UTF-8 terminal Python refuses to print a file name that is not UTF-8; the error still comes as one
    line (before TensorFlow starts)."""
    missing = os.path.join(os.fsencode(tmp_path), b"gone-\xff.jpg")
    proc = subprocess.run([sys.executable, "-m", "imgrec_helpers", "predict", "mobilenet-0.25", missing],
                          capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    err = proc.stderr.decode("utf-8")
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ") and "gone-\\xff.jpg: no such image file" in err


def test_predict_unreadable_image(saved_model, tmp_path, capsys):
    bad = tmp_path / "fake.jpg"
    bad.write_text("not really a jpeg")
    assert cli.main(["predict", str(saved_model[0]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "fake.jpg" in err and "not a readable image" in err and "Traceback" not in err


def test_predict_bad_models(tmp_path, photos, capsys):
    (tmp_path / "notes.keras").write_text("hello")
    assert cli.main(["predict", str(tmp_path / "notes.keras"), str(photos[0])]) == 2
    assert "not a .keras model file" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "gone.keras"), str(photos[0])]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert cli.main(["predict", "no-such-model-name", str(photos[0])]) == 2
    err = capsys.readouterr().err
    assert "no-such-model-name" in err and "vgg16" in err and "Traceback" not in err


def test_predict_usage_errors(capsys):
    assert cli.main(["predict"]) == 2
    assert "usage: imgrec predict MODEL IMAGE" in capsys.readouterr().err
    assert cli.main(["predict", "--list", "mobilenet-0.25"]) == 2  # not silently ignored
    assert "--list lists the pretrained models and takes no model or image" in capsys.readouterr().err


def test_unknown_profile_is_rejected(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--profile", "huge"])
    assert "invalid choice" in capsys.readouterr().err


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_predict_pretrained_by_name_carries_wnids(real_home, keras_home, capsys):
    coffee = real_home / "images" / "samples" / "skimage_coffee.jpg"
    assert cli.main(["predict", "mobilenet-0.25", str(coffee), "--top", "5", "--json",
                     "--data-home", str(real_home)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["image"] == str(coffee) and len(line["predictions"]) == 5
    assert line["predictions"][0]["label"] == "espresso" and line["predictions"][0]["wnid"] == "n07920052"
    assert cli.main(["predict", "--list", "--data-home", str(real_home)]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^mobilenet-0\.25 .* cached$", listing, re.M)
    assert re.search(r"^vgg16 .* not cached \(downloads ~528 MB on first use\)$", listing, re.M)


def _class_folder(root, name, count=2):
    (root / name).mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (40, 40), (i * 90, 20, 200)).save(root / name / f"{i}.png")


def test_evaluate_a_labelled_folder(saved_model, tmp_path, capsys):
    path, model = saved_model
    _class_folder(tmp_path / "eval", "apple")
    _class_folder(tmp_path / "eval", "cat", 3)
    assert cli.main(["evaluate", str(path), str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^apple\s+\d / 2\s+correct$", out, re.M) and re.search(r"^accuracy 0\.\d{4} on 5 images$", out, re.M)


def test_evaluate_unknown_class_folder_names(saved_model, tmp_path, capsys):
    _class_folder(tmp_path / "eval", "apple")
    _class_folder(tmp_path / "eval", "zebra")
    assert cli.main(["evaluate", str(saved_model[0]), str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "zebra" in err and "not classes of tiny.keras (apple, boat, cat)" in err and "Traceback" not in err


def test_evaluate_empty_and_one_class_folders(saved_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["evaluate", str(saved_model[0]), str(tmp_path / "empty")]) == 2
    assert "no images found" in capsys.readouterr().err
    _class_folder(tmp_path / "one", "apple")
    assert cli.main(["evaluate", str(saved_model[0]), str(tmp_path / "one")]) == 2
    assert "only one class folder" in capsys.readouterr().err


def test_bench_takes_the_module_options_and_hands_them_on(tmp_path, monkeypatch):
    """``imgrec bench`` has the options of ``python -m imgrec_helpers.course.bench`` and passes them on unchanged
    (bench.run applies --emulate-avx2 before TensorFlow starts)."""
    from imgrec_helpers.course import bench

    seen = []
    options = ("quick", "data_home", "levers", "emulate_avx2")
    monkeypatch.setattr(bench, "run", lambda args: seen.append({k: getattr(args, k) for k in options}) or 0)
    assert cli.main(["bench", "--quick", "--emulate-avx2", "--data-home", str(tmp_path)]) == 0
    assert cli.main(["bench", "--levers"]) == 0
    assert seen == [{"quick": True, "data_home": str(tmp_path), "levers": False, "emulate_avx2": True},
                    {"quick": False, "data_home": None, "levers": True, "emulate_avx2": False}]
