"""The `rag` command: a thin layer over rag.pipeline.Pipeline."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Annotated, Callable, NoReturn, Optional

import typer
from rich.console import Console
from rich.text import Text

from rag.background import end_process, new_command
from rag.config import RetrievalSettings, load_models_config
from rag.converters import FORMATS
from rag.errors import INTERRUPTED, STOP_CAME, TERMINATED, BadInput, RagError, Stopped, Terminated
from rag.paths import GOLD_FILE, INDEX_FOLDER, MODELS_FILE, SEEDS_FOLDER
from rag.dates import DateRange
from rag.pipeline import ANSWER_TIMEOUT_S, Pipeline, article_folders, default_seeds_dir, falls_back_to_bundled
from rag.train_settings import CONTINUED_LEARNING_RATE, TrainSettings, learning_rate_for
from rag.wording import counted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Offline, citation-first question answering over a folder of news articles.",
)


class _AnswersConsole(Console):
    def on_broken_pipe(self) -> None:
        """Rich's own exits 1 at once; a reader of the answers gone away (`rag ask | head -1`) is
        not a failure (exit 1 means a batch line could not be asked), so main() ends it as it ends
        emit()'s. Standard error keeps rich's: a command whose messages cannot be said did fail."""
        self.quiet = True
        raise BrokenPipeError


# markup is off: paths, questions and messages are printed as given (a "[/x]" in a path is text)
out = _AnswersConsole(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

SeedsOption = Annotated[Optional[Path], typer.Option("--seeds", help=f"Folder of articles ({FORMATS}). (default: ./{SEEDS_FOLDER}, else the bundled articles)")]
ChangedSeedsOption = Annotated[Optional[Path], typer.Option("--seeds", help=f"Folder of articles ({FORMATS}) to change. (default: ./{SEEDS_FOLDER}; the bundled articles are never changed)")]
IndexDirOption = Annotated[Optional[Path], typer.Option("--index-dir", help=f"Where the index is kept. (default: {INDEX_FOLDER}/<seeds name> beside the seeds folder)")]
ModelsOption = Annotated[Optional[Path], typer.Option("--models", help=f"{MODELS_FILE} to use. (default: ./{MODELS_FILE}, else the bundled one)")]
SinceOption = Annotated[Optional[str], typer.Option("--since", help="Answer only from articles dated on or after this day (YYYY-MM-DD); undated ones are left out.")]
UntilOption = Annotated[Optional[str], typer.Option("--until", help="Answer only from articles dated on or before this day (YYYY-MM-DD).")]
StoreOption = Annotated[Optional[str], typer.Option("--store", envvar="RAG_STORE", help=f"Where the vectors live: faiss (in the index folder), milvus:FILE.db (Milvus Lite) or milvus://HOST:PORT (a Milvus server). (default: \\[retrieval] vector_store in models.toml, {RetrievalSettings.vector_store})")]
TopKOption = Annotated[Optional[int], typer.Option("--top-k", "-k", help=f"Passages retrieved and read per question. (default: \\[retrieval] top_k in models.toml, {RetrievalSettings.top_k})")]


PLAIN_PROGRESS_EVERY_S = 10.0  # off a terminal, a line of progress this often: a log shows a long build moving


def progress_bar(label: str, total: int | None = None):
    """A progress bar on stderr (on a terminal; elsewhere a plain line at the first step, then
    every PLAIN_PROGRESS_EVERY_S), shown inside `with progress:`; returns (progress, update), where
    update(done, total) sets the count and update() adds one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal)
    task = progress.add_task(label, total=total)
    said_at = None  # the first step is said at once: a log showed nothing for the first interval

    def update(done: int | None = None, total: int | None = total) -> None:
        nonlocal said_at
        if done is None:
            progress.advance(task)
        else:
            progress.update(task, completed=done, total=total)
        state = progress.tasks[task]
        finished = state.total is not None and state.completed >= state.total  # a log ends on N/N, not on the last interval's count
        if progress.disable and (said_at is None or finished or time.monotonic() - said_at >= PLAIN_PROGRESS_EVERY_S):
            said_at = time.monotonic()
            err.print(f"{state.description}: {int(state.completed)}/{int(state.total or 0)}", style="dim")

    return progress, update


def report_status(message: str) -> None:
    err.print(message, style="dim")


def load_settings(models: Path | None, top_k: int | None = None, store: str | None = None):
    """models.toml, with what --top-k and --store (or RAG_STORE) override."""
    from rag.assembly import with_store, with_top_k

    return with_store(with_top_k(load_models_config(models), top_k), store)


