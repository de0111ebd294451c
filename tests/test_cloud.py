"""Lesson 06's Cloud Vision plumbing, with no network and no credentials.

Requests and responses are the client library's own message types; the API call is replaced the way
the library's own unit tests do it: an ``ImageAnnotatorClient`` with anonymous credentials, and
``mock.patch.object`` on its transport's ``batch_annotate_images`` callable. Nothing here reaches Google.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
from unittest import mock

import pytest
from google.api_core import exceptions as api_exceptions
from google.auth import credentials as ga_credentials
from google.cloud import vision

from imgrec_helpers import cloud
from imgrec_helpers.course import runner
from imgrec_helpers.course import report
from imgrec_helpers.results import record_result

JPEG_START = b"\xff\xd8\xff\xe0" + bytes(range(200))  # bytes that stand in for a photo file


@pytest.fixture
def client():
    return vision.ImageAnnotatorClient(credentials=ga_credentials.AnonymousCredentials(), transport="grpc")


def cat_response(n: int = 0) -> vision.AnnotateImageResponse:
    """A response as the API sends it: two labels, the full text, then one annotation per word."""
    return vision.AnnotateImageResponse(
        label_annotations=[vision.EntityAnnotation(mid="/m/01yrx", description="Cat", score=0.97, topicality=0.97),
                           vision.EntityAnnotation(mid="/m/0jbk", description=f"Animal {n}", score=0.81)],
        text_annotations=[
            vision.EntityAnnotation(description="OPEN 24\n", locale="en"),
            vision.EntityAnnotation(description="OPEN", bounding_poly=vision.BoundingPoly(vertices=[
                vision.Vertex(x=10, y=5), vision.Vertex(x=60, y=5), vision.Vertex(x=60, y=25), vision.Vertex(x=10, y=25)])),
            vision.EntityAnnotation(description="24", bounding_poly=vision.BoundingPoly(vertices=[
                vision.Vertex(x=70, y=5), vision.Vertex(x=95, y=5), vision.Vertex(x=95, y=25), vision.Vertex(x=70, y=25)])),
        ])


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # where the ADC file would be
    monkeypatch.setattr(cloud, "_on_google_cloud", lambda: False)
    return tmp_path


def test_no_credentials_means_no_call_at_all(no_credentials):
    with mock.patch("google.auth.default", side_effect=AssertionError("must not be called")) as default:
        found = cloud.find_credentials()
    default.assert_not_called()
    assert not found.found and found.credentials is None
    assert "not run" in found.message and "nothing is sent" in found.message
    assert str(no_credentials / "gcloud" / "application_default_credentials.json") in found.message


def test_a_broken_credentials_file_is_reported_not_raised(no_credentials, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(no_credentials / "missing.json"))
    found = cloud.find_credentials()
    assert not found.found and "cannot be used" in found.message and "missing.json" in found.message
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(no_credentials))  # a folder: Python's own error before
    found = cloud.find_credentials()
    assert not found.found and f"cannot be used ({no_credentials}: is a folder, not a file (EISDIR)" in found.message
    (no_credentials / "notes.json").write_text("not JSON")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(no_credentials / "notes.json"))
    found = cloud.find_credentials()
    assert not found.found and "is not a valid json file" in found.message


def test_a_service_account_file_is_found_without_network(no_credentials, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "imgrec-test", "private_key_id": "1", "private_key": pem,
            "client_email": "lesson06@imgrec-test.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}
    path = no_credentials / "key.json"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    found = cloud.find_credentials()
    assert found.found and found.project == "imgrec-test" and "imgrec-test" in found.message
    assert cloud.VISION_SCOPE in (found.credentials.scopes or [])


# --------------------------------------------------------------------------------------------
# Requests, the call, responses
# --------------------------------------------------------------------------------------------


def test_build_request_is_the_library_message():
    request = cloud.build_request(JPEG_START, max_labels=7)
    assert isinstance(request, vision.AnnotateImageRequest)
    assert request.image.content == JPEG_START
    assert [(f.type_, f.max_results) for f in request.features] == [
        (vision.Feature.Type.LABEL_DETECTION, 7), (vision.Feature.Type.TEXT_DETECTION, 0)]
    assert [f.type_ for f in cloud.build_request(JPEG_START, text=False).features] == [vision.Feature.Type.LABEL_DETECTION]


def test_describe_request_abbreviates_the_image_only():
    text = cloud.describe_request([cloud.build_request(JPEG_START), cloud.build_request(JPEG_START[:50])])
    data = json.loads(text)
    first, second = data["requests"]
    encoded = base64.b64encode(JPEG_START).decode()
    assert first["image"]["content"] == f"{encoded[:16]}... ({len(JPEG_START):,} bytes of image, base64-encoded)"
    assert second["image"]["content"].endswith("(50 bytes of image, base64-encoded)")
    assert first["features"] == [{"type": "LABEL_DETECTION", "maxResults": 10}, {"type": "TEXT_DETECTION"}]
    assert encoded[16:40] not in text


def test_annotate_sends_batches_of_16_and_keeps_the_order(client):
    requests = [cloud.build_request(JPEG_START + bytes([i])) for i in range(20)]
    answers = [cat_response(i) for i in range(20)]
    with mock.patch.object(type(client.transport.batch_annotate_images), "__call__") as call:
        call.side_effect = [vision.BatchAnnotateImagesResponse(responses=answers[:16]),
                            vision.BatchAnnotateImagesResponse(responses=answers[16:])]
        responses, seconds = cloud.annotate(client, requests)
    assert len(call.mock_calls) == 2 and seconds >= 0
    sent = [c.args[0] for c in call.mock_calls]
    assert all(isinstance(s, vision.BatchAnnotateImagesRequest) for s in sent)
    assert list(sent[0].requests) == requests[:16] and list(sent[1].requests) == requests[16:]
    # google-api-core passes the time left to the 60 s deadline (TimeToDeadlineTimeout): a busy machine may have
    # spent some milliseconds of it before the transport is called
    assert 59.0 < call.mock_calls[0].kwargs["timeout"] <= 60.0
    assert [cloud.labels_of(r)[1][0] for r in responses] == [f"Animal {i}" for i in range(20)]


def test_responses_are_read_field_by_field(client):
    with mock.patch.object(type(client.transport.batch_annotate_images), "__call__") as call:
        call.return_value = vision.BatchAnnotateImagesResponse(responses=[
            cat_response(), vision.AnnotateImageResponse(error={"code": 3, "message": "Bad image data."})])
        (ok, failed), _ = cloud.annotate(client, [cloud.build_request(JPEG_START)] * 2)
    assert cloud.labels_of(ok) == [("Cat", pytest.approx(0.97)), ("Animal 0", pytest.approx(0.81))]
    assert cloud.full_text_of(ok) == "OPEN 24\n"
    assert cloud.words_of(ok) == [("OPEN", [(10, 5), (60, 5), (60, 25), (10, 25)]), ("24", [(70, 5), (95, 5), (95, 25), (70, 25)])]
    assert cloud.error_of(ok) is None
    assert cloud.error_of(failed) == "code 3: Bad image data."
    assert cloud.labels_of(failed) == [] and cloud.full_text_of(failed) == "" and cloud.words_of(failed) == []


def test_a_refused_call_is_one_clear_line(client):
    with mock.patch.object(type(client.transport.batch_annotate_images), "__call__") as call:
        call.side_effect = api_exceptions.PermissionDenied("Cloud Vision API has not been used in project 1")
        with pytest.raises(cloud.CloudError, match=r"the Cloud Vision call failed \(PermissionDenied: .*enabled"):
            cloud.annotate(client, [cloud.build_request(JPEG_START)])


def test_annotate_checks_one_response_per_image(client):
    with mock.patch.object(type(client.transport.batch_annotate_images), "__call__") as call:
        call.return_value = vision.BatchAnnotateImagesResponse(responses=[cat_response()])
        with pytest.raises(cloud.CloudError, match="1 responses for 2 images"):
            cloud.annotate(client, [cloud.build_request(JPEG_START)] * 2)


# --------------------------------------------------------------------------------------------
# Recordings
# --------------------------------------------------------------------------------------------


def photos(tmp_path, n=2):
    paths = []
    for i in range(n):
        path = tmp_path / "photos" / f"photo_{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(JPEG_START + bytes([i]))
        paths.append(path)
    return paths


def test_recording_round_trip(tmp_path):
    paths = photos(tmp_path)
    answers = [cat_response(0), cat_response(1)]
    when = dt.datetime(2026, 11, 30, 14, 5, 0, tzinfo=dt.timezone.utc)
    folder = cloud.save_recording(tmp_path / "run" / "cloud_vision", paths, answers, seconds=1.25, when=when)
    assert folder.name == "2026-11-30_140500"
    for path, answer in zip(paths, answers):  # the raw files are the library's own JSON
        raw = (folder / f"{path.stem}.json").read_text()
        assert raw == vision.AnnotateImageResponse.to_json(answer)
    recording = cloud.load_recording(tmp_path / "run" / "cloud_vision")  # the parent folder: its newest recording
    assert recording.folder == folder and recording.label == "recorded on 2026-11-30"
    assert recording.seconds == 1.25 and recording.client.startswith("google-cloud-vision ")
    assert recording.responses == {"photo_0.jpg": answers[0], "photo_1.jpg": answers[1]}
    assert cloud.labels_of(recording.responses["photo_1.jpg"])[1][0] == "Animal 1"
    assert recording.matches(paths[0])
    paths[0].write_bytes(b"another photo")
    assert not recording.matches(paths[0])
    assert not list(folder.parent.glob(".*partial*"))  # written atomically


def test_replay_reads_a_hand_made_recording(tmp_path):
    """A recording is just to_json files and an index: what an instructor hands out."""
    folder = tmp_path / "given"
    folder.mkdir()
    (folder / "cat.json").write_text(vision.AnnotateImageResponse.to_json(cat_response(5)))
    (folder / cloud.RECORDING_FILE).write_text(json.dumps({
        "recorded": "2026-10-02T09:00:00+00:00", "seconds": 0.4,
        "photos": [{"name": "cat.jpg", "sha256": "0" * 64, "response": "cat.json"}]}))
    recording = cloud.load_recording(folder)
    assert recording.label == "recorded on 2026-10-02"
    assert recording.responses["cat.jpg"] == cat_response(5)


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such folder"),
    ("empty", "no recording.json here"),
    ("bad index", "not a lesson 06 recording"),
    ("bad response", "cannot be read as an AnnotateImageResponse"),
])
def test_bad_recordings_say_what_to_do(tmp_path, setup, message):
    folder = tmp_path / "rec"
    if setup != "missing":
        folder.mkdir()
    if setup == "bad index":
        (folder / cloud.RECORDING_FILE).write_text("{not json")
    if setup == "bad response":
        (folder / cloud.RECORDING_FILE).write_text(json.dumps({
            "recorded": "2026-10-02T09:00:00+00:00", "photos": [{"name": "a.jpg", "sha256": "", "response": "a.json"}]}))
        (folder / "a.json").write_text("[1, 2")
    with pytest.raises(cloud.CloudError, match=message) as info:
        cloud.load_recording(folder)
    assert "\n" not in str(info.value)


def test_save_needs_one_response_per_photo(tmp_path):
    with pytest.raises(cloud.CloudError, match="2 photos but 1 responses"):
        cloud.save_recording(tmp_path, photos(tmp_path), [cat_response()], seconds=1.0)


# --------------------------------------------------------------------------------------------
# The comparison table, in the notebook and in report.html
# --------------------------------------------------------------------------------------------


def comparison_records(run_dir):
    common = dict(kind="api_comparison", train_images=0, epochs=0, train_seconds=0.0, test_images=3,
                  profile="smoke", precision="float32", hardware="CPU")
    record_result(run_dir, "06_compare_1_cloud", approach="Cloud Vision LABEL_DETECTION", model="Google Cloud Vision",
                  test_accuracy=None, returns="labels", latency_ms=None, latency_note="not run", cost="USD 1.50",
                  image_goes="uploaded to Google's servers", training_data="none", quality="not run", **common)
    record_result(run_dir, "06_compare_2_ocr", approach="offline OCR", model="RapidOCR", test_accuracy=0.97,
                  returns="lines <of> text", latency_ms=812.4, latency_note="this machine", cost="no fee",
                  image_goes="stays on this machine", training_data="none", quality="CER 0.030", **common)


def test_comparison_rows_and_markdown(tmp_path):
    comparison_records(tmp_path)
    from imgrec_helpers.results import load_results

    records = load_results(tmp_path, kind="api_comparison")
    rows = cloud.comparison_rows(records)
    assert rows[0][:4] == ["Cloud Vision LABEL_DETECTION", "labels", "not run", "USD 1.50"]
    assert rows[1][2] == "812 ms (this machine)"
    markdown = cloud.comparison_markdown(records)
    assert markdown.splitlines()[0] == "| " + " | ".join(h for _, h in cloud.COMPARISON_COLUMNS) + " |"
    assert len(markdown.splitlines()) == 4
    assert load_results(tmp_path) == []  # lesson 05's table (kind "model") does not see these rows


def test_report_shows_the_lesson_06_table(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"profile": "smoke", "seed": 42, "status": "ok", "notebooks": {}}))
    assert "api_comparison" not in report.write_report(tmp_path).read_text()  # no lesson 06 records: no section
    comparison_records(tmp_path)
    page = report.write_report(tmp_path).read_text()
    table = re.search(r"<table id='api_comparison'>(.*?)</table>", page, re.S).group(1)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]
    import html

    from imgrec_helpers.results import load_results

    assert [[html.unescape(c) for c in row] for row in cells] == cloud.comparison_rows(
        load_results(tmp_path, kind="api_comparison"))
    assert "lines &lt;of&gt; text" in table


# --------------------------------------------------------------------------------------------
# The notebook replays a recording, labelled with its date
# --------------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.slow
def test_lesson_06_replays_a_recording(real_home, tmp_path):
    """Lesson 06 with RECORDED set: a recording made here from the library's own types (test data, never
    shown to students) for two of the photos; every cloud output says "recorded on 2026-11-30"."""
    import nbformat
    import papermill

    from imgrec_helpers.results import load_results

    samples = real_home / "images" / "samples"
    sent = [samples / "wikiphotos_021_nasa_shuttle_ferry.jpg", samples / "matplotlib_grace_hopper.jpg"]
    answers = [vision.AnnotateImageResponse(
        label_annotations=[vision.EntityAnnotation(description="Test label", score=0.5)],
        text_annotations=[vision.EntityAnnotation(description="United States\n")]) for _ in sent]
    cloud.save_recording(tmp_path / "given", sent, answers, seconds=0.8,
                         when=dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc))
    run_dir, executed = tmp_path / "run", tmp_path / "06.ipynb"
    env = runner.kernel_env(tmp_path)
    with mock.patch.dict("os.environ", env):
        papermill.execute_notebook(str(runner.NOTEBOOKS_DIR / "06_cloud_vision.ipynb"), str(executed),
                                   parameters={"PROFILE": "smoke", "RUN_DIR": str(run_dir), "DATA_HOME": str(real_home),
                                               "RECORDED": str(tmp_path / "given"), "CLOUD": "off"},
                                   progress_bar=False, kernel_name="python3")
    nb = nbformat.read(executed, as_version=4)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Cloud Vision in this lesson: recorded" in text
    assert "| wikiphotos_021_nasa_shuttle_ferry.jpg |" in text and "Test label 0.50 |" in text
    assert "kodak_kodim10.jpg: not in the recording" in text and "| not in the recording |" in text
    assert "Cloud Vision: found (recorded on 2026-11-30)" in text
    rows = {r["name"]: r for r in load_results(run_dir, kind="api_comparison")}
    assert rows["06_compare_1_cloud_labels"]["latency_ms"] == pytest.approx(400.0)
    assert rows["06_compare_1_cloud_labels"]["latency_note"] == "recorded on 2026-11-30"
    assert rows["06_compare_2_cloud_text"]["quality"] == "found 1 of 2 texts read by eye (recorded on 2026-11-30)"
