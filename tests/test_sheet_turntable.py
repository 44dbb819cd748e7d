"""Contact sheet and turntable, drawn offscreen by the CPU renderer, read back by Pillow and PyAV."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3dbody_gui.errors import UserError
from sam3dbody_gui.export.contact_sheet import CAPTION_HEIGHT, PANEL, contact_sheet
from sam3dbody_gui.export.turnaround import BACKGROUND, render_turned
from sam3dbody_gui.export.turntable_file import save_turntable


@pytest.fixture(scope="module")
def photo_and_result(tiny_model_dir):
    from sam3dbody_gui.pipeline.image_io import load_image
    from sam3dbody_gui.pipeline.build import build_pipeline
    from sam3dbody_gui.bundled import SAMPLE_BOX, sample_image_path

    image = load_image(sample_image_path())
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    return image, pipe.run(image, SAMPLE_BOX)


def _body_mask(picture: np.ndarray) -> np.ndarray:
    return np.abs(picture.astype(int) - np.array(BACKGROUND)).sum(-1) > 30


def test_turned_views_frame_the_body_and_differ_by_yaw(photo_and_result):
    _, result = photo_and_result
    front, side = (render_turned(result.vertices_camera, result.faces, yaw, 256) for yaw in (0, 90))
    for view in (front, side):
        mask = _body_mask(view)
        assert 0.03 < mask.mean() < 0.6
        rows, cols = np.nonzero(mask)
        assert rows.min() > 0 and rows.max() < 255 and cols.min() > 0 and cols.max() < 255  # whole body in frame
        assert rows.max() - rows.min() > 0.6 * 256  # standing: tall in the frame
    # Seen from the side a person is narrower than from the front.
    width = lambda m: np.ptp(np.nonzero(m.any(0))[0])  # noqa: E731
    assert width(_body_mask(side)) < width(_body_mask(front))
    # The back (180°) is the front mirrored left-right, as a silhouette.
    back = render_turned(result.vertices_camera, result.faces, 180, 256)
    assert (_body_mask(back) == _body_mask(front)[:, ::-1]).mean() > 0.97


def test_contact_sheet_has_four_panels_the_crop_first(photo_and_result, tmp_path):
    image, result = photo_and_result
    sheet = contact_sheet(image, result)
    path = tmp_path / "sheet.png"
    sheet.save(path)
    back = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert back.shape == (PANEL + CAPTION_HEIGHT, 4 * PANEL, 3)
    from sam3dbody_gui.pipeline.preprocess import warp_crop_uint8

    np.testing.assert_array_equal(back[:PANEL, :PANEL], warp_crop_uint8(image, result.crop))
    # The overlay panel differs from the crop where the mesh is; the views show a body.
    assert (np.abs(back[:PANEL, PANEL:2 * PANEL] - back[:PANEL, :PANEL]).sum(-1) > 30).mean() > 0.02
    for k in (2, 3):
        assert 0.02 < _body_mask(back[:PANEL, k * PANEL:(k + 1) * PANEL]).mean() < 0.7


def test_turntable_gif_and_mp4_have_one_full_turn(photo_and_result, tmp_path):
    import av

    _, result = photo_and_result
    gif = save_turntable(tmp_path / "spin.gif", result.vertices_camera, result.faces, frames=12, size=128)
    with Image.open(gif) as im:
        assert im.n_frames == 12 and im.size == (128, 128) and im.info.get("loop") == 0
    done = []
    mp4 = save_turntable(tmp_path / "spin.mp4", result.vertices_camera, result.faces, frames=12, size=128,
                         progress=lambda i, n: done.append((i, n)))
    assert done[-1] == (12, 12)
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (128, 128, 3)
    first = render_turned(result.vertices_camera, result.faces, 0, 128)
    assert np.abs(frames[0].astype(int) - first).mean() < 12  # lossy, but the same picture
    assert not list(tmp_path.glob(".spin*"))  # no temporaries left


def test_turntable_refuses_other_formats(photo_and_result, tmp_path):
    _, result = photo_and_result
    with pytest.raises(UserError, match=r"\.gif or \.mp4"):
        save_turntable(tmp_path / "spin.avi", result.vertices_camera, result.faces, frames=2, size=32)
    assert list(tmp_path.iterdir()) == []
