"""`--help` shows the defaults written into option help (rich would read "[default: ...]" or
"[retrieval]" as markup and drop it silently)."""
import re

import pytest

from tests.conftest import run_rag


def help_text(command: str) -> str:
    result = run_rag(command, "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())  # one line, without the panel's borders


@pytest.mark.parametrize("command, shown", [
    ("ask", "(default: [retrieval] top_k in models.toml, 5)"),
    ("ask", "(default: ./seeds, else the bundled articles)"),
    ("ask", "(default: [retrieval] vector_store in models.toml, faiss)"),
    ("eval", "(default: eval/gold.jsonl)"),
    ("train-reader", "(default: 1e-4 from the base encoder, 3e-5 with --init)"),
    ("train-reader", "(default: the embedder's base encoder from models.toml)"),
    ("train-reader", "(default: fp32, or the resumed run's)"),
])
def test_help_shows_the_defaults_it_describes(command, shown):
    assert shown in help_text(command)
