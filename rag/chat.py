"""`rag chat`: a terminal conversation over the same Pipeline.ask as `rag ask`.

The prompt appears at once; models and index load in a background thread and the first
question waits for them under a spinner. On a terminal there is line editing and history
(prompt_toolkit); with piped input, plain lines in and plain text out."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from rich.console import Console, Group
from rich.text import Text

from rag.background import start_loading
from rag.corpus import Corpus
from rag.errors import STOP_CAME, RagError, Stopped, Terminated
from rag.render import answer_json_line, answer_view
from rag.schema import NOTE
from rag.wording import counted

HELP = """commands:
  /help      this list
  /sources   the passages and scores behind the last answer
  /json      the last answer in the `rag ask --json` format
  /quit      leave (quit, exit and Ctrl-D too); Ctrl-C clears the line you are typing"""
LEAVE = ("/quit", "/exit")


class BackgroundLoad:
    """Runs `load` in a thread; `result()` waits for it (re-raising its error) and reports
    progress through `state` so a spinner can say what is happening. A state that is a warning
    is kept in `warnings` instead, for the session to print: a spinner would show it only for a
    moment, or never (a load done before the first question)."""

    def __init__(self, load: Callable[[Callable[[str], None]], object]):
        self.state = "loading models"
        self.warnings: list[str] = []
        self._value = None
        self._error: BaseException | None = None
        self._thread = start_loading(self._run, load, name="rag-load")

    def _run(self, load) -> None:
        try:
            self._value = load(self._set_state)
        except BaseException as exc:  # handed to the main thread by result()
            self._error = exc

    def _set_state(self, state: str) -> None:
        if is_warning(state):
            self.warnings.append(state)
        else:
            self.state = state

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, console: Console):
        if not self.done:
            with console.status(Text(self.state)) as status:  # Text: paths and ids are not markup
                while not self.done:
                    self._thread.join(0.1)
                    status.update(Text(self.state))
        if self._error is not None:
            raise self._error
        return self._value

    def take(self, console: Console):
        """The result, which this load then no longer holds: replaced later, it can be freed."""
        value, self._value = self.result(console), None
        return value


def is_warning(state: str) -> bool:
    return state.startswith(NOTE)


@dataclass(frozen=True)
class IndexWatch:
    """How a session notices that another rag (`add`, `remove`, `index`) switched the index it
    answers from, and loads that one: `version` reads the build now current (IndexStore.version),
    `load_again` makes a pipeline over it with the models of the one it is given."""
    version: Callable[[], str | None]
    load_again: Callable[[object, Callable[[str], None]], object]


class ChatSession:
    def __init__(self, corpus: Corpus, loading: BackgroundLoad, console: Console, dates=None,
                 watch: IndexWatch | None = None, said: Iterable[str] = ()):
        self.corpus = corpus
        self.dates = dates  # --since/--until, for every question of the session
        self.loading = loading  # the pipeline, still loading while the first question is typed
        self.console = console
        self.watch = watch  # None for a Milvus archive: it is read live, so there is nothing to load again
        self.last_answer = None
        self._answered_by = None  # the pipeline that gave last_answer: /sources reads its articles
        self._current = None  # the pipeline that answers: the one loaded first, or over a switched index
        self._failed_version = None  # a switched index that could not be loaded
        self._warned = set(corpus.skipped) | set(said)  # the warnings said: the folder's (and `said`) were, before the prompt

    def banner(self) -> str:
        n = len(self.corpus.documents)
        dates = self.corpus.date_range
        span = f" · {dates[0]} … {dates[1]}" if dates else ""
        if self.dates:
            span += f" · answering from {self.dates.since or 'the start'} to {self.dates.until or 'now'}"
        return f"rag · {counted(n, 'article')}{span} · type a question, /help for commands"

    def handle(self, line: str, where: str | None = None) -> bool:
        """Act on one input line; False means the session should end. `where` names the line in
        a question's error ("line 3"), when questions come piped and the input is not in view."""
        line = line.strip()
        if not line:
            return True
        if f"/{line.lower()}" in LEAVE:  # "quit" alone, as other prompts take it, was asked as a question
            return False
        if line.startswith("/"):
            return self._command(line.split()[0].lower())
        pipeline = self._pipeline()
        try:
            answer = pipeline.ask(line, self.dates)
        except RagError as problem:  # this question's problem: say so and take the next
            self.console.print(f"{where}: {problem}" if where else str(problem), style="red", markup=False)
            return True
        self.last_answer, self._answered_by = answer, pipeline
        self.console.print(answer_view(answer, pipeline.corpus, self.dates))
        return True

    def _pipeline(self):
        """The loaded pipeline (a failed load ends the session with its error), loaded again first
        when the index was switched since; if that fails, the one loaded before still answers."""
        if self._current is None:
            self._current = self.loading.take(self.console)
            for warning in self.loading.warnings:  # an index answering as it is, out of date, says so here
                self._warn(warning)
        switched = self.watch.version() if self.watch else None
        if switched in (None, self._current.index_version, self._failed_version):
            return self._current
        with self.console.status(Text("the index was switched by another rag; loading it again")) as status:
            def on_state(state: str) -> None:
                if is_warning(state):
                    self._warn(state)
                else:
                    status.update(Text(state))

            try:
                self._current = self.watch.load_again(self._current, on_state)
                self.console.print("(the index was switched by another rag: answering from it now)", style="dim",
                                   markup=False)  # a spinner alone is gone at once, and shows nothing when piped
            except Stopped as stop:  # a Ctrl-C while it embedded cancels the question, as any Ctrl-C does; SIGTERM ends all
                if stop.terminated:
                    raise
                self.console.print(str(stop), style="dim", markup=False)
                raise KeyboardInterrupt from None
            except Exception as problem:  # said once, not at every question: tried again at the next switch
                self._failed_version = switched
                said = str(problem) if isinstance(problem, RagError) else f"{type(problem).__name__}: {problem}"
                self.console.print(f"{NOTE}could not load the switched index ({said}); "
                                   "answering from the one loaded before", style="yellow", markup=False)
        return self._current

    def _warn(self, warning: str) -> None:
        """A warning the session has not said yet, said (the folder's are heard at every load)."""
        if warning not in self._warned:
            self._warned.add(warning)
            self.console.print(warning, style="yellow", markup=False)

    def _command(self, command: str) -> bool:
        if command in LEAVE:
            return False
        if command == "/help":
            self.console.print(HELP, markup=False)
        elif command in ("/sources", "/json") and self.last_answer is None:
            self.console.print("no answer yet: ask a question first")
        elif command == "/sources":
            self.console.print(self._sources_view())
        elif command == "/json":
            self.console.out(answer_json_line(self.last_answer), highlight=False)  # one line, unwrapped and uncoloured: to be piped on
        else:
            self.console.print(f"unknown command {command}: /help lists the commands", markup=False)
        return True

    def _sources_view(self) -> Group:
        """Each retrieved passage with its retrieval scores and the reader's span in it."""
        answer, pipeline = self.last_answer, self._answered_by
        documents = pipeline.corpus.documents
        lines = [Text(f"passages behind the last answer ({answer.question}); an answer needs confidence ≥ "
                      f"{pipeline.decision.threshold:.2f}", style="bold")]
        for rank, retrieved in enumerate(answer.passages, 1):
            p = retrieved.passage
            date = documents[p.doc_id].date or "undated"
            lines.append(Text(f"{rank}. {p.doc_id} · {date} · chars {p.start}-{p.end} · fused {retrieved.score:.4f}"
                              f" · cosine {retrieved.dense_score:.3f} · bm25 {retrieved.bm25_score:.2f}", style="cyan"))
            candidate = answer.candidate_in(rank - 1)
            if candidate:
                lines.append(Text.assemble("   reader's span: “", (candidate.text, "bold"),
                                           f"” (confidence {candidate.confidence:.2f}, margin over \"no answer\" {candidate.margin:.2f})"))
        return Group(*lines)


