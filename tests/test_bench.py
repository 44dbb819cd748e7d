"""`bench` and `compare` on the CPU with the tiny model: the tables and JSON a user gets."""

from __future__ import annotations

import json

import torch

from sam3dbody_gui.bench import run_bench
from sam3dbody_gui.compare import run_compare


def test_bench_prints_one_table_and_writes_the_same_figures(tiny_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    text = run_bench(tiny_model_dir, torch.device("cpu"), ["pytorch:fp32", "pt2"], ["pytorch:fp32"], out,
                     iterations=2, progress=lambda m: None)
    assert "CPU wall time, 2 iterations" in text
    data = json.loads(out.read_text())
    rows = {r["config"]: r for r in data["backbone"]}
    assert set(rows) == {"pytorch:fp32", "pt2"}
    assert rows["pytorch:fp32"]["speedup_vs_fp32"] == 1.0
    # No GPU allocator on the CPU: the peak is not measured, shown as "–" and said why, null in JSON.
    assert "nan" not in text.lower() and all(r["peak_gpu_gib"] is None for r in rows.values())
    assert "– = not measured" in text
    for r in rows.values():
        assert r["mean_ms"] > 0 and r["qps"] > 0 and r["artefact_mib"] > 0
        assert f"{r['config']:22s} {r['mean_ms']:9.2f}" in text  # the table shows the JSON's numbers
    (e2e,) = data["end_to_end"]
    assert set(e2e["stages_median_ms"]) == {"preprocess", "backbone", "decoder+MHR", "total"}
    assert e2e["runs"] == len(data["images"])


def test_compare_of_identical_weights_in_another_runtime_meets_the_goal(tiny_model_dir, tmp_path):
    out = tmp_path / "compare.json"
    text = run_compare(tiny_model_dir, torch.device("cpu"), "pytorch:fp32", "pt2", out, progress=lambda m: None)
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 8
    assert max(r["vertex_max_mm"] for r in rows) < 0.05  # same weights, same fp32 maths
    assert max(r["feature_rel_diff_pct"] for r in rows) < 1e-3
    assert "meets the goal" in text
