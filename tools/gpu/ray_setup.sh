# Sourced by ray_batch.sh and ray_scaling.sh on the GPU host: NVLink multicast off (this work
# needs no NCCL), the carried wheels and the staged Ray wheel installed, the full-size synthetic
# model and detector made unless an earlier run of this machine left them. Sets START, OUT,
# MODEL, DET.
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/*.whl /tmp/stage/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
MODEL=${MODEL:-/tmp/full}; DET=${DET:-/tmp/full_det}
[ -f "$DET/config.json" ] || python3 -m sam3dbody_gui.cli make-synthetic "$DET" --detector --size full > "$OUT/make.log" 2>&1 &
[ -f "$MODEL/model.ckpt" ] || python3 -m sam3dbody_gui.cli make-synthetic "$MODEL" --size full --exports none >> "$OUT/make.log" 2>&1
wait