def run_chat(session: ChatSession, history_file: Path | None, interactive: bool) -> None:
    session.console.print(session.banner(), markup=False)
    if interactive:
        _run_terminal(session, history_file)
    else:
        from rag.batch import question_lines

        for line in question_lines(sys.stdin.buffer):
            if line.problem:  # say so and go on with the next line
                session.console.print(f"line {line.number}: {line.problem}", style="red", markup=False)
            elif not session.handle(line.text, where=f"line {line.number}"):
                break


def _run_terminal(session: ChatSession, history_file: Path | None) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history = InMemoryHistory()
    if history_file is not None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(history_file))
        except OSError:
            session.console.print(f"(history not kept: cannot write {history_file})", style="dim", markup=False)
    prompt = PromptSession(history=history)
    while True:
        try:
            line = prompt.prompt("> ")
        except Terminated:  # SIGTERM ends the session, as it ends any command
            raise
        except KeyboardInterrupt:  # Ctrl-C: drop the line being typed, keep the session
            STOP_CAME.clear()  # the session goes on: a later error is no stop
            continue
        except EOFError:  # Ctrl-D
            return
        try:
            if not session.handle(line):
                return
        except Terminated:
            raise
        except KeyboardInterrupt:
            STOP_CAME.clear()
            session.console.print("(cancelled)", style="dim")
