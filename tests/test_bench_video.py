"""`bench --video`: the synthetic clip's figures are where figure_boxes says, and a pass's row
holds its frame count, speed and the jitter before and after smoothing (smoothing lowers it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from sam3dbody_gui.bench_video import figure_boxes, format_video_table, make_bench_clip, video_row  # noqa: E402
from sam3dbody_gui.video.reader import VideoReader  # noqa: E402

SIZE = (360, 640)


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    torch.set_num_threads(before)


def test_the_clip_draws_each_figure_inside_its_box(tmp_path, monkeypatch):
    import sam3dbody_gui.bench_video as bv

    monkeypatch.setattr(bv, "FIGURE_HW", (240, 90))
    path = make_bench_clip(tmp_path / "c.mp4", people=2, frames=3, size_hw=SIZE)
    with VideoReader(path) as reader:
        frames = {f.index: f.rgb for f in reader.frames()}
    assert sorted(frames) == [0, 1, 2]
    for i, rgb in frames.items():
        bright = rgb.astype(int).max(2) > 180  # the figures; the noise stays under 120 (+ codec error)
        inside = np.zeros_like(bright)
        for x1, y1, x2, y2 in figure_boxes(2, i, SIZE):
            inside[int(y1):int(y2), int(x1):int(x2)] = True
        assert bright[inside].mean() > 0.2 and bright[~inside].mean() < 0.01


def test_a_pass_row_has_its_frames_speed_and_jitter(tmp_path, monkeypatch, pipe):
    import sam3dbody_gui.bench_video as bv

    monkeypatch.setattr(bv, "FIGURE_HW", (240, 90))
    path = make_bench_clip(tmp_path / "c.mp4", people=2, frames=6, size_hw=SIZE)
    row = video_row(pipe, path, figure_boxes(2, 0, SIZE), tmp_path / "work")
    assert row.people == 2 and row.frames == 6 and row.fps > 0 and row.size_hw == SIZE
    assert row.ms_per_frame == pytest.approx(1e3 / row.fps)
    assert np.isfinite(row.jitter_before_mm) and 0 <= row.jitter_after_mm < row.jitter_before_mm
    table = format_video_table([row], "tiny model, CPU")
    assert "640×360" in table and f"{row.fps:9.2f}" in table
