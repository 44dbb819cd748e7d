"""Reading a clip: every container the command takes, frames by timestamp, seeking, and a frame
that does not decode reported and skipped with the frames after it keeping their numbers."""

from __future__ import annotations

import av
import numpy as np
import pytest

from sam3dbody_gui.errors import UserError
from sam3dbody_gui.video.reader import VideoReader

SIZE_HW = (120, 160)


def make_clip(path, frames: int = 12, fps: int = 12, codec: str = "libx264", fmt=None):
    """Two figures moving across noise in opposite directions (they cross mid-clip); every frame
    a keyframe (so damage to one stays in that frame). Returns the figures' boxes per frame."""
    h, w = SIZE_HW
    rng = np.random.default_rng(0)
    boxes = []
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": "1"} if codec == "libx264" else {}
        for i in range(frames):
            picture = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
            a = (10 + 8 * i, 15, 40 + 8 * i, 105)
            b = (w - 40 - 8 * i, 12, w - 10 - 8 * i, 108)
            picture[a[1]:a[3], a[0]:a[2]] = (230, 200, 60)
            picture[b[1]:b[3], b[0]:b[2]] = (60, 200, 230)
            boxes.append((a, b))
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return boxes


def corrupt_frame(src, dst, index: int) -> None:
    """A copy of `src` with frame `index`'s data overwritten with noise (its header kept)."""
    with av.open(str(src)) as container:
        packets = [(p.pts, p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    packets.sort()
    _, pos, size = packets[index]
    data = bytearray(open(src, "rb").read())
    data[pos + 8:pos + size] = np.random.default_rng(1).integers(0, 255, size - 8, dtype=np.uint8).tobytes()
    open(dst, "wb").write(bytes(data))


@pytest.mark.parametrize("suffix,codec,fmt", [(".mp4", "libx264", "mp4"), (".mov", "libx264", "mov"),
                                              (".mkv", "libx264", "matroska"), (".webm", "libvpx-vp9", "webm")])
def test_each_container_reads_as_numbered_rgb_frames(tmp_path, suffix, codec, fmt):
    path = tmp_path / f"clip{suffix}"
    boxes = make_clip(path, frames=5, codec=codec, fmt=fmt)
    with VideoReader(path) as reader:
        assert (reader.info.width, reader.info.height, reader.info.fps) == (160, 120, 12.0)
        frames = list(reader.frames())
    assert [f.index for f in frames] == list(range(5))
    assert [round(f.time_s, 4) for f in frames] == [round(i / 12, 4) for i in range(5)]
    for frame, (a, _) in zip(frames, boxes):
        assert frame.rgb.shape == (120, 160, 3) and frame.rgb.dtype == np.uint8
        x1, y1, x2, y2 = a
        inside = frame.rgb[y1 + 4:y2 - 4, x1 + 4:x2 - 4].reshape(-1, 3).mean(0)
        assert np.abs(inside - (230, 200, 60)).max() < 25  # RGB, not BGR: the yellow figure is yellow


def test_seeking_gives_the_frame_reading_in_order_gives(tmp_path):
    make_clip(tmp_path / "clip.mp4")
    with VideoReader(tmp_path / "clip.mp4") as reader:
        in_order = {f.index: f.rgb for f in reader.frames()}
        for index in (7, 2, 11, 0):
            assert np.array_equal(reader.frame_at(index).rgb, in_order[index])
        assert [f.index for f in reader.frames(4, 8)] == [4, 5, 6, 7]
        assert reader.frame_at(40) is None


def test_a_corrupt_frame_is_reported_and_skipped_not_fatal(tmp_path):
    make_clip(tmp_path / "clip.mp4")
    corrupt_frame(tmp_path / "clip.mp4", tmp_path / "bad.mp4", 5)
    bad = []
    with VideoReader(tmp_path / "bad.mp4") as reader:
        indices = [f.index for f in reader.frames(on_bad_frame=lambda i, why: bad.append((i, why)))]
    assert indices == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]  # the frames after it keep their numbers
    assert [i for i, _ in bad] == [5] and "does not decode" in bad[0][1]


def test_what_is_not_a_video_is_a_user_error(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(UserError, match="cannot read the video"):
        VideoReader(tmp_path / "notes.mp4")
    with pytest.raises(UserError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")
