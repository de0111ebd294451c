"""Where every file a lesson reads comes from: the data home (``IMGREC_DATA_HOME``, default ``<repo>/data``),
``registry.tsv`` (each file's size, hash, public source), a mirror (``IMGREC_DATA_MIRROR``: URL or folder). Files are
fetched on first use with ``pooch``, checked and kept (every lesson, ``applications``, ``imgrec run`` / ``data``)."""
from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import stat
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pooch
import requests
from tqdm.auto import tqdm
from tqdm.utils import CallbackIOWrapper

from .errors import DataError, FileSystemError, describe_os_error
from .persistence import atomic_path, stat_existing

try:
    import fcntl
except ImportError:  # Windows: no lock; each process still writes atomically
    fcntl = None

REPOSITORY_DATA = Path(__file__).resolve().parent.parent / "data"
REGISTRY_FILE = Path(__file__).with_name("registry.tsv")
MIRROR_ENV = "IMGREC_DATA_MIRROR"
HOME_ENV = "IMGREC_DATA_HOME"
FETCH_COMMAND = "imgrec data fetch"


def data_home(path: str | os.PathLike | None = None) -> Path:
    """The data home: ``path``, else ``$IMGREC_DATA_HOME``, else ``<repo>/data`` (every lesson's setup cell)."""
    chosen = path or os.environ.get(HOME_ENV)
    return Path(chosen).expanduser().resolve() if chosen else REPOSITORY_DATA


def check_data_home(path: str | os.PathLike | None = None) -> Path:
    """:func:`data_home`, which must be a folder: a typo must not look like "CIFAR-10 missing" (fetch, ``imgrec``)."""
    home = data_home(path)
    source = ("--data-home / DATA_HOME" if path else
              "IMGREC_DATA_HOME" if os.environ.get(HOME_ENV) else "the default, <repository>/data")
    mode = stat_existing(home, DataError, f"the data home does not exist (set by {source}); check the spelling, or "
                         "create the folder (an empty one is fine: the course fetches what it needs into it)").st_mode
    if not stat.S_ISDIR(mode):
        raise DataError(f"data home {home} is a file, not a folder (set by {source}); point it at a folder")
    return home


def mirror() -> str | None:
    """``$IMGREC_DATA_MIRROR`` without ``file://`` and a final ``/``, or None."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    return (value[7:] if value.lower().startswith("file://") else value).rstrip("/") or None


def check_mirror(value: str) -> str:
    """A ``--data-mirror`` checked (``imgrec``): an http(s) URL as it is, else an existing folder, made absolute."""
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


@dataclass(frozen=True)
class Copy:
    """One accepted copy of a data-home file: a row of ``registry.tsv``, whose header says what each field holds."""
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
        if line.strip() and not line.startswith("#"):
            set_name, path, size, hash_, url = line.split("\t")
            alias = url.removeprefix("mirror:") if url.startswith("mirror:") else None
            entries.setdefault(path, []).append(Copy(
                set_name, path, None if size == "-" else int(size.lstrip("~")), size.startswith("~"),
                None if hash_ == "-" else hash_, None if url == "-" or alias else url, alias))
    return {path: tuple(copies) for path, copies in entries.items()}


def set_files(name: str) -> list[str]:
    """The registered paths of a set (``"samples"``, ``"alpaca"``, ...), sorted; unknown sets are one line."""
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
    """``(bytes, approximate)`` that fetching ``path`` downloads: its public copy's size (or the largest known)."""
    copies = [c for c in copies_of(path) if c.size is not None]
    best = max([c for c in copies if c.url] or copies, key=lambda c: c.size, default=None)
    return (best.size, best.approximate) if best else (None, False)


def megabytes(size: int | None, approximate: bool = False) -> str:
    """``"170.5 MB"``, ``"about 553 MB"`` or ``"size not published"`` (shown before downloads)."""
    if size is None:
        return "size not published"
    text = (f"{size / 1e3:.0f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB" if size < 100e6
            else f"{size / 1e6:.0f} MB")
    return f"about {text}" if approximate else text


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """A file's hex digest (``pooch.file_hash``): registry checks, CIFAR-10's cache name, ``cloud``'s answers."""
    return pooch.file_hash(str(path), alg=algorithm)


