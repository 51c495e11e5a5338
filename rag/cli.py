"""The `rag` command: a thin layer over rag.pipeline.Pipeline."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from rag.config import load_models_config
from rag.errors import RagError
from rag.pipeline import DEFAULT_TOP_K, Pipeline

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Offline, citation-first question answering over a folder of news articles.",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SeedsOption = Annotated[Optional[Path], typer.Option("--seeds", help="Folder of articles (*.txt). [default: ./seeds, else the bundled articles]")]
IndexDirOption = Annotated[Optional[Path], typer.Option("--index-dir", help="Where the index is kept. [default: .rag/<seeds name> beside the seeds folder]")]
ModelsOption = Annotated[Optional[Path], typer.Option("--models", help="models.toml to use. [default: ./models.toml, else the bundled one]")]
TopKOption = Annotated[int, typer.Option("--top-k", "-k", help="Passages retrieved and read per question.")]


def open_pipeline(seeds: Path | None, index_dir: Path | None, models: Path | None,
                  top_k: int = DEFAULT_TOP_K, rebuild: bool = False) -> Pipeline:
    """Open the pipeline with status lines and a progress bar for index building on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("embedding passages"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True)
    task = progress.add_task("embed", total=None)

    def on_progress(done: int, total: int) -> None:
        progress.start()
        progress.update(task, completed=done, total=total)

    with err.status("loading models and index…") if err.is_terminal else _nothing():
        try:
            return Pipeline.open(seeds, index_dir, load_models_config(models), top_k=top_k, rebuild=rebuild,
                                 on_status=lambda message: err.print(f"[dim]{message}[/dim]"),
                                 on_progress=on_progress)
        finally:
            progress.stop()


@app.command()
def ask(
    question: Annotated[Optional[str], typer.Argument(help="The question. Leave out to read one question a line from stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON answer a line (the stable contract).")] = False,
    top_k: TopKOption = DEFAULT_TOP_K,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
) -> None:
    """Answer a question from the articles, with a citation (or say the articles do not say)."""
    if question is None and sys.stdin.isatty():
        raise RagError('give a question, e.g. rag ask "Who leads the resistance?", or pipe questions one a line', 2)
    if question is not None:
        from rag.pipeline import validate_question

        validate_question(question)  # fail fast, before loading any model
    pipeline = open_pipeline(seeds, index_dir, models, top_k)
    questions = [question] if question is not None else (line for line in sys.stdin if line.strip())
    failures = 0
    for q in questions:
        try:
            answer = pipeline.ask(q)
        except RagError as problem:
            if question is not None:
                raise
            failures += 1
            _print_failure(q.strip(), problem, as_json)
            continue
        if as_json:
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        else:
            from rag.render import answer_view

            out.print(answer_view(answer, pipeline.corpus.documents))
    if failures:
        raise typer.Exit(1)


@app.command()
def index(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the index is up to date.")] = False,
    seeds: SeedsOption = None,
    index_dir: IndexDirOption = None,
    models: ModelsOption = None,
) -> None:
    """Build the index of the articles (ask and chat build it on first use)."""
    pipeline = open_pipeline(seeds, index_dir, models, rebuild=force)
    manifest = pipeline.index.manifest
    err.print(f"index ready: {manifest.passages} passages from {len(manifest.documents)} articles "
              f"(built {manifest.built_at}, embedder {manifest.embedder_id})")


def _print_failure(question: str, problem: RagError, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"question": question[:200], "error": str(problem)}, ensure_ascii=False), flush=True)
    else:
        err.print(f"[red]error:[/red] {problem}")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    try:
        app(prog_name="rag")
    except RagError as problem:
        err.print(f"[red]error:[/red] {problem}")
        sys.exit(problem.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()  # the reader of our output went away (e.g. `| head`); not an error
        sys.exit(0)
    except Exception as problem:  # the promise to users is no tracebacks, only a clear line
        err.print(f"[red]unexpected error:[/red] {type(problem).__name__}: {problem}")
        sys.exit(1)
