"""Names of the backbone backends and precisions, and what `auto` picks, said once (no torch
import: the CLI and UI list them)."""

BACKENDS = ("auto", "tensorrt", "pt2", "pytorch", "compiled")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "fp8")  # fp8: Hopper/Ada GPUs, linear layers only
MODES = ("body", "full")
AUTO_BACKEND = ("TensorRT when it is installed, a GPU exists and a backbone ONNX is found; else on CUDA the "
                "compiled backbone if cached, otherwise eager PyTorch; on a CPU eager fp32")
AUTO_PRECISION = ("fp32 on a CPU; on CUDA bf16, and fp8 for the compiled backbone on GPUs with FP8 tensor "
                  "cores (Ada, Hopper)")
MODE_HELP = {
    "body": "one backbone + one decoder pass (fast)",
    "full": "+ hand refinement, upstream's default (two hand crops per person through the backbone, the hand "
            "decoder, a prompted body re-run)",
}
