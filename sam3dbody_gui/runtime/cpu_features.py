"""What this CPU runs fast, as torch sees it, and the precision `auto` picks for it.

Measured on 2 cores of an AMD EPYC (Zen 5: AVX-512 with VNNI and BF16, no AMX), full-size
synthetic model, body mode end to end (docs/bench/cpu_2core.txt): fp32 10.0 s, bf16 backbone
3.9 s, int8 2.7 s (2.4 s compiled); mesh vs fp32 0.24 / 0.73 mm (bf16) and 0.67 / 2.5 mm (int8),
mean / max. The decoder stays fp32 but for its image-token k/v projections on the int8 path: all
in bf16 it moved the mesh 5.7 mm on average, over the limit. As an AVX2-only CPU (ATen, oneDNN and
MKL capped to AVX2) bf16 products ran 4× slower than fp32, while int8 ran 1.9× faster end to end
(5.2 vs 10.1 s; 2.0 / 4.9 mm).

The choice, in order:
  AMX-BF16          → bf16 (matrix tiles: bf16 products far beyond fp32, no quantisation error)
  AVX512-VNNI / AVX-VNNI → int8 (int8 dot products; faster than bf16 even where AVX512-BF16 exists)
  AVX512-BF16       → bf16
  AVX2              → int8 (integer products still ~2× the fp32 rate; 7-bit weights, int8_cpu.py)
  anything else (ARM, no oneDNN, older x86) → fp32
A unit counts only where torch will use it: ATen's capability (ATEN_CPU_CAPABILITY) and oneDNN's
ISA cap (ONEDNN_MAX_CPU_ISA) can hide what the hardware has. Whatever is picked is checked
against fp32 when the model opens (backbones/cpu_check.py), with fp32 as the fallback.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

# oneDNN's ISA names, lowest first; a unit needs the cap at or above its level.
_ONEDNN_LEVELS = {"SSE41": 1, "AVX": 2, "AVX2": 3, "AVX2_VNNI": 4, "AVX2_VNNI_2": 5, "AVX512_CORE": 6,
                  "AVX512_CORE_VNNI": 7, "AVX512_CORE_BF16": 8, "AVX512_CORE_FP16": 9, "AVX10_1_512": 9,
                  "AVX512_CORE_AMX": 10, "AVX10_1_512_AMX": 10, "AVX512_CORE_AMX_FP16": 11,
                  "AVX10_1_512_AMX_FP16": 11, "AVX10_2_512": 12, "AVX10_2_512_AMX_2": 13, "ALL": 99}
# The units the plan looks at, their names in the reasons, and what each needs of torch's caps.
UNIT_NAMES = {"amx_bf16": "AMX-BF16", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI",
              "avx512_bf16": "AVX512-BF16", "avx2": "AVX2"}
_NEEDS_ONEDNN = {"amx_bf16": 10, "avx512_vnni": 7, "avx_vnni": 4, "avx512_bf16": 8, "avx2": 3}
_NEEDS_AVX512_ATEN = {"amx_bf16", "avx512_vnni", "avx512_bf16"}
X86 = {"x86_64", "amd64", "i686", "i386", "x86"}


@dataclass(frozen=True)
class CpuFeatures:
    machine: str  # platform.machine(), lower case: x86_64, amd64, arm64, aarch64, …
    hardware: frozenset[str]  # units the CPU has (names as in UNIT_NAMES)
    aten_capability: str = "AVX512"  # torch.backends.cpu.get_cpu_capability()
    onednn: bool = True  # torch.backends.mkldnn.is_available()
    onednn_isa_cap: str = ""  # ONEDNN_MAX_CPU_ISA, "" when unset

    def usable(self) -> frozenset[str]:
        """The units torch will actually use here (hardware minus what a cap hides)."""
        if self.machine not in X86 or not self.onednn:
            return frozenset()
        cap = _ONEDNN_LEVELS.get(self.onednn_isa_cap.upper(), 99) if self.onednn_isa_cap else 99
        avx512_aten = self.aten_capability.upper().startswith("AVX512")
        return frozenset(u for u in self.hardware if u in _NEEDS_ONEDNN and _NEEDS_ONEDNN[u] <= cap
                         and (avx512_aten or u not in _NEEDS_AVX512_ATEN))

    def describe(self) -> str:
        units = sorted(UNIT_NAMES[u] for u in self.usable())
        return f"{self.machine}, ATen {self.aten_capability}" + (f", {' '.join(units)}" if units else "")


@dataclass(frozen=True)
class CpuPlan:
    backbone: str  # "bf16", "int8" or "fp32"
    decoder: str  # "fp32" (bf16 measured over the fidelity limit)
    reason: str  # one line, naming the unit it rests on

    @property
    def fast(self) -> bool:
        return self.backbone != "fp32"


def cpu_plan(features: CpuFeatures) -> CpuPlan:
    """The backbone precision `auto` uses on this CPU, with why (deterministic in `features`)."""
    if features.machine not in X86:
        return CpuPlan("fp32", "fp32", f"fp32: the bf16 and int8 CPU paths are for x86 (AMX, AVX-512, AVX2); "
                                       f"this is an {features.machine} CPU")
    if not features.onednn:
        return CpuPlan("fp32", "fp32", "fp32: this PyTorch build has no oneDNN (its bf16 and int8 CPU kernels)")
    units = features.usable()
    if "amx_bf16" in units:
        return CpuPlan("bf16", "fp32", "bf16: this CPU has AMX-BF16 (bf16 matrix tiles)")
    for vnni in ("avx512_vnni", "avx_vnni"):
        if vnni in units:
            also = ", faster than its AVX512-BF16" if "avx512_bf16" in units else ""
            return CpuPlan("int8", "fp32", f"int8: this CPU has {UNIT_NAMES[vnni]} (int8 dot products{also})")
    if "avx512_bf16" in units:
        return CpuPlan("bf16", "fp32", "bf16: this CPU has AVX512-BF16 (bf16 dot products)")
    if "avx2" in units:
        return CpuPlan("int8", "fp32", "int8: this CPU has AVX2 without VNNI (int8 products still ~2× fp32)")
    return CpuPlan("fp32", "fp32", f"fp32: no bf16 or int8 matrix units ({features.describe()})")


def _proc_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("flags") and ":" in line:
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model_name() -> str:
    """The CPU's marketing name where the OS says it (Linux), else platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def detect() -> CpuFeatures:
    """This machine's features from torch's own view (cpuinfo through torch.cpu, ATen's
    capability, oneDNN and its cap), /proc/cpuinfo's flags where torch does not say (AVX-VNNI,
    AMX-BF16 on Linux). Never raises: an unknown CPU is one with no fast units."""
    machine = platform.machine().lower()
    hardware: set[str] = set()
    capability, onednn = "DEFAULT", False
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability())
        onednn = bool(torch.backends.mkldnn.is_available())
        probes = {"avx2": "_is_avx2_supported", "avx512_vnni": "_is_vnni_supported",
                  "avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
        for unit, name in probes.items():
            probe = getattr(torch.cpu, name, None)
            if probe is not None and probe():
                hardware.add(unit)
    except Exception:  # noqa: BLE001 - a broken or odd torch means "nothing fast"
        pass
    if machine in X86:
        flags = _proc_flags()
        hardware |= {u for u in UNIT_NAMES if u in flags}
        if "amx_tile" in flags and "amx_bf16" not in flags:
            hardware.discard("amx_bf16")
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA", "")
    return CpuFeatures(machine, frozenset(hardware), capability, onednn, cap)


_PLAN: CpuPlan | None = None


def this_cpu_plan() -> CpuPlan:
    """`cpu_plan(detect())`, worked out once per process."""
    global _PLAN
    if _PLAN is None:
        _PLAN = cpu_plan(detect())
    return _PLAN
