"""models.toml: which models `rag` uses and where each comes from."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from rag.corpus import ChunkSettings
from rag.decision import Abstention
from rag.errors import RagError
from rag.limits import check_limits, check_range
from rag.paths import MODELS_FILE, local_or_bundled
from rag.retrieval.fusion import RRF_K
from rag.retrieval.vector_store import parse_store


RUNTIMES = ("onnx", "torch")  # see rag.models
PRECISIONS = ("float32", "int8")  # int8: a dynamically quantized ONNX graph (eval/scale.py measures both)
FULL_PRECISION = PRECISIONS[0]
# how each model is quantized at int8 (the recipes are rag.models.QUANTIZATION): part of its
# fingerprint, so that another recipe is another model to a fitted decision or an index
INT8_RECIPE = {"embedder": "int8", "reader": "int8-matmul-per-channel"}


def _check_one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RagError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def _check_runtime_and_precision(runtime: str, precision: str) -> None:
    _check_one_of("runtime", runtime, RUNTIMES)
    _check_one_of("precision", precision, PRECISIONS)
    if precision == "int8" and runtime != "onnx":
        raise RagError('precision = "int8" needs runtime = "onnx"')


@dataclass(frozen=True)
class EmbedderSettings:
    batch_size: int = field(default=32, metadata={"min": 1})
    runtime: str = RUNTIMES[0]
    precision: str = FULL_PRECISION

    def __post_init__(self):  # checked as models.toml is read, not minutes later when the model loads
        check_limits(self)
        _check_runtime_and_precision(self.runtime, self.precision)


MAX_QUESTION_TOKENS = 96  # a longer question is clipped, keeping room for the passage in the window
WINDOW_SPECIAL_TOKENS = 3  # [CLS] question [SEP] passage [SEP]


@dataclass(frozen=True)
class ReaderSettings:
    max_seq_len: int = field(default=384, metadata={"min": 128})
    stride: int = field(default=128, metadata={"min": 0})
    max_answer_tokens: int = field(default=30, metadata={"min": 1})
    runtime: str = RUNTIMES[0]
    precision: str = FULL_PRECISION
    abstention: Abstention = field(default_factory=Abstention)

    def __post_init__(self):
        check_limits(self)
        _check_runtime_and_precision(self.runtime, self.precision)
        if self.stride >= self.passage_tokens:  # the tokenizer would refuse it at the first question
            raise RagError(f"stride = {self.stride} is not valid: it must be under the passage's share of a window, "
                           f"max_seq_len - {MAX_QUESTION_TOKENS + WINDOW_SPECIAL_TOKENS} = {self.passage_tokens}")

    @property
    def passage_tokens(self) -> int:
        """The passage's share of a window when the question is as long as it may be."""
        return self.max_seq_len - MAX_QUESTION_TOKENS - WINDOW_SPECIAL_TOKENS


@dataclass(frozen=True)
class RetrievalSettings:
    top_k: int = field(default=5, metadata={"min": 1})  # passages handed to the reader per question
    candidates: int = field(default=50, metadata={"min": 1})  # how deep the dense and keyword rankings go before fusion
    rrf_k: int = field(default=RRF_K, metadata={"min": 0})
    vector_store: str = "faiss"  # "faiss", or "milvus:<file>.db" / "milvus://host:port" (rag.retrieval)

    def __post_init__(self):  # a misspelt store is said as models.toml is read, naming it
        check_limits(self)
        try:
            parse_store(self.vector_store)
        except ValueError as problem:
            raise RagError(f"vector_store = {self.vector_store!r} is not valid: {problem}") from None


MODEL_TABLES = {"embedder": EmbedderSettings, "reader": ReaderSettings}
PLAIN_TABLES = {"retrieval": RetrievalSettings, "chunking": ChunkSettings}  # optional; defaults when absent
MODEL_KEYS = ("id", "source")  # what every model table needs besides its settings (and an optional install)


