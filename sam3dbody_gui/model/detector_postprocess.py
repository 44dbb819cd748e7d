"""From a detector's raw outputs to person boxes in photo pixels.

RT-DETR scores every query for every class with a sigmoid (focal-loss training), so a query's
"person" score is sigmoid(logit[person]) on its own, whatever the other classes say: only that
column is read. Its boxes are (cx, cy, w, h) as fractions of the network input, and the input is
the whole photo stretched to 640x640 (no letterbox), so a fraction of the input is the same
fraction of the photo on each axis: x scales by the photo's width, y by its height.

Then: the score threshold, NMS, and the cap on people, in that order. NMS comes before the cap
so a duplicate never takes the place of a real person. RT-DETR is trained one-to-one and rarely
repeats itself, so NMS is a safety net with a high IoU (0.7): people in a crowd overlap a lot
and a lower threshold would delete real ones. With the person class alone, class-aware NMS is
plain NMS over the person boxes.

Pure torch (no torchvision): the candidates are the detector's queries, 300 at most, so a full
IoU matrix is small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import UserError

DEFAULT_MIN_SCORE = 0.5
DEFAULT_NMS_IOU = 0.7
# The largest batch bucket of the mesh model: more people than this would cost a second batch.
DEFAULT_MAX_PEOPLE = 16
MIN_BOX_PIXELS = 1.0  # a box thinner than this, once clipped to the photo, is no person


@dataclass(frozen=True)
class PersonBox:
    box_xyxy: tuple[float, float, float, float]  # photo pixels: x1, y1, x2, y2
    score: float  # the detector's person score, 0..1


@dataclass(frozen=True)
class Detections:
    people: list[PersonBox]  # most confident first
    found: int  # people that passed the threshold and NMS, before the cap
    capped: bool  # True when max_people left some of them out
    min_score: float
    max_people: Optional[int]

    def message(self) -> str:
        """One line for the status bar or the CLI."""
        if not self.people:
            return (f"no person found with a score of at least {self.min_score:g}: draw a box, or lower the "
                    "minimum score")
        if self.capped:
            return (f"found {self.found} people; kept the {len(self.people)} most confident "
                    f"(at most {self.max_people}: raise the maximum to keep more)")
        return f"found {len(self.people)} {'person' if len(self.people) == 1 else 'people'}"


def check_settings(min_score: float, nms_iou: float, max_people: Optional[int]) -> None:
    if not 0.0 <= float(min_score) <= 1.0:
        raise UserError(f"the minimum score must be between 0 and 1 (got {min_score})")
    if not 0.0 < float(nms_iou) <= 1.0:
        raise UserError(f"the NMS overlap (IoU) must be above 0 and at most 1 (got {nms_iou})")
    if max_people is not None and int(max_people) < 1:
        raise UserError(f"the maximum number of people must be at least 1 (got {max_people})")


def boxes_to_photo(cxcywh: torch.Tensor, photo_hw: tuple[int, int]) -> torch.Tensor:
    """(N, 4) fractions (cx, cy, w, h) -> (N, 4) photo pixels (x1, y1, x2, y2), clipped to the photo."""
    h, w = float(photo_hw[0]), float(photo_hw[1])
    xyxy = _corners(cxcywh, h, w)
    return torch.minimum(xyxy.clamp(min=0.0), xyxy.new_tensor([w, h, w, h]))


def _corners(cxcywh: torch.Tensor, h, w) -> torch.Tensor:
    """(..., 4) fractions (cx, cy, w, h) -> (..., 4) pixels (x1, y1, x2, y2), unclipped; `h`, `w`
    numbers or tensors that broadcast against the boxes (one photo's size, or a batch's)."""
    cx, cy, bw, bh = cxcywh.float().unbind(-1)
    return torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], dim=-1)


def _wide_enough(boxes: torch.Tensor) -> torch.Tensor:
    """Which (..., 4) clipped boxes are at least MIN_BOX_PIXELS wide and high."""
    return (boxes[..., 2] - boxes[..., 0] >= MIN_BOX_PIXELS) & (boxes[..., 3] - boxes[..., 1] >= MIN_BOX_PIXELS)


def _detections(boxes: torch.Tensor, scores: torch.Tensor, chosen: torch.Tensor, min_score: float,
                max_people: Optional[int]) -> Detections:
    """The people at the `chosen` query indices (kept, best first) of one photo's `boxes` and `scores`."""
    found = len(chosen)
    if max_people is not None:
        chosen = chosen[: int(max_people)]
    people = [PersonBox(tuple(float(v) for v in boxes[i].tolist()), float(scores[i])) for i in chosen.tolist()]
    return Detections(people, found, len(people) < found, float(min_score),
                      None if max_people is None else int(max_people))


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), xyxy: (N, M)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: indices of the boxes kept, highest score first. A box goes when it overlaps a
    kept, higher-scoring box by more than `iou_threshold`. Ties keep the earlier box (stable sort),
    so the result does not depend on the sort's whims."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order]).cpu()
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def select_people(logits: torch.Tensor, pred_boxes: torch.Tensor, photo_hw: tuple[int, int], person_id: int,
                  min_score: float = DEFAULT_MIN_SCORE, nms_iou: float = DEFAULT_NMS_IOU,
                  max_people: Optional[int] = DEFAULT_MAX_PEOPLE) -> Detections:
    """One image's outputs: `logits` (Q, classes) before the sigmoid, `pred_boxes` (Q, 4) (cx, cy, w, h)
    fractions of the input. `max_people` None: no cap."""
    check_settings(min_score, nms_iou, max_people)
    scores = torch.sigmoid(logits[:, person_id].float())
    boxes = boxes_to_photo(pred_boxes, photo_hw)
    candidates = torch.nonzero((scores >= min_score) & _wide_enough(boxes)).flatten()
    kept = candidates[nms(boxes[candidates], scores[candidates], nms_iou)]
    return _detections(boxes, scores, kept, min_score, max_people)


