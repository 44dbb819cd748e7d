"""params.json says what frame each array is in, and the arrays are in that frame."""

from __future__ import annotations

import json

import numpy as np
import trimesh

from sam3dbody_gui.export.mesh_file import save_mesh


def test_json_frames_are_what_the_arrays_are(tiny_model_dir, tmp_path):
    from sam3dbody_gui.pipeline.build import build_pipeline

    image = np.full((480, 360, 3), 90, np.uint8)
    result = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch",
                            cuda_graph=False).run(image, (40, 20, 320, 460))
    data = json.loads(json.dumps(result.to_json_dict()))
    frames = data["frames"]
    assert "add cam_t" in frames["keypoints_3d"] and "already includes cam_t" in frames["mesh_files"]
    # keypoints_3d + cam_t, projected with the intrinsics, land on keypoints_2d.
    k = np.array(data["intrinsics"])
    p = np.array(data["keypoints_3d"]) + np.array(data["cam_t"])
    projected = p[:, :2] / p[:, 2:3] * k[[0, 1], [0, 1]] + k[:2, 2]
    np.testing.assert_allclose(projected, np.array(data["keypoints_2d"]), atol=0.05)
    # The camera-frame mesh file holds vertices + cam_t: it projects onto the photo as is.
    mesh = trimesh.load(save_mesh(tmp_path / "m.obj", result.vertices_camera, result.faces), process=False)
    np.testing.assert_allclose(mesh.vertices, result.vertices + np.array(data["cam_t"]), atol=1e-5)
    assert "frame" not in data  # the old, wrong sentence ("mesh point = vertex + cam_t") is gone
