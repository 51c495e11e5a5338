"""`rag chat` driven as a person would: in a pseudo-terminal, and with piped input."""
import os
import re
import sys

import pexpect
import pytest

from rag.config import load_models_config
from tests.conftest import ROOT, fitted_for_another_reader, models_file_elsewhere, run_rag

pytestmark = pytest.mark.integration  # real models

ANSWER_TIMEOUT = 120  # the first answer waits for the models to load


@pytest.fixture
def chat(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", COLUMNS="160")
    child = pexpect.spawn(sys.executable, ["-m", "rag", "chat", "--index-dir", str(tmp_path / "index")],
                          cwd=str(ROOT), env=env, encoding="utf-8", timeout=ANSWER_TIMEOUT, dimensions=(40, 160))
    child.logfile_read = transcript = _Transcript()
    yield child, transcript, tmp_path
    if child.isalive():
        child.terminate(force=True)


class _Transcript:
    def __init__(self):
        self.text = ""

    def write(self, data):
        self.text += data

    def flush(self):
        pass


def wait_for_prompt(child) -> None:
    """A new prompt is live: prompt_toolkit switches on bracketed paste (in raw mode) before it
    draws "> " (with cursor moves, not a literal space). Waiting for that, not for any ">",
    keeps a key sent next from landing between two prompts."""
    child.expect_exact("\x1b[?2004h")
    child.expect_exact(">")


def ask(child, question: str, *expected: str) -> None:
    wait_for_prompt(child)
    child.sendline(question)
    for fragment in expected:
        child.expect_exact(fragment)


def test_a_conversation_in_a_terminal(chat):
    child, transcript, tmp_path = chat
    child.expect_exact("rag · 5 articles · 2021-08-24 … 2021-08-25")
    ask(child, "What does the name Panjshir mean?", "five lions", "000_882549ac45e52293 · 2021-08-24")
    ask(child, "What is the Panjshir Valley famed for?", "emeralds", "001_fb70659820c0e01f · undated")
    ask(child, "Who discovered penicillin?", "Not in the articles", "closest passage")
    ask(child, "/sources", "passages behind the last answer (Who discovered penicillin?)", "1. ")
    ask(child, "/frobnicate", "unknown command /frobnicate")
    wait_for_prompt(child)
    child.send("How many legs does a sp")
    child.sendcontrol("c")  # drops the half-typed line; the session goes on
    ask(child, "/help", "/sources")
    ask(child, "")  # an empty line is ignored
    wait_for_prompt(child)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in transcript.text
    assert "How many legs does a sp" not in (tmp_path / "data" / "rag" / "chat_history").read_text()
    history = (tmp_path / "data" / "rag" / "chat_history").read_text()
    assert "What does the name Panjshir mean?" in history  # kept for the next session


def test_quit_command_exits_cleanly(chat):
    child, transcript, _ = chat
    ask(child, "/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in transcript.text


def test_piped_questions_get_plain_answers(tmp_path):
    result = run_rag("chat", "--index-dir", str(tmp_path / "index"),
                     stdin="What does the name Panjshir mean?\n\n/sources\n/nope\nWho discovered penicillin?\n")
    assert result.returncode == 0, result.stderr
    assert "five lions" in result.stdout and "Not in the articles" in result.stdout
    assert "passages behind the last answer" in result.stdout and "unknown command /nope" in result.stdout
    threshold = load_models_config(ROOT / "models.toml").reader.settings.abstention.threshold
    assert f"an answer needs confidence ≥ {threshold:.2f}" in result.stdout
    assert re.search(r"reader's span: “five lions” \(confidence 0\.\d\d, margin over \"no answer\" \d+\.\d\d\)", result.stdout)
    assert "\x1b[" not in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_a_chat_whose_index_cannot_load_ends_with_that_error_once(tmp_path):
    not_a_folder = tmp_path / "index"
    not_a_folder.write_text("")
    result = run_rag("chat", "--index-dir", str(not_a_folder), stdin="Who leads the resistance?\nWhere is Panjshir?\n")
    assert result.returncode == 1, result.stdout
    assert result.stderr.count("is a file, not a folder") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stdout + result.stderr


def test_a_piped_chat_warns_of_a_decision_fitted_for_another_reader(tmp_path):
    """Said before the models load, where it stays: not in the loading line that replaces itself."""
    models = models_file_elsewhere(tmp_path, fitted_for_another_reader)
    result = run_rag("chat", "--models", str(models), "--index-dir", str(tmp_path / "index"), stdin="What does Panjshir mean?\n")
    assert result.returncode == 0, result.stderr
    assert "fitted for another reader (0123456789abcdef" in result.stderr and "five lions" in result.stdout
    assert "fitted for another reader" not in result.stdout and result.stderr.count("fitted for another reader") == 1  # once
