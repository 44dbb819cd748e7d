"""`bench --targets` on the CPU with the tiny model: every row the CPU can measure, each `met`
agreeing with its number, the cold start from a fresh process with empty caches."""

from __future__ import annotations

import json
import re

from sam3dbody_gui import bench_targets
from sam3dbody_gui.cli import main


def _number(text: str) -> float:
    return float(re.search(r"[-+]?\d+(\.\d+)?", text).group())


def test_targets_table_on_the_cpu(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "targets.json"
    assert main(["bench", "--targets", "--model", str(tiny_model_dir), "--device", "cpu", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    rows = {r["what"].split(" (")[0]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"backbone, batch 1", "end to end, body mode", "end to end, full mode",
                         "first full-mode run after load", "mesh deviation vs fp32", "cold start → first mesh",
                         "cold start, `infer`"}
    assert "peak GPU memory" not in table  # a GPU row
    assert rows["backbone, batch 1"]["met"] is None and rows["end to end, full mode"]["met"] is None
    assert rows["first full-mode run after load"]["met"] is None  # GPU targets: "–" on the CPU
    body = _number(rows["end to end, body mode"]["measured"])
    assert rows["end to end, body mode"]["met"] == (body <= bench_targets.CPU_BODY_MS)
    for what in ("cold start → first mesh", "cold start, `infer`"):  # as the window opens, as `infer` does
        cold = rows[what]
        assert "pytorch" in cold["measured"], cold  # the child answered, on the eager path of a warm start
        assert cold["met"] == (_number(cold["measured"]) <= bench_targets.COLD_START_S)
    mean_mm = _number(rows["mesh deviation vs fp32"]["measured"])
    assert 0 < mean_mm <= bench_targets.FIDELITY_MEAN_MM and rows["mesh deviation vs fp32"]["met"]
    assert "speed targets on" in table and "cold start" in table


def test_a_child_that_fails_is_a_row_saying_why(tiny_model_dir, monkeypatch):
    import torch

    monkeypatch.setattr(bench_targets, "run_child", lambda *a, **k: {"error": "exit 1: out of memory"})
    rows = bench_targets.target_rows(tiny_model_dir, torch.device("cpu"), cold=True, progress=lambda m: None)
    cold = rows[-1]
    assert cold.what.startswith("cold start") and cold.measured == "exit 1: out of memory" and cold.met is None


def test_the_first_use_row_names_the_stages_a_first_run_spent_more_in():
    first = {"preprocess": 1.0, "hand decoder": 905.0, "body re-run": 260.0, "backbone": 5.0, "total": 1171.0}
    steady = {"preprocess": 1.2, "hand decoder": 6.7, "body re-run": 5.6, "backbone": 4.6, "total": 18.1}
    assert bench_targets.extra_by_stage(first, steady) == "hand decoder +898.3, body re-run +254.4 ms"
    assert bench_targets.extra_by_stage(steady, steady) == ""  # nothing spent at first use: nothing named
    row = bench_targets.TargetRow("first full-mode run after load", "+1153.0 ms (1171.0 vs 18.0)", "≤ +20 ms", False,
                                  "extra time in " + bench_targets.extra_by_stage(first, steady))
    table = bench_targets.format_targets({"gpu": "GPU", "threads": 1}, [row]).splitlines()
    assert table[-1] == "  first full-mode run after load: extra time in hand decoder +898.3, body re-run +254.4 ms"
