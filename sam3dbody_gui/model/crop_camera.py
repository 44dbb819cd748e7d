"""Where a crop sits in the photo and the photo's camera, as tensors the model consumes."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class CropCamera:
    """One row per crop (batch B).

    box_center: (B, 2) full-image px; box_size: (B,) side of the square crop region in px;
    affine: (B, 2, 3) full-image px → crop px; intrinsics: (B, 3, 3) full-image camera;
    crop_size: the crop's side in px (512).
    """

    box_center: torch.Tensor
    box_size: torch.Tensor
    affine: torch.Tensor
    intrinsics: torch.Tensor
    crop_size: int

    def to(self, device: torch.device | str) -> "CropCamera":
        """float32 on `device`, all fields in one copy (each copy to a GPU costs host time)."""
        tensors = {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}
        packed = torch.cat([t.to(torch.float32).reshape(-1) for t in tensors.values()]).to(device)
        moved, start = {}, 0
        for name, t in tensors.items():
            moved[name] = packed[start : start + t.numel()].view(t.shape)
            start += t.numel()
        return CropCamera(crop_size=self.crop_size, **moved)

    def rows(self, index: torch.Tensor | list[int] | slice) -> "CropCamera":
        """The cameras of some crops (e.g. one person of a batch, or both hands of one)."""
        return CropCamera(crop_size=self.crop_size, **{
            f.name: getattr(self, f.name)[index] for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)})

    @staticmethod
    def stack(cameras: "list[CropCamera]") -> "CropCamera":
        """One batch from several (all of the same crop size)."""
        first = cameras[0]
        return CropCamera(crop_size=first.crop_size, **{
            f.name: torch.cat([getattr(c, f.name) for c in cameras])
            for f in fields(first) if isinstance(getattr(first, f.name), torch.Tensor)})

    def full_to_crop_normalized(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) full-image px → crop coordinates in [-0.5, 0.5]."""
        crop = points @ self.affine[:, :, :2].transpose(1, 2) + self.affine[:, None, :, 2]
        return crop / self.crop_size - 0.5
