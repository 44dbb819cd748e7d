"""Why does reading the checkpoint take 9 s on the H200's host (cold start, issue 15)?

    python3 tools/gpu/load_speed.py [--gib 3.6]

Writes a checkpoint of that size (fp32 tensors of the backbone's shapes, torch.save), then reads
it into the GPU in bf16 as the loader does, two ways, each twice, alternating:
  mmap    torch.load(mmap=True): the tensors' pages fault in as each tensor is copied
  read    torch.load(mmap=False): each tensor's bytes read with one read() call
Hypothesis: under gVisor a page fault costs far more than on a plain kernel, so mmap pays per
page and read per tensor. Prints one table.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def load(path: str, mmap: bool, device: torch.device) -> float:
    t = time.perf_counter()
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    for name in list(state):
        state[name] = state[name].to(device, torch.bfloat16)
    if device.type == "cuda":
        torch.cuda.synchronize()
    del state
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=3.6)
    ap.add_argument("--path", default="/tmp/load_speed.ckpt")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    per = 1280 * 5120  # one MLP matrix of the ViT-H+ (fp32: 26 MB)
    count = int(args.gib * 2**30 / (per * 4))
    t = time.perf_counter()
    torch.save({f"blocks.{i}.mlp.w": torch.full((5120, 1280), float(i)) for i in range(count)}, args.path)
    size = os.path.getsize(args.path) / 2**30
    print(f"wrote {size:.2f} GiB ({count} tensors) in {time.perf_counter() - t:.1f} s; device {device}", flush=True)
    rows = []
    for mmap in (True, False, True, False):
        s = load(args.path, mmap, device)
        rows.append(("mmap" if mmap else "read", s))
        print(f"{rows[-1][0]:5s} {s:6.2f} s  {size / s:5.2f} GiB/s", flush=True)
    os.remove(args.path)
    best = {k: min(s for n, s in rows if n == k) for k in ("mmap", "read")}
    print(f"best: mmap {best['mmap']:.2f} s, read {best['read']:.2f} s ({best['mmap'] / best['read']:.1f}x)")


if __name__ == "__main__":
    main()
