"""Models loading in a background thread, and how a process ends while they still are."""
from __future__ import annotations

import os
import sys
import threading
import weakref
from typing import Callable, NoReturn

_loads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # every loading thread started


def start_loading(target: Callable[..., None], *args, name: str) -> threading.Thread:
    """A daemon thread that loads models: the process never waits for one to end (end_process)."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    _loads.add(thread)
    thread.start()
    return thread


def exit_now_if_running(thread: threading.Thread, code: int = 0) -> None:
    """Ends the process (with `code`) now if `thread` is still loading: finalizing the interpreter
    while ONNX Runtime or torch run in a thread aborts it ("terminate called without an active
    exception", exit 134), and nothing of a load needs saving (the index store is crash-safe)."""
    if thread.is_alive():
        exit_now(code)


def exit_now(code: int) -> NoReturn:
    """Flushes what was said, and ends the process without finalizing the interpreter."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a closed stream: nothing more to say there
            pass
    os._exit(code)


def new_command() -> None:
    """A command starts: end_process waits on none of the loads started before it (in tests,
    other commands run in the same process)."""
    _loads.clear()


def end_process(code: int) -> NoReturn:
    """sys.exit(code), or at once (exit_now_if_running) while any load still runs: however a
    command ends (an answer, an error, Ctrl-C), it must not end in an abort."""
    for thread in list(_loads):
        exit_now_if_running(thread, code)
    sys.exit(code)