def verify(path: Path, copies: Sequence[Copy]) -> Copy | None:
    """The copy the file ``path`` is (size and hash match), else None; a copy with no hash takes any non-empty file."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    digests: dict[str, str] = {}  # each algorithm's digest computed once
    for copy in copies:
        if copy.hash is None:
            if size > 0:
                return copy
        elif copy.size is None or copy.approximate or copy.size == size:
            algorithm, expected = copy.hash.split(":", 1)
            digests[algorithm] = digests.get(algorithm) or file_digest(path, algorithm)
            if digests[algorithm] == expected:
                return copy
    return None


def present(path: str, home: str | os.PathLike | None = None) -> Path | None:
    """``<data home>/path`` if it is there and one of its registered copies, else None."""
    return target if verify(target := data_home(home) / path, copies_of(path)) else None


class _NotThere(Exception):
    """A source without the file (HTTP 404, not on the mirror, no network): the next source is tried."""


def _sources(path: str, copies: Sequence[Copy], target: Path) -> list[tuple[str, tuple[Copy, ...]]]:
    """Where ``path`` can come from, in order, each with the copies accepted from there."""
    committed = tuple(c for c in copies if c.committed)
    if committed:
        local = REPOSITORY_DATA / path
        return [] if local.resolve() == target.resolve() else [(str(local), committed)]
    base = mirror()
    if not base:
        return [(c.url, (c,)) for c in copies if c.url]

    def at(relative: str) -> str:
        return f"{base}/{urllib.parse.quote(relative)}" if "://" in base else str(Path(base) / relative)

    return [(at(path), tuple(copies))] + [(at(c.mirror_path), (c,)) for c in copies if c.mirror_path]


def _progress_bar(total: int | None, name: str, unit: str = "B", show: bool = True, items=None) -> tqdm:
    """A widget in a JupyterLab kernel (not headless ``imgrec run``), a text bar in a terminal, none in a log."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()  # None outside IPython
    notebook = type(shell).__name__ == "ZMQInteractiveShell" and os.environ.get("IMGREC_HEADLESS") != "1"
    return tqdm(items, total=total, unit=unit, unit_scale=unit == "B", desc=name[:40], leave=True,
                dynamic_ncols=True, disable=not (show and (notebook or sys.stderr.isatty())))


