"""The MHR rig's (TorchScript) first calls, with TorchScript's graph optimiser on (its default:
the first calls profile, then optimise; on a GPU its fuser compiles kernels at run time) and off
(`torch.jit.optimized_execution(False)`): ms of calls 1-6 at 1 and 16 people, each mode in a
fresh process. Hypothesis to test (session 9): part of the GPU cold start's ~4.4 s first pass is
the rig's run-time fusion. On this project's CPU the first call took 118 ms on, 40 off; steady the same.

    python3 tools/gpu/rig_first_calls.py --model /tmp/full        # < 1 min
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def child(model: Path, device: str, optimized: bool, people: int) -> None:
    from sam3dbody_gui.model.model_folder import RIG_PATH
    from sam3dbody_gui.model.mhr_rig import load_mhr_rig

    rig = load_mhr_rig(model / RIG_PATH, device)
    gen = torch.Generator().manual_seed(0)
    times = []
    with torch.inference_mode(), torch.jit.optimized_execution(optimized):
        for _ in range(6):
            args = [(torch.randn(people, n, generator=gen) * 0.1).to(device) for n in (45, 204, 72)]
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            rig(*args)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(1e3 * (time.perf_counter() - t))
    print(f"optimiser {'on ' if optimized else 'off'} people {people:2d}: " + " ".join(f"{t:8.1f}" for t in times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        child(args.model, args.device, args.child[0] == "on", int(args.child[1]))
        return
    print("ms of the rig's calls 1..6 (a fresh process each line)")
    for people in (1, 16):
        for mode in ("on", "off"):
            subprocess.run([sys.executable, __file__, "--model", str(args.model), "--device", args.device,
                            "--child", mode, str(people)], check=False)


if __name__ == "__main__":
    main()
