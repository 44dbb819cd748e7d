"""A clip through the tiny model, end to end: `video` with the user's boxes and with the detector,
the animated glTF read back and skinned here (it must give the per-frame pipeline's body at every
key), the BVH's frame count, the JSON Lines and overlay video, a crashed and a cancelled run
resumed to the same outputs, and smoothing measured on a noisy motion."""

from __future__ import annotations

import json

import av
import numpy as np
import pygltflib as gl
import pytest

from sam3dbody_gui.cli import main
from test_video_reader import corrupt_frame, make_clip

MM = 1e-3
FLIP = np.array([1.0, -1.0, -1.0])
BOXES = [(10, 15, 40, 105), (120, 12, 150, 108)]  # the two figures on the first frame
BAD_FRAME = 5
FRAMES = 12


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """The tiny model on one thread for this module (conftest.py says why)."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    make_clip(folder / "clean.mp4", frames=FRAMES)
    corrupt_frame(folder / "clean.mp4", folder / "clip.mp4", BAD_FRAME)
    return folder / "clip.mp4"


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


def _video_args(clip, model, out, work, *extra):
    # fp32 like `pipe` (on a CPU `auto` may pick int8, tests/test_cpu_fast_path.py)
    args = ["video", str(clip), "--model", str(model), "--device", "cpu", "--precision", "fp32",
            "--work-dir", str(work),
            "--out", str(out / "anim.glb"), "--bvh", str(out / "anim.bvh"), "--json", str(out / "frames.jsonl"),
            "--overlay-video", str(out / "overlay.mp4")]
    for box in BOXES:
        args += ["--bbox", *map(str, box)]
    return args + list(extra)


@pytest.fixture(scope="module")
def first_run(clip, tiny_model_dir, tmp_path_factory):
    """One uninterrupted run, smoothing off and each frame's own identity: the outputs must hold
    the pipeline's per-frame bodies."""
    out, work = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work")
    assert main(_video_args(clip, tiny_model_dir, out, work, "--smooth", "0", "--identity", "frame")) == 0
    records = [json.loads(line) for line in next(work.glob("*.jsonl")).read_text().splitlines()[1:]]
    return out, work, records


# --- a small glTF animation reader and skinner ---------------------------------------------------
_COMPONENTS = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_INT: np.uint32}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _accessor(doc, index):
    acc = doc.accessors[index]
    width, blob = _WIDTH[acc.type], doc.binary_blob()

    def view(v, dtype, count):
        bv = doc.bufferViews[v]
        return np.frombuffer(blob, dtype, count=count, offset=bv.byteOffset or 0)

    if acc.bufferView is None:
        data = np.zeros((acc.count, width))
    else:
        data = view(acc.bufferView, _COMPONENTS[acc.componentType], acc.count * width).reshape(acc.count, width)
    if acc.sparse is not None:
        data = np.array(data, np.float64)
        idx = view(acc.sparse.indices.bufferView, _COMPONENTS[acc.sparse.indices.componentType], acc.sparse.count)
        values = view(acc.sparse.values.bufferView, np.float32, acc.sparse.count * width)
        data[idx.astype(int)] = values.reshape(-1, width)
    return np.asarray(data, np.float64)


def _matrix(t, q, s):
    x, y, z, w = q / np.linalg.norm(q)
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r * s, t
    return m


def _pose_at(doc, key):
    """Every animated node's (translation, rotation, scale) at keyframe `key`, and mesh weights."""
    trs, weights = {}, {}
    for channel in doc.animations[0].channels:
        sampler = doc.animations[0].samplers[channel.sampler]
        out = _accessor(doc, sampler.output)
        node, path = channel.target.node, channel.target.path
        if path == "weights":
            n = len(_accessor(doc, sampler.input))
            weights[node] = out.reshape(n, -1)[key]
        else:
            trs.setdefault(node, {})[path] = out[key]
    return trs, weights