def open_pipeline(seeds: Path | None, index_dir: Path | None, models: Path | None,
                  top_k: int | None = None, rebuild: bool = False, store: str | None = None):
    """The pipeline opened under one live line on stderr: a spinner while models load, a
    progress bar while passages are embedded."""
    from rag.assembly import build_pipeline

    config = load_settings(models, top_k, store)
    say_if_bundled(seeds, config)
    with embedding_progress() as on_progress:
        return build_pipeline(config, seeds, index_dir, rebuild, report_status, on_progress)


def say_if_bundled(seeds: Path | None, config, doing: str = "answering from") -> None:
    """One line when no --seeds was given and there is no ./seeds, so the answers come from the
    example articles rag ships with: a user who forgot --seeds learns it before the answer."""
    from rag.assembly import is_milvus

    if seeds is None and falls_back_to_bundled() and not is_milvus(config):
        report_status(f"no ./seeds here: {doing} the example articles rag ships with (--seeds DIR for yours)")


def _index_manifest(config, seeds: Path | None, index_dir: Path | None, rebuild: bool = False):
    """The index folder brought up to date under the same live line; its manifest."""
    from rag.assembly import open_index

    with embedding_progress() as on_progress:
        return open_index(config, seeds, index_dir, rebuild, report_status, on_progress).index.manifest


@contextlib.contextmanager
def embedding_progress():
    """A spinner while models load, then a bar while passages are embedded; yields on_progress."""
    progress, update = progress_bar("loading models and index…")

    def on_progress(done: int, total: int) -> None:
        progress.update(progress.task_ids[0], description="embedding passages")
        update(done, total)

    with progress:
        yield on_progress


def _milvus_index(config, seeds: Path | None, rebuild: bool) -> None:
    """Write articles into the Milvus archive, then say what changed and what it holds."""
    from rag.assembly import index_milvus

    with embedding_progress() as on_progress:
        archive, change = index_milvus(config, seeds, rebuild, report_status, on_progress)
    err.print(change.summary(archive))


def _say_version(asked: bool) -> None:
    """`rag --version`: the installed package's version (pyproject.toml's, as pip installed it)."""
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        emit(f"rag {version('rag')}")
    except PackageNotFoundError:  # run from a source tree that pip never installed
        raise RagError("rag is not installed, so it has no version: pip install -e . where its pyproject.toml is") from None
    raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option("--version", callback=_say_version, is_eager=True,
                                               help="Print rag's version and exit.")] = False,
) -> None:
    pass  # the options of `rag` itself, before any command (its help is the app's)


