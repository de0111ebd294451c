"""Lesson 06's Google Cloud Vision through Google's client ``google-cloud-vision``: credentials found without a
network call, batched requests, responses read, dated recordings saved and replayed, the "when to use what" table."""
from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Sequence

import google.auth
from google.auth.exceptions import DefaultCredentialsError

from .errors import ImgrecError, describe_os_error
from .persistence import atomic_dir
from .results import markdown_table
from .sources import file_digest

VISION_SCOPE = "https://www.googleapis.com/auth/cloud-vision"  # the OAuth scope the Vision API needs
MAX_IMAGES_PER_CALL = 16  # the most images one ``batch_annotate_images`` call may carry (the API's limit)
RECORDING_FILE = "recording.json"  # a recording's index: date, client version, features, photos
PRICING_URL = "https://cloud.google.com/vision/pricing"  # where Google publishes the prices lesson 06 cites
# (record field, column heading) of the "when to use what" table, in order.
COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("approach", "approach"), ("returns", "what it returns"), ("latency", "latency per image"),
    ("cost", "cost per 1,000 images"), ("image_goes", "where the image goes"),
    ("training_data", "training data needed"), ("quality", "measured here"))


class CloudError(ImgrecError):
    """A recording of Cloud Vision responses is missing or unreadable, or a call failed (lesson 06)."""


@dataclass
class CredentialCheck:
    """What :func:`find_credentials` found (lesson 06): ``message`` is one plain sentence for the lesson's output."""
    found: bool
    message: str
    source: str = ""  # the variable, the gcloud ADC file or this Google Cloud machine
    credentials: Any = field(default=None, repr=False)
    project: str | None = None


def _on_google_cloud() -> bool:  # a Google Compute Engine machine, read from its DMI product name (no network)
    try:
        return Path("/sys/class/dmi/id/product_name").read_text().strip().startswith("Google")
    except OSError:
        return False


def find_credentials() -> CredentialCheck:
    """Lesson 06's Vision API credentials, checked locally where ``google.auth.default()`` looks; none: nothing sent."""
    env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    home = os.path.join(os.environ.get("APPDATA", ""), "gcloud") if os.name == "nt" else "~/.config/gcloud"
    # where gcloud's documented rule saves credentials
    adc = Path(os.path.expanduser(os.environ.get("CLOUDSDK_CONFIG") or home)) / "application_default_credentials.json"
    source = (f"GOOGLE_APPLICATION_CREDENTIALS={env}" if env else f"gcloud ADC file {adc}" if adc.is_file()
              else "this Google Cloud machine's service account" if _on_google_cloud() else "")
    if not source:
        return CredentialCheck(False, "No Google credentials on this machine (GOOGLE_APPLICATION_CREDENTIALS is "
                                      f"not set, there is no {adc}, and this is not a Google Cloud machine), so "
                                      "the Cloud Vision cells are not run: nothing is sent anywhere.")
    try:
        credentials, project = google.auth.default(scopes=[VISION_SCOPE])
    except (DefaultCredentialsError, OSError, ValueError) as exc:  # OSError: the variable names a folder, ...
        reason = describe_os_error(exc) if isinstance(exc, OSError) else " ".join(str(exc).split())[:300]
        return CredentialCheck(False, f"Google credentials were looked for in {source} but cannot be used "
                                      f"({reason}), so the Cloud Vision cells are not run.", source=source)
    return CredentialCheck(True, f"Google credentials found ({source}"
                                 f"{', project ' + project if project else ''}): the Cloud Vision cells call the API.",
                           source=source, credentials=credentials, project=project)


def build_request(content: bytes, *, max_labels: int = 10, text: bool = True):
    """One ``vision.AnnotateImageRequest`` (lesson 06): the image, ``max_labels`` labels, with ``text`` its text."""
    from google.cloud import vision  # here and below: 1.2 s that ``imgrec report`` need not pay

    features = [vision.Feature(type_=vision.Feature.Type.LABEL_DETECTION, max_results=max_labels)]
    features += [vision.Feature(type_=vision.Feature.Type.TEXT_DETECTION)] if text else []
    return vision.AnnotateImageRequest(image=vision.Image(content=content), features=features)


