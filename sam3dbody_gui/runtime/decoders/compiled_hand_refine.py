"""Full mode's body re-run for one person (model/full_mode.py `refine_body`) as CUDA graphs.

`refine_body` branches on data once: for one person, the wrist/elbow prompts that are not usable
are dropped, not masked (upstream's rule), so the re-run's shape depends on how many are kept.
Here that is two replays around one tiny host read:

    decide   the hand checks and the prompts → which of the 4 prompts are usable (one graph);
             the 4 flags go to the host (the one sync)
    re-run   per kept set's size K (and user-prompt count, and hand checks): the checks again
             (fused, cheap), the kept prompts gathered by a device index, the prompted body
             decoder, the hand fusion and the final rig (one graph); K = 0 without user prompts
             is the fusion alone (no re-run, upstream's rejected-hands path)

The graphs share one set of static inputs, filled once per call. With `compile_backend`, every
graph is compiled first (TorchInductor, like the body pass); the sizes a real photo gives
(`LOAD_COUNTS`: both hands kept, one, none) are compiled and captured when the pass is made (at
load), each checked against the eager steps on other inputs. Any other key (1 or 3 prompts, a
user's keypoints, other hand checks) is captured from the eager steps on first use (a capture is
a few eager runs, never a compile in front of the user); a key whose capture fails runs eager.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from ...model import full_mode
from ...model.crop_camera import CropCamera
from ...model.full_mode import HandChecks
from ...model.sam3d_body import SAM3DBody
from ..compile_cache import cache_path, load_compile_cache, save_compile_cache
from .compiled_hand_pass import StaticPass, camera_fields, check_rtol, hand_example
from .decoder_graph import plausible_camera

Progress = Callable[[str], None]
NUM_PROMPTS = len(full_mode.PROMPT_LABELS)
LOAD_COUNTS = (4, 2, 0)  # kept hand prompts: both hands, one hand, none (no re-run)
# What the re-run reads of the body pass and of the hand pass (static inputs).
BODY_KEYS = ("pred_keypoints_2d", "body_pose", "joint_global_rots", "pred_pose_raw", "shape", "scale", "hand",
             "face", "pred_cam", "hand_box", "hand_logits", "global_rot", "pred_cam_t")
HAND_KEYS = ("wrist_rotation", "pred_keypoints_2d_cropped", "pred_keypoints_2d", "hand", "scale", "shape")
CHECK_KEYS = ("pred_vertices", "pred_keypoints_2d", "pred_cam_t", "body_pose", "hand", "scale", "shape",
              "hand_used")


def _unpack(inputs: dict, crop_size: int):
    cam = CropCamera(crop_size=crop_size, **inputs["cam"])
    hand_cams = CropCamera(crop_size=crop_size, **inputs["hand_cam"])
    return inputs["body"], inputs["hands"], cam, hand_cams, inputs["width"]


def decide_step(model: SAM3DBody, checks: HandChecks, crop_size: int, inputs: dict,
                user: torch.Tensor | None) -> torch.Tensor:
    """Which of the 4 hand/elbow prompts are usable (1, 4), as `refine_body` decides."""
    body, hands, cam, hand_cams, width = _unpack(inputs, crop_size)
    masks = full_mode.hand_check_masks(model, body, hands, hand_cams, width, checks)
    prompts = full_mode.wrist_elbow_prompts(body, hands, cam, width)
    return full_mode.rerun_prompts(prompts, masks["accepted"], user)[1]


def refine_step(model: SAM3DBody, checks: HandChecks, crop_size: int, inputs: dict, keep: torch.Tensor,
                user: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """`refine_body` for one person with the kept prompts' indices `keep` (K,) on the device
    (the same steps, hence the same numbers)."""
    body, hands, cam, hand_cams, width = _unpack(inputs, crop_size)
    masks = full_mode.hand_check_masks(model, body, hands, hand_cams, width, checks)
    prompts = full_mode.wrist_elbow_prompts(body, hands, cam, width)
    prompt, usable = full_mode.rerun_prompts(prompts, masks["accepted"], user)
    rerun = None
    if keep.shape[0] or user is not None:
        prompt = prompt.index_select(1, keep)
        if user is not None:
            prompt = torch.cat([prompt, user.to(prompt)], dim=1)
        rerun = full_mode.rerun_decoder(model, body, inputs["features"], cam, prompt)
    return full_mode.fuse_hands(model, body, rerun, hands, masks, cam, checks, usable.sum(dim=1))


def refine_inputs(body: dict, features: torch.Tensor, cam: CropCamera, hands: dict, hand_cams: CropCamera,
                  image_width: int | torch.Tensor) -> dict:
    width = torch.as_tensor(image_width, dtype=torch.float32, device=features.device).reshape(())
    return {"body": {k: body[k] for k in BODY_KEYS}, "hands": {k: hands[k] for k in HAND_KEYS},
            "cam": camera_fields(cam), "hand_cam": camera_fields(hand_cams), "features": features, "width": width}


def example_inputs(model: SAM3DBody, crop_size: int, device: torch.device, seed: int = 0) -> dict:
    """A plausible person (the eager body and hand passes on random features), for captures and checks."""
    side = crop_size // model.patch_size
    g = torch.Generator(device).manual_seed(100 + seed)
    features = torch.randn(1, model.feature_dim, side, side, device=device, dtype=model.decoder_dtype, generator=g)
    cam = plausible_camera(crop_size, device)
    cam.box_center[0, 0] += crop_size * 0.05 * seed
    hand_features, hand_cams = hand_example(model, crop_size, device, seed)
    with torch.inference_mode():
        body = model.decode_body(features, cam)
        hands = full_mode.decode_hands(model, hand_features, hand_cams)
    return refine_inputs(body, features, cam, hands, hand_cams, 1280 + 64 * seed)


def _user_example(count: int, device: torch.device) -> torch.Tensor | None:
    if not count:
        return None
    user = torch.full((1, count, 3), 0.5, device=device)
    user[..., 2] = torch.arange(count, device=device, dtype=torch.float32) + 9  # keypoints no hand prompt uses
    return user


class CompiledRefinement:
    """`refine_body` for one person from CUDA graphs (see the module docstring); `__call__` has
    `refine_body`'s signature and returns its outputs (the graph's buffers: copy to keep)."""

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, cache_dir: Path | None,
                 progress: Progress = lambda m: None, compile_backend: str | None = "inductor",
                 load_counts: tuple[int, ...] = LOAD_COUNTS) -> None:
        if model.mhr is None:
            raise RuntimeError("the MHR rig is not attached")
        self.model, self.crop_size, self.device = model, crop_size, device
        self.compile_backend = compile_backend
        self.label = "compiled + CUDA graphs" if compile_backend else "CUDA graphs"
        self._decide: dict[tuple, StaticPass] = {}
        self._rerun: dict[tuple, StaticPass | None] = {}
        # Every kept subset's indices, made on the device once (no host→device copy per run).
        subsets = [tuple(i for i in range(NUM_PROMPTS) if mask >> i & 1) for mask in range(2 ** NUM_PROMPTS)]
        self._keep = {subset: torch.tensor(subset, dtype=torch.int64, device=device) for subset in subsets}
        t0 = time.perf_counter()
        cache_file, from_cache = None, False
        if compile_backend is not None and cache_dir is not None:
            cache_file = cache_path(cache_dir, "hand-refine", device, config=repr(model.cfg), dtype=model.decoder_dtype,
                                    counts=tuple(load_counts))
            from_cache = load_compile_cache(cache_file)
        if compile_backend is not None:
            progress(f"{'loading' if from_cache else 'compiling'} full mode's body re-run "
                     f"({', '.join(map(str, load_counts))} prompts)")
        checks = HandChecks()
        self._example = example_inputs(model, crop_size, device)
        self._decide_pass(checks, 0, compile_backend)
        for count in load_counts:
            self._rerun_pass(checks, count, 0, compile_backend)
        if cache_file is not None and not from_cache:
            save_compile_cache(cache_file)
        other = example_inputs(model, crop_size, device, seed=1)
        rtol = check_rtol(model.decoder_dtype, compile_backend is not None)
        for (_, count, users), graph in self._rerun.items():
            graph.check((other, self._keep[tuple(range(count))], None), CHECK_KEYS, rtol,
                        f"{self.label} body re-run ({count} prompts)")
        self.seconds = time.perf_counter() - t0
        self.status = f"{self.label} ({', '.join(map(str, load_counts))} prompts at load; others captured on first use)"

    def _decide_pass(self, checks: HandChecks, users: int, backend: str | None) -> StaticPass:
        key = (checks, users)
        if key not in self._decide:
            model, crop = self.model, self.crop_size
            self._decide[key] = StaticPass(lambda inputs, user: decide_step(model, checks, crop, inputs, user),
                                           (self._example, _user_example(users, self.device)), self.device, backend)
        return self._decide[key]

    def _rerun_pass(self, checks: HandChecks, count: int, users: int, backend: str | None) -> StaticPass:
        key = (checks, count, users)
        if key not in self._rerun:
            model, crop = self.model, self.crop_size
            self._rerun[key] = StaticPass(lambda inputs, keep, user: refine_step(model, checks, crop, inputs, keep, user),
                                          (self._example, self._keep[tuple(range(count))],
                                           _user_example(users, self.device)), self.device, backend)
        return self._rerun[key]

    def _lazy(self, make: Callable[[], StaticPass], store: dict, key: tuple) -> StaticPass | None:
        """A key not made at load: captured from the eager steps now (no compile); None (eager
        from then on) if the capture fails."""
        if key not in store:
            try:
                make()
            except Exception as exc:  # noqa: BLE001 - a capture problem costs speed, never correctness
                store[key] = None
                self.status = f"{self.label}; eager for {key[1:]} (capture failed: {type(exc).__name__}: {exc})"
        return store[key]

    def __call__(self, model: SAM3DBody, body: dict, body_features: torch.Tensor, cam: CropCamera, hands: dict,
                 hand_cams: CropCamera, image_width: int, checks: HandChecks = HandChecks(),
                 user_prompts: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        def eager() -> dict[str, torch.Tensor]:
            return full_mode.refine_body(model, body, body_features, cam, hands, hand_cams, image_width, checks,
                                         user_prompts)

        if model is not self.model or body_features.shape[0] != 1:
            return eager()
        users = 0 if user_prompts is None else user_prompts.shape[1]
        inputs = refine_inputs(body, body_features, cam, hands, hand_cams, image_width)
        user = None if user_prompts is None else user_prompts.to(self.device, torch.float32)
        decide = self._lazy(lambda: self._decide_pass(checks, users, None), self._decide, (checks, users))
        if decide is None:
            return eager()
        keep = tuple(full_mode.kept_prompts(decide(inputs, user)))  # the one host sync
        rerun = self._lazy(lambda: self._rerun_pass(checks, len(keep), users, None), self._rerun,
                           (checks, len(keep), users))
        if rerun is None:
            return eager()
        out = dict(body)
        out.update(rerun(inputs, self._keep[keep], user))
        return out
