"""`rag chat`'s session with the fake models: what it does between the questions a person asks."""
import io
import shutil

import pytest

from rich.console import Console

from rag.assembly import build_pipeline
from rag.chat import BackgroundLoad, ChatSession, IndexWatch
from rag.config import load_models_config
from rag.corpus import load_corpus
from rag.errors import RagError
from rag.index import IndexStore
from tests.conftest import ROOT, SEEDS, read_only
from tests.fakes import FakeEmbedder, FakeReader

QUESTION = "What is the capital of Panjshir province?"


def session_over(tmp_path, load_again=None):
    """A chat session over a copy of the bundled articles, as `rag chat` makes it, and its output."""
    seeds, index = tmp_path / "seeds", tmp_path / "index"
    shutil.copytree(SEEDS, seeds)
    config = load_models_config(ROOT / "models.toml")
    open_pipeline = lambda: build_pipeline(config, seeds, index, embedder=FakeEmbedder(),  # noqa: E731
                                           reader=FakeReader(["Bazarak"]))
    watch = IndexWatch(IndexStore(index).version, load_again or (lambda old, set_state: open_pipeline()))
    console = Console(file=io.StringIO(), width=200)
    return ChatSession(load_corpus(seeds), BackgroundLoad(lambda set_state: open_pipeline()), console, watch=watch), seeds, open_pipeline


def test_an_index_another_rag_switched_is_loaded_before_the_next_question(tmp_path):
    session, seeds, open_pipeline = session_over(tmp_path)
    session.handle(QUESTION)
    assert session.last_answer.abstained
    (seeds / "005_bazarak.txt").write_text("The capital of Panjshir province is Bazarak.", encoding="utf-8")
    open_pipeline()  # what `rag add` does from another terminal: the index is switched
    session.handle(QUESTION)
    assert session.last_answer.citation.doc_id == "005_bazarak"
    said = session.console.file.getvalue()
    assert "Bazarak" in said and said.count("the index was switched by another rag: answering from it now") == 1


@pytest.mark.parametrize("problem, said", [
    (RagError("the index folder is damaged"), "(the index folder is damaged)"),
    (OSError(28, "No space left on device"), "(OSError: [Errno 28] No space left on device)"),
])
def test_a_switched_index_that_cannot_load_leaves_the_loaded_one_answering(tmp_path, problem, said):
    def cannot_load(old, set_state):
        raise problem

    session, seeds, open_pipeline = session_over(tmp_path, load_again=cannot_load)
    session.handle(QUESTION)
    (seeds / "005_bazarak.txt").write_text("The capital of Panjshir province is Bazarak.", encoding="utf-8")
    open_pipeline()
    session.handle(QUESTION)
    session.handle(QUESTION)
    warning = f"warning: could not load the switched index {said}; answering from the one loaded before"
    assert session.console.file.getvalue().count(warning) == 1  # said once, not at every question
    assert session.last_answer.abstained  # the pipeline loaded first, without the new article, answered


@pytest.mark.parametrize("terminated", [False, True])
def test_a_stop_while_a_switched_index_is_embedded_cancels_the_question_or_ends_the_chat_on_sigterm(tmp_path, terminated):
    """A Ctrl-C there cancels the question, as any Ctrl-C in a chat does, and says what was kept;
    SIGTERM ends the chat with that line, as it ends any command. Neither is a failed load."""
    from rag.errors import Stopped

    def stopped(old, set_state):
        raise Stopped("while embedding", "the passages embedded so far are saved", terminated)

    session, seeds, open_pipeline = session_over(tmp_path, load_again=stopped)
    session.handle(QUESTION)
    (seeds / "005_bazarak.txt").write_text("The capital of Panjshir province is Bazarak.", encoding="utf-8")
    open_pipeline()
    with pytest.raises(Stopped if terminated else KeyboardInterrupt):
        session.handle(QUESTION)
    said = session.console.file.getvalue()
    assert "could not load" not in said
    assert ("stopped while embedding: the passages embedded so far are saved" in said) is not terminated


def test_sources_of_an_answer_from_before_a_switch_show_its_own_articles(tmp_path):
    session, seeds, open_pipeline = session_over(tmp_path)
    (seeds / "005_bazarak.txt").write_text("The capital of Panjshir province is Bazarak.", encoding="utf-8")
    open_pipeline()
    session.handle(QUESTION)
    assert session.last_answer.citation.doc_id == "005_bazarak"
    (seeds / "005_bazarak.txt").unlink()
    open_pipeline()  # the article the last answer cites is gone from the switched index
    session.handle("???")  # loads the switched index, then is refused: no answer replaces the last one
    session.handle("/sources")
    said = session.console.file.getvalue()
    assert "the question has no words" in said and "1. 005_bazarak · undated" in said