# -- several photos at once, on the device ---------------------------------------------------
# Greedy NMS is sequential, but its answer is the unique fixed point of
#     keep[i] = candidate[i] and no kept j ranked before i overlaps i beyond the threshold,
# and iterating that equation from "keep every candidate" makes the first t ranks right after t
# rounds. A few rounds settle real detections (a duplicate of a duplicate is rare); one more
# round says whether they did, and a photo that did not is finished on the host (select_people).
NMS_ROUNDS = 8


def select_people_batched(person_logits: torch.Tensor, pred_boxes: torch.Tensor, photo_hw: torch.Tensor,
                          min_score: torch.Tensor, nms_iou: torch.Tensor,
                          rounds: int = NMS_ROUNDS) -> dict[str, torch.Tensor]:
    """Static-shape selection for a batch (no host sync, so it can be captured in a CUDA graph).
    `person_logits` (B, Q), `pred_boxes` (B, Q, 4) fractions, `photo_hw` (B, 2), `min_score` and
    `nms_iou` 0-d tensors. Returns `order` (B, Q): queries by score, highest first (stable);
    `kept` (B, Q) bool in that order; `settled` (B,) bool: the rounds reached greedy NMS's answer."""
    scores = torch.sigmoid(person_logits.float())
    h, w = photo_hw[:, 0:1].float(), photo_hw[:, 1:2].float()
    limit = torch.stack([w, h, w, h], dim=-1)  # (B, 1, 4)
    boxes = torch.minimum(_corners(pred_boxes, h, w).clamp(min=0.0), limit)
    candidate = (scores >= min_score) & _wide_enough(boxes)
    # Candidates first, by score; the rest after (their order does not matter: never kept).
    ranked = torch.where(candidate, scores, torch.full_like(scores, -1.0))
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    boxes = boxes.gather(1, order[..., None].expand(-1, -1, 4))
    candidate = candidate.gather(1, order)
    q = boxes.shape[1]
    earlier = torch.ones(q, q, dtype=torch.bool, device=boxes.device).triu(1)  # [j, i]: j ranked before i
    overlaps = (torch.vmap(box_iou)(boxes, boxes) > nms_iou) & earlier & candidate[:, :, None]
    kept = candidate
    for _ in range(rounds):
        kept = candidate & ~(kept[:, :, None] & overlaps).any(1)
    again = candidate & ~(kept[:, :, None] & overlaps).any(1)
    return {"order": order, "kept": kept, "settled": (again == kept).all(1)}


def people_from_selection(person_logits: torch.Tensor, pred_boxes: torch.Tensor, order: torch.Tensor,
                          kept: torch.Tensor, photo_hw: tuple[int, int], min_score: float,
                          max_people: Optional[int]) -> Detections:
    """One photo's Detections from `select_people_batched`'s (host) outputs: the kept queries'
    boxes and scores computed as select_people computes them."""
    # Over every query, then indexed, as select_people does: a vectorised sigmoid of another
    # length may round the last bit differently.
    return _detections(boxes_to_photo(pred_boxes, photo_hw), torch.sigmoid(person_logits.float()), order[kept],
                       min_score, max_people)
