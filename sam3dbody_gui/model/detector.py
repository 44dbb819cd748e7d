"""The person detector: a photo in, person boxes in photo pixels out.

RT-DETRv2-R18 (`PekingU/rtdetr_v2_r18vd`, Apache-2.0 code and weights, COCO-trained) through
`transformers`. Preprocessing is the repository's preprocessor_config.json, done here with PIL
rather than transformers' image processor (whose default needs torchvision): the photo stretched
to 640x640 with PIL's bilinear filter, times 1/255. That is what transformers' PIL image
processor does, and what the model was converted against, so the boxes come out as published.

    detector = load_detector(folder)            # detector_folder.py: files, config, weights
    found = detector.detect(photo_rgb_uint8)    # detector_postprocess.py: threshold, NMS, cap
    for person in found.people: person.box_xyxy, person.score
    found.capped, found.message()

`detect` also takes a reduced copy of a large photo with the full photo's size (`photo_hw`): the
network sees 640x640 either way, and the boxes come back in full-resolution pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..errors import ImageError
from .detector_folder import DetectorFolder, build_detector, read_detector_folder
from .detector_postprocess import (DEFAULT_MAX_PEOPLE, DEFAULT_MIN_SCORE, DEFAULT_NMS_IOU, Detections,
                                   check_settings, select_people)


def check_photo(image) -> None:
    """One clear error for anything but an (H, W, 3) uint8 RGB photo."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8 and min(image.shape[:2]) > 0):
        shape = getattr(image, "shape", None)
        raise ImageError(f"the detector needs an (H, W, 3) uint8 RGB photo, got {type(image).__name__} {shape}")


@dataclass(frozen=True)
class RawOutputs:
    logits: torch.Tensor  # (queries, classes), before the sigmoid
    pred_boxes: torch.Tensor  # (queries, 4): cx, cy, w, h as fractions of the input


class PersonDetector:
    def __init__(self, model: torch.nn.Module, found: DetectorFolder, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        self.model, self.found, self.device, self.dtype = model, found, device, dtype

    @property
    def folder(self) -> Path:
        return self.found.folder

    @property
    def synthetic(self) -> bool:
        return self.found.synthetic

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, 640, 640) as the network expects, on its device."""
        from PIL import Image

        check_photo(image)
        spec = self.found.preprocess
        h, w = spec.size_hw
        resized = Image.fromarray(np.ascontiguousarray(image)).resize((w, h), resample=spec.resample)
        pixels = torch.from_numpy(np.asarray(resized).copy()).to(self.device).permute(2, 0, 1).float()
        if spec.rescale is not None:
            pixels = pixels * spec.rescale
        if spec.mean is not None:
            pixels = (pixels - pixels.new_tensor(spec.mean)[:, None, None]) / pixels.new_tensor(spec.std)[:, None, None]
        # channels_last: the convolutional backbone and encoder run ~20% faster on the CPU (oneDNN)
        return pixels[None].to(self.dtype).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(self, pixel_values: torch.Tensor) -> RawOutputs:
        out = self.model(pixel_values=pixel_values)
        return RawOutputs(out.logits[0].float(), out.pred_boxes[0].float())

    def detect(self, image: np.ndarray, min_score: float = DEFAULT_MIN_SCORE,
               max_people: Optional[int] = DEFAULT_MAX_PEOPLE, nms_iou: float = DEFAULT_NMS_IOU,
               photo_hw: Optional[tuple[int, int]] = None) -> Detections:
        """People in `image`, most confident first. `photo_hw`: the size the boxes are for, when
        `image` is a reduced copy of the photo (default: the image's own size)."""
        check_settings(min_score, nms_iou, max_people)  # before a second of network time, not after
        raw = self.run(self.prepare(image))
        size = tuple(photo_hw) if photo_hw is not None else tuple(image.shape[:2])
        return select_people(raw.logits.cpu(), raw.pred_boxes.cpu(), size, self.found.person_id,
                             min_score, nms_iou, max_people)


def load_detector(folder: Union[str, Path], device: Union[str, torch.device] = "cpu",
                  dtype: torch.dtype = torch.float32) -> PersonDetector:
    """Load a detector folder (ModelFolderError when it is missing, corrupt or another model's;
    DetectorUnavailable without transformers)."""
    found = read_detector_folder(Path(folder))
    device = torch.device(device)
    model = build_detector(found).to(device=device, dtype=dtype, memory_format=torch.channels_last)
    return PersonDetector(model, found, device, dtype)
