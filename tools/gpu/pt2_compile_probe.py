"""Why torch.compile of the int8 QDQ `.pt2` fails on the GPU ("RuntimeError when making fake
tensor call"; it compiles on the CPU): the program's tensors by device, and the compile's whole
error. `--size tiny` on the CPU is a dry run. < 2 min on the GPU host."""

import argparse
import collections
import sys
import tempfile
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from torch.export.passes import move_to_device_pass  # noqa: E402

from sam3dbody_gui.synthetic.backbone_exports import build_synthetic_backbone, export_backbone_pt2_int8  # noqa: E402
from sam3dbody_gui.synthetic.make import synthetic_config  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--size", default="full")
ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
args = ap.parse_args()
device = torch.device(args.device)
config = synthetic_config(args.size)
backbone = build_synthetic_backbone(config.backbone_type).to(device)
path = Path(tempfile.mkdtemp()) / "b.pt2"
export_backbone_pt2_int8(backbone, path, config.crop_size)
from sam3dbody_gui.runtime.backbones.pt2_backend import indexed_device  # noqa: E402

program = move_to_device_pass(torch.export.load(str(path)), indexed_device(device))
census = collections.Counter()
for name, t in list(program.state_dict.items()) + list(program.constants.items()):
    if isinstance(t, torch.Tensor):
        census[(str(t.device), str(t.dtype), t.dim() == 0)] += 1
print("program tensors (device, dtype, 0-dim): count", dict(census))
module = program.module()
for name, t in list(module.named_buffers()) + list(module.named_parameters()):
    if t.device != indexed_device(device):
        print("module tensor off the device:", name, t.device, tuple(t.shape))
probe = torch.randn(1, 3, config.crop_size, config.crop_size, device=device)
for label, fn in (("compile", lambda: torch.compile(module, dynamic=False)(probe)),
                  ("compile, backend eager", lambda: torch.compile(module, dynamic=False, backend="eager")(probe)),
                  ("compile, aot_eager", lambda: torch.compile(module, dynamic=False, backend="aot_eager")(probe))):
    torch._dynamo.reset()
    try:
        with torch.inference_mode():
            fn()
        print(label, "ok")
    except Exception:  # noqa: BLE001 - the point is to print it
        text = traceback.format_exc()
        print(label, "FAILED:\n", text[-6000:])