def describe_request(requests: Sequence[Any], keep: int = 16) -> str:
    """The batch request as REST JSON, each image cut to its first ``keep`` base64 characters and size (lesson 06)."""
    from google.cloud import vision

    data = json.loads(vision.BatchAnnotateImagesRequest.to_json(vision.BatchAnnotateImagesRequest(
        requests=list(requests)), use_integers_for_enums=False, always_print_fields_with_no_presence=False))
    for original, shown in zip(requests, data.get("requests", [])):
        if content := bytes(original.image.content):
            text = base64.b64encode(content).decode("ascii")
            shown["image"]["content"] = f"{text[:keep]}... ({len(content):,} bytes of image, base64-encoded)"
    return json.dumps(data, indent=2)


def annotate(client: Any, requests: Sequence[Any], *, timeout: float = 60.0) -> tuple[list[Any], float]:
    """``(responses, seconds)`` from ``client.batch_annotate_images``, :data:`MAX_IMAGES_PER_CALL` a call, in order,
    upload included (lesson 06); a refused or failed call is a one-line :class:`CloudError`, never retried."""
    from google.api_core import exceptions as api_exceptions  # loaded with the client anyway

    responses: list[Any] = []
    started = time.perf_counter()
    for first in range(0, len(requests), MAX_IMAGES_PER_CALL):
        try:
            responses += client.batch_annotate_images(requests=list(requests[first:first + MAX_IMAGES_PER_CALL]),
                                                      timeout=timeout).responses
        except api_exceptions.GoogleAPIError as exc:
            raise CloudError(f"the Cloud Vision call failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]});"
                             " check that the Vision API is enabled for the credentials' project and that this machine"
                             " is online") from None
    if len(responses) != len(requests):
        raise CloudError(f"Cloud Vision answered {len(responses)} responses for {len(requests)} images")
    return responses, time.perf_counter() - started if requests else 0.0


def labels_of(response: Any) -> list[tuple[str, float]]:
    """``(description, score)`` of each label, best first, from ``response.label_annotations`` (lesson 06)."""
    return [(str(a.description), float(a.score)) for a in response.label_annotations]


def full_text_of(response: Any) -> str:
    """All the text found in the image: ``response.text_annotations[0].description`` ("" if none) (lesson 06)."""
    return str(response.text_annotations[0].description) if len(response.text_annotations) else ""


def words_of(response: Any) -> list[tuple[str, list[tuple[int, int]]]]:
    """Each word found (``text_annotations[1:]``) with the corners of its ``bounding_poly`` (lesson 06)."""
    return [(str(a.description), [(int(v.x), int(v.y)) for v in a.bounding_poly.vertices])
            for a in list(response.text_annotations)[1:]]


def error_of(response: Any) -> str | None:
    """The per-image error (``response.error``, a ``google.rpc.Status``) as "code N: message", or None (lesson 06)."""
    return f"code {response.error.code}: {response.error.message}" if response.error.code else None


@dataclass
class Recording:
    """Saved Cloud Vision responses, from :func:`load_recording` (lesson 06)."""
    folder: Path
    recorded: str                   # ISO date and time of the real call, UTC
    client: str                     # "google-cloud-vision X.Y.Z"
    seconds: float                  # time the real call took, all images
    photos: list[dict[str, Any]]    # name, sha256, response file
    responses: dict[str, Any]       # photo name -> vision.AnnotateImageResponse

    @property
    def label(self) -> str:
        """``"recorded on 2026-12-01"``: every output of a replay carries it."""
        return f"recorded on {self.recorded[:10]}"

    def matches(self, path: str | os.PathLike) -> bool:
        """True when ``path`` is the very photo that was sent (same name and SHA-256)."""
        return any(p["name"] == Path(path).name and p["sha256"] == file_digest(path) for p in self.photos)


