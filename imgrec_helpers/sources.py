"""Where every file a lesson reads comes from: the data home, the registry of pinned sources, a mirror.

The **data home** (``IMGREC_DATA_HOME``, default: the repository's ``data/`` folder) holds what the
lessons read, in one layout: ``cifar-10-python.tar.gz``, ``images/<set>/...``, ``keras/models/<file>``.
The **registry** (``registry.tsv`` beside this module) lists every such file with its size, its hash
and its public source: CIFAR-10 from Toronto, Keras Applications weights from Keras' own addresses
with Keras' own hashes, photo sets from public GitHub repositories at pinned commits, and the small
sample photos committed in the repository. A file is fetched on first use, checked against its
hash, and kept in the data home; a file already there with the right hash is never fetched again.
Downloads go through ``pooch``'s HTTP downloader (progress bar with ``tqdm``), under a temporary
name in the target folder, and are renamed into place only after the hash matched.

A **mirror** (``IMGREC_DATA_MIRROR``, or ``--data-mirror`` of ``imgrec run`` / ``imgrec data``) is a
base URL or a local folder laid out like a data home: every download then comes from
``<mirror>/<path>`` instead of the public addresses (a classroom server, a USB stick, a filled data
home). Files from a mirror are checked against the same pinned hashes. Some rows of the registry are
*copies* that only mirrors hold, with their own hashes: the resized photo copies and the xz-packed
CIFAR-10 that a pre-seeded classroom folder holds, each listed beside the public original.

Used by every lesson (through :func:`fetch` and :func:`fetch_set`, and :func:`imgrec_helpers.data.load_cifar10`),
by :func:`imgrec_helpers.applications.choose` for weights, and by ``imgrec run`` / ``imgrec data``.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import os
import stat
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pooch
import requests

from .errors import DataError, describe_os_error
from .persistence import file_mode

REPOSITORY_DATA = Path(__file__).resolve().parent.parent / "data"
"""The repository's own ``data/`` folder: the default data home, and where committed photos live."""

REGISTRY_FILE = Path(__file__).with_name("registry.tsv")
MIRROR_ENV = "IMGREC_DATA_MIRROR"
HOME_ENV = "IMGREC_DATA_HOME"
FETCH_COMMAND = "imgrec data fetch"


def data_home(path: str | os.PathLike | None = None) -> Path:
    """The folder holding datasets and weights: ``path``, else ``$IMGREC_DATA_HOME``, else ``<repo>/data``.

    Used by every lesson's setup cell (via :func:`imgrec_helpers.running.start_lesson`). Only
    resolves the name; :func:`check_data_home` also checks that the folder is there.
    """
    if path:
        return Path(path).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return REPOSITORY_DATA


