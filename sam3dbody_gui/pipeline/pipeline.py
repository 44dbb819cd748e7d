"""Image + person box (+ optional camera) → MeshResult, with per-stage timings.

    preprocess   crop geometry, 512×512 warp, normalisation (on the GPU when there is one)
    backbone     the runtime backend (PyTorch / compiled / .pt2 / TensorRT) → features on the device
    decoder+MHR  our SAM3DBody body pass (6 decoder layers, 6 MHR calls), a CUDA graph on GPUs
  full mode (hand refinement, upstream's default inference) adds, see model/full_mode.py:
    hand crops     hand boxes from the body pass → left (mirrored photo) and right hand crops
    hand backbone  the same backbone on both hand crops
    hand decoder   one hand-decoder pass for both hands
    body re-run    checks, body decoder prompted with wrists/elbows, wrist fix, final rig

Stage times are wall-clock with a device synchronisation at each boundary, so on a GPU they
are the real per-stage latencies a user waits for, not just the time to queue kernels.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable, Sequence

import numpy as np
import torch

from ..model.crop_camera import CropCamera
from ..model.full_mode import HandChecks
from ..model.model_folder import LoadedModel
from ..runtime.backbones.base import BackboneBackend
from ..runtime.backbones.int8_cpu import Int8DynamicLinear
from ..runtime.backbones.pytorch_backend import PRECISION_NAMES
from ..runtime.decoders.prompted_graph import LazyPromptedDecoder
from .device_crop import DeviceCropper
from .keypoint_prompts import KeypointPrompt
from .prompted_decode import QUERY_STATE, apply_prompts, hand_state, person_prompts, query_estimate
from .preprocess import crop_geometry, default_intrinsics, normalize_crop, warp_crop
from .result import HAND_CHECK_NAMES, MODES, HandChecksPassed, HandMeasurements, HandRefinement, MeshResult

PARAM_KEYS = ("global_rot", "body_pose", "shape", "scale", "hand", "face", "mhr_model_params", "pred_pose_raw", "pred_cam")
HOST_KEYS = ("pred_vertices", "pred_keypoints_2d", "pred_keypoints_3d", "pred_joint_coords", "pred_cam_t",
             "hand_box") + PARAM_KEYS
BodyDecoder = Callable[[torch.Tensor, CropCamera], dict]
# Full mode: what each hand's checks said, and what the body re-run used (all (1, 2) or (1,)); the
# decoder pass returns flat tensors (one device→host copy), `_hand_refinement` types them.
HAND_HOST_KEYS = ("hand_used", "hand_passed_checks", *(f"hand_checks_{name}" for name in HAND_CHECK_NAMES),
                  "hand_wrist_angle", "hand_wrist_distance", "hand_keypoint_extent", "hand_prompts_used", "body_rerun")


def _hand_refinement(host: dict[str, np.ndarray], boxes: dict[str, np.ndarray]) -> HandRefinement:
    return HandRefinement(
        boxes_xyxy=boxes["boxes_xyxy"], crop_boxes_xyxy=boxes["crop_boxes_xyxy"],
        accepted=host["hand_used"] > 0.5, passed_checks=host["hand_passed_checks"] > 0.5,
        checks=HandChecksPassed(**{name: host[f"hand_checks_{name}"] > 0.5 for name in HAND_CHECK_NAMES}),
        measured=HandMeasurements(wrist_angle_rad=host["hand_wrist_angle"], wrist_distance=host["hand_wrist_distance"],
                                  keypoint_extent=host["hand_keypoint_extent"]),
        prompts_used=int(host["hand_prompts_used"]), body_rerun=bool(host["body_rerun"]))


def _holding_run_lock(method):
    """A run holds the pipeline's run lock, so a background swap of its stages (warm_start.py)
    happens between two runs, never inside one."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        try:
            with self.run_lock:
                return method(self, *args, **kwargs)
        finally:
            self.answered.set()  # the first answer is out: a background build may start

    return locked


