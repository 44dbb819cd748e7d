"""What TensorRT calls back into while it works: its log, and the build's progress.

Both are Python subclasses of binding interfaces, and the binding's trampolines swallow any
exception they raise (python/src/infer/pyCore.cpp, v11.1: ILogger.log at 902-920,
IProgressMonitor at 1197-1250; v10.16 the same at 946-964 and 1241-1294):

- `trt.Logger` prints to stdout (pyCore.cpp:937-994 v11.1, `std::cout` at 990), where the window never
  shows it. `CapturingLogger` sends every message to Python logging instead and keeps the ERROR
  lines, so a failed parse, build or load can say what TensorRT said.
- An exception in `step_complete` is printed and turned into `return false`, which cancels the
  build (pyCore.cpp:1217-1233 v11.1, 1261-1277 v10.16: "Use the exception as an indicator that we should cancel"),
  and the build then looks like a user cancel. `BuildMonitor` keeps the exception to re-raise
  after the build returns, and tells a cancel (the callback said stop) from a failure.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ...errors import UserError

log = logging.getLogger(__name__)

Progress = Callable[[str, float], bool]  # (phase, fraction done) -> keep going?

MAX_KEPT_ERRORS = 20
PROGRESS_INTERVAL_S = 0.5  # the engine build reports thousands of steps; the window needs a few a second


class EngineBuildCancelled(UserError):
    """The progress callback asked to stop the TensorRT engine build."""


def make_logger(trt):
    """One TensorRT logger for a backbone (builder, parser and runtime share it)."""

    severity = trt.ILogger.Severity
    levels = {severity.INTERNAL_ERROR: logging.ERROR, severity.ERROR: logging.ERROR,
              severity.WARNING: logging.WARNING, severity.INFO: logging.DEBUG, severity.VERBOSE: logging.DEBUG}
    errors = (severity.INTERNAL_ERROR, severity.ERROR)

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # pybind11 needs the base initialised before C++ can call log()
            self.errors: list[str] = []

        def log(self, severity, msg) -> None:
            try:
                log.log(levels.get(severity, logging.DEBUG), "TensorRT: %s", msg)
                if severity in errors:
                    self.errors.append(str(msg))
                    del self.errors[:-MAX_KEPT_ERRORS]
            except Exception:  # noqa: BLE001 - must not raise into the binding (it would only print it)
                pass

        def take_errors(self) -> list[str]:
            taken, self.errors = self.errors, []
            return taken

    return CapturingLogger()


def failure_message(what: str, errors: list[str]) -> str:
    if not errors:
        return f"{what} (TensorRT logged no error; run with logging at DEBUG for its full log)"
    return f"{what}: " + "; ".join(errors[-3:])


def make_monitor(trt, progress: Progress, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = PROGRESS_INTERVAL_S):
    class BuildMonitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}
            self.error: BaseException | None = None
            self.cancelled = False
            self._last_report: float | None = None

        def _report(self, phase: str, fraction: float) -> None:
            now = clock()
            if self._last_report is not None and now - self._last_report < interval_s:
                return
            self._last_report = now
            if progress(phase, fraction) is False:
                self.cancelled = True

        def _guarded(self, phase: str, fraction: float) -> None:
            if self.error is None and not self.cancelled:
                try:
                    self._report(phase, fraction)
                except BaseException as exc:  # noqa: BLE001 - kept and re-raised after the build returns
                    self.error = exc

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            self.steps[phase_name] = max(int(num_steps), 1)
            self._guarded(phase_name, 0.0)

        def step_complete(self, phase_name, step) -> bool:
            self._guarded(phase_name, min((int(step) + 1) / self.steps.get(phase_name, 1), 1.0))
            return self.error is None and not self.cancelled  # False stops the build

        def phase_finish(self, phase_name) -> None:
            self.steps.pop(phase_name, None)

        def raise_if_stopped(self) -> None:
            """After the build returned: re-raise the callback's exception, or report the cancel."""
            if self.error is not None:
                raise self.error
            if self.cancelled:
                raise EngineBuildCancelled("TensorRT engine build cancelled")

    return BuildMonitor()