@dataclass(frozen=True)
class ModelSpec:
    role: str
    id: str
    source: str
    install: str
    base_dir: Path  # relative "path:" sources resolve against the models.toml folder
    settings: EmbedderSettings | ReaderSettings = field(default_factory=EmbedderSettings)

    def resolve(self) -> str:
        """A local directory for the model, or a hub id; never downloads anything itself."""
        kind, _, where = self.source.partition(":")
        if kind == "package":
            return str(self._package_path(where))
        if kind == "path":
            path = (self.base_dir / where).resolve()
            if not (path / "config.json").is_file():
                relative = (f"; path:{where} is read from the folder of the models.toml in use, {self.base_dir}, "
                            "so a copied models.toml needs the full path" if not Path(where).is_absolute() else "")
                raise self.missing(f"no model at {path}{relative}")
            return str(path)
        if kind == "hub":
            return where
        raise AssertionError(f"unknown source kind {kind!r}")  # refused as models.toml was read (_spec)

    def fingerprint(self) -> str:
        """What an index or a fitted decision depends on: the model's files and, for a model
        run at another precision than float32, that precision."""
        if self.precision == FULL_PRECISION:
            return self.files_fingerprint()
        return hashlib.sha256(f"{self.files_fingerprint()}:{INT8_RECIPE[self.role]}".encode()).hexdigest()[:16]

    @property
    def precision(self) -> str:
        """What the model computes in."""
        return self.settings.precision

    def files_fingerprint(self) -> str:
        """Identifies the model's files cheaply (config, weights size and first MiB), so a
        swapped model is noticed without hashing hundreds of MB on every start."""
        if not self.is_local:  # the repository it names (the id is only a label)
            return self.source
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
    """Everything models.toml says: the two models and how retrieval and chunking work."""

    path: Path
    embedder: ModelSpec
    reader: ModelSpec
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)


def default_models_file() -> Path:
    return local_or_bundled(MODELS_FILE)


def load_models_config(path: Path | None = None) -> ModelsConfig:
    path = Path(path) if path else default_models_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RagError(f"models file not found: {path}") from None
    except OSError as exc:  # a folder, or a file we may not read
        raise RagError(f"cannot read models file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RagError(f"models file {path} is not valid TOML: {exc}") from None
    known = [*MODEL_TABLES, *PLAIN_TABLES]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise RagError(f"{path}: unknown table [{unknown[0]}] (known: {', '.join(known)})")
    plain = {}
    for name, cls in PLAIN_TABLES.items():
        if not isinstance(data.get(name, {}), dict):
            raise RagError(f"{path}: {name} must be a table ([{name}])")
        plain[name] = typed_settings(cls, data.get(name, {}), path, name)
    return ModelsConfig(path=path, embedder=_spec(data, "embedder", path), reader=_spec(data, "reader", path), **plain)


SOURCE_KINDS = ("package", "path", "hub")


def _spec(data: dict, role: str, path: Path) -> ModelSpec:
    entry = data.get(role)
    if not isinstance(entry, dict):
        raise RagError(f"{path}: needs a [{role}] table")
    entry = dict(entry)
    for key in MODEL_KEYS:
        if not isinstance(entry.get(key), str):
            raise RagError(f"{path}: [{role}] needs a string '{key}'")
    if entry["source"].partition(":")[0] not in SOURCE_KINDS:  # said now, naming the file in use
        raise RagError(f"{path}: [{role}] source = {entry['source']!r} is not valid: use package:, path: or hub:")
    install = entry.pop("install", f"point [{role}] source in {path} at a model directory")
    if not isinstance(install, str):
        raise RagError(f"{path}: [{role}] install = {install!r} is not valid: expected a string")
    return ModelSpec(
        role=role,
        id=entry.pop("id"),
        source=entry.pop("source"),
        install=install,
        base_dir=path.parent.resolve(),
        settings=typed_settings(MODEL_TABLES[role], entry, path, role, also_known=(*MODEL_KEYS, "install")),
    )


EXPECTED = {int: "a whole number", float: "a number", str: "a string"}


def typed_settings(cls: type, table: dict, path: Path, where: str, also_known: tuple[str, ...] = ()):
    """`cls` built from a TOML table: unknown keys and values of the wrong type are errors
    that name the file, the table, the key and what was expected (and every key the table
    takes: `also_known` are those read before, as a model table's id, source and install)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = [*also_known, *fields]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise RagError(f"{path}: [{where}] has an unknown key '{unknown[0]}' (known: {', '.join(known)})")
    values = {}
    for key, value in table.items():
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            if not isinstance(value, dict):
                raise RagError(f"{path}: [{where}] {key} must be a table ([{where}.{key}])")
            values[key] = typed_settings(expected, value, path, f"{where}.{key}")
        elif _fits(value, expected):
            values[key] = expected(value)
            check_range(values[key], fields[key].metadata, f"{path}: [{where}] {key} = {value!r} is not valid")
        else:
            raise RagError(f"{path}: [{where}] {key} = {value!r} is not valid: expected {EXPECTED[expected]}")
    try:
        return cls(**values)
    except RagError as problem:  # a rule of the settings themselves, e.g. a value not among the choices
        raise RagError(f"{path}: [{where}] {problem}") from None


def _fits(value, expected: type) -> bool:
    if isinstance(value, bool):  # TOML true/false is never a number here
        return False
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)
