"""Names of the backbone backends and precisions, and what `auto` picks, said once (no torch
import: the CLI and UI list them)."""

BACKENDS = ("auto", "tensorrt", "pt2", "pytorch", "compiled")
# fp8: Hopper/Ada GPUs, linear layers only; int8: the CPU (dynamic quantisation of the linear layers)
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "fp8", "int8")
MODES = ("body", "full")
AUTO_BACKEND = ("TensorRT when it is installed, a GPU exists and a backbone ONNX is found; else on CUDA the "
                "compiled backbone if cached, otherwise eager PyTorch; on a CPU the same (compiled if cached)")
AUTO_PRECISION = ("on CUDA bf16, and fp8 for the compiled backbone on GPUs with FP8 tensor cores (Ada, Hopper); "
                  "on a CPU by its units: bf16 with AMX-BF16, int8 with VNNI or AVX2, bf16 with AVX512-BF16, "
                  "else fp32, checked against fp32 when the model opens")
MODE_HELP = {
    "body": "one backbone + one decoder pass (fast)",
    "full": "+ hand refinement, upstream's default (two hand crops per person through the backbone, the hand "
            "decoder, a prompted body re-run)",
}
