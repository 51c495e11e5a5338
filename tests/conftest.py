import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import load_models_config
from rag.assembly import build_pipeline

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Models exported for this test session only (readers trained by the tests would otherwise
    pile up in the user's cache); subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("RAG_CACHE_DIR")
    os.environ["RAG_CACHE_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("RAG_CACHE_DIR")
    else:
        os.environ["RAG_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def models():
    return load_models_config(ROOT / "models.toml")


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="session")
def pipeline(models, index_dir):
    """The real models over the real articles, with an index built once for the session."""
    return build_pipeline(models, SEEDS, index_dir)


@pytest.fixture(scope="session")
def test_questions():
    lines = (ROOT / "tests" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def seeds_copy(tmp_path):
    folder = tmp_path / "seeds"
    shutil.copytree(SEEDS, folder)
    return folder


def run_rag(*args, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `rag` command in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "rag", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def models_file_elsewhere(folder: Path, edit=lambda text: text) -> Path:
    """The bundled models.toml, written in `folder` (its reader's path made absolute) after `edit`."""
    text = (ROOT / "models.toml").read_text(encoding="utf-8").replace('"path:models/reader"', f'"path:{ROOT / "models" / "reader"}"')
    path = Path(folder) / "models.toml"
    path.write_text(edit(text), encoding="utf-8")
    return path


def fitted_for_another_reader(text: str) -> str:
    return re.sub(r'fitted_for = "\w+"', 'fitted_for = "0123456789abcdef"', text)


def read_source(doc_id: str, seeds: Path = SEEDS) -> str:
    with open(seeds / f"{doc_id}.txt", encoding="utf-8") as f:
        return f.read()


def read_only(monkeypatch, folder: Path) -> None:
    """`folder` as a read-only mount shows it (the tests may run as root, whom chmod does not
    stop): nothing in it can be opened to write, made, renamed or removed; reading is as before."""
    real_open, real_mkdir = Path.open, os.mkdir
    real_rename, real_replace, real_unlink = os.rename, os.replace, os.unlink

    def inside(*paths) -> bool:
        return any(Path(os.path.abspath(path)).is_relative_to(folder) for path in paths)

    def refused(*paths):
        raise PermissionError(13, "Permission denied", str(paths[0]))

    def open_(self, mode="r", *args, **kwargs):
        if inside(self) and set(mode) & set("wax+"):
            refused(self)
        return real_open(self, mode, *args, **kwargs)

    def guarded(real):
        return lambda *paths, **kwargs: refused(*paths) if inside(*paths[:2]) else real(*paths, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(os, "mkdir", lambda path, *args, **kwargs: (  # one that is there is still said to be there
        real_mkdir(path, *args, **kwargs) if not inside(path) or os.path.exists(path) else refused(path)))
    for name, real in (("rename", real_rename), ("replace", real_replace), ("unlink", real_unlink)):
        monkeypatch.setattr(os, name, guarded(real))
