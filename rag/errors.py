import importlib
import threading


class RagError(Exception):
    """A problem the user can fix; the CLI prints the message (no traceback) and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


INTERRUPTED = 130  # the shell's exit code for a program stopped by Ctrl-C
TERMINATED = 143  # and for one stopped by SIGTERM (kill, a service stop, `timeout`)


# set by the command's signal handlers (rag.cli.main) when a Ctrl-C or SIGTERM came: a C
# extension interrupted while it loads (onnxruntime, numpy inside it) raises an ImportError
# instead, and this tells that apart from a broken install
STOP_CAME = threading.Event()


def imported(module: str):
    """`importlib.import_module(module)`; an ImportError raised because a stop came while it
    loaded is the stop, a KeyboardInterrupt (rag add's line then says which files moved)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        # only the main thread takes signals: elsewhere (a chat's models loading) it is an ImportError
        if STOP_CAME.is_set() and threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt from None
        raise


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is: it stops as a Ctrl-C does (what a long build or add
    kept is said), but is never taken for a Ctrl-C that only cancels a line of a chat."""


class Stopped(RagError):
    """Ctrl-C or SIGTERM stopped work that kept something: one line, "stopped while embedding:
    <what was kept, and what to run next>", with the signal's exit code. A RagError, not a
    KeyboardInterrupt: typer turns a KeyboardInterrupt into a bare exit code, losing what it says
    (so a Python caller of build_pipeline gets this, not a KeyboardInterrupt, from a stopped build)."""

    def __init__(self, doing: str, kept: str, terminated: bool):
        self.doing, self.kept, self.terminated = doing, kept, terminated
        said = "stopped (SIGTERM)" if terminated else "stopped"
        super().__init__(f"{said} {doing}: {kept}" if doing else f"{said}: {kept}",
                         TERMINATED if terminated else INTERRUPTED)

    @classmethod
    def by(cls, signal: KeyboardInterrupt, doing: str, kept: str) -> "Stopped":
        return cls(doing, kept, isinstance(signal, Terminated))


class BadInput(RagError):
    exit_code = 2


class Unavailable(RagError):
    """What the articles are kept in cannot be read now (a Milvus server gone): asking again later
    may work, so `rag serve` says 503 with Retry-After."""


def first_line(problem: BaseException) -> str:
    """An exception's message cut to one line of 200 characters, for a one-line error. (pymilvus
    keeps its message in `.message`; str() of its exceptions adds a code.)"""
    text = str(getattr(problem, "message", "") or problem).strip()
    return (text.splitlines() or [type(problem).__name__])[0][:200]