def _transfer(source: str, tmp: Path, bar: tqdm) -> None:
    """Copy a mirror folder's file, or download a URL with ``pooch.HTTPDownloader`` (3 tries if cut off)."""
    if "://" not in source:
        try:
            src = open(source, "rb")
        except FileNotFoundError:
            raise _NotThere(f"not in {Path(source).parent}") from None
        except OSError as exc:
            raise DataError(describe_os_error(exc, source, "read")) from None
        with src, open(tmp, "wb") as out:
            bar.reset(total=os.fstat(src.fileno()).st_size)
            shutil.copyfileobj(CallbackIOWrapper(bar.update, src, "read"), out, 1 << 20)
        return
    for attempt in (1, 2, 3):
        try:
            pooch.HTTPDownloader(progressbar=bar, timeout=30)(source, str(tmp), None)
            return
        except requests.HTTPError as exc:
            raise _NotThere(f"HTTP {getattr(exc.response, 'status_code', '?')} from {source}") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ReadTimeout,
                requests.exceptions.ContentDecodingError) as exc:  # cut off mid-way: start again
            if attempt == 3:
                raise _NotThere(f"the download from {source} broke off 3 times ({type(exc).__name__})") from None
            bar.reset()
        except requests.RequestException as exc:  # no network, refused, DNS: no point in retrying at once
            raise _NotThere(f"cannot reach {urllib.parse.urlsplit(source).netloc} ({type(exc).__name__})") from None


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself (gone when the process dies), so that processes fetching or
    extracting into one folder take turns; no lock without ``fcntl`` or where the folder cannot be opened."""
    fd = None
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY) if fcntl else None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _fetch_from(source: str, target: Path, accepted: Sequence[Copy], show_bar: bool) -> None:
    """``source`` into ``target`` through ``atomic_path``, kept only if it is one of ``accepted``."""
    size, approximate = max(((c.size, c.approximate) for c in accepted if c.size), default=(None, False))
    with atomic_path(target) as tmp, _progress_bar(1 if approximate or not size else size, target.name,
                                                   show=show_bar) as bar:  # pooch sets the real total
        try:
            _transfer(source, tmp, bar)
        except BaseException:
            bar.leave = False  # a source without the file leaves no empty bar behind
            raise
        if verify(tmp, accepted) is None:
            received = tmp.stat().st_size
            expected = min((c.size for c in accepted if c.size and not c.approximate), default=None)
            problem = (f"truncated: {received:,} of {expected:,} bytes arrived" if expected and received < expected
                       else f"wrong content: its hash is not the registered {accepted[0].hash.split(':')[0].upper()}"
                       if accepted[0].hash else "empty")
            raise DataError(f"{target.name} from {source}: {problem}; nothing was kept; fetch it again, and if this "
                            "repeats, the source holds a damaged or different file (replace it there)")


def fetch(path: str, home: str | os.PathLike | None = None, *, show_bar: bool = True) -> Path:
    """``<data home>/path``, fetched first unless it is there with registered content (every lesson).

    Tries the repository's committed copy, else the mirror, else the public addresses; none having it is one
    line naming the file, its size and the command that fetches it. A data home marked read-only is refused."""
    copies = copies_of(path)
    root = check_data_home(home)
    target = root / path
    if verify(target, copies):
        return target
    folder = target.parent
    while not folder.exists() and folder != root:
        folder = folder.parent
    with contextlib.suppress(OSError):  # otherwise fetching says what is wrong with it
        if not os.stat(folder).st_mode & 0o222:  # also for root, who may write anyway: a shared folder is a mirror
            raise DataError(f"cannot fetch {path}: the data home {root} is read-only ({folder} has no write "
                            f"permission); set IMGREC_DATA_HOME to a writable folder, and {MIRROR_ENV}={root} to "
                            "fetch from this one")
    reasons = []
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with folder_lock(target.parent):  # another process may be fetching the same file: take turns
            if verify(target, copies):
                return target
            # a killed fetch's temporary files (every fetch into this folder holds the lock, so none is in use)
            for stale in target.parent.glob(f".{glob.escape(target.stem[:80])}.*.part*"):
                with contextlib.suppress(OSError):
                    stale.unlink()
            for copy in copies:  # a data home laid out as before the course corrected a label: move the photo
                if copy.mirror_path and verify(root / copy.mirror_path, [copy]):
                    os.replace(root / copy.mirror_path, target)
                    return target
            for source, accepted in _sources(path, copies, target):
                try:
                    _fetch_from(source, target, accepted, show_bar)
                    return target
                except _NotThere as exc:
                    reasons.append(str(exc))
    except FileSystemError as exc:
        raise DataError(f"cannot fetch {target.name}: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot fetch {path}: {describe_os_error(exc, exc.filename or target.parent, 'write to')}"
                        ) from None
    if not reasons and any(c.committed for c in copies):  # the repository's own copy is gone or damaged
        reasons.append(f"it is committed in the repository: restore it with `git checkout -- data/{path}`")
    where = f"the mirror {mirror()}" if mirror() else "its public address"
    raise DataError(f"{path} ({megabytes(*size_of(path))}) is not in the data home {root} and could not be fetched "
                    f"from {where} ({'; '.join(reasons) or 'no source is registered for it'}); run "
                    f"`{FETCH_COMMAND}` where the internet (or a mirror: {MIRROR_ENV}=URL or folder) can be reached")


def fetch_set(name: str, home: str | os.PathLike | None = None) -> Path:
    """``<data home>/images/<name>``, every registered photo fetched first, one bar counting them (lessons 02-07)."""
    root = check_data_home(home)
    missing = [p for p in set_files(name) if not present(p, root)]
    if missing:
        with _progress_bar(len(missing), f"images/{name}", unit="photo", items=missing) as bar:
            for path in bar:
                fetch(path, root, show_bar=False)
    return root / "images" / name


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
"""What each lesson reads: a photo set by name, or files of which the first that can be had will do (the model
the lesson asks for, then its stand-in, as :func:`imgrec_helpers.applications.choose` decides)."""


def needs(lessons: Sequence[str]) -> list[str | tuple[str, ...]]:
    """The needs of the given notebooks (``"04_transfer_learning.ipynb"``; others need nothing), each once."""
    return list(dict.fromkeys(need for lesson in lessons for need in NEEDS.get(Path(str(lesson)).stem, ())))


def _files(need: str | tuple[str, ...]) -> Sequence[str]:
    return set_files(need) if isinstance(need, str) else need


def _alternatives(need: tuple[str, ...], template: str) -> str:
    """The stand-ins of a need's first file in words, put in ``template``; "" when there are none."""
    return template.format(" or ".join(Path(p).name for p in need[1:])) if len(need) > 1 else ""


def describe(need: str | tuple[str, ...]) -> str:
    """A need in words with its size: ``"images/alpaca (327 files, 7.8 MB)"`` (``imgrec data fetch``, ``run``)."""
    if isinstance(need, tuple):
        return f"{need[0]} ({megabytes(*size_of(need[0]))}){_alternatives(need, ', or {}')}"
    sizes = [size_of(p) for p in set_files(need)]
    total = megabytes(sum(s or 0 for s, _ in sizes), any(a for _, a in sizes))
    return f"images/{need} ({len(sizes)} files, {total})"


