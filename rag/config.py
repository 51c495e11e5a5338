"""models.toml: which models `rag` uses and where each comes from."""
from __future__ import annotations

import hashlib
import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelSpec:
    role: str
    id: str
    source: str
    install: str
    base_dir: Path  # relative "path:" sources resolve against the models.toml folder
    settings: dict = field(default_factory=dict)

    def resolve(self) -> str:
        """A local directory for the model, or a hub id; never downloads anything itself."""
        kind, _, where = self.source.partition(":")
        if kind == "package":
            return str(self._package_path(where))
        if kind == "path":
            path = (self.base_dir / where).resolve()
            if not (path / "config.json").is_file():
                raise self.missing(f"no model at {path}")
            return str(path)
        if kind == "hub":
            return where
        raise RagError(f"models.toml [{self.role}]: unknown source {self.source!r} (use package:, path: or hub:)")

    def fingerprint(self) -> str:
        """Identifies the model's files cheaply (config, weights size and first MiB), so a
        swapped model is noticed without hashing hundreds of MB on every start."""
        if not self.is_local:
            return f"hub:{self.id}"
        folder = Path(self.resolve())
        digest = hashlib.sha256(self.id.encode())
        for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
            path = folder / name
            if path.is_file():
                with path.open("rb") as f:
                    digest.update(name.encode() + str(path.stat().st_size).encode() + f.read(1 << 20))
        return digest.hexdigest()[:16]

    @property
    def is_local(self) -> bool:
        return not self.source.startswith("hub:")

    def missing(self, why: str) -> RagError:
        return RagError(f"the {self.role} model '{self.id}' is not available ({why}). To get it: {self.install}")

    def _package_path(self, module_name: str) -> Path:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise self.missing(f"Python package {module_name!r} is not installed") from None
        path = Path(module.get_model_path())
        if not (path / "config.json").is_file():
            raise self.missing(f"package {module_name!r} has no model files at {path}")
        return path


@dataclass(frozen=True)
class ModelsConfig:
    path: Path
    embedder: ModelSpec
    reader: ModelSpec

    @property
    def abstention(self) -> dict:
        return self.reader.settings.get("abstention", {})


def default_models_file() -> Path:
    local = Path.cwd() / "models.toml"
    return local if local.is_file() else PROJECT_ROOT / "models.toml"


def load_models_config(path: Path | None = None) -> ModelsConfig:
    path = Path(path) if path else default_models_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RagError(f"models file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RagError(f"models file {path} is not valid TOML: {exc}") from None
    return ModelsConfig(path=path, embedder=_spec(data, "embedder", path), reader=_spec(data, "reader", path))


def _spec(data: dict, role: str, path: Path) -> ModelSpec:
    entry = dict(data.get(role) or {})
    for key in ("id", "source"):
        if not isinstance(entry.get(key), str):
            raise RagError(f"{path}: [{role}] needs a string '{key}'")
    return ModelSpec(
        role=role,
        id=entry.pop("id"),
        source=entry.pop("source"),
        install=entry.pop("install", f"point [{role}] source in {path} at a model directory"),
        base_dir=path.parent.resolve(),
        settings=entry,
    )