def _skinned_at(doc, mesh_node, key):
    trs, weights = _pose_at(doc, key)
    worlds = {}

    def visit(i, parent):
        p = trs.get(i, {})
        worlds[i] = parent @ _matrix(p["translation"], p["rotation"], p["scale"])
        for c in doc.nodes[i].children:
            visit(c, worlds[i])

    node = doc.nodes[mesh_node]
    skin = doc.skins[node.skin]
    visit(skin.skeleton, np.eye(4))
    prim = doc.meshes[node.mesh].primitives[0]
    pos = _accessor(doc, prim.attributes.POSITION)
    for w, target in zip(weights.get(mesh_node, []), prim.targets or []):
        if w:  # pygltflib reads a morph target back as a dict
            pos = pos + w * _accessor(doc, target["POSITION"] if isinstance(target, dict) else target.POSITION)
    ibm = _accessor(doc, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    mats = np.stack([worlds[j] for j in skin.joints]) @ ibm
    joints = _accessor(doc, prim.attributes.JOINTS_0).astype(int)
    per_vertex = np.einsum("vk,vkij->vij", _accessor(doc, prim.attributes.WEIGHTS_0), mats[joints])
    return np.einsum("vij,vj->vi", per_vertex[:, :3, :3], pos) + per_vertex[:, :3, 3]


def _decoded(clip):
    from sam3dbody_gui.video.reader import VideoReader

    with VideoReader(clip) as reader:
        return {f.index: f.rgb for f in reader.frames()}


def test_the_animated_gltf_is_the_per_frame_pipeline_at_every_key(first_run, clip, pipe):
    out, _, records = first_run
    doc = gl.GLTF2().load(str(out / "anim.glb"))
    decoded = [r for r in records if not r.get("skipped")]
    n = len(decoded)
    assert n == FRAMES - 1
    assert len(doc.skins) == 2 and len(doc.animations) == 1
    joint_nodes = {j for skin in doc.skins for j in skin.joints}
    counts = {}
    for channel in doc.animations[0].channels:
        if channel.target.path != "weights":
            counts.setdefault(channel.target.node, []).append(
                doc.accessors[doc.animations[0].samplers[channel.sampler].input].count)
    assert set(counts) == joint_nodes and all(c == [n, n, n] for c in counts.values())  # N keys per joint

    # The per-frame pipeline, run here on the decoded frames with each frame's boxes.
    frames = _decoded(clip)
    reference = {r["frame"]: pipe.run_people(frames[r["frame"]], [p["box"] for p in r["people"]]) for r in decoded}
    every = np.concatenate([v.vertices_camera * FLIP for rs in reference.values() for v in rs])
    lo, hi = every.min(0), every.max(0)
    shift = -np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])  # one upright frame for the clip
    mesh_nodes = [i for i, node in enumerate(doc.nodes) if node.skin is not None]
    worst = 0.0
    for key, record in enumerate(decoded):
        for person, mesh_node in enumerate(mesh_nodes):
            want = reference[record["frame"]][person].vertices_camera * FLIP + shift
            got = _skinned_at(doc, mesh_node, key)
            worst = max(worst, np.linalg.norm(got - want, axis=1).max())
    print(f"\nanimated glTF vs per-frame pipeline: max {worst / MM:.4f} mm over {n} keys, 2 people")
    assert worst < 1 * MM


def test_bvh_jsonl_and_overlay_video_cover_the_clip(first_run, clip):
    out, _, records = first_run
    n = FRAMES - 1
    bvh = (out / "anim.bvh").read_text()
    assert f"\nFrames: {n}\n" in bvh
    motion = bvh.split("Frame Time:")[1].strip().splitlines()[1:]
    assert len(motion) == n
    lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "clip" and lines[0]["people"] == [1, 2] and lines[0]["frames"] == FRAMES
    frames = lines[1:]
    assert [f["frame"] for f in frames] == list(range(FRAMES))
    assert "does not decode" in frames[BAD_FRAME]["skipped"] and frames[BAD_FRAME]["people"] == []
    assert all([p["id"] for p in f["people"]] == [1, 2] for f in frames if f["frame"] != BAD_FRAME)
    assert [p["source"] for p in frames[0]["people"]] == ["user", "user"]
    assert frames[1]["people"][0]["source"] == "carried"
    assert len(frames[1]["people"][0]["params"]["mhr_model_params"]) == 204
    with av.open(str(out / "overlay.mp4")) as container:
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(pictures) == n and pictures[0].shape == (120, 160, 3)
    source = _decoded(clip)[0].astype(int)
    assert np.abs(pictures[0].astype(int) - source).mean() > 5  # the meshes are drawn over it


