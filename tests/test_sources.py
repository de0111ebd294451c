"""Where the data comes from (imgrec_helpers/sources.py): the registry, fetching over real HTTP from a server on
127.0.0.1, a mirror folder, and the one-line errors for a truncated file, a wrong hash, a 404, no network and a
read-only data home. The whole course fetched from an empty data home is the shared smoke run (tests/conftest.py)."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

import pytest

from imgrec_helpers import sources
from imgrec_helpers.course import cli
from imgrec_helpers.errors import DataError

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "data" / "images" / "samples" / "skimage_chelsea.jpg"  # a committed real photo
NAME = "images/demo/cat.jpg"


# --- the registry itself -----------------------------------------------------------------------------


def test_registry_rows_are_well_formed_and_pinned():
    rows = [c for copies in sources.registry().values() for c in copies]
    assert len({c.path for c in rows}) >= 400
    for c in rows:
        assert not c.path.startswith("/") and ".." not in c.path.split("/"), c.path
        assert c.hash is None or re.fullmatch(r"sha256:[0-9a-f]{64}|md5:[0-9a-f]{32}", c.hash), c
        if c.url and not c.committed:
            parts = urllib.parse.urlsplit(c.url)
            assert parts.scheme == "https" and " " not in c.url, c.url
            if parts.netloc == "raw.githubusercontent.com":  # photo sets: a repository at a pinned commit
                assert re.fullmatch(r"/[\w.-]+/[\w.-]+/[0-9a-f]{40}/.+", parts.path), c.url
                assert Path(urllib.parse.unquote(parts.path)).stem == Path(c.path).stem
        if c.set in ("samples", "dog_vs_notdog", "alpaca", "cifar10"):
            assert c.hash and c.size and not c.approximate, c  # every data file is pinned by size and hash
    for path, copies in sources.registry().items():  # the public original (or the committed copy) comes first
        assert copies[0].url is not None or path in sources.CIFAR10[1:], path  # the xz packing: mirrors only
    # Keras' own hashes for the weights Keras checks, so a fetched file is the one Keras would load
    vgg16 = sources.copies_of("keras/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5")[0]
    assert vgg16.hash == "md5:64373286793e3c8b2b4e3219cbf3544b" and vgg16.url.startswith(
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/")
    assert sources.copies_of("cifar-10-python.tar.gz")[0].size == 170_498_071


def test_committed_photos_are_registered_with_their_licences():
    folder = REPO / "data" / "images" / "samples"
    committed = sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")
    assert committed == [Path(p).name for p in sources.set_files("samples")]
    credits = (folder / "SOURCES.md").read_text()
    for name in committed:
        copy = sources.copies_of(f"images/samples/{name}")[0]
        assert copy.committed and sources.verify(folder / name, [copy]) is copy
        row = next(line for line in credits.splitlines() if line.startswith(f"| {name} |"))
        assert row.count("|") == 7 and "cannot be stated" not in row, row  # author, source and licence stated


def test_the_lambs_are_filed_as_not_alpaca():
    for lamb in ("01ad3ff1d94eb557", "98f778a1e4596438"):
        copies = sources.copies_of(f"images/alpaca/not alpaca/{lamb}.jpg")
        assert "/dataset/alpaca/" in copies[0].url  # where the upstream set files it
        assert copies[1].mirror_path == f"images/alpaca/alpaca/{lamb}.jpg"  # where an old mirror copy sits
    assert len(sources.set_files("alpaca")) == 327


# --- fetching over HTTP ----------------------------------------------------------------------------


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str] = []
    delay = 0.0

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        if type(self).delay:  # a slow server: the headers, then the body in pieces
            path = Path(self.translate_path(self.path))
            if not path.is_file():
                return self.send_error(404)
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 8192):
                self.wfile.write(body[i:i + 8192])
                time.sleep(type(self).delay)
            return None
        return super().do_GET()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A folder laid out like a data home, served over HTTP on 127.0.0.1; IMGREC_DATA_MIRROR points at it.
    The registry is the real one plus one test file: a copy of a committed real photo."""
    root = tmp_path / "mirror"
    (root / "images" / "demo").mkdir(parents=True)
    data = PHOTO.read_bytes()
    (root / NAME).write_bytes(data)
    row = sources.Copy("demo", NAME, len(data), False, "sha256:" + hashlib.sha256(data).hexdigest(),
                       "https://example.invalid/cat.jpg")
    registry = dict(sources.registry(), **{NAME: (row,)})
    monkeypatch.setattr(sources, "registry", lambda: registry)
    handler = type("Handler", (_Handler,), {"requests": [], "delay": 0.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("IMGREC_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("IMGREC_DATA_HOME", str(home))
    yield root, home, handler
    server.shutdown()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_fetch_from_an_http_mirror_checks_and_keeps_the_file_once(mirror):
    root, home, handler = mirror
    old = os.umask(0o027)
    try:
        got = sources.fetch(NAME)
    finally:
        os.umask(old)
    assert got == home / NAME and got.read_bytes() == PHOTO.read_bytes()
    assert got.stat().st_mode & 0o777 == 0o640  # the mode a plain write gives under the user's umask
    assert handler.requests == ["/images/demo/cat.jpg"]
    assert sources.fetch(NAME) == got and len(handler.requests) == 1  # a file with the right hash is not fetched again
    assert _leftovers(home) == ["cat.jpg"]


@pytest.mark.parametrize("damage, words", [
    (lambda b: b[: len(b) // 3], r"truncated: [\d,]+ of [\d,]+ bytes arrived"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "wrong content: its hash is not the registered SHA256"),
])
def test_a_damaged_file_on_the_mirror_is_one_line_and_leaves_nothing(mirror, damage, words):
    root, home, _ = mirror
    (root / NAME).write_bytes(damage(PHOTO.read_bytes()))
    with pytest.raises(DataError) as err:
        sources.fetch(NAME)
    message = str(err.value)
    assert re.search(words, message) and "cat.jpg" in message and "nothing was kept" in message and "\n" not in message
    assert _leftovers(home) == []  # no partial or wrong file, no temporary file


def test_vgg16_weights_are_checked_with_keras_own_md5(mirror):
    """VGG16's file goes through the same fetch, checked against the MD5 Keras itself pins for it: a file of that
    name with other content (here a stand-in's weights) is refused, and nothing reaches the data home."""
    root, home, _ = mirror
    name = "keras/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    (root / "keras" / "models").mkdir(parents=True)
    (root / name).write_bytes(PHOTO.read_bytes())
    with pytest.raises(DataError, match="wrong content: its hash is not the registered MD5"):
        sources.fetch(name)
    assert _leftovers(home) == []


def test_a_file_missing_on_the_mirror_names_file_size_and_command(mirror):
    root, home, _ = mirror
    (root / NAME).unlink()
    with pytest.raises(DataError) as err:
        sources.fetch(NAME)
    message = str(err.value)
    assert "HTTP 404" in message and NAME in message and "34 kB" in message and "`imgrec data fetch`" in message
    assert str(home) in message and "\n" not in message and _leftovers(home) == []


def test_a_mirror_folder_works_like_a_server(mirror, monkeypatch):
    root, home, handler = mirror
    monkeypatch.setenv("IMGREC_DATA_MIRROR", str(root))
    assert sources.fetch(NAME).read_bytes() == PHOTO.read_bytes() and handler.requests == []


def test_no_network_fails_in_seconds(mirror, monkeypatch):
    _, home, _ = mirror
    monkeypatch.setenv("IMGREC_DATA_MIRROR", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"cannot reach 127\.0\.0\.1:9 \(ConnectionError\)"):
        sources.fetch(NAME)
    assert time.perf_counter() - start < 10 and _leftovers(home) == []


def test_a_killed_fetch_leaves_nothing_the_next_one_keeps(mirror):
    """A fetch killed outright (SIGKILL, power loss) cannot remove its temporary file; the next fetch of that file
    (under the folder's lock, so no other fetch is writing) removes it and starts again."""
    _, home, _ = mirror
    (home / NAME).parent.mkdir(parents=True)
    stale = home / "images" / "demo" / ".cat.jpg.k1ll3d.part"
    stale.write_bytes(PHOTO.read_bytes()[:1000])
    assert sources.fetch(NAME).read_bytes() == PHOTO.read_bytes()
    assert _leftovers(home) == ["cat.jpg"]


def test_a_corrupt_file_in_the_data_home_is_replaced(mirror):
    _, home, _ = mirror
    (home / NAME).parent.mkdir(parents=True)
    (home / NAME).write_bytes(b"not the photo")
    assert sources.fetch(NAME).read_bytes() == PHOTO.read_bytes()


def test_a_read_only_disk_is_one_line(mirror, monkeypatch):
    """A data home on a read-only disk: the temporary file is refused (EROFS), as such a disk refuses it."""
    import errno
    import tempfile

    _, home, _ = mirror

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(DataError) as err:
        sources.fetch(NAME)
    message = str(err.value)
    assert "cannot fetch cat.jpg" in message and "read-only" in message and "\n" not in message
    assert _leftovers(home) == []


FETCH_IN_A_PROCESS = """
import hashlib, sys
from imgrec_helpers import sources
data = open(sys.argv[2], "rb").read()
row = sources.Copy("demo", sys.argv[1], len(data), False, "sha256:" + hashlib.sha256(data).hexdigest(), None)
sources.registry = lambda: {sys.argv[1]: (row,)}
print(hashlib.sha256(sources.fetch(sys.argv[1]).read_bytes()).hexdigest())
"""


def test_two_processes_fetching_at_once_take_turns(mirror):
    """Two processes fetch the same file from a slow server at the same time: one downloads, the other waits for
    the folder lock and then finds the file complete; neither sees nor leaves a partial file."""
    root, home, handler = mirror
    handler.delay = 0.05  # about 0.25 s for the photo
    procs = [subprocess.Popen([sys.executable, "-c", FETCH_IN_A_PROCESS, NAME, str(PHOTO)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    expected = hashlib.sha256(PHOTO.read_bytes()).hexdigest()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == [expected, expected]
    assert len(handler.requests) == 1 and _leftovers(home) == ["cat.jpg"]


# --- imgrec data and imgrec run --------------------------------------------------------------------


def test_data_check_lists_missing_corrupt_and_extra(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "images" / "samples").mkdir(parents=True)
    for name in ("skimage_chelsea.jpg", "skimage_coffee.jpg"):
        (home / "images" / "samples" / name).write_bytes((PHOTO.parent / name).read_bytes())
    (home / "images" / "samples" / "burn_cat.jpg").write_bytes(b"damaged")
    (home / "images" / "samples" / "holiday.jpg").write_bytes(PHOTO.read_bytes())
    monkeypatch.delenv("IMGREC_DATA_MIRROR", raising=False)
    assert cli.main(["data", "check", "02", "--data-home", str(home)]) == 2
    out, err = capsys.readouterr()
    assert "ok       images/samples/skimage_chelsea.jpg: sha256 matches the repository's copy" in out
    assert "corrupt  images/samples/burn_cat.jpg" in out and "extra    images/samples/holiday.jpg" in out
    assert "missing  images/samples/kodak_kodim06.jpg" in out
    assert "missing  cifar-10-python.tar.gz: 170 MB (or cifar-10-python.tar.xz)" in out
    assert err.count("\n") == 1 and err.startswith("error: data check: 2 ok, ") and "1 corrupt, 1 extra" in err


def test_run_stops_before_lesson_01_when_data_cannot_be_had(tmp_path, monkeypatch, capsys):
    """An empty data home and a mirror without the data: `imgrec run` says so in seconds, before any lesson."""
    (tmp_path / "home").mkdir()
    (tmp_path / "empty_mirror").mkdir()
    monkeypatch.delenv("IMGREC_DATA_MIRROR", raising=False)  # the command sets it for the lessons: undone after
    start = time.perf_counter()
    code = cli.main(["run", "--profile", "smoke", "--out", str(tmp_path / "run"), "--data-home", str(tmp_path / "home"),
                     "--data-mirror", str(tmp_path / "empty_mirror")])
    out, err = capsys.readouterr()
    assert code == 2 and time.perf_counter() - start < 30
    assert err.startswith("error: cifar-10-python.tar.gz (170 MB) is not in the data home") and err.count("\n") == 1
    assert "`imgrec data fetch`" in err and "not in " in err
    assert "images/alpaca (327 files, 122 MB)" in out  # the sizes are shown first
    assert not (tmp_path / "run").exists()  # no run folder, no manifest: nothing ran


def test_a_mirror_that_is_not_there_is_one_line(tmp_path, capsys):
    assert cli.main(["data", "fetch", "--data-mirror", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data mirror ") and "no such folder" in err and err.count("\n") == 1


def test_real_data_home_checks_out(real_home, capsys):
    """The data home the tests filled as `imgrec data fetch` does (from the mirror or the internet): every file ok."""
    assert cli.main(["data", "check", "--data-home", str(real_home)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("data check: all ") and "missing" not in out and "corrupt" not in out


def test_a_data_home_marked_read_only_is_never_written_even_by_root(mirror):
    """A shared classroom folder (no write bit) is a mirror, not a place to download into: refused in one line,
    also for root, who could write anyway."""
    _, home, _ = mirror
    home.chmod(0o555)
    try:
        with pytest.raises(DataError) as err:
            sources.fetch(NAME)
    finally:
        home.chmod(0o755)
    message = str(err.value)
    assert "is read-only" in message and "IMGREC_DATA_MIRROR=" in message and "\n" not in message
    assert _leftovers(home) == []


def test_a_data_home_in_the_old_layout_gets_the_lamb_moved_not_copied(tmp_path, monkeypatch):
    """Before the labels were checked, a lamb photo sat in alpaca/: fetching moves that very file (its hash
    checked) to not alpaca/, so the lesson never reads it twice, and nothing is downloaded."""
    lamb = "images/alpaca/not alpaca/01ad3ff1d94eb557.jpg"
    copy = sources.copies_of(lamb)[1]  # the resized copy a pre-seeded folder holds, at its old path
    old = tmp_path / copy.mirror_path
    old.parent.mkdir(parents=True)
    payload = b"resized lamb photo"
    old.write_bytes(payload)
    fake = sources.Copy("alpaca", lamb, len(payload), False, "sha256:" + hashlib.sha256(payload).hexdigest(), None,
                        copy.mirror_path)
    monkeypatch.setattr(sources, "registry", lambda: {lamb: (fake,)})
    monkeypatch.delenv("IMGREC_DATA_MIRROR", raising=False)
    assert sources.fetch(lamb, tmp_path).read_bytes() == payload and not old.exists()


@pytest.mark.parametrize("value", ["file://{root}", "{root}/", "{root}"])
def test_mirror_settings_are_normalised(mirror, monkeypatch, value):
    root, home, _ = mirror
    monkeypatch.setenv("IMGREC_DATA_MIRROR", value.format(root=root))
    assert sources.mirror() == str(root)
    assert sources.fetch(NAME).is_file()


def test_the_mirror_variable_is_checked_and_made_absolute_by_the_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "mirror").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMGREC_DATA_MIRROR", "mirror")  # relative: the lessons' kernels run in notebooks/
    monkeypatch.setenv("IMGREC_DATA_HOME", str(tmp_path))
    cli.main(["data", "check", "01"])
    assert os.environ["IMGREC_DATA_MIRROR"] == str(tmp_path / "mirror")
    monkeypatch.setenv("IMGREC_DATA_MIRROR", "ftp://example.org/data")
    assert cli.main(["data", "check", "01"]) == 2
    assert "ftp:// is not supported" in capsys.readouterr().err
