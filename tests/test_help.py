"""`--help` shows the defaults written into option help (rich would read "[default: ...]" or
"[retrieval]" as markup and drop it silently)."""
import re

import pytest
from typer.testing import CliRunner

from rag.cli import app


def help_text(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # one line, without the panel's borders


@pytest.mark.parametrize("command, shown", [
    ("ask", "(default: [retrieval] top_k in models.toml, 5)"),
    ("ask", "(default: ./seeds, else the bundled articles)"),
    ("ask", "(default: [retrieval] vector_store in models.toml, faiss)"),
    ("eval", "(default: ./eval/gold.jsonl, else the bundled one)"),
    ("train-reader", "(default: 1e-4 from the base encoder, 3e-5 with --init)"),
    ("train-reader", "(default: the embedder's base encoder from models.toml)"),
    ("train-reader", "(default: fp32, or the resumed run's)"),
])
def test_help_shows_the_defaults_it_describes(command, shown):
    assert shown in help_text(command)


@pytest.mark.parametrize("command", [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands])
def test_help_shows_flags_as_flags(command):
    """A flag takes no value: help that reads "--json <bool>" has users type `--json true`, which
    is refused."""
    text = help_text(command)
    assert "--help Show this message" in text  # every command has a flag, --help at least
    assert "<bool>" not in text


def test_version_is_the_installed_packages():
    """There was no `rag --version` ("No such option"), so a bug report could not say which rag."""
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"rag {version('rag')}\n"
    assert re.fullmatch(r"rag \d+\.\d+\.\d+\S*\n", result.output)


def test_version_of_a_rag_pip_never_installed_is_one_line_saying_so(monkeypatch):
    import importlib.metadata

    from rag.errors import RagError

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    result = CliRunner().invoke(app, ["--version"])
    assert isinstance(result.exception, RagError)
    assert str(result.exception) == "rag is not installed, so it has no version: pip install -e . where its pyproject.toml is"


def test_every_train_reader_setting_but_where_and_how_it_computes_is_refused_on_resume(tmp_path):
    """The options refused on --resume were listed by hand: one added later and not listed would
    be dropped without a word. Now those that may change are listed, and every other is refused."""
    import typer

    from rag.cli import CHANGEABLE_ON_RESUME
    from rag.errors import RagError

    command = typer.main.get_command(app).commands["train-reader"]
    for param in command.params:
        if param.name in CHANGEABLE_ON_RESUME or param.name == "help":
            continue
        value = [] if getattr(param, "is_flag", False) else ["1"]
        result = CliRunner().invoke(app, ["train-reader", "--data", str(tmp_path / "d.json"), "--out", str(tmp_path),
                                          "--resume", param.opts[0], *value])
        refused = result.exception  # rag's main() prints it as one line, exit code 2
        assert isinstance(refused, RagError) and refused.exit_code == 2, (param.name, result.output)
        assert str(refused).startswith(f"{param.opts[0]} cannot change on --resume")
    assert {"precision", "device", "eval_data"} <= set(CHANGEABLE_ON_RESUME)
