"""Models loading in a background thread, and how a process ends while they still are."""
from __future__ import annotations

import os
import sys
import threading


def exit_now_if_running(thread: threading.Thread) -> None:
    """Ends the process (exit 0) now if `thread` is still loading: finalizing the interpreter
    while ONNX Runtime or torch run in a thread aborts it ("terminate called without an active
    exception", exit 134), and nothing of a load needs saving (the index store is crash-safe)."""
    if thread.is_alive():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