def fetch_need(need: str | tuple[str, ...], home: str | os.PathLike | None = None,
               log: Callable[[str], None] = lambda line: None) -> Path:
    """One need (:data:`NEEDS`) fetched: every photo of a set, or the first file of a tuple that can be had."""
    if isinstance(need, str):
        return fetch_set(need, home)
    root, errors = check_data_home(home), []
    ordered = sorted(need, key=lambda p: present(p, root) is None)  # one that is there already comes first
    for path, after in zip(ordered, ordered[1:] + [None]):
        try:
            return fetch(path, root)
        except DataError as exc:
            errors.append(exc)
            if after:
                log(f"  {Path(path).name} cannot be fetched here; trying {Path(after).name}")
    raise errors[0]


def fetch_needs(lessons: Sequence[str], home: str | os.PathLike | None = None,
                log: Callable[[str], None] = print) -> list[Path]:
    """Everything the lessons need, fetched now, sizes shown first (``imgrec data fetch`` / ``run``); the first need
    that cannot be had stops with its one-line :class:`DataError`."""
    root = check_data_home(home)
    todo = [n for n in needs(lessons)  # a set needs every photo, a tuple one of its files
            if not (all if isinstance(n, str) else any)(present(p, root) for p in _files(n))]
    if not todo:
        log(f"data: everything the lessons need is in {root}")
        return []
    log(f"data: fetching into {root}" + (f" from the mirror {mirror()}" if mirror() else "") + ":")
    for need in todo:
        log(f"  {describe(need)}")
    fetched = [fetch_need(need, root, log) for need in todo]
    for _, extra, _ in (row for need in todo if isinstance(need, str) for row in _extra_files(root, need)):
        log(f"  note: {extra} is not in the registry; the lessons read it too (move it out to keep the set as "
            "published)")
    return fetched


def _check_file(root: Path, path: str) -> tuple[str, str, str]:
    if not (root / path).is_file():
        return ("missing", path, megabytes(*size_of(path)))
    copy = verify(root / path, copies_of(path))
    if copy is None:
        return ("corrupt", path, "its size or hash matches no registered copy; `imgrec data fetch` replaces it")
    if copy.hash is None:
        return ("ok", path, "no published hash to check it against")
    whose = "the repository's copy" if copy.committed else "the public file" if copy.url else "a registered mirror copy"
    return ("ok", path, f"{copy.hash.split(':')[0]} matches {whose}")


def _extra_files(root: Path, name: str) -> list[tuple[str, str, str]]:  # unregistered: a lesson would read them too
    folder, known = root / "images" / name, {root / p for p in set_files(name)}
    return [("extra", str(p.relative_to(root)), "not in the registry; a lesson would read it: move it out")
            for p in sorted(folder.rglob("*"))  # nothing for a folder that is not there
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".md" and p not in known]


def check(lessons: Sequence[str], home: str | os.PathLike | None = None) -> list[tuple[str, str, str]]:
    """``(status, path, detail)`` rows for ``imgrec data check``: ``ok``, ``missing``, ``corrupt`` for every needed
    file (a set missing as a whole is one row), ``extra`` for unregistered files in a set's folder."""
    root = check_data_home(home)
    rows: list[tuple[str, str, str]] = []
    for need in needs(lessons):
        found = [_check_file(root, p) for p in _files(need)]
        if isinstance(need, str):
            if all(status == "missing" for status, _, _ in found):
                found = [("missing", f"images/{need}/", describe(need).split(" ", 1)[1].strip("()"))]
            rows += found + _extra_files(root, need)
        elif usable := next((row for row in found if row[0] == "ok"), None):  # the first one there is the one used
            note = "" if usable[1] == need[0] else f"; used instead of {Path(need[0]).name}, which is not here"
            rows.append((usable[0], usable[1], usable[2] + note))
        else:
            missing = ("missing", need[0], megabytes(*size_of(need[0])) + _alternatives(need, " (or {})"))
            rows += [row for row in found if row[0] == "corrupt"] or [missing]
    return rows


def provenance(lessons: Sequence[str], home: str | os.PathLike | None = None) -> dict[str, str]:
    """Which copies the lessons read, for the run's manifest and report (accuracies differ between public
    originals and a mirror's resized copies): ``{"images/alpaca": "327 public originals", ...}``."""
    root = data_home(home)
    out: dict[str, str] = {}
    for need in needs(lessons):
        kinds: dict[str, int] = {}
        for path in _files(need):
            copy = verify(root / path, copies_of(path))
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