@app.command()
def ask(
    question: Annotated[Optional[str], typer.Argument(help="The question. Leave out to read one question a line from stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON answer a line (the stable contract).")] = False,
    why: Annotated[bool, typer.Option("--why", help="Also show each passage's best span, the confidence an answer needs "
                                      "and has, and the reader's margin over \"no answer\" (with --json: \"candidates\").")] = False,
    top_k: TopKOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Answer a question from the articles, with a citation (or say the articles do not say)."""
    dates = DateRange.parse(since, until)
    if question is None and sys.stdin.isatty():
        raise RagError('give a question, e.g. rag ask "Who leads the resistance?", or pipe questions one a line', 2)
    if question is not None:
        from rag.pipeline import validate_question

        validate_question(question)  # fail fast, before loading any model
    pipeline = open_pipeline(seeds, index_dir, models, top_k, store=store)
    if question is not None:
        _print_answer(pipeline.ask(question, dates), pipeline, as_json, why=why, dates=dates)
        return
    from rag.batch import question_lines

    failures = asked = 0
    for line in question_lines(sys.stdin.buffer):
        asked += 1
        try:
            if line.problem:
                raise BadInput(line.problem)
            answer = pipeline.ask(line.text, dates)
        except RagError as problem:
            failures += 1
            _print_failure(line, problem, as_json)
            continue
        if not as_json:  # plain answers carry no question: say which line each one answers
            _print_plain(Text(f"line {line.number}: {line.text}", style="dim"))
        _print_answer(answer, pipeline, as_json, line.number, why, dates)
    if not asked:  # an empty file piped in by mistake: nothing printed and exit 0 looked like success
        raise RagError("no questions on stdin (one a line; blank lines are skipped)")
    if failures:
        raise typer.Exit(1)


def _print_answer(answer, pipeline: Pipeline, as_json: bool, line: int | None = None, why: bool = False,
                  dates: DateRange | None = None) -> None:
    from rag.render import answer_json_line, answer_view, why_view

    if as_json:
        emit(answer_json_line(answer, why, line))
        return

    _print_plain(answer_view(answer, pipeline.corpus, dates))
    if why:
        _print_plain(why_view(answer, pipeline.decision.threshold))


def _print_plain(view) -> None:
    try:
        out.print(view)
    except BrokenPipeError:
        raise OutputClosed from None


@app.command()
def index(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the index is up to date.")] = False,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Build the index of the articles (ask and chat build it on first use).
    With a Milvus store, write the folder's new and edited articles into its archive."""
    from rag.assembly import is_milvus

    config = load_settings(models, store=store)
    if is_milvus(config):
        return _milvus_index(config, seeds, force)
    say_if_bundled(seeds, config, "indexing")
    manifest = _index_manifest(config, seeds, index_dir, rebuild=force)
    err.print(f"index ready: {counted(manifest.passages, 'passage')} from {counted(len(manifest.documents), 'article')} "
              f"(built {manifest.built_at}, embedder {manifest.embedder_id}, vectors in {manifest.vector_store})")


@app.command()
def add(
    paths: Annotated[list[Path], typer.Argument(help=f"Article files, or folders of them ({FORMATS}).")],
    seeds: ChangedSeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Copy articles into the archive (the seeds folder) and index them; only they are embedded.
    With a Milvus store, write them into its archive (nothing is copied)."""
    from rag.assembly import add_articles

    config = load_settings(models, store=store)
    with embedding_progress() as on_progress:
        update = add_articles(config, paths, seeds, index_dir, report_status, on_progress)
    err.print(update.line)
    if update.skipped:  # the others were added; a script must still see that not all of them were
        raise typer.Exit(1)


@app.command()
def remove(
    doc_ids: Annotated[list[str], typer.Argument(help="Ids of the articles to remove, as citations give them; a JSON Lines file's name removes all its records (not with --store).")],
    seeds: ChangedSeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Take articles out of the archive (their files move to <index folder>/removed/<time>/; rag add one to undo) and the index.
    With a Milvus store, out of its archive."""
    from rag.assembly import remove_articles

    config = load_settings(models, store=store)
    with embedding_progress() as on_progress:
        update = remove_articles(config, doc_ids, seeds, index_dir, report_status, on_progress)
    err.print(update.line)


@app.command()
def show(
    doc_id: Annotated[str, typer.Argument(help="The article's id, as citations give it.")],
    start: Annotated[Optional[int], typer.Option("--start", help="Mark the span from this character…")] = None,
    end: Annotated[Optional[int], typer.Option("--end", help="…to this one (a citation's start and end).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="{doc_id, title, date, source, text} as one JSON object.")] = False,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Show an article's text (the text citations point into), with a cited span marked."""
    from rag.assembly import changed_since_indexed, stored_articles
    from rag.corpus import say_skipped
    from rag.render import ArticleView

    config = load_settings(models, store=store)
    # the index keeps what each web page gave: without it, every page of the folder is converted again
    articles = stored_articles(config, seeds, index_dir)
    say_skipped(articles.skipped, report_status)  # said on every run, as by every command that reads the folder
    changed = changed_since_indexed(config, articles, doc_id, seeds, index_dir)
    if changed:  # said first: an edit may also have left the span asked for past the article's end
        err.print(Text.assemble(("warning: ", "yellow"), changed))
    view = ArticleView.of(articles, doc_id, start, end)
    if as_json:
        emit(json.dumps(view.to_json(), ensure_ascii=False))
    else:
        out.print(view.header(), style="cyan")
        out.print(view.body(marked_style="bold reverse" if out.is_terminal else None))


@app.command()
def chat(
    top_k: TopKOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Talk to the articles: ask questions one after another (/help for commands)."""
    dates = DateRange.parse(since, until)
    from rag.assembly import PipelineSource, articles_before_loading, check_models, is_milvus, warn_if_fitted_for_another_reader
    from rag.chat import BackgroundLoad, ChatSession, IndexWatch, run_chat

    config = load_settings(models, top_k, store)
    say_if_bundled(seeds, config)
    seeds = seeds or default_seeds_dir()
    check_models(config)
    corpus = articles_before_loading(config, seeds, index_dir, report_status)  # what the banner counts
    said = []  # the loading spinner would show it only for a moment: said now, and not again by the session
    warn_if_fitted_for_another_reader(config, lambda line: (report_status(line), said.append(line)))

    def embedding_said_in(set_state):
        return lambda done, total: set_state(f"building the index: {done}/{total} passages embedded")

    source = PipelineSource(config, seeds, index_dir)
    load = lambda set_state: source.load(set_state, embedding_said_in(set_state))  # noqa: E731
    load_again = lambda old, set_state: source.load_again(old, set_state, embedding_said_in(set_state))  # noqa: E731
    watch = None if is_milvus(config) else IndexWatch(source.index_version, load_again)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    run_chat(ChatSession(corpus, BackgroundLoad(load), out, dates, watch, said), _history_file() if interactive else None,
             interactive)  # main() ends the process around a load still running, however the chat ends


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8000,
    token: Annotated[Optional[str], typer.Option("--token", envvar="RAG_TOKEN", help="Require 'Authorization: Bearer TOKEN' on every request that reads the articles.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a question may take before a 504.", min=1)] = ANSWER_TIMEOUT_S,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Serve the answers over HTTP, with a page to ask them from at / (Ctrl-C or SIGTERM stops it)."""
    from rag.assembly import PipelineSource, check_models, is_milvus
    from rag.corpus import check_articles_folder
    from rag.server import serve as run_server

    config = load_settings(models, store=store)
    say_if_bundled(seeds, config)
    check_models(config)
    if not is_milvus(config):  # an empty or unreadable folder is said before the server starts, not by /healthz
        check_articles_folder(article_folders(seeds, index_dir)[0])
    source = PipelineSource(config, seeds, index_dir)
    run_server(lambda: source.load(report_status), host, port, token, timeout, on_ready=report_status,
               index_version=source.index_version, load_again=lambda old: source.load_again(old, report_status))


def _history_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("rag")) / "chat_history"


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    gold: Annotated[Optional[Path], typer.Option("--gold", help=f"Gold questions (JSON Lines). (default: ./{GOLD_FILE.as_posix()}, else the bundled one)")] = None,
    predictions: Annotated[Optional[Path], typer.Option("--predictions", help="Write every answer here, one `rag ask --json` line each.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a markdown report, and its calibration picture beside it (out/r.md: also out/r.calibration.png); both are replaced if there.")] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="An earlier run's --predictions file: show each measure's change, with a 95 % interval, and every question that changed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    min_f1: Annotated[Optional[float], typer.Option("--min-f1", help="Exit 1 if F1 (0-100) is below this.")] = None,
    min_citation: Annotated[Optional[float], typer.Option("--min-citation", help="Exit 1 if citation accuracy (0-100) is below this.")] = None,
    min_abstention: Annotated[Optional[float], typer.Option("--min-abstention", help="Exit 1 if abstention recall (0-100) is below this.")] = None,
    squad: Annotated[Optional[Path], typer.Option("--squad", help="Score on SQuAD v2-format data instead of the gold set.")] = None,
    open_domain: Annotated[bool, typer.Option("--open", help="With --squad: index every paragraph and answer by retrieval then reading.")] = False,
    top_k: TopKOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
    store: StoreOption = None,
) -> None:
    """Measure answer quality on a gold question set (or SQuAD data); --report lists every miss."""
    dates = DateRange.parse(since, until)
    from rag import evaluate as ev
    from rag.gold import default_gold_file

    if squad is not None:
        _refuse_beside_squad({"--gold": gold, "--predictions": predictions, "--report": report, "--baseline": baseline,
                              "--min-f1": min_f1, "--min-citation": min_citation, "--min-abstention": min_abstention,
                              "--since": since, "--until": until, "--seeds": seeds, "--index-dir": index_dir,
                              "--store": store if typed_on_the_command_line(ctx, "store") else None})  # not RAG_STORE
        if top_k is not None and not open_domain:  # each question is read with its own paragraph: nothing is retrieved
            raise RagError("--top-k goes with --squad --open, where passages are retrieved", 2)
        return _evaluate_squad(squad, open_domain, as_json, top_k, models)
    if open_domain:
        raise RagError("--open goes with --squad FILE", 2)
    ev.check_gates({"--min-f1": min_f1, "--min-citation": min_citation, "--min-abstention": min_abstention})
    articles, index = article_folders(seeds, index_dir)
    _evaluate_gold_set(gold or default_gold_file(), predictions, report, baseline, as_json,
                       {"f1": min_f1, "citation_accuracy": min_citation, "abstention_recall": min_abstention},
                       dates, lambda: open_pipeline(seeds, index_dir, models, top_k, store=store),
                       {"the articles folder": articles, "the index folder": index})


def _evaluate_gold_set(gold: Path, predictions: Path | None, report: Path | None, baseline: Path | None,
                       as_json: bool, gates: dict[str, float | None], dates: DateRange | None,
                       open_the_pipeline: Callable[[], Pipeline], read_folders: dict[str, Path]) -> None:
    """`rag eval` on a gold set. The pipeline is opened after every input file is checked:
    building an index takes long (what needs the articles, the gold set's citations and dates,
    is checked once they are read)."""
    from rag import evaluate as ev

    outputs = ev.GoldOutputs(predictions, report)
    questions, earlier = ev.prepare_gold_run(gold, outputs, baseline, read_folders)
    pipeline = open_the_pipeline()
    checked = ev.check_gold_against(pipeline.corpus, questions, gold, dates)
    if checked.unstated:
        err.print(Text.assemble(("warning: ", "yellow"), "no answer of these questions is in the articles they cite: "
                                f"{', '.join(checked.unstated)}"))
    if checked.dated_out:
        err.print(f"note: {len(checked.dated_out)} questions left out, as only articles outside the dates answer them: "
                  f"{', '.join(checked.dated_out)}")
    if checked.not_searched:
        err.print(f"note: {len(checked.not_searched)} questions left out, as only articles the index does not search "
                  f"(added or edited since it was built) answer them: {', '.join(checked.not_searched)}")
    progress, update = progress_bar("answering", len(checked.questions))
    with ev.answers_kept_as_they_come(predictions) as keep, progress:
        run = ev.evaluate_gold(pipeline, checked.questions, dates, earlier, on_done=update, left_out=checked.left_out,
                               on_result=keep)
    if as_json:  # printed before anything is written: a full disk then loses no result of a long run
        print(json.dumps(run.to_json()))
    else:
        _print_summary(run.summary, run.by_article)
        _print_tradeoff(run.tradeoff, pipeline.decision.threshold)
        if run.against_baseline:
            _print_comparison(run.against_baseline, baseline)
    picture = ev.write_gold_run(run, outputs, pipeline.decision.threshold, gold.name, baseline)
    if picture:
        err.print(f"report: {report} (calibration picture: {picture})")
    misses = ev.gate_failures(run.results, gates)
    if misses:
        raise RagError("below the bar: " + "; ".join(misses))


def _print_comparison(against: dict, baseline: Path) -> None:
    from rich.table import Table

    from rag.evaluate import cell

    table = Table(title=f"against the baseline ({baseline}; the interval: 95 %, paired bootstrap over the questions)")
    table.add_column("measure")
    for label in ("baseline", "now", "change", "95 % interval"):
        table.add_column(label, justify="right")
    for row in against["measures"]:
        low, high = row["interval"]
        table.add_row(row["measure"], cell(row["baseline"]), cell(row["now"]), cell(row["change"]), f"{cell(low)} to {cell(high)}")
    out.print(table)
    for change in against["changed"]:
        mark = Text(f"{change['verdict']:<6}", style=VERDICT_STYLES[change["verdict"]])
        out.print(Text.assemble(mark, f" {change['id']} {change['question']}  {_said(change['baseline'])} → {_said(change['now'])}"))


VERDICT_STYLES = {"better": "green", "worse": "red", "same": "dim"}


def _said(answer: str | None) -> str:
    return "(declined)" if answer is None else repr(answer)


def _print_summary(summary: dict, by_article: dict) -> None:
    from rich.table import Table

    from rag.evaluate import SUMMARY_ROWS, cell, shortest_unique_prefixes

    def fits(heads: list[str]) -> bool:  # the metric and "all", then a column an article
        return 40 + sum(max(len(head), 5) + 3 for head in heads) <= out.width

    # whole ids where they fit, else their first words that still tell them apart; heads cut
    # mid-word would read "bri" and "fee", so with no room for words the table leaves them out
    choices = [list(by_article), shortest_unique_prefixes(list(by_article))]
    names = next((heads for heads in choices if fits(heads)), [])
    shown = by_article if names else {}
    caption = None if shown or not by_article else (f"{len(by_article)} articles, too many columns for this terminal: "
                                                          "each one's is in --report's table")
    table = Table(title=f"{counted(summary['questions'], 'question')} ({summary['answerable']:,} answerable)", caption=caption)
    table.add_column("metric")
    table.add_column("all", justify="right")
    for name in names if shown else []:
        table.add_column(name, justify="right")
    for label, key in SUMMARY_ROWS:
        table.add_row(label, *(cell(s[key]) for s in [summary, *shown.values()]))
    out.print(table)


def _print_tradeoff(rows: list[dict], threshold: float) -> None:
    from rich.table import Table

    from rag.evaluate import TRADEOFF_COLUMNS, cell

    table = Table(title=f"had rag declined under another threshold (its own: {threshold:g}; models.toml, [reader.abstention])")
    for label, _ in TRADEOFF_COLUMNS:
        table.add_column(label, justify="right")
    for row in rows:
        table.add_row(*(cell(row[key]) for _, key in TRADEOFF_COLUMNS))
    out.print(table)


def _refuse_beside_squad(options: dict[str, object]) -> None:
    """--squad scores a SQuAD file on its own paragraphs: the gold set's options mean nothing
    there, and ignoring one (a gate above all) would pass what it should stop."""
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise RagError(f"{', '.join(given)} {'goes' if len(given) == 1 else 'go'} with the gold set, not with --squad", 2)


def _evaluate_squad(path: Path, open_domain: bool, as_json: bool, top_k: int | None, models: Path | None) -> None:
    from rag import squad as sq

    data = sq.load_squad(path)
    sq.check_askable(data, path)
    config = load_settings(models, top_k)
    progress, advance = progress_bar("answering", len(data.questions))
    embedding = progress.add_task("embedding the paragraphs", total=None, visible=open_domain)

    def embedded(done: int, total: int) -> None:
        progress.update(embedding, completed=done, total=total)

    with progress:
        results = sq.evaluate_file(data, config, open_domain, on_status=report_status, on_done=advance,
                                   on_progress=embedded)
    if as_json:
        print(json.dumps(results))
        return
    from rich.table import Table

    from rag.evaluate import cell

    columns = [("EM", "em"), ("F1", "f1"), ("HasAns EM", "has_ans_em"), ("HasAns F1", "has_ans_f1"),
               ("NoAns acc.", "no_ans_accuracy"), ("retrieval recall@k", "retrieval_recall_at_k")]
    columns = [(label, key) for label, key in columns if any(key in r for r in results.values())]
    table = Table(title=f"{path.name}: {len(data.questions)} questions")
    table.add_column("decision", no_wrap=True)
    for label, _ in columns:
        table.add_column(label, justify="right")
    for rule, r in results.items():
        table.add_row(rule, *(cell(r.get(key)) for _, key in columns))
    out.print(table)


def _short_number(rate: float) -> str:
    return f"{rate:.0e}".replace("e-0", "e-")  # 1e-4, not 0.0001


@app.command("train-reader")
def train_reader(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="SQuAD v1/v2-format training file.")],
    init: Annotated[Optional[str], typer.Option("--init", help="Model directory to start from (a previous reader). (default: the embedder's base encoder from models.toml)")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the trained reader (and its checkpoints) go.")] = Path("models/reader-new"),
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps.")] = None,
    time_budget: Annotated[Optional[str], typer.Option("--time-budget", help="Stop after this much training time, e.g. 2h or 90m.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in --out (its settings are kept).")] = False,
    eval_data: Annotated[Optional[Path], typer.Option("--eval-data", help="Held-out SQuAD-format file scored at the end (never train on it).")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--lr", help=f"Peak learning rate. (default: {_short_number(TrainSettings.learning_rate)} from the base encoder, {_short_number(CONTINUED_LEARNING_RATE)} with --init)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = TrainSettings.batch_size,
    checkpoint_every: Annotated[Optional[str], typer.Option("--checkpoint-every", help=f"Time between checkpoints. (default: {TrainSettings.checkpoint_every_s / 60:g}m)")] = None,
    keep_snapshots: Annotated[bool, typer.Option("--keep-snapshots", help="Also keep each checkpoint's weights in OUT/snapshots/step-N, to average the later ones with the final reader (eval/average_readers.py).")] = TrainSettings.keep_snapshots,
    seed: Annotated[int, typer.Option("--seed", help="Shuffle seed; give a new one when continuing a reader with --init, so it sees other batches first.")] = TrainSettings.seed,
    exclude_articles: Annotated[Optional[Path], typer.Option("--exclude-articles", help="File of article titles (one a line) kept out of training, e.g. for calibration.")] = None,
    objective: Annotated[str, typer.Option("--objective", help="window: each window alone; shared: a question's windows from several paragraphs of its article under one softmax.")] = TrainSettings.objective,
    unanswerable_copies: Annotated[int, typer.Option("--unanswerable-copies", help="Windows of each unanswerable question per epoch (window objective); more weigh abstention up.")] = TrainSettings.unanswerable_copies,
    withheld_negatives: Annotated[float, typer.Option("--withheld-negatives", help="Share of answerable questions also read with their answer's sentence cut out, as \"no answer\" (window objective).")] = TrainSettings.withheld_negatives,
    swapped_negatives: Annotated[float, typer.Option("--swapped-negatives", help="Share of answerable questions also read with a name or number swapped for another, as \"no answer\" (window objective).")] = TrainSettings.swapped_negatives,
    swap_from: Annotated[str, typer.Option("--swap-from", help="Where a swapped-in name comes from: article (one only other paragraphs mention) or paragraph (one the own paragraph mentions outside the answer's sentence).")] = TrainSettings.swap_from,
    precision: Annotated[Optional[str], typer.Option("--precision", help=f"fp32, or bf16: mixed precision, steps in about 0.6 of the time on CPUs with bf16 instructions (AVX-512 BF16, AMX); it may change on --resume. (default: {TrainSettings.precision}, or the resumed run's)")] = None,
    device: Annotated[str, typer.Option("--device", help="auto: a CUDA GPU when torch sees one, else the CPU; or cpu, or cuda. On --resume too, so a run moves to where it is resumed.")] = TrainSettings.device,
    models: ModelsOption = None,
) -> None:
    """Fine-tune an extractive reader (a model directory models.toml can point at)."""
    from rag import train as tr

    config = load_models_config(models)
    if resume:
        _refuse_on_resume(ctx)
        settings = tr.resumed_settings(out_dir, precision, device)
    else:
        settings = TrainSettings(
            max_seq_len=config.reader.settings.max_seq_len, stride=config.reader.settings.stride,  # windows as [reader] reads them
            batch_size=batch_size, max_steps=max_steps,
            time_budget_s=tr.parse_duration(time_budget) if time_budget else None,
            learning_rate=learning_rate_for(init) if learning_rate is None else learning_rate,
            checkpoint_every_s=tr.parse_duration(checkpoint_every) if checkpoint_every else TrainSettings.checkpoint_every_s,
            keep_snapshots=keep_snapshots,
            seed=seed, objective=objective,
            unanswerable_copies=unanswerable_copies, withheld_negatives=withheld_negatives,
            swapped_negatives=swapped_negatives, swap_from=swap_from,
            precision=precision or TrainSettings.precision, device=device,
            excluded_articles=tr.read_article_list(exclude_articles) if exclude_articles else ())
    run = tr.TrainingRun(data, out_dir, settings, config, init, resume, eval_data)
    scores = run.start(on_status=report_status, progress=progress_bar, log=lambda line: err.print(line, style="dim"))
    err.print(f"reader saved to {out_dir} ({run.trainer.step} steps); point [reader] source at path:{out_dir} in models.toml to use it")
    if scores:
        print(json.dumps(scores))


# what may be given with --resume: where the run is, what it reads and scores, and where and how
# it computes; every other setting is the run's own, kept in its checkpoint (one given would be
# dropped), so an option added later is refused on --resume until it is listed here
CHANGEABLE_ON_RESUME = ("data", "out_dir", "resume", "eval_data", "precision", "device", "models")


def typed_on_the_command_line(ctx: typer.Context, name: str) -> bool:
    """Given on the command line, not a default nor an environment variable's value."""
    source = ctx.get_parameter_source(name)  # (typer carries its own click: its ParameterSource is not click's)
    return source is not None and source.name == "COMMANDLINE"


def _refuse_on_resume(ctx: typer.Context) -> None:
    """A setting given with --resume would be silently dropped (the run keeps its own): refused."""
    given = [param.opts[0] for param in ctx.command.params
             if param.name not in CHANGEABLE_ON_RESUME and typed_on_the_command_line(ctx, param.name)]
    if given:
        raise RagError(f"{', '.join(given)} cannot change on --resume: the run keeps the settings it started with "
                       f"(to train on with others, start a next piece with --init {ctx.params['out_dir']})", 2)


def _print_failure(line, problem: RagError, as_json: bool) -> None:
    """A batch line that could not be answered: an error object on its own output line."""
    if as_json:
        emit(json.dumps({"question": line.text[:200], "error": str(problem), "line": line.number}, ensure_ascii=False))
    else:
        err.print(Text.assemble(("error: ", "red"), f"line {line.number}: {problem}"))


class OutputClosed(Exception):
    """Whoever reads our output went away (e.g. `rag ask --json < q | head -1`): not an error."""


def emit(line: str) -> None:
    """One line of output, flushed now, so a batch's answers are not lost if a later one fails."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        raise OutputClosed from None


def main() -> None:
    """Every way out is one line and an exit code; RAG_DEBUG=1 adds the traceback behind an
    unexpected error."""
    new_command()
    _SIGTERM_CAME.clear()
    STOP_CAME.clear()
    on_main_thread = threading.current_thread() is threading.main_thread()  # only it may take signals
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if on_main_thread else None
    # a job started in the background (`rag index &`) has SIGINT ignored, as a Ctrl-C is the foreground's: left so
    takes_sigint = on_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous_int = signal.signal(signal.SIGINT, _stop_on_sigint) if takes_sigint else None
    previous_hook = sys.unraisablehook
    if on_main_thread:
        sys.unraisablehook = functools.partial(_stop_in_a_finaliser, previous_hook)
    try:
        code = app(prog_name="rag", standalone_mode=False)  # usage errors come to us, not to a rich box
    except Stopped as stop:  # what the stopped work kept, in place of "interrupted"
        _exit_with(stop.exit_code, str(stop), label="")
    except RagError as problem:
        _exit_with(problem.exit_code, str(problem))
    except KeyboardInterrupt:
        _exit_stopped()
    except (OutputClosed, BrokenPipeError):
        _quiet_exit(0)
    except Exception as problem:  # the promise to users is no tracebacks, only a clear line
        if _is_usage_error(problem):
            _usage_exit(problem)
        if type(problem).__name__ == "Abort" or STOP_CAME.is_set():  # click's word for a KeyboardInterrupt; or
            _exit_stopped()  # what a library made of one (an ImportError from a C extension stopped as it loaded)
        if os.environ.get("RAG_DEBUG"):
            traceback.print_exc()
        _exit_with(1, f"{type(problem).__name__}: {problem} (RAG_DEBUG=1 shows the traceback)", label="unexpected error: ")
    finally:
        if not STOP_CAME.is_set():  # else a second signal may still come, as the process ends
            sys.unraisablehook = previous_hook
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if takes_sigint:
            signal.signal(signal.SIGINT, previous_int)
    if code == INTERRUPTED:  # typer's return for a KeyboardInterrupt inside a command
        _exit_stopped()
    end_process(code if isinstance(code, int) else 0)


_SIGTERM_CAME = threading.Event()  # typer turns the Terminated raised into its code for a Ctrl-C


def _stop_on_sigterm(signum, frame) -> None:
    if STOP_CAME.is_set():  # a stop is under way: see _stop_on_sigint
        return
    _SIGTERM_CAME.set()
    STOP_CAME.set()
    raise Terminated


def _stop_on_sigint(signum, frame) -> None:
    # a stop is under way (`timeout` signals rag and its process group, so rag gets two; a terminal's
    # impatient second Ctrl-C): raised again, it broke the clean-up, or landed in a finaliser and
    # Python printed it as a traceback
    if STOP_CAME.is_set():
        return
    STOP_CAME.set()
    raise KeyboardInterrupt


def _stop_in_a_finaliser(previous_hook, unraisable) -> None:
    """sys.unraisablehook from a command's start: a Ctrl-C or SIGTERM raised while Python ran a
    finaliser (a thread pool's weakref callback) stops nothing there, and Python printed it as a
    traceback. Not printed; and as the stop it began was lost, the next signal stops the command
    (given back to the main thread from here, it landed inside this hook or after the command)."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        previous_hook(unraisable)
        return
    _SIGTERM_CAME.clear()
    STOP_CAME.clear()


def _exit_stopped() -> NoReturn:
    """Ctrl-C or SIGTERM: one line, and the shell's exit code for each."""
    if _SIGTERM_CAME.is_set():
        _exit_with(TERMINATED, "stopped (SIGTERM)", label="")
    _exit_with(INTERRUPTED, "interrupted", label="")


def _is_usage_error(problem: Exception) -> bool:
    """click's (typer's vendored click's) usage errors: bad options, missing arguments."""
    return hasattr(problem, "format_message") and isinstance(getattr(problem, "exit_code", None), int)


def _usage_exit(problem) -> None:
    message = problem.format_message()
    if not message:  # `rag` alone: the help was printed
        end_process(problem.exit_code)
    ctx = getattr(problem, "ctx", None)
    command = f"rag {ctx.info_name} --help" if ctx is not None and ctx.parent is not None else "rag --help"
    _exit_with(problem.exit_code, f"{message} (see {command})")


def _exit_with(code: int, message: str, label: str = "error: ") -> NoReturn:
    try:
        err.print(Text.assemble((label, "red"), message))
    except BrokenPipeError:
        pass
    end_process(code)


def _quiet_exit(code: int) -> None:
    """Exit without Python complaining that stdout can no longer be flushed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    end_process(code)