def check_data_home(path: str | os.PathLike | None = None) -> Path:
    """:func:`data_home`, checked: one-line :class:`DataError` when it does not exist or is not a folder.

    A typo in ``IMGREC_DATA_HOME`` must not look like "CIFAR-10 missing" (and start a 163 MB
    download). Used by :func:`fetch`, :func:`imgrec_helpers.running.start_lesson`, the runner and ``imgrec``.
    """
    home = data_home(path)
    source = ("--data-home / DATA_HOME" if path else
              "IMGREC_DATA_HOME" if os.environ.get(HOME_ENV) else "the default, <repository>/data")
    try:
        st = os.stat(home)
    except FileNotFoundError:
        raise DataError(f"data home {home} does not exist (set by {source}); check the spelling, or create the "
                        "folder (an empty one is fine: the course fetches what it needs into it)") from None
    except OSError as exc:
        raise DataError(f"data home: {describe_os_error(exc, home, 'open')}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(f"data home {home} is a file, not a folder (set by {source}); point it at a folder")
    return home


def cache_dir() -> Path:
    """A writable folder for extracted data: ``$IMGREC_CACHE_DIR``, else ``~/.cache/imgrec``.

    Kept apart from the data home, which may be a read-only, shared folder on classroom machines.
    """
    env = os.environ.get("IMGREC_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "imgrec"


def mirror() -> str | None:
    """The mirror every download comes from (``$IMGREC_DATA_MIRROR``: a URL or a folder; ``file://`` and a final
    ``/`` are dropped), or None."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if value.lower().startswith("file://"):
        value = value[len("file://"):]
    return value.rstrip("/") or None


def check_mirror(value: str) -> str:
    """A mirror setting, checked before anything runs: a local folder must exist (one-line :class:`DataError`);
    an ``http(s)://`` URL is taken as it is. Returns the value to put in ``IMGREC_DATA_MIRROR``."""
    scheme = urllib.parse.urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        return value.rstrip("/")
    if len(scheme) > 1 and scheme != "file":  # ftp://, s3://, ... (one letter: a Windows drive, C:)
        raise DataError(f"data mirror {value}: {scheme}:// is not supported; give an http(s):// address or a folder")
    folder = Path(value[7:] if scheme == "file" else value).expanduser()
    if not folder.is_dir():
        raise DataError(f"data mirror {value}: no such folder; give a folder laid out like a data home "
                        "(images/..., keras/models/..., cifar-10-python.tar.*) or an http(s):// address")
    return str(folder.resolve())


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One accepted copy of a data-home file, as listed in ``registry.tsv``.

    ``size`` in bytes (None: unknown; ``approximate``: known only roughly, never checked); ``hash`` is
    ``"sha256:<hex>"`` or ``"md5:<hex>"`` (Keras' own hashes are MD5), or None where no hash has been
    published (Keras publishes none for the MobileNet weights); ``url`` is the public source, None
    for a copy that only mirrors hold, or ``"repository"`` for a file committed in ``data/``. ``mirror_path``
    is where a mirror holds a mirror-only copy when that differs from ``path`` (a photo whose class folder the
    course corrected: ``mirror:<path>`` in the registry).
    """

    set: str
    path: str
    size: int | None
    approximate: bool
    hash: str | None
    url: str | None
    mirror_path: str | None = None

    @property
    def committed(self) -> bool:
        return self.url == "repository"


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, tuple[Copy, ...]]:
    """Every registered data-home path and its accepted copies, read once from ``registry.tsv``."""
    entries: dict[str, list[Copy]] = {}
    for line in REGISTRY_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        set_name, path, size, hash_, url = line.split("\t")
        alias = url[len("mirror:"):] if url.startswith("mirror:") else None
        entries.setdefault(path, []).append(Copy(
            set_name, path, None if size == "-" else int(size.lstrip("~")), size.startswith("~"),
            None if hash_ == "-" else hash_, None if url == "-" or alias else url, alias))
    return {path: tuple(copies) for path, copies in entries.items()}


def set_files(name: str) -> list[str]:
    """The registered paths of a set (``"samples"``, ``"dog_vs_notdog"``, ``"alpaca"``, ...), sorted."""
    paths = sorted({c.path for copies in registry().values() for c in copies if c.set == name})
    if not paths:
        known = sorted({c.set for copies in registry().values() for c in copies})
        raise DataError(f"unknown data set {name!r}; the registry has: {', '.join(known)}")
    return paths


def copies_of(path: str) -> tuple[Copy, ...]:
    """The accepted copies of a registered path; one-line :class:`DataError` for a path not in the registry."""
    try:
        return registry()[path]
    except KeyError:
        raise DataError(f"{path}: not a file the course knows (not in {REGISTRY_FILE.name})") from None


def size_of(path: str) -> tuple[int | None, bool]:
    """``(bytes, approximate)`` of what fetching ``path`` downloads: its public copy's size (or the largest known)."""
    copies = copies_of(path)
    public = [c for c in copies if c.url and c.size is not None] or [c for c in copies if c.size is not None]
    if not public:
        return None, False
    best = max(public, key=lambda c: c.size or 0)
    return best.size, best.approximate


def megabytes(size: int | None, approximate: bool = False) -> str:
    """``"170.5 MB"``, ``"about 553 MB"`` or ``"size not published"`` (shown before downloads)."""
    if size is None:
        return "size not published"
    text = (f"{size / 1e3:.0f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB" if size < 100e6
            else f"{size / 1e6:.0f} MB")
    return f"about {text}" if approximate else text


# --------------------------------------------------------------------------------------------
# Checking and fetching one file
# --------------------------------------------------------------------------------------------


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file (``pooch.file_hash``): the registry's checks, CIFAR-10's extraction folder name."""
    return pooch.file_hash(str(path), alg=algorithm)


def verify(path: Path, copies: Sequence[Copy]) -> Copy | None:
    """The copy ``path`` is (size and hash match), or None. A copy without a published hash accepts any
    file of its name that is not empty (nothing else can be checked)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    digests: dict[str, str] = {}
    for copy in copies:
        if copy.hash is None:
            if size > 0:
                return copy
            continue
        if copy.size is not None and not copy.approximate and copy.size != size:
            continue
        algorithm, expected = copy.hash.split(":", 1)
        if algorithm not in digests:
            digests[algorithm] = file_digest(path, algorithm)
        if digests[algorithm] == expected:
            return copy
    return None


def present(path: str, home: str | os.PathLike | None = None) -> Path | None:
    """``<data home>/path`` if it is there and one of its registered copies; else None (``imgrec data check``)."""
    target = data_home(home) / path
    return target if target.is_file() and verify(target, copies_of(path)) else None


class _NotThere(Exception):
    """A source that does not have the file (HTTP 404, no such file on a mirror, no network): try the next."""


def _sources(path: str, copies: Sequence[Copy], target: Path) -> list[tuple[str, tuple[Copy, ...]]]:
    """Where ``path`` can come from, in order, each with the copies accepted from there."""
    committed = [c for c in copies if c.committed]
    if committed:
        local = REPOSITORY_DATA / path
        return [] if local.resolve() == target.resolve() else [(str(local), tuple(committed))]
    base = mirror()
    if base:
        def at(relative: str) -> str:
            return f"{base}/{urllib.parse.quote(relative)}" if "://" in base else str(Path(base) / relative)

        return [(at(path), tuple(copies))] + [(at(c.mirror_path), (c,)) for c in copies if c.mirror_path]
    return [(c.url, (c,)) for c in copies if c.url]


def _in_notebook() -> bool:
    """True in a JupyterLab kernel a student works in (not in a headless ``imgrec run``, which fetches first)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell" and os.environ.get("IMGREC_HEADLESS") != "1"


def _progress_bar(total: int | None, name: str, unit: str = "B", show: bool = True, items=None):
    """A progress bar: a widget in JupyterLab (``tqdm.auto``), a text bar in a terminal, none in a log file."""
    from tqdm.auto import tqdm

    visible = show and (_in_notebook() or sys.stderr.isatty())
    return tqdm(items, total=total, unit=unit, unit_scale=unit == "B", desc=name[:40], leave=True,
                dynamic_ncols=True, disable=not visible)


def _copy_local(source: Path, tmp: Path, bar) -> None:
    try:
        src = open(source, "rb")
    except FileNotFoundError:
        raise _NotThere(f"not in {source.parent}") from None
    except OSError as exc:
        raise DataError(describe_os_error(exc, source, "read")) from None
    with src, open(tmp, "wb") as out:
        bar.total = os.fstat(src.fileno()).st_size
        bar.refresh()
        while chunk := src.read(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))


def _download_http(url: str, tmp: Path, bar) -> None:
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            pooch.HTTPDownloader(progressbar=bar, timeout=30)(url, str(tmp), None)
            return
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else "?"
            raise _NotThere(f"HTTP {code} from {url}") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ReadTimeout,
                requests.exceptions.ContentDecodingError) as exc:  # cut off mid-way: start again
            if attempt == attempts:
                raise _NotThere(f"the download from {url} broke off {attempts} times ({type(exc).__name__})") from None
            bar.reset()
        except requests.RequestException as exc:  # no network, refused, DNS: no point in retrying at once
            raise _NotThere(f"cannot reach {urllib.parse.urlsplit(url).netloc} ({type(exc).__name__})") from None


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive POSIX ``flock`` on ``folder`` itself (released by the operating system if the process
    dies; no lock file is left behind), so that two processes fetching or extracting into the same folder
    take turns. Without ``fcntl`` (Windows) or a folder that can be opened, no lock: each process then works
    for itself, still atomically."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fetch_from(source: str, target: Path, accepted: Sequence[Copy], show_bar: bool) -> Copy:
    """Download or copy ``source`` to ``target`` through a temporary file, keeping it only if it is one of
    ``accepted``. A wrong or truncated file is one :class:`DataError` line and leaves nothing behind."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name[:80]}.", suffix=".part", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise DataError(f"cannot fetch {target.name}: {describe_os_error(exc, target.parent, 'write to')}") from None
    tmp = Path(name)
    try:
        size, approximate = (max(((c.size, c.approximate) for c in accepted if c.size), default=(None, False)))
        bar = _progress_bar(1 if approximate or not size else size, target.name, show=show_bar)  # pooch sets the total
        with bar:
            try:
                if "://" in source:
                    _download_http(source, tmp, bar)
                else:
                    _copy_local(Path(source), tmp, bar)
            except BaseException:
                bar.leave = False  # a source without the file leaves no empty bar behind
                raise
        got = verify(tmp, accepted)
        if got is None:
            received = tmp.stat().st_size
            expected = {c.size for c in accepted if c.size and not c.approximate}
            if expected and received < min(expected):
                problem = f"truncated: {received:,} of {min(expected):,} bytes arrived"
            else:
                problem = f"wrong content: its hash is not the registered {accepted[0].hash.split(':')[0].upper()}" \
                          if accepted[0].hash else "empty"
            raise DataError(f"{target.name} from {source}: {problem}; nothing was kept; fetch it again, and if this "
                            "repeats, the source holds a damaged or different file (replace it there)")
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
        return got
    except OSError as exc:
        raise DataError(f"cannot fetch {target.name}: {describe_os_error(exc, exc.filename or target.parent, 'write to')}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def fetch(path: str, home: str | os.PathLike | None = None, *, show_bar: bool = True) -> Path:
    """``<data home>/path``, fetched first if it is missing or not one of its registered copies (every lesson).

    The sources are tried in order (:func:`_sources`): the repository's committed copy, else the mirror,
    else the public addresses. One-line :class:`DataError` when none has it: it names the file, its size
    and the command that fetches it.
    """
    copies = copies_of(path)
    root = check_data_home(home)
    target = root / path
    if target.is_file() and verify(target, copies):
        return target
    _check_writable(root, path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot fetch {path}: {describe_os_error(exc, exc.filename or target.parent, 'create')}") from None
    with folder_lock(target.parent):  # another process may be fetching the same file: take turns
        if target.is_file() and verify(target, copies):
            return target
        for stale in target.parent.glob(f".{glob.escape(target.name[:80])}.*.part"):  # a killed fetch's leftovers:
            with contextlib.suppress(OSError):  # every fetch into this folder holds the lock, so none is in use
                stale.unlink()
        for copy in copies:  # a data home laid out as before the course corrected a label: move the photo over
            if copy.mirror_path and verify(root / copy.mirror_path, [copy]):
                os.replace(root / copy.mirror_path, target)
                return target
        reasons = []
        for source, accepted in _sources(path, copies, target):
            try:
                _fetch_from(source, target, accepted, show_bar)
                return target
            except _NotThere as exc:
                reasons.append(str(exc))
    if not reasons and any(c.committed for c in copies):  # the repository's own copy is gone or damaged
        reasons.append(f"it is committed in the repository: restore it with `git checkout -- data/{path}`")
    raise missing_error(path, root, "; ".join(reasons) or "no source is registered for it")


def _check_writable(root: Path, path: str) -> None:
    """Refuse to write into a data home whose folders are marked read-only (no write bit for anyone), also as
    root, who may write anyway: a shared classroom folder is meant as a mirror, not a place to download into."""
    folder = (root / path).parent
    while not folder.exists() and folder != root:
        folder = folder.parent
    try:
        read_only = not os.stat(folder).st_mode & 0o222
    except OSError:
        return  # fetching will say what is wrong with it
    if read_only:
        raise DataError(f"cannot fetch {path}: the data home {root} is read-only ({folder} has no write permission); "
                        f"set IMGREC_DATA_HOME to a writable folder, and {MIRROR_ENV}={root} to fetch from this one")


def missing_error(path: str, home: Path, reason: str) -> DataError:
    """The one line for a file that is neither in the data home nor fetchable: what, how big, what to run."""
    size, approximate = size_of(path)
    where = f"the mirror {mirror()}" if mirror() else "its public address"
    return DataError(f"{path} ({megabytes(size, approximate)}) is not in the data home {home} and could not be fetched "
                     f"from {where} ({reason}); run `{FETCH_COMMAND}` where the internet (or a mirror: "
                     f"{MIRROR_ENV}=URL or folder) can be reached")


def fetch_set(name: str, home: str | os.PathLike | None = None) -> Path:
    """The folder of a photo set (``images/<name>``), every registered photo fetched first (lessons 02-06).

    Photos are small: one progress bar counts them. Returns ``<data home>/images/<name>``.
    """
    root = check_data_home(home)
    paths = set_files(name)
    missing = [p for p in paths if not ((root / p).is_file() and verify(root / p, copies_of(p)))]
    if missing:
        with _progress_bar(len(missing), f"images/{name}", unit="photo", items=missing) as bar:
            for path in bar:
                fetch(path, root, show_bar=False)
    return root / "images" / name


# --------------------------------------------------------------------------------------------
# What the lessons need: imgrec run's check before lesson 01, imgrec data fetch / check
# --------------------------------------------------------------------------------------------

_KM = "keras/models/"
_VGG16 = _KM + "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
_VGG16_NOTOP = _KM + "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
_MOBILENET_025 = _KM + "mobilenet_2_5_224_tf.h5"
_V2 = _KM + "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{}_no_top.h5"
_CLASS_INDEX = _KM + "imagenet_class_index.json"
CIFAR10 = ("cifar-10-python.tar.gz", "cifar-10-python.tar.xz")
"""The official CIFAR-10 archive, then the xz-packed copy some mirrors hold: either one will do (lessons 01-05)."""

NEEDS: dict[str, tuple[str | tuple[str, ...], ...]] = {
    "01_data_exploration": (CIFAR10,),
    "02_cnn_from_scratch": (CIFAR10, "samples"),
    "03_pretrained_models": ("samples", "dog_vs_notdog", (_VGG16, _MOBILENET_025), (_CLASS_INDEX,)),
    "04_transfer_learning": ("samples", "dog_vs_notdog", "alpaca", CIFAR10, (_VGG16_NOTOP, _V2.format("0.35_224")),
           (_V2.format("1.0_160"), _V2.format("0.35_160"), _V2.format("0.35_224")),
           (_V2.format("0.35_96"), _V2.format("0.35_224"))),
    "05_comparison": (CIFAR10,),
    "06_cloud_vision": ("samples", (_VGG16, _MOBILENET_025), (_CLASS_INDEX,)),
    "07_explain_and_deploy": ("samples", "dog_vs_notdog", "alpaca", CIFAR10, (_VGG16, _MOBILENET_025), (_CLASS_INDEX,),
                              (_VGG16_NOTOP, _V2.format("0.35_224"))),
}
"""What each lesson (by notebook name) reads, as shipped: a photo set by name, a file, or a tuple of files of which the first
that can be had will do (the model the lesson asks for, then its stand-in, as
:func:`imgrec_helpers.applications.choose` decides; CIFAR-10's two packings)."""


def needs(lessons: Sequence[str]) -> list[str | tuple[str, ...]]:
    """The needs of the given lessons (notebook names such as ``"04_transfer_learning.ipynb"``; other
    notebooks need nothing), each once, in order."""
    out: list[str | tuple[str, ...]] = []
    for lesson in lessons:
        for need in NEEDS.get(Path(str(lesson)).stem, ()):
            if need not in out:
                out.append(need)
    return out


def describe(need: str | tuple[str, ...]) -> str:
    """A need in words with its size: ``"images/alpaca (327 files, 7.8 MB)"``."""
    if isinstance(need, tuple):
        size, approximate = size_of(need[0])
        rest = f", or {' or '.join(Path(p).name for p in need[1:])}" if len(need) > 1 else ""
        return f"{need[0]} ({megabytes(size, approximate)}){rest}"
    paths = set_files(need)
    sizes = [size_of(p) for p in paths]
    total = sum(s or 0 for s, _ in sizes)
    return f"images/{need} ({len(paths)} files, {megabytes(total, any(a for _, a in sizes))})"


def fetch_need(need: str | tuple[str, ...], home: str | os.PathLike | None = None,
               log: Callable[[str], None] = lambda line: None) -> Path:
    """Fetch one need (:data:`NEEDS`): every photo of a set, or the first file of a tuple that can be had."""
    if isinstance(need, str):
        return fetch_set(need, home)
    root = check_data_home(home)
    for path in need:
        if present(path, root):
            return root / path
    errors = []
    for path in need:
        try:
            return fetch(path, root)
        except DataError as exc:
            errors.append(exc)
            if path != need[-1]:
                log(f"  {Path(path).name} cannot be fetched here; trying {Path(need[need.index(path) + 1]).name}")
    raise errors[0]


def fetch_needs(lessons: Sequence[str], home: str | os.PathLike | None = None,
                log: Callable[[str], None] = print) -> list[Path]:
    """Everything the lessons need, fetched now, sizes shown first (``imgrec data fetch``, ``imgrec run``
    before lesson 01). The first need that cannot be had stops with its one-line :class:`DataError`."""
    root = check_data_home(home)
    todo = [n for n in needs(lessons) if not satisfied(n, root)]
    if not todo:
        log(f"data: everything the lessons need is in {root}")
        return []
    log(f"data: fetching into {root}" + (f" from the mirror {mirror()}" if mirror() else "") + ":")
    for need in todo:
        log(f"  {describe(need)}")
    fetched = [fetch_need(need, root, log) for need in todo]
    for need in todo:
        if isinstance(need, str):
            for _, extra, _ in _extra_files(root / "images" / need, {root / p for p in set_files(need)}, root):
                log(f"  note: {extra} is not in the registry; the lessons read it too (move it out to keep the set as published)")
    return fetched


def satisfied(need: str | tuple[str, ...], home: Path) -> bool:
    """True when a need is in the data home with registered content (no download, only hashing)."""
    if isinstance(need, str):
        return all(present(p, home) for p in set_files(need))
    return any(present(p, home) for p in need)


def check(lessons: Sequence[str], home: str | os.PathLike | None = None) -> list[tuple[str, str, str]]:
    """``(status, path, detail)`` for every file the lessons need, and ``extra`` files in the photo set
    folders (they would change what a lesson trains on). Status: ``ok``, ``missing``, ``corrupt``, ``extra``;
    a set missing as a whole is one ``missing`` row (``imgrec data check``)."""
    root = check_data_home(home)
    rows: list[tuple[str, str, str]] = []
    for need in needs(lessons):
        if isinstance(need, str):
            paths = set_files(need)
            found = [_check_file(root, p) for p in paths]
            if all(status == "missing" for status, _, _ in found):
                rows.append(("missing", f"images/{need}/", describe(need).split(" ", 1)[1].strip("()")))
            else:
                rows.extend(found)
            rows.extend(_extra_files(root / "images" / need, {root / p for p in paths}, root))
            continue
        found = [_check_file(root, p) for p in need]
        usable = next((row for row in found if row[0] == "ok"), None)
        if usable:  # the first alternative there is the one the lesson uses
            note = "" if usable[1] == need[0] else f"; used instead of {Path(need[0]).name}, which is not here"
            rows.append((usable[0], usable[1], usable[2] + note))
            continue
        rows.extend(row for row in found if row[0] == "corrupt")
        if not any(row[0] == "corrupt" for row in found):
            size, approximate = size_of(need[0])
            alternatives = f" (or {' or '.join(Path(p).name for p in need[1:])})" if len(need) > 1 else ""
            rows.append(("missing", need[0], f"{megabytes(size, approximate)}{alternatives}"))
    return rows


def provenance(lessons: Sequence[str], home: str | os.PathLike | None = None) -> dict[str, str]:
    """Which copies the lessons read, per need, for the run's manifest and report: the accuracies differ between
    the public originals and a mirror's resized copies (``{"images/alpaca": "327 public originals", ...}``)."""
    root = data_home(home)
    out: dict[str, str] = {}
    for need in needs(lessons):
        paths = set_files(need) if isinstance(need, str) else list(need)
        kinds: dict[str, int] = {}
        for path in paths:
            copy = verify(root / path, copies_of(path)) if (root / path).is_file() else None
            if copy is None:
                continue
            kind = ("in the repository" if copy.committed else "unverifiable (no published hash)" if copy.hash is None
                    else "public originals" if copy.url else "mirror copies")
            kinds[kind] = kinds.get(kind, 0) + 1
            if isinstance(need, tuple):
                out[path] = kind.replace("originals", "original").replace("copies", "copy")
                break
        if isinstance(need, str):
            out[f"images/{need}"] = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "missing"
    return out


def _check_file(root: Path, path: str) -> tuple[str, str, str]:
    target = root / path
    if not target.is_file():
        return ("missing", path, megabytes(*size_of(path)))
    copy = verify(target, copies_of(path))
    if copy is None:
        return ("corrupt", path, "its size or hash matches no registered copy; `imgrec data fetch` replaces it")
    if copy.hash is None:
        return ("ok", path, "no published hash to check it against")
    whose = ("the repository's copy" if copy.committed else "the public file" if copy.url else "a registered mirror copy")
    return ("ok", path, f"{copy.hash.split(':')[0]} matches {whose}")


def _extra_files(folder: Path, known: set[Path], root: Path) -> list[tuple[str, str, str]]:
    """Files in a photo set's folder that the registry does not list (a lesson would read them too)."""
    if not folder.is_dir():
        return []
    return [("extra", str(p.relative_to(root)), "not in the registry; a lesson would read it: move it out")
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".md" and p not in known]


__all__ = [
    "REPOSITORY_DATA", "MIRROR_ENV", "data_home", "check_data_home", "cache_dir", "mirror", "check_mirror", "Copy",
    "registry", "set_files", "copies_of", "size_of", "megabytes", "file_digest", "verify", "present", "fetch", "fetch_set",
    "missing_error", "folder_lock", "CIFAR10", "NEEDS", "needs", "describe", "fetch_need", "fetch_needs",
    "satisfied", "check", "provenance",
]
