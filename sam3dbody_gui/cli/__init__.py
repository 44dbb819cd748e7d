"""Command line: `sam3dbody-gui [gui]`, `infer`, `demo`, `make-synthetic`, `download`, `bench`,
`compare`.

Every problem the user can fix ends as one `error: …` line and a non-zero exit, with no
traceback and no partial output file.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

from ..app_paths import MODEL_ENV  # noqa: F401 - part of the CLI's surface (tests, docs)
from ..bundled import SAMPLE_BOX, sample_image_path  # noqa: F401
from ..errors import UserError
from .batch import cmd_batch
from .commands import cmd_bench, cmd_compare, cmd_download, cmd_gui, cmd_make_synthetic
from .infer import cmd_demo, cmd_infer
from .parser import build_parser  # noqa: F401
from .video import cmd_video

EXIT_USER_ERROR = 2
EXIT_TERMINATED = 128 + 15  # what a shell reports for a process ended by SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised wherever the program is (like KeyboardInterrupt for SIGINT), so every
    cleanup runs: no temporary file is left and no output is half-published. A BaseException,
    so that no `except Exception` swallows it."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


COMMANDS = {"infer": cmd_infer, "demo": cmd_demo, "make-synthetic": cmd_make_synthetic, "bench": cmd_bench,
            "batch": cmd_batch, "video": cmd_video, "download": cmd_download, "compare": cmd_compare,
            "gui": cmd_gui, None: cmd_gui}


def main(argv: Sequence[str] | None = None) -> int:
    from ..runtime.host_memory import keep_freed_memory

    keep_freed_memory()  # before any thread starts: the runs' threads then share the kept heap
    args = build_parser().parse_args(argv)
    # The window keeps Qt's own handling (an exception raised inside Qt's event loop aborts).
    terminable = _sigterm_raises() if args.command not in (None, "gui") else _no_change()
    try:
        with terminable:
            COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    return 0


@contextmanager
def _no_change() -> Iterator[None]:
    yield
