"""The person detector: post-processing against hand-computed answers, the synthetic RT-DETRv2
folder through the real loading code and an end-to-end run on CPU, the folder's error messages,
and the detector repository through the Hub machinery (a local Hub stand-in, no internet)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_hub import FakeHub, isolate_huggingface_hub
from huggingface_hub import constants

from sam3dbody_gui import hub, hub_detector
from sam3dbody_gui.errors import ModelFolderError, UserError
from sam3dbody_gui.model.detector_folder import DetectorUnavailable, import_transformers, read_detector_folder
from sam3dbody_gui.model.detector_postprocess import box_iou, boxes_to_photo, nms, select_people

PERSON, CAR = 0, 2


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def outputs(rows):
    """rows: (person score, car score, (cx, cy, w, h)) -> logits (Q, 80), boxes (Q, 4)."""
    logits = torch.full((len(rows), 80), -9.0)
    boxes = torch.zeros(len(rows), 4)
    for i, (p, c, box) in enumerate(rows):
        logits[i, PERSON], logits[i, CAR] = logit(p), logit(c)
        boxes[i] = torch.tensor(box)
    return logits, boxes


# ------------------------------------------------------------------ post-processing ---
def test_boxes_scale_back_to_a_non_square_photo():
    # Photo 200 high, 400 wide: x by 400, y by 200 (the input was the photo stretched to 640x640).
    got = boxes_to_photo(torch.tensor([[0.5, 0.25, 0.5, 0.1], [0.95, 0.9, 0.2, 0.4]]), (200, 400))
    assert got[0].tolist() == pytest.approx([100.0, 40.0, 300.0, 60.0])
    assert got[1].tolist() == pytest.approx([340.0, 140.0, 400.0, 200.0])  # clipped at the right and bottom


def test_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[1.0, 0.0, 11.0, 10.0], [5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 30.0]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([90 / 110, 25 / 175, 0.0])


def test_threshold_and_person_class_only():
    logits, boxes = outputs([
        (0.90, 0.01, (0.2, 0.5, 0.1, 0.4)),
        (0.40, 0.01, (0.5, 0.5, 0.1, 0.4)),  # below the threshold
        (0.02, 0.99, (0.8, 0.5, 0.1, 0.4)),  # a confident car: not a person
        (0.60, 0.95, (0.8, 0.2, 0.1, 0.2)),  # a person the car column rates higher: still a person
    ])
    found = select_people(logits, boxes, (100, 100), PERSON, min_score=0.5)
    assert [round(p.score, 4) for p in found.people] == [0.9, 0.6]
    assert found.people[0].box_xyxy == pytest.approx((15.0, 30.0, 25.0, 70.0))
    assert found.people[1].box_xyxy == pytest.approx((75.0, 10.0, 85.0, 30.0))
    assert not found.capped and found.found == 2 and found.message() == "found 2 people"
    # A threshold is a minimum: a score equal to it passes.
    assert len(select_people(logits, boxes, (100, 100), PERSON, min_score=0.4).people) == 3


def test_nms_drops_the_lower_of_two_overlapping_and_keeps_the_rest():
    # On a 100x100 photo: A (0,0)-(10,10) and B (1,0)-(11,10) overlap by 90/110 = 0.82 > 0.7;
    # D (5,5)-(15,15) overlaps A by a crowd-like 25/175 = 0.14 and stays; E is far away.
    logits, boxes = outputs([
        (0.80, 0.01, (0.06, 0.05, 0.10, 0.10)),  # B: the lower of the pair
        (0.95, 0.01, (0.05, 0.05, 0.10, 0.10)),  # A
        (0.70, 0.01, (0.10, 0.10, 0.10, 0.10)),  # D: overlaps A by 0.14
        (0.60, 0.01, (0.75, 0.75, 0.10, 0.10)),  # E
    ])
    found = select_people(logits, boxes, (100, 100), PERSON, min_score=0.5, nms_iou=0.7)
    assert [round(p.score, 4) for p in found.people] == [0.95, 0.7, 0.6]
    assert found.people[0].box_xyxy == pytest.approx((0.0, 0.0, 10.0, 10.0))
    # A looser threshold than their overlap keeps both.
    assert len(select_people(logits, boxes, (100, 100), PERSON, min_score=0.5, nms_iou=0.85).people) == 4
    # Ties: the first one wins, every time.
    same = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    assert nms(same, torch.tensor([0.5, 0.5, 0.5]), 0.7).tolist() == [0]


def test_cap_keeps_the_most_confident_and_says_so():
    rows = [(s, 0.01, (0.1 + 0.2 * i, 0.5, 0.1, 0.2)) for i, s in enumerate([0.6, 0.9, 0.7, 0.95, 0.8])]
    logits, boxes = outputs(rows)
    capped = select_people(logits, boxes, (100, 100), PERSON, max_people=3)
    assert [round(p.score, 2) for p in capped.people] == [0.95, 0.9, 0.8]
    assert capped.capped and capped.found == 5
    assert "found 5 people; kept the 3 most confident" in capped.message()
    exact = select_people(logits, boxes, (100, 100), PERSON, max_people=5)
    assert not exact.capped and len(exact.people) == 5
    assert len(select_people(logits, boxes, (100, 100), PERSON, max_people=None).people) == 5


def test_cap_counts_people_after_nms():
    """A duplicate must not use up a place under the cap."""
    logits, boxes = outputs([(0.9, 0.01, (0.2, 0.5, 0.2, 0.4)), (0.85, 0.01, (0.2, 0.5, 0.2, 0.4)),
                             (0.7, 0.01, (0.7, 0.5, 0.2, 0.4))])
    found = select_people(logits, boxes, (100, 100), PERSON, max_people=2)
    assert [round(p.score, 2) for p in found.people] == [0.9, 0.7] and not found.capped


def test_no_person_and_degenerate_boxes():
    logits, boxes = outputs([(0.9, 0.01, (1.2, 0.5, 0.1, 0.1)),  # entirely right of the photo
                             (0.3, 0.01, (0.5, 0.5, 0.2, 0.2))])
    found = select_people(logits, boxes, (100, 100), PERSON, min_score=0.5)
    assert found.people == [] and not found.capped
    assert found.message().startswith("no person found with a score of at least 0.5")


@pytest.mark.parametrize("kw", [dict(min_score=1.5), dict(min_score=-0.1), dict(max_people=0), dict(nms_iou=0.0)])
def test_bad_settings_are_user_errors(kw):
    logits, boxes = outputs([(0.9, 0.01, (0.5, 0.5, 0.2, 0.2))])
    with pytest.raises(UserError):
        select_people(logits, boxes, (100, 100), PERSON, **kw)


# ------------------------------------------------------------ the synthetic folder ---
@pytest.fixture(scope="session")
def detector_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector

    return make_synthetic_detector(tmp_path_factory.mktemp("detectors") / "rtdetr_v2_r18vd", "tiny", seed=0)


@pytest.fixture(scope="session")
def detector(detector_dir):
    from sam3dbody_gui.model.detector import load_detector

    return load_detector(detector_dir)


def _photo(h: int, w: int) -> np.ndarray:
    return (np.random.default_rng(7).random((h, w, 3)) * 255).astype(np.uint8)


def test_synthetic_folder_has_the_published_layout(detector_dir):
    names = sorted(p.name for p in detector_dir.iterdir())
    assert names == ["SYNTHETIC.txt", "config.json", "model.safetensors", "preprocessor_config.json"]
    config = json.loads((detector_dir / "config.json").read_text())
    assert config["model_type"] == "rt_detr_v2" and config["architectures"] == ["RTDetrV2ForObjectDetection"]
    assert len(config["id2label"]) == 80 and config["id2label"]["0"] == "person"
    assert config["id2label"]["57"] == "sofa"  # the published config's COCO names
    pre = json.loads((detector_dir / "preprocessor_config.json").read_text())
    assert pre["size"] == {"height": 640, "width": 640} and pre["do_rescale"] and not pre["do_normalize"]
    from safetensors import safe_open

    with safe_open(str(detector_dir / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    # The published (transformers 4.x) tensor names, which transformers 5 renames as it loads them.
    assert {"model.encoder.encoder.0.layers.0.fc1.weight", "model.decoder.layers.0.self_attn.out_proj.weight",
            "model.decoder.layers.1.fc2.bias", "model.decoder.class_embed.0.bias"} <= names
    assert not [n for n in names if ".mlp." in n or ".o_proj." in n or ".aifi." in n]
    found = read_detector_folder(detector_dir)
    assert found.person_id == 0 and found.synthetic and found.preprocess.size_hw == (640, 640)
    assert found.preprocess.rescale == pytest.approx(1 / 255) and found.preprocess.mean is None


def test_synthetic_detector_is_deterministic_by_seed(detector_dir, detector, tmp_path):
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector, random_state

    again = make_synthetic_detector(tmp_path / "again", "tiny", seed=0)
    digest = lambda p: hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    assert digest(again) == digest(detector_dir)
    one, other = random_state(detector.model, 0), random_state(detector.model, 1)
    name = "model.decoder.layers.0.mlp.fc1.weight"  # transformers 5's name for the file's ...layers.0.fc1.weight
    assert torch.equal(one[name], detector.model.state_dict()[name]) and not torch.equal(one[name], other[name])


def test_preprocess_is_the_published_one(detector):
    img = _photo(30, 50)
    x = detector.prepare(img)
    assert x.shape == (1, 3, 640, 640) and x.dtype == torch.float32
    from PIL import Image

    want = np.asarray(Image.fromarray(img).resize((640, 640), Image.BILINEAR), dtype=np.float32) / 255
    assert torch.allclose(x[0].permute(1, 2, 0), torch.from_numpy(want), atol=1e-6)


def test_detects_people_end_to_end_on_cpu(detector):
    photo = _photo(300, 500)  # non-square
    found = detector.detect(photo, min_score=0.5, max_people=4)
    # The synthetic heads rate every query a person at ~0.98: more than 4 people, so the cap bites.
    assert len(found.people) == 4 and found.capped and found.found > 4
    assert "kept the 4 most confident" in found.message()
    scores = [p.score for p in found.people]
    assert scores == sorted(scores, reverse=True) and all(0.95 < s < 1 for s in scores)
    for p in found.people:
        x1, y1, x2, y2 = p.box_xyxy
        assert 0 <= x1 < x2 <= 500 and 0 <= y1 < y2 <= 300
    iou = box_iou(torch.tensor([p.box_xyxy for p in found.people]), torch.tensor([p.box_xyxy for p in found.people]))
    assert (iou.triu(1) <= 0.7 + 1e-6).all(), "NMS ran: no two kept boxes overlap beyond the threshold"
    assert detector.detect(photo, min_score=0.5, max_people=4) == found  # the same photo, the same answer
    # A reduced copy with the full photo's size: the same boxes, in full-resolution pixels.
    doubled = detector.detect(photo, min_score=0.5, max_people=4, photo_hw=(600, 1000))
    assert [v for p in doubled.people for v in p.box_xyxy] == pytest.approx(
        [2 * v for p in found.people for v in p.box_xyxy], rel=1e-5)
    none = detector.detect(photo, min_score=0.999)
    assert none.people == [] and "no person found" in none.message()


# ------------------------------------------------------------------- bad folders ---
def _copy(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for p in src.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


def _load_error(folder: Path) -> str:
    from sam3dbody_gui.model.detector import load_detector

    with pytest.raises(ModelFolderError) as err:
        load_detector(folder)
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_or_wrong_folder(tmp_path):
    assert "detector folder not found" in _load_error(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in _load_error(tmp_path / "file")
    sam = tmp_path / "sam-3d-body"  # the mesh model's folder chosen by mistake
    sam.mkdir()
    (sam / "model.ckpt").write_bytes(b"x")
    (sam / "model_config.yaml").write_text("x: 1")
    text = _load_error(sam)
    assert "config.json is missing" in text and "download --detector" in text


def test_missing_and_corrupt_files(tmp_path, detector_dir):
    folder = _copy(detector_dir, tmp_path / "no-weights")
    (folder / "model.safetensors").unlink()
    assert "model.safetensors is missing" in _load_error(folder)

    folder = _copy(detector_dir, tmp_path / "truncated")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    text = _load_error(folder)
    assert "model.safetensors" in text and "cannot be read" in text and "download it again" in text

    folder = _copy(detector_dir, tmp_path / "bad-json")
    (folder / "config.json").write_text("{not json")
    assert "config.json is not valid JSON" in _load_error(folder)


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_another_model_or_weights_that_do_not_fit(tmp_path, detector_dir):
    folder = _copy(detector_dir, tmp_path / "v1")
    _edit_config(folder, model_type="rt_detr")
    assert "not an RT-DETRv2 detector" in _load_error(folder)

    folder = _copy(detector_dir, tmp_path / "no-person")
    config = json.loads((folder / "config.json").read_text())
    _edit_config(folder, id2label={k: ("human" if v == "person" else v) for k, v in config["id2label"].items()})
    assert "no 'person' class" in _load_error(folder)

    folder = _copy(detector_dir, tmp_path / "wider")  # config.json of a wider network than the weights
    _edit_config(folder, decoder_ffn_dim=128)
    text = _load_error(folder)
    assert "model.safetensors" in text and ("shape mismatch" in text or "misshapen" in text)

    from safetensors.torch import load_file, save_file

    folder = _copy(detector_dir, tmp_path / "short")
    state = load_file(folder / "model.safetensors")
    del state["model.decoder.layers.0.fc1.weight"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert "1 missing" in _load_error(folder)


def test_without_transformers_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(DetectorUnavailable) as err:
        import_transformers()
    assert "pip install 'sam3dbody-gui[detect]'" in str(err.value)


# ------------------------------------------------------------------------- the Hub ---
@pytest.fixture
def detector_hub(detector_dir, monkeypatch, tmp_path):
    isolate_huggingface_hub(monkeypatch, tmp_path)
    files = {name: (detector_dir / name).read_bytes() for name in hub_detector._NAMES}
    fh = FakeHub({hub_detector.DETECTOR_REPO: files}).start()
    monkeypatch.setattr(hub_detector, "detector_app_folder", lambda: tmp_path / "app-folder")
    yield fh, files
    fh.stop()


def _options(tmp_path, fh) -> hub.HubOptions:
    return hub.HubOptions(cache_dir=tmp_path / "hub", endpoint=fh.url, link_dir=tmp_path / "links")


def test_download_resume_then_offline(tmp_path, detector_hub, monkeypatch):
    from sam3dbody_gui.model.detector import load_detector

    fh, files = detector_hub
    opts = _options(tmp_path, fh)
    status = hub_detector.detector_status(opts)
    assert not status.installed and "download --detector" in status.describe()
    assert hub_detector.find_installed_detector(opts) is None

    # Interrupted part-way: the partial file is kept, and the next download continues it.
    monkeypatch.setattr(hub, "RESUMABLE_MIN_BYTES", 100_000)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.phase)
        if p.file is not None and p.file.filename == "model.safetensors" and p.done >= 300_000:
            cancel.set()

    with pytest.raises(hub.DownloadCancelled):
        hub_detector.download_detector(opts, progress, cancel)
    assert "checking" in seen and "downloading" in seen
    kept = hub_detector.detector_status(opts).partial
    assert 300_000 <= kept < len(files["model.safetensors"])
    result = hub_detector.download_detector(opts)
    resumed = fh.gets("model.safetensors")[-1]
    assert resumed.range == f"bytes={kept}-" and resumed.status == 206
    assert result.folder is not None and sorted(s.file.filename for s in result.statuses if s.present) == \
        sorted(hub_detector._NAMES)
    assert (result.folder / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert hub_detector.find_installed_detector(opts) == result.folder
    assert hub_detector.detector_status(opts).installed

    fh.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = hub_detector.download_detector(opts)
    assert again.offline and again.folder == result.folder
    assert load_detector(again.folder).found.person_id == 0


def test_offline_without_the_files_says_what_is_missing(tmp_path, detector_hub, monkeypatch):
    fh, _ = detector_hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(hub.HubError) as err:
        hub_detector.download_detector(_options(tmp_path, fh))
    assert "HF_HUB_OFFLINE=1" in str(err.value) and "PekingU/rtdetr_v2_r18vd/model.safetensors" in str(err.value)


def test_the_app_folder_is_found_when_the_cache_has_none(tmp_path, detector_hub, detector_dir):
    fh, _ = detector_hub
    _copy(detector_dir, tmp_path / "app-folder")
    assert hub_detector.find_installed_detector(_options(tmp_path, fh)) == tmp_path / "app-folder"
    assert hub_detector.detector_status(_options(tmp_path, fh)).folder == tmp_path / "app-folder"


def test_cli_download_into_a_folder(tmp_path, detector_hub, monkeypatch):
    import io

    fh, files = detector_hub
    out = io.StringIO()
    folder = hub_detector.cli_download_detector(dest=tmp_path / "det", out=out, endpoint=fh.url)
    assert folder == (tmp_path / "det").resolve()
    assert (folder / "model.safetensors").read_bytes() == files["model.safetensors"]
    text = out.getvalue()
    assert "PekingU/rtdetr_v2_r18vd" in text and "Apache-2.0" in text and f"detector folder: {folder}" in text
    assert text.count("ok     ") == 3
