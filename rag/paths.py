"""Where rag looks for what it is not told: each default file and folder named once. One of the
same name where rag runs comes first, else the one rag is installed with."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_FILE = Path("models.toml")
SEEDS_FOLDER = Path("seeds")
GOLD_FILE = Path("eval", "gold.jsonl")
INDEX_FOLDER = Path(".rag")  # beside the articles folder: .rag/<its name>


def local_or_bundled(relative: Path, is_there: Callable[[Path], bool] = Path.is_file) -> Path:
    """./`relative` where rag runs, when it is there, else the one rag is installed with."""
    local = Path.cwd() / relative
    return local if is_there(local) else PROJECT_ROOT / relative