def test_a_question_it_cannot_take_is_said_with_where_it_came_from(tmp_path):
    session, _, _ = session_over(tmp_path)
    assert session.handle("???", where="line 2") and session.handle("!!!")
    said = session.console.file.getvalue()
    assert "line 2: the question has no words" in said  # piped: the line named
    assert said.count("the question has no words") == 2 and said.count("line ") == 1  # typed: it is in view


def test_a_command_ending_while_models_still_load_ends_at_once_with_its_own_exit_code(monkeypatch):
    """Ctrl-C at `rag chat`'s first question, while ONNX loads in its thread, ended in an abort
    (exit 134): finalizing the interpreter under a running load does that."""
    import threading

    from rag import background, cli

    exits = []
    monkeypatch.setattr(background.os, "_exit", exits.append)  # records instead of ending pytest
    release, loads = threading.Event(), []

    def interrupted_while_loading(**kwargs):
        loads.append(background.start_loading(release.wait, 10, name="test-load"))
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", interrupted_while_loading)
    with pytest.raises(SystemExit):
        cli.main()
    assert exits == [130]  # "interrupted", at once
    release.set()
    loads[0].join()
    monkeypatch.setattr(cli, "app", lambda **kwargs: 0)
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert exits == [130] and ended.value.code == 0  # no load running: the ordinary way out
    earlier = background.start_loading(threading.Event().wait, 5, name="another-command's-load")
    with pytest.raises(SystemExit):
        cli.main()
    assert exits == [130] and earlier.is_alive()  # a command ends around its own loads only (tests share a process)


def test_ctrl_c_drops_the_line_being_typed_but_sigterm_ends_the_chat(tmp_path, monkeypatch):
    import prompt_toolkit

    from rag.chat import run_chat
    from rag.errors import Terminated

    typed = iter([KeyboardInterrupt(), Terminated()])

    class Terminal:
        def __init__(self, **kwargs):
            pass

        def prompt(self, text):
            raise next(typed)

    monkeypatch.setattr(prompt_toolkit, "PromptSession", Terminal)
    session, _, _ = session_over(tmp_path)
    with pytest.raises(Terminated):
        run_chat(session, None, interactive=True)
    assert next(typed, None) is None  # the Ctrl-C was passed over, and the prompt asked again


@pytest.mark.parametrize("typed", ["quit", "exit", " QUIT ", "Exit", "/quit", "/EXIT"])
def test_quit_or_exit_typed_alone_leaves_the_chat_without_asking_it(tmp_path, typed):
    """`quit` typed bare was asked as a question, and answered "Not in the articles"."""
    session, _, _ = session_over(tmp_path)
    assert session.handle(typed) is False
    assert session.last_answer is None and session.console.file.getvalue() == ""


def test_help_names_every_way_to_leave(tmp_path):
    session, _, _ = session_over(tmp_path)
    session.handle("/help")
    said = session.console.file.getvalue()
    assert "/quit      leave (quit, exit and Ctrl-D too)" in said


def test_json_prints_the_last_answer_on_one_line_as_rag_ask_json_does(tmp_path):
    """/help says "in the `rag ask --json` format", and it printed indented JSON over many lines."""
    import json

    session, _, _ = session_over(tmp_path)
    session.handle("What is the capital of Panjshir province?")
    session.console.file.truncate(0)
    session.console.file.seek(0)
    session.handle("/json")
    (line,) = session.console.file.getvalue().splitlines()
    assert len(line) > session.console.width  # not wrapped at the terminal's width either
    assert json.loads(line) == session.last_answer.to_json()


def test_an_out_of_date_index_that_cannot_be_written_answers_as_it_is_and_the_chat_says_so_once(tmp_path, monkeypatch):
    """The warning came through the loading spinner, which shows a state only for a moment (or
    never, when the load is done before the first question)."""
    seeds, index = tmp_path / "seeds", tmp_path / "index"
    shutil.copytree(SEEDS, seeds)
    config = load_models_config(ROOT / "models.toml")
    open_pipeline = lambda on_status=lambda state: None: build_pipeline(  # noqa: E731
        config, seeds, index, embedder=FakeEmbedder(), reader=FakeReader(["Bazarak"]), on_status=on_status)
    open_pipeline()
    read_only(monkeypatch, index)
    (seeds / "005_bazarak.txt").write_text("The capital of Panjshir province is Bazarak.", encoding="utf-8")
    console = Console(file=io.StringIO(), width=100, soft_wrap=True)
    watch = IndexWatch(IndexStore(index).version, lambda old, set_state: open_pipeline(set_state))
    session = ChatSession(load_corpus(seeds), BackgroundLoad(open_pipeline), console, watch=watch)
    session.handle(QUESTION)
    session.handle(QUESTION)
    said = console.file.getvalue()
    assert said.count("warning: the index is out of date: the articles changed (added 1: 005_bazarak); it cannot be "
                      f"brought up to date here (cannot write the index to {index}: Permission denied)") == 1
    assert "not searched: 1 article added since" in said
    assert session.last_answer.abstained  # the article added since is not searched until it is indexed
