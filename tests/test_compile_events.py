"""compile_events.watch_compiles: what a first run compiled, for bench --targets' first-use row."""

import torch

from sam3dbody_gui.runtime.compile_events import CompileEvents, recompile_summary, watch_compiles


def test_a_recompile_inside_the_block_is_counted_and_named_with_its_guard():
    def double_it(x):
        return x * 2

    compiled = torch.compile(double_it, backend="eager", dynamic=False)
    compiled(torch.ones(3))  # compiled before the block: not counted
    with watch_compiles() as events:
        compiled(torch.ones(3))  # cached: nothing
        compiled(torch.ones(5))  # another size: a recompile
    assert events.frames_compiled == 1 and events.graphs_captured == 0
    assert len(events.recompiles) == 1 and events.recompiles[0].startswith("double_it: ")
    assert "size mismatch" in events.recompiles[0]
    said = events.describe()
    assert said.startswith("1 frame compiled (recompiled double_it: ") and "size mismatch" in said


def test_nothing_compiled_says_nothing_and_the_log_is_off_again():
    compiled = torch.compile(lambda x: x + 1, backend="eager", dynamic=False)
    compiled(torch.ones(2))
    with watch_compiles() as events:
        compiled(torch.ones(2))
        torch.ones(2) * 3  # eager work
    assert events == CompileEvents() and events.describe() == ""
    from torch._logging._internal import log_state

    assert not log_state.is_artifact_enabled("recompiles")


def test_torchs_recompile_message_becomes_one_line():
    message = ("Recompiling function forward in /x/layers.py:88\n    triggered by the following guard failure(s):\n"
               "    - 0/0: tensor 'x' size mismatch at index 0. expected 1, actual 2\n    - 0/1: other")
    assert recompile_summary(message) == "forward: 0/0: tensor 'x' size mismatch at index 0. expected 1, actual 2"
    assert recompile_summary("") == ""


def test_a_logged_recompile_is_said_when_the_frame_counter_missed_it():
    from sam3dbody_gui.runtime.compile_events import CompileEvents

    said = CompileEvents(frames_compiled=0, recompiles=["normalized_crops: tensor 'parts' size mismatch"]).describe()
    assert said.startswith("1 frame compiled (recompiled normalized_crops: tensor 'parts'")
    assert CompileEvents().describe() == ""