def test_a_crashed_run_resumes_to_the_same_outputs(first_run, clip, tiny_model_dir, tmp_path, capsys):
    out, work, _ = first_run
    crashed = tmp_path / "work"
    crashed.mkdir()
    name = next(work.glob("*.jsonl")).name
    lines = (work / name).read_text().splitlines(keepends=True)
    (crashed / name).write_text("".join(lines[:1 + 4]) + lines[5][: len(lines[5]) // 2])  # cut mid-line
    again = tmp_path / "out"
    again.mkdir()
    capsys.readouterr()
    assert main(_video_args(clip, tiny_model_dir, again, crashed, "--smooth", "0", "--identity", "frame")) == 0
    said = capsys.readouterr().out
    assert "resuming: 4 frames done earlier" in said and "cut short" in said
    assert "over 7 frames computed now" in said  # frames 4, 6-11 (5 is the corrupt one, recorded as skipped)
    for file in ("anim.glb", "anim.bvh", "frames.jsonl", "overlay.mp4"):
        assert (again / file).read_bytes() == (out / file).read_bytes(), file


def test_a_cancelled_pass_resumes_to_the_same_frames(first_run, clip, pipe, tmp_path):
    from sam3dbody_gui.video.clip_processor import ClipOptions, ClipProcessor
    from sam3dbody_gui.video.reader import VideoReader
    from sam3dbody_gui.video.work_file import WorkFile

    _, _, uninterrupted = first_run
    options = ClipOptions(boxes=tuple(BOXES), max_frames=8)
    seen, shown = [], []

    def run(cancel):
        work = WorkFile.open(tmp_path, clip, {"test": 1})
        with VideoReader(clip) as reader:
            done = ClipProcessor(pipe, reader, options, work).run(
                progress=lambda d, t: seen.append((d, t)), cancel=cancel,
                on_frame=lambda frame, record, results: shown.append((frame.index, len(results))))
        work.close()
        return done

    stopped = run(cancel=lambda: len(shown) >= 3)
    assert not stopped.complete and [r["frame"] for r in stopped.records] == [0, 1, 2]
    resumed = run(cancel=lambda: False)
    assert resumed.complete and resumed.resumed == 3 and resumed.computed == 4  # 3, 4, 6, 7
    assert [r["frame"] for r in resumed.records] == list(range(8))
    assert resumed.skipped and resumed.skipped[0][0] == BAD_FRAME
    assert shown == [(0, 2), (1, 2), (2, 2), (3, 2), (4, 2), (6, 2), (7, 2)]  # the window's live results
    assert seen[-1] == (8, 8)
    assert resumed.records == uninterrupted[:8]


def test_detect_tracks_people_and_carries_them_between_detector_frames(clip, tiny_model_dir, tmp_path):
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector

    detector = make_synthetic_detector(tmp_path / "detector", "tiny", seed=0)
    args = ["video", str(clip), "--model", str(tiny_model_dir), "--device", "cpu", "--work-dir", str(tmp_path),
            "--detect", "--detector", str(detector), "--detect-every", "3", "--max-people", "2",
            "--max-frames", "5", "--json", str(tmp_path / "frames.jsonl"), "--out", str(tmp_path / "anim.glb")]
    assert main(args) == 0
    frames = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()[1:]]
    assert [f["frame"] for f in frames] == [0, 1, 2, 3, 4]
    sources = [{p["source"] for p in f["people"]} for f in frames]
    assert sources[0] == {"detector"} and sources[3] == {"detector"}
    assert sources[1] <= {"carried"} and sources[2] <= {"carried"}
    ids = {p["id"] for f in frames for p in f["people"]}
    assert ids and all(isinstance(i, int) and i >= 1 for i in ids)
    assert gl.GLTF2().load(str(tmp_path / "anim.glb")).animations[0].channels


def test_smoothing_lowers_the_jitter_of_a_noisy_motion(first_run, pipe):
    from sam3dbody_gui.video.motion import camera_joints, clip_motion
    from sam3dbody_gui.video.smoothing import jitter_mm

    _, _, records = first_run
    template = records[0]["people"][0]
    rng = np.random.default_rng(0)
    frames, clean = 30, []
    for f in range(frames):  # a slow sway of every joint and a walk towards the camera...
        person = dict(template, id=1)
        person["pose_raw"] = (np.array(template["pose_raw"]) + 0.2 * np.sin(2 * np.pi * f / frames)).tolist()
        person["cam_t"] = (np.array(template["cam_t"]) + [0.0, 0.0, -0.02 * f]).tolist()
        clean.append({"frame": f, "time": f / 30, "detections": None, "people": [person]})
    noisy = []
    for record in clean:  # ... seen through a jittery estimate
        person = dict(record["people"][0])
        person["pose_raw"] = (np.array(person["pose_raw"]) + rng.normal(0, 0.03, 266)).tolist()
        person["cam_t"] = (np.array(person["cam_t"]) + rng.normal(0, 0.005, 3)).tolist()
        noisy.append(dict(record, people=[person]))
    truth = camera_joints(clip_motion(clean, pipe.model, (120, 160), 30.0, strength=0).people[1].results)
    raw = clip_motion(noisy, pipe.model, (120, 160), 30.0, strength=0, identity="frame").people[1]
    smooth = clip_motion(noisy, pipe.model, (120, 160), 30.0, strength=0.5).people[1]
    assert raw.jitter_before_mm == raw.jitter_after_mm == smooth.jitter_before_mm
    assert clip_motion(noisy, pipe.model, (120, 160), 30.0, strength=0.5).jitter_mm()[1] == (
        smooth.jitter_before_mm, smooth.jitter_after_mm)
    print(f"\njitter (mm/frame²): clean {jitter_mm(truth, range(frames)):.2f}, noisy {smooth.jitter_before_mm:.2f}, "
          f"smoothed {smooth.jitter_after_mm:.2f}")
    assert smooth.jitter_after_mm < 0.4 * smooth.jitter_before_mm
    # Smoothing brings the motion nearer the true one; it does not just flatten it.
    off_raw = np.linalg.norm(camera_joints(raw.results) - truth, axis=-1).mean()
    off_smooth = np.linalg.norm(camera_joints(smooth.results) - truth, axis=-1).mean()
    assert off_smooth < 0.8 * off_raw


@pytest.mark.parametrize("extra,message", [
    ([], "give --detect"),
    (["--bbox", "1", "2", "30", "40", "--smooth", "1.5", "--json", "f.jsonl"], "--smooth goes from 0"),
    (["--bbox", "1", "2", "30", "40", "--out", "anim.obj"], "saved as .glb"),
    (["--bbox", "1", "2", "30", "40", "--detect", "--json", "f.jsonl"], "not both"),
    (["--bbox", "1", "2", "30", "40"], "nothing to write"),
])
def test_mistakes_are_one_error_line_before_any_work(extra, message, clip, tmp_path, capsys):
    assert main(["video", str(clip), "--model", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_a_morph_target_that_moves_few_vertices_is_stored_sparse():
    from sam3dbody_gui.export.animated_gltf import MORPH_EPS_M, _morph_accessor
    from sam3dbody_gui.export.rigged_gltf import _Blob

    doc = gl.GLTF2(accessors=[], bufferViews=[], buffers=[])
    blob = _Blob(doc)
    delta = np.zeros((1000, 3), np.float32)
    delta[[3, 500, 999]] = [[0.01, 0, 0], [0, -0.002, 0.003], [0, 0, 0.02]]
    delta[7] = MORPH_EPS_M / 2  # below the threshold: left out
    sparse = _morph_accessor(blob, delta)
    dense = _morph_accessor(blob, np.full((10, 3), 0.001, np.float32))
    data = blob.bytes()
    doc.buffers.append(gl.Buffer(byteLength=len(data)))
    doc.set_binary_blob(data)
    acc = doc.accessors[sparse]
    assert acc.bufferView is None and acc.sparse.count == 3
    want = delta.copy()
    want[7] = 0
    assert np.array_equal(_accessor(doc, sparse), want)
    assert acc.min == want.min(0).tolist() and acc.max == want.max(0).tolist()  # POSITION needs bounds
    assert doc.accessors[dense].sparse is None and np.allclose(_accessor(doc, dense), 0.001)
