"""Google Cloud Vision through Google's official client, ``google-cloud-vision``: lesson 06.

Lesson 06 builds ``AnnotateImageRequest`` messages (the photo's bytes plus the features wanted:
``LABEL_DETECTION``, ``TEXT_DETECTION``), sends them with ``vision.ImageAnnotatorClient`` when Google
credentials are present, and reads the answers: ``label_annotations`` (``description``, ``score``),
``text_annotations`` (the first one is all the text found, then one per word with its ``bounding_poly``)
and ``error``.

This module holds the plumbing around those calls:

- :func:`find_credentials` looks for Application Default Credentials **without any network call** when
  there are none (``google.auth.default()`` on its own would ask the Compute Engine metadata server);
- :func:`build_request` and :func:`describe_request` (the exact request, with the image bytes abbreviated);
- :func:`annotate` (``client.batch_annotate_images`` in chunks of 16 images, timed);
- :func:`labels_of`, :func:`full_text_of`, :func:`words_of`, :func:`error_of` (reading a response);
- :func:`save_recording` / :func:`load_recording`: the raw responses of a real run saved with
  ``AnnotateImageResponse.to_json`` and the date, and replayed later, always labelled "recorded on DATE";
- :data:`COMPARISON_COLUMNS` and :func:`comparison_rows`: the "when to use what" table of lesson 06 and
  of ``report.html``, from the run's result records of kind ``"api_comparison"``.

``google.cloud.vision`` is imported inside the functions that need it, so the report can use this module
without loading the client.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import ImgrecError, describe_os_error
from .persistence import atomic_dir
from .sources import file_digest

VISION_SCOPE = "https://www.googleapis.com/auth/cloud-vision"
"""The OAuth scope the Vision API needs (lesson 06)."""

MAX_IMAGES_PER_CALL = 16
"""The most images one ``batch_annotate_images`` call may carry (the API's published limit)."""

RECORDING_FILE = "recording.json"
"""The index file of a saved recording: date, client version, features, photos (lesson 06)."""

PRICING_URL = "https://cloud.google.com/vision/pricing"
"""Where Google publishes the Vision API's prices (lesson 06's dated price parameters cite it)."""


class CloudError(ImgrecError):
    """A recording of Cloud Vision responses is missing or unreadable, or a call failed (lesson 06)."""


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


@dataclass
class CredentialCheck:
    """What :func:`find_credentials` found (lesson 06)."""

    found: bool
    message: str                       # one plain sentence for the lesson's output
    source: str = ""                   # "GOOGLE_APPLICATION_CREDENTIALS", "gcloud ADC file", "Google Cloud"
    credentials: Any = field(default=None, repr=False)
    project: str | None = None


def adc_file() -> Path:
    """Where ``gcloud auth application-default login`` saves credentials on this machine (lesson 06)."""
    try:
        from google.auth import _cloud_sdk

        return Path(_cloud_sdk.get_application_default_credentials_path())
    except (ImportError, AttributeError):  # the same rule, should the private helper move
        base = os.environ.get("CLOUDSDK_CONFIG") or (
            os.path.join(os.environ.get("APPDATA", ""), "gcloud") if os.name == "nt"
            else os.path.join(os.path.expanduser("~"), ".config", "gcloud"))
        return Path(base) / "application_default_credentials.json"


def _on_google_cloud() -> bool:
    """True on a Google Compute Engine machine, read from the machine's DMI product name (no network)."""
    try:
        return Path("/sys/class/dmi/id/product_name").read_text().strip().startswith("Google")
    except OSError:
        return False


def find_credentials() -> CredentialCheck:
    """Google Application Default Credentials for the Vision API, if this machine has any (lesson 06).

    The places ``google.auth.default()`` looks, checked locally first: the ``GOOGLE_APPLICATION_CREDENTIALS``
    variable, the gcloud ADC file (:func:`adc_file`), a Google Cloud machine. Only when one of them is
    present is ``google.auth.default()`` called (its ``DefaultCredentialsError`` becomes ``found=False`` with
    the reason); with none present nothing is called and nothing is sent anywhere.
    """
    env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    adc = adc_file()
    if env:
        source = f"GOOGLE_APPLICATION_CREDENTIALS={env}"
    elif adc.is_file():
        source = f"gcloud ADC file {adc}"
    elif _on_google_cloud():
        source = "this Google Cloud machine's service account"
    else:
        return CredentialCheck(False, "No Google credentials on this machine (GOOGLE_APPLICATION_CREDENTIALS is "
                                      f"not set, there is no {adc}, and this is not a Google Cloud machine), so "
                                      "the Cloud Vision cells are not run: nothing is sent anywhere.")
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, project = google.auth.default(scopes=[VISION_SCOPE])
    except (DefaultCredentialsError, OSError, ValueError) as exc:  # OSError: the variable names a folder, ...
        reason = describe_os_error(exc) if isinstance(exc, OSError) else " ".join(str(exc).split())[:300]
        return CredentialCheck(False, f"Google credentials were looked for in {source} but cannot be used "
                                      f"({reason}), so the Cloud Vision cells are not run.", source=source)
    return CredentialCheck(True, f"Google credentials found ({source}"
                                 f"{', project ' + project if project else ''}): the Cloud Vision cells call the API.",
                           source=source, credentials=credentials, project=project)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def build_request(content: bytes, *, max_labels: int = 10, text: bool = True):
    """One ``vision.AnnotateImageRequest``: the image's bytes, label detection (up to ``max_labels``
    labels) and, with ``text``, text detection (lesson 06 builds the same message line by line first)."""
    from google.cloud import vision

    features = [vision.Feature(type_=vision.Feature.Type.LABEL_DETECTION, max_results=max_labels)]
    if text:
        features.append(vision.Feature(type_=vision.Feature.Type.TEXT_DETECTION))
    return vision.AnnotateImageRequest(image=vision.Image(content=content), features=features)


def describe_request(requests: Sequence[Any], keep: int = 16) -> str:
    """The ``BatchAnnotateImagesRequest`` that would be sent, as JSON (the form of Google's REST API), each
    image's content cut to its first ``keep`` base64 characters plus its size in bytes (lesson 06)."""
    from google.cloud import vision

    batch = vision.BatchAnnotateImagesRequest(requests=list(requests))
    data = json.loads(vision.BatchAnnotateImagesRequest.to_json(batch, use_integers_for_enums=False,
                                                                always_print_fields_with_no_presence=False))
    for original, shown in zip(requests, data.get("requests", [])):
        content = bytes(original.image.content)
        if content:
            text = base64.b64encode(content).decode("ascii")
            shown["image"]["content"] = f"{text[:keep]}... ({len(content):,} bytes of image, base64-encoded)"
    return json.dumps(data, indent=2)


def annotate(client: Any, requests: Sequence[Any], *, timeout: float = 60.0) -> tuple[list[Any], float]:
    """Send the requests with ``client.batch_annotate_images(requests=..., timeout=...)``, at most
    :data:`MAX_IMAGES_PER_CALL` a call; return ``(responses, seconds)``, one response per request, in order
    (lesson 06). The time includes the upload of the images. A refused or failed call (no permission, API
    not enabled, no network) becomes a one-line :class:`CloudError`; nothing is retried for minutes.
    """
    from google.api_core import exceptions as api_exceptions

    if not requests:
        return [], 0.0
    responses: list[Any] = []
    started = time.perf_counter()
    for first in range(0, len(requests), MAX_IMAGES_PER_CALL):
        try:
            batch = client.batch_annotate_images(requests=list(requests[first:first + MAX_IMAGES_PER_CALL]),
                                                 timeout=timeout)
        except api_exceptions.GoogleAPIError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise CloudError(f"the Cloud Vision call failed ({type(exc).__name__}: {detail}); check that the "
                             "Vision API is enabled for the credentials' project and that this machine is online") from None
        responses.extend(batch.responses)
    seconds = time.perf_counter() - started
    if len(responses) != len(requests):
        raise CloudError(f"Cloud Vision answered {len(responses)} responses for {len(requests)} images")
    return responses, seconds


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def labels_of(response: Any) -> list[tuple[str, float]]:
    """``(description, score)`` of each label, best first, from ``response.label_annotations`` (lesson 06)."""
    return [(str(a.description), float(a.score)) for a in response.label_annotations]


def full_text_of(response: Any) -> str:
    """All the text found in the image: ``response.text_annotations[0].description`` ("" if none) (lesson 06)."""
    return str(response.text_annotations[0].description) if len(response.text_annotations) else ""


def words_of(response: Any) -> list[tuple[str, list[tuple[int, int]]]]:
    """Each word found with the corners of its box: ``text_annotations[1:]``, ``description`` and
    ``bounding_poly.vertices`` (lesson 06)."""
    return [(str(a.description), [(int(v.x), int(v.y)) for v in a.bounding_poly.vertices])
            for a in list(response.text_annotations)[1:]]


def error_of(response: Any) -> str | None:
    """The per-image error (``response.error``, a ``google.rpc.Status``) as "code N: message", or None (lesson 06)."""
    error = response.error
    return f"code {error.code}: {error.message}" if error.code else None


# --------------------------------------------------------------------------------------------
# Recordings
# --------------------------------------------------------------------------------------------


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
    def date(self) -> str:
        return self.recorded[:10]

    @property
    def label(self) -> str:
        """``"recorded on 2026-12-01"``: every output of a replay carries it."""
        return f"recorded on {self.date}"

    def matches(self, path: str | os.PathLike) -> bool:
        """True when ``path`` is the very photo that was sent (same name and SHA-256)."""
        entry = next((p for p in self.photos if p["name"] == Path(path).name), None)
        return entry is not None and entry["sha256"] == file_digest(path)


def save_recording(folder: str | os.PathLike, photos: Sequence[str | os.PathLike], responses: Sequence[Any], *,
                   seconds: float, features: Iterable[str] = ("LABEL_DETECTION", "TEXT_DETECTION"),
                   when: _dt.datetime | None = None) -> Path:
    """Save real responses in ``folder/<date>_<time>/``: one ``AnnotateImageResponse.to_json`` file per
    photo and :data:`RECORDING_FILE` with the date; returns the new folder (written atomically) (lesson 06)."""
    from importlib.metadata import version

    from google.cloud import vision

    if len(photos) != len(responses):
        raise CloudError(f"{len(photos)} photos but {len(responses)} responses; save one response per photo")
    when = (when or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    target = Path(folder) / when.strftime("%Y-%m-%d_%H%M%S")
    index = {"recorded": when.isoformat(timespec="seconds"), "client": f"google-cloud-vision {version('google-cloud-vision')}",
             "features": list(features), "seconds": round(float(seconds), 3), "photos": []}
    with atomic_dir(target) as tmp:
        for path, response in zip(photos, responses):
            path = Path(path)
            name = f"{path.stem}.json"
            (tmp / name).write_text(vision.AnnotateImageResponse.to_json(response), encoding="utf-8")
            index["photos"].append({"name": path.name, "sha256": file_digest(path), "response": name})
        (tmp / RECORDING_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return target


def load_recording(folder: str | os.PathLike) -> Recording:
    """Read a folder written by :func:`save_recording` (lesson 06's ``RECORDED`` parameter).

    A folder holding several recordings (such as a run's ``cloud_vision/``) gives its newest one.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CloudError(f"RECORDED={folder}: no such folder; point it at a folder saved by lesson 06 "
                         f"(it holds {RECORDING_FILE}), or leave it empty")
    if not (folder / RECORDING_FILE).is_file():
        inside = sorted(p.parent for p in folder.glob(f"*/{RECORDING_FILE}"))
        if not inside:
            raise CloudError(f"{folder}: no {RECORDING_FILE} here or in its sub-folders; point RECORDED at a "
                             "folder saved by lesson 06 with credentials")
        folder = inside[-1]
    from google.cloud import vision
    from google.protobuf.json_format import ParseError

    try:
        index = json.loads((folder / RECORDING_FILE).read_text(encoding="utf-8"))
        recorded = str(index["recorded"])
        _dt.datetime.fromisoformat(recorded)
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


# --------------------------------------------------------------------------------------------
# The "when to use what" table (lesson 06 and report.html)
# --------------------------------------------------------------------------------------------

COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("approach", "approach"),
    ("returns", "what it returns"),
    ("latency", "latency per image"),
    ("cost", "cost per 1,000 images"),
    ("image_goes", "where the image goes"),
    ("training_data", "training data needed"),
    ("quality", "measured here"),
)
"""(record field, column heading) of the comparison table, in order."""


def latency_text(record: dict[str, Any]) -> str:
    """A row's latency cell: milliseconds per image, "not run", or the recorded value with its date."""
    ms = record.get("latency_ms")
    if ms is None:
        return str(record.get("latency_note") or "not run")
    note = record.get("latency_note")
    return f"{ms:,.0f} ms" + (f" ({note})" if note else "")


def comparison_rows(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The comparison table's cells, one row per ``"api_comparison"`` record, ordered by record name."""
    rows = []
    for rec in sorted(records, key=lambda r: str(r.get("name", ""))):
        cells = {key: str(rec.get(key, "") or "") for key, _ in COMPARISON_COLUMNS}
        cells["latency"] = latency_text(rec)
        rows.append([cells[key] for key, _ in COMPARISON_COLUMNS])
    return rows


def comparison_markdown(records: Sequence[dict[str, Any]]) -> str:
    """The comparison table as Markdown, for ``IPython.display.Markdown`` (lesson 06)."""
    lines = ["| " + " | ".join(h for _, h in COMPARISON_COLUMNS) + " |", "|" + "---|" * len(COMPARISON_COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in comparison_rows(records)]
    return "\n".join(lines)
