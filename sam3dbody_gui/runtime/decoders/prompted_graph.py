"""The keypoint-prompted body pass (one person, P prompts) as a CUDA graph, for live prompt drags.

The prompted pass is the body pass with P prompt tokens and the box query's estimate as the
previous-estimate token; eager it is launch-bound like the box query (on an H200, full-size
synthetic weights, bf16: a re-decode took 47.5 ms eager, 11.9 ms captured). Its shapes are fixed
by P, so one graph per prompt count is captured on first use and checked like the hand pass: a
replay on other inputs must match an eager pass, else the eager pass is used from then on.
"""

from __future__ import annotations

import torch

from ...model.crop_camera import CropCamera
from ...model.mhr_head import NUM_KEYPOINTS
from ...model.sam3d_body import SAM3DBody
from ..cuda_graph import capture
from .decoder_graph import CAMERA_FIELDS, check_agreement, plausible_camera

CHECK_KEYS = ("pred_vertices", "pred_keypoints_2d", "pred_cam_t", "body_pose", "shape", "pred_pose_raw")
CHECK_RTOL = 1e-3  # replay vs eager on the same inputs: the same kernels, so far tighter in practice


def eager_prompted_pass(model: SAM3DBody, features: torch.Tensor, camera: CropCamera, prompt: torch.Tensor,
                        prev: torch.Tensor) -> dict[str, torch.Tensor]:
    """Body decoder with keypoint prompts (B, P, 3) from a previous estimate (B, 522)."""
    feats = model.prompt_encoder.add_no_mask(features.to(model.decoder_dtype))
    return model.run_decoder(model.body_branch(), feats, camera, prompt.float(), prev.to(model.decoder_dtype))


class GraphedPromptedDecoder:
    """`eager_prompted_pass` for one person and `num_prompts` prompts, replayed from static inputs."""

    label = "CUDA graph"

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, num_prompts: int) -> None:
        if device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        side = crop_size // model.patch_size
        gen = torch.Generator(device).manual_seed(0)
        self.features = torch.randn(1, model.feature_dim, side, side, device=device, dtype=model.decoder_dtype,
                                    generator=gen)
        self.camera = plausible_camera(crop_size, device)
        self.prompt = torch.rand(1, num_prompts, 3, device=device, generator=gen)
        self.prompt[..., 2] = torch.arange(num_prompts, device=device)
        self.prev = torch.randn(1, model.prev_to_token_mhr.in_features, device=device, generator=gen) * 0.1
        self.graph, self.outputs = capture(
            lambda: eager_prompted_pass(model, self.features, self.camera, self.prompt, self.prev), device)
        # Other inputs than the capture's (a value baked into the graph would show), replay vs eager.
        with torch.inference_mode():
            features = self.features * 0.5 + 0.1
            cam = plausible_camera(crop_size, device)
            cam.box_center[0, 0] += crop_size * 0.1
            prompt = self.prompt.clone()
            prompt[..., :2] = 1 - self.prompt[..., :2]
            prompt[..., 2] = (torch.arange(num_prompts, device=device) * 7 + 3) % NUM_KEYPOINTS
            prev = self.prev.roll(1, dims=1)
            want = eager_prompted_pass(model, features, cam, prompt, prev)
            got = self(features, cam, prompt, prev)
            torch.cuda.synchronize(device)
            check_agreement(got, want, CHECK_KEYS, CHECK_RTOL, "captured prompted decoder")

    def __call__(self, features: torch.Tensor, camera: CropCamera, prompt: torch.Tensor,
                 prev: torch.Tensor) -> dict[str, torch.Tensor]:
        self.features.copy_(features)
        for name in CAMERA_FIELDS:
            getattr(self.camera, name).copy_(getattr(camera, name))
        self.prompt.copy_(prompt)
        self.prev.copy_(prev)
        self.graph.replay()
        return self.outputs


class LazyPromptedDecoder:
    """The prompted pass a pipeline runs: one person on CUDA with `graph` set → a CUDA graph per
    prompt count, captured on first use (falls back to eager if a capture fails); else eager."""

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, graph: bool) -> None:
        self.model = model
        self.crop_size = crop_size
        self.device = device
        self.want_graph = graph and device.type == "cuda"
        self._graphs: dict[int, GraphedPromptedDecoder] = {}
        self.status = "CUDA graph per prompt count (captured on first use)" if self.want_graph else "eager"

    def __call__(self, features: torch.Tensor, camera: CropCamera, prompt: torch.Tensor,
                 prev: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.want_graph or features.shape[0] != 1:
            return eager_prompted_pass(self.model, features, camera, prompt, prev)
        count = prompt.shape[1]
        if count not in self._graphs:
            try:
                self._graphs[count] = GraphedPromptedDecoder(self.model, self.crop_size, self.device, count)
                self.status = "CUDA graph per prompt count"
            except Exception as exc:  # noqa: BLE001 - any capture problem: stay correct, run eager
                self.want_graph = False
                self.status = f"eager (CUDA graph capture failed: {type(exc).__name__}: {exc})"
                return eager_prompted_pass(self.model, features, camera, prompt, prev)
        return self._graphs[count](features, camera, prompt, prev)
