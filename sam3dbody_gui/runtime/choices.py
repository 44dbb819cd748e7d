"""Names of the backbone backends and precisions (no torch import: the CLI and UI list them)."""

BACKENDS = ("auto", "tensorrt", "pt2", "pytorch", "compiled")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "fp8")  # fp8: Hopper/Ada GPUs, linear layers only