class Pipeline:
    # What the background build of the fast path is doing (pipeline/warm_start.py); "" when
    # the pipeline was built with its fast path already in place.
    fast_path_status: str = ""

    def __init__(self, loaded: LoadedModel, backbone: BackboneBackend, decoder: BodyDecoder | None = None,
                 hand_decoder: Callable[[torch.Tensor, CropCamera], dict] | None = None,
                 cropper: DeviceCropper | None = None, batch_decoder: BodyDecoder | None = None) -> None:
        """`cropper`: how crops are made on a GPU (default: the eager device crop).
        `batch_decoder`: the body pass for several people (default: the eager one)."""
        self.loaded = loaded
        self.model = loaded.model
        self.config = loaded.config
        self.backbone = backbone
        self.decoder: BodyDecoder = decoder or self.model.decode_body
        if hand_decoder is None:  # full mode's hand pass; build_pipeline gives a CUDA-graph one on GPUs
            from ..runtime.decoders.hand_graph import LazyHandDecoder

            hand_decoder = LazyHandDecoder(self.model, self.config.crop_size, loaded.device, graph=False)
        self.hand_decoder = hand_decoder
        # Keypoint prompts (prompted_decode.py): a CUDA graph per prompt count where the body pass is one.
        self.prompted_decoder = LazyPromptedDecoder(self.model, self.config.crop_size, loaded.device,
                                                    graph=decoder is not None)
        self.device = loaded.device
        self.faces = self.model.head_pose.faces.cpu().numpy()
        if cropper is None and self.device.type == "cuda":  # crops made on the GPU from a photo uploaded once
            cropper = DeviceCropper(self.device, self.config.image_mean, self.config.image_std)
        self.cropper = cropper
        # Several people on a GPU: the body pass captured per batch size (see gpu_stages).
        self.batch_decoder: BodyDecoder | None = batch_decoder
        self._pinned: torch.Tensor | None = None  # host staging buffer for results
        self.run_lock = threading.RLock()  # held by every run; a stage swap takes it (warm_start.py)
        self.answered = threading.Event()  # set when a run has ended (warm_start.py waits for the first)
        self.cache_writes: list[threading.Thread] = []  # files kept for the next start, written meanwhile

    @property
    def decoder_label(self) -> str:
        how = "eager" if self.decoder == self.model.decode_body else getattr(self.decoder, "label", "CUDA graph")
        dtype = self.model.decoder_dtype
        if any(isinstance(m, Int8DynamicLinear) for m in self.model.decoder.modules()):
            how += ", int8 image k/v"  # the CPU's int8 path (runtime/decoders/int8_image_kv.py)
        return how if dtype == torch.float32 else f"{how}, {PRECISION_NAMES.get(dtype, str(dtype))}"

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _crop(self, image: np.ndarray, geom, mirrored: bool | Sequence[bool] = False) -> torch.Tensor:
        """The normalised backbone crops (n, C, S, S) on the compute device: of one geometry
        (n = 1) or of a list of them (one crop each, all made in one batch on a GPU), each of the
        photo or (`mirrored`: one flag, or one per geometry) of the photo flipped left-right."""
        geoms = list(geom) if isinstance(geom, (list, tuple)) else [geom]
        flips = [bool(mirrored)] * len(geoms) if isinstance(mirrored, (bool, np.bool_)) else list(mirrored)
        if self.cropper is not None:
            return self.cropper.crops(image, geoms, flips)
        return torch.cat([normalize_crop(warp_crop(image[:, ::-1] if flip else image, g), self.config.image_mean,
                                         self.config.image_std) for g, flip in zip(geoms, flips)]).to(self.device)

    def _to_host(self, tensors: list[torch.Tensor]) -> list[np.ndarray]:
        """All results in one device→host copy (into a reused pinned buffer on CUDA): one copy
        instead of ~20 small synchronous ones. The arrays are fresh (the decoder's CUDA-graph
        buffers are overwritten by the next run)."""
        flat = torch.cat([t.detach().float().reshape(-1) for t in tensors])
        if flat.device.type == "cuda":
            if self._pinned is None or self._pinned.numel() < flat.numel():
                self._pinned = torch.empty(flat.numel(), dtype=torch.float32, pin_memory=True)
            staging = self._pinned[: flat.numel()]
            staging.copy_(flat, non_blocking=True)
            torch.cuda.current_stream(flat.device).synchronize()
            flat = staging
        values = flat.numpy().copy()
        arrays, start = [], 0
        for t in tensors:
            arrays.append(values[start : start + t.numel()].reshape(tuple(t.shape)))
            start += t.numel()
        return arrays

    def forget_image(self) -> None:
        if self.cropper is not None:
            self.cropper.forget()

    def _backbone(self, crops: torch.Tensor) -> torch.Tensor:
        """Features of (n, 3, S, S) crops: one batch where the backend takes batches, else one
        crop at a time (copied: a backend may reuse its output buffer)."""
        if crops.shape[0] == 1 or getattr(self.backbone, "batched", False):
            return self.backbone(crops)
        return torch.cat([self.backbone(crop[None]).clone() for crop in crops])

    def _decode(self, features: torch.Tensor, cam: CropCamera) -> dict:
        """The body pass for a batch: the fast decoder for one person; for several, the batched
        one when there is (CUDA graphs per batch size), else the eager pass on the whole batch."""
        if features.shape[0] == 1:
            return self.decoder(features, cam)
        if self.batch_decoder is not None:
            return self.batch_decoder(features, cam)
        return self.model.decode_body(features, cam)

    @torch.inference_mode()
    def run(
        self,
        image: np.ndarray,
        box_xyxy: Sequence[float] | None = None,
        intrinsics: np.ndarray | None = None,
        mode: str = "body",
        hand_checks: HandChecks | None = None,
        prompts: Sequence[KeypointPrompt] | None = None,
    ) -> MeshResult:
        """One person: `run_people` with one box (None = the whole image)."""
        return self.run_people(image, [box_xyxy], intrinsics, mode, hand_checks, [prompts or []])[0]

    @torch.inference_mode()
    @_holding_run_lock
    def run_people(
        self,
        image: np.ndarray,
        boxes_xyxy: Sequence[Sequence[float] | None],
        intrinsics: np.ndarray | None = None,
        mode: str = "body",
        hand_checks: HandChecks | None = None,
        prompts: Sequence[Sequence[KeypointPrompt]] | None = None,
    ) -> list[MeshResult]:
        """Every person of a photo in one batch. `image`: (H, W, 3) uint8 RGB (read-only).
        `boxes_xyxy`: one box per person (None = the whole image). `intrinsics`: 3×3 or None for
        upstream's default (focal = image diagonal, centred). `mode`: "body" (one backbone + one
        decoder pass) or "full" (+ hand refinement: every hand of every person through the
        backbone and the hand decoder as one batch, then each person's prompted body re-run);
        `hand_checks`: full mode's acceptance thresholds (default: upstream's).
        `prompts`: one list of keypoint prompts per person (None or empty: the plain box query);
        a prompted person gets the box query, then the decoder again with the prompts from its
        estimate (upstream's run_keypoint_prompt; full mode: added to the re-run's prompts), see
        prompted_decode.py. Prompts are checked (names, the model's limit, inside the crop) first.
        Each person gets what a run on that person alone gives; `timings_ms` are the photo's."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if len(boxes_xyxy) == 0:
            return []
        t0 = time.perf_counter()
        image_hw = (int(image.shape[0]), int(image.shape[1]))
        geoms = [crop_geometry(box, image_hw, crop_size=self.config.crop_size) for box in boxes_xyxy]
        n = len(geoms)
        points = person_prompts(prompts, geoms, self.config.max_num_clicks)  # (1, P, 3) or None each
        k = default_intrinsics(image_hw) if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        crops = self._crop(image, geoms)  # every person's crop in one batch
        cam = CropCamera(
            box_center=torch.from_numpy(np.stack([g.center for g in geoms])),
            box_size=torch.tensor([float(g.scale[0]) for g in geoms]),
            affine=torch.from_numpy(np.stack([g.affine for g in geoms])),
            intrinsics=torch.from_numpy(np.stack([k] * n)),
            crop_size=geoms[0].crop_size,
        ).to(self.device)
        self._sync()
        t1 = time.perf_counter()
        features = self._backbone(crops)
        self._sync()
        t2 = time.perf_counter()
        out = self._decode(features, cam)
        state = {QUERY_STATE: query_estimate(out)}  # what a re-decode starts from (the box query's)
        if mode == "body" and any(p is not None for p in points):
            out = apply_prompts(self.prompted_decoder, out, features, cam, points)
        hand_stages: dict[str, float] = {}
        hands = None
        host_keys = HOST_KEYS
        if mode == "full":
            features = features.clone()  # a backend may reuse its output buffer for the hand crops
            self._sync()
            hand_stages["decoder+MHR"] = (time.perf_counter() - t2) * 1e3
            out, hands, hand_stages = self._refine_hands(image, k, features, cam, out, hand_checks, hand_stages,
                                                         points, state)
            host_keys = HOST_KEYS + HAND_HOST_KEYS
        host = self._to_host([out[key] for key in host_keys] + list(state.values()) + [features])
        feature_maps = host.pop()
        kept = dict(zip(state, host[len(host_keys):]))
        host = dict(zip(host_keys, host))
        t3 = time.perf_counter()
        results = []
        for i, geom in enumerate(geoms):
            mine = {key: value[i] for key, value in host.items()}
            results.append(MeshResult(
                vertices=mine["pred_vertices"],
                faces=self.faces,
                keypoints_2d=mine["pred_keypoints_2d"],
                keypoints_3d=mine["pred_keypoints_3d"],
                joints=mine["pred_joint_coords"],
                cam_t=mine["pred_cam_t"],
                focal_length=float(k[0, 0]),
                intrinsics=k,
                image_hw=image_hw,
                crop=geom,
                params={key: mine[key] for key in PARAM_KEYS},
                features=feature_maps[i],
                hand_boxes=mine["hand_box"],
                backend=self.backbone.info.label(),
                mode=mode,
                hands=None if hands is None else _hand_refinement(mine, hands[i]),
                prompts=list(prompts[i]) if prompts is not None and prompts[i] else [],
                decode_state={key: value[i] for key, value in kept.items()},
            ))
        t4 = time.perf_counter()
        timings = {
            "preprocess": (t1 - t0) * 1e3,
            "backbone": (t2 - t1) * 1e3,
            "decoder+MHR": (t3 - t2) * 1e3,
        }
        if hand_stages:  # the body pass ended earlier; the last host copy counts as the re-run's
            hand_stages["body re-run"] += (t3 - t2) * 1e3 - sum(hand_stages.values())
            timings.update(hand_stages)
        timings["total"] = (t4 - t0) * 1e3
        for result in results:
            result.timings_ms = dict(timings)
        return results

    def _refine_hands(self, image: np.ndarray, k: np.ndarray, features: torch.Tensor, cam: CropCamera,
                      body: dict, checks: HandChecks | None, stages: dict[str, float],
                      prompts: list[torch.Tensor | None], state: dict[str, torch.Tensor]):
        """Full mode after the body pass: hand crops → backbone → hand decoder (every hand of
        every person in one batch: rows [0, n) left hands, [n, 2n) right) → each person's body
        re-run (one at a time: the re-run drops prompts that fall off the crop, which a batch
        could only mark invalid, and a person's result must not depend on who else is there).
        `prompts`: each person's keypoint prompts, added to the re-run; `state` gets what a
        re-decode needs of the hand pass (it does not depend on the prompts)."""
        from ..model.full_mode import LEFT, RIGHT, hand_boxes_xyxy, refine_body
        from .hand_crops import hand_crop_geometry, mirror_box_x

        t0 = time.perf_counter()
        image_hw = (int(image.shape[0]), int(image.shape[1]))
        width = image_hw[1]
        n = features.shape[0]
        boxes = hand_boxes_xyxy(body["hand_box"], cam).cpu().numpy()  # (n, 2, 4) photo px: the one host sync
        left = [hand_crop_geometry(mirror_box_x(boxes[i, LEFT], width), image_hw, self.config.crop_size)
                for i in range(n)]
        right = [hand_crop_geometry(boxes[i, RIGHT], image_hw, self.config.crop_size) for i in range(n)]
        geoms = left + right
        crops = self._crop(image, geoms, mirrored=[j < n for j in range(len(geoms))])  # one batch
        hand_cams = CropCamera(
            box_center=torch.from_numpy(np.stack([g.center for g in geoms])),
            box_size=torch.tensor([float(g.scale[0]) for g in geoms]),
            affine=torch.from_numpy(np.stack([g.affine for g in geoms])),
            intrinsics=torch.from_numpy(np.stack([k] * (2 * n))),
            crop_size=self.config.crop_size,
        ).to(self.device)
        self._sync()
        t1 = time.perf_counter()
        hand_features = self._backbone(crops)
        self._sync()
        t2 = time.perf_counter()
        hands = self.hand_decoder(hand_features, hand_cams)
        self._sync()
        t3 = time.perf_counter()
        # The re-run from the hand decoder's CUDA graphs where it has them (same numbers as refine_body).
        refine = getattr(self.hand_decoder, "refine", refine_body)
        refined = []
        for i in range(n):
            rows = [i, n + i]
            mine = refine(
                self.model, {key: value[i:i + 1] for key, value in body.items()}, features[i:i + 1], cam.rows([i]),
                {key: value[rows] for key, value in hands.items()}, hand_cams.rows(rows), width,
                checks or HandChecks(), user_prompts=None if prompts[i] is None else prompts[i].to(self.device))
            # A graph's outputs are overwritten by its next replay (the next person's): keep copies.
            refined.append(mine if n == 1 else {key: value.clone() for key, value in mine.items()})
        out = {key: torch.cat([r[key] for r in refined]) for key in refined[0]}
        state.update(hand_state(hands, hand_cams))
        self._sync()
        t4 = time.perf_counter()
        info = []
        for i in range(n):
            crop_boxes = []
            for side, g in ((LEFT, left[i]), (RIGHT, right[i])):  # the crop regions in the photo (left un-mirrored)
                cx = width - g.center[0] - 1 if side == LEFT else g.center[0]
                half = g.scale / 2
                crop_boxes.append([cx - half[0], g.center[1] - half[1], cx + half[0], g.center[1] + half[1]])
            info.append({"boxes_xyxy": boxes[i].astype(np.float64), "crop_boxes_xyxy": np.array(crop_boxes)})
        stages.update({"hand crops": (t1 - t0) * 1e3, "hand backbone": (t2 - t1) * 1e3,
                       "hand decoder": (t3 - t2) * 1e3, "body re-run": (t4 - t3) * 1e3})
        return out, info, stages

    @torch.inference_mode()
    @_holding_run_lock
    def redecode(self, result: MeshResult, prompts: Sequence[KeypointPrompt], mode: str = "body",
                 hand_checks: HandChecks | None = None) -> MeshResult:
        """`result`'s person again with `prompts` (empty: the plain box query), from its kept
        backbone features, crop and camera: only the decoder and MHR run (full mode: also the
        re-run with the kept hand pass), so `timings_ms` has no preprocess or backbone stage.
        The same numbers as `run_people` with these prompts; see prompted_decode.py. The caller
        applies a known height and the warnings again (the result has none)."""
        from .prompted_decode import redecode_pass, redecoded_result

        t0 = time.perf_counter()
        prompts = list(prompts)
        out = redecode_pass(self, result, prompts, mode, hand_checks)
        host_keys = HOST_KEYS + (HAND_HOST_KEYS if mode == "full" else ())
        mine = {key: value[0] for key, value in zip(host_keys, self._to_host([out[key] for key in host_keys]))}
        t1 = time.perf_counter()
        hands = None if mode != "full" else _hand_refinement(
            mine, {"boxes_xyxy": result.hands.boxes_xyxy, "crop_boxes_xyxy": result.hands.crop_boxes_xyxy})
        return redecoded_result(result, mine, {key: mine[key] for key in PARAM_KEYS}, hands, prompts, mode, t0, t1)