def save_recording(folder: str | os.PathLike, photos: Sequence[str | os.PathLike], responses: Sequence[Any], *,
                   seconds: float, when: _dt.datetime | None = None) -> Path:
    """Save real responses atomically in a new ``folder/<date>_<time>/``: one ``AnnotateImageResponse.to_json``
    file per photo and :data:`RECORDING_FILE` with the date (lesson 06)."""
    from google.cloud import vision

    if len(photos) != len(responses):
        raise CloudError(f"{len(photos)} photos but {len(responses)} responses; save one response per photo")
    when = (when or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    target = Path(folder) / when.strftime("%Y-%m-%d_%H%M%S")
    index = {"recorded": when.isoformat(timespec="seconds"),
             "client": f"google-cloud-vision {version('google-cloud-vision')}",
             "features": ["LABEL_DETECTION", "TEXT_DETECTION"], "seconds": round(float(seconds), 3), "photos": []}
    with atomic_dir(target) as tmp:
        for path, response in zip(map(Path, photos), responses):
            (tmp / f"{path.stem}.json").write_text(vision.AnnotateImageResponse.to_json(response), encoding="utf-8")
            index["photos"].append({"name": path.name, "sha256": file_digest(path), "response": f"{path.stem}.json"})
        (tmp / RECORDING_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return target


def load_recording(folder: str | os.PathLike) -> Recording:
    """A folder written by :func:`save_recording`, or the newest inside one such as ``cloud_vision/`` (lesson 06)."""
    from google.cloud import vision
    from google.protobuf.json_format import ParseError

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CloudError(f"RECORDED={folder}: no such folder; point it at a folder saved by lesson 06 "
                         f"(it holds {RECORDING_FILE}), or leave it empty")
    inside = [folder] if (folder / RECORDING_FILE).is_file() else sorted(
        p.parent for p in folder.glob(f"*/{RECORDING_FILE}"))
    if not inside:
        raise CloudError(f"{folder}: no {RECORDING_FILE} here or in its sub-folders; point RECORDED at a "
                         "folder saved by lesson 06 with credentials")
    folder = inside[-1]
    try:
        index = json.loads((folder / RECORDING_FILE).read_text(encoding="utf-8"))
        _dt.datetime.fromisoformat(recorded := str(index["recorded"]))
        photos = list(index["photos"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CloudError(f"{folder / RECORDING_FILE}: not a lesson 06 recording ({type(exc).__name__}: {exc}); "
                         "record again with credentials") from None
    responses = {}
    for entry in photos:
        path = folder / str(entry.get("response", ""))
        try:
            responses[str(entry["name"])] = vision.AnnotateImageResponse.from_json(
                path.read_text(encoding="utf-8"), ignore_unknown_fields=True)
        except (OSError, ValueError, KeyError, ParseError) as exc:
            raise CloudError(f"{path}: cannot be read as an AnnotateImageResponse ({type(exc).__name__}); "
                             "record again with credentials") from None
    return Recording(folder, recorded, str(index.get("client", "google-cloud-vision")),
                     float(index.get("seconds", 0.0)), photos, responses)


def comparison_rows(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The comparison table's cells, a row per ``"api_comparison"`` record by name (lesson 06, report); latency in
    ms per image with its note, or the note ("not run", "recorded on DATE") alone."""
    rows = []
    for rec in sorted(records, key=lambda r: str(r.get("name", ""))):
        cells = {key: str(rec.get(key, "") or "") for key, _ in COMPARISON_COLUMNS}
        ms, note = rec.get("latency_ms"), rec.get("latency_note")
        cells["latency"] = str(note or "not run") if ms is None else f"{ms:,.0f} ms" + (f" ({note})" if note else "")
        rows.append(list(cells.values()))
    return rows


def comparison_markdown(records: Sequence[dict[str, Any]]) -> str:
    """The comparison table as Markdown, for ``IPython.display.Markdown`` (lesson 06)."""
    return markdown_table(records, COMPARISON_COLUMNS, comparison_rows(records))
