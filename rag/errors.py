class RagError(Exception):
    """A problem the user can fix; the CLI prints the message (no traceback) and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


INTERRUPTED = 130  # the shell's exit code for a program stopped by Ctrl-C
TERMINATED = 143  # and for one stopped by SIGTERM (kill, a service stop, `timeout`)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is: it stops as a Ctrl-C does (what a long build or add
    kept is said), but is never taken for a Ctrl-C that only cancels a line of a chat."""


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
