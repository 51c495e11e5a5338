"""Loading models for inference, offline, with errors a user can act on.

Answering runs on ONNX Runtime by default: importing torch and transformers alone takes ~3 s
of every `rag ask`, while onnxruntime and tokenizers import in a fraction of a second and
run the graph at least as fast (eval/reader_speed.py). The ONNX graph is exported once from the transformers model
(this needs torch, a dependency anyway) and cached under the user's cache folder, keyed by the
model's fingerprint. `runtime = "torch"` in a model's models.toml table runs transformers
directly instead."""
from __future__ import annotations

import contextlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rag.config import INT8_RECIPE, ModelSpec
from rag.errors import RagError, first_line, imported
from rag.leftovers import remove_abandoned

EXPORT_VERSION = "2"  # bump when the exported graph changes, so old cache entries are not reused
OUTPUTS = {"AutoModel": ["last_hidden_state"], "AutoModelForQuestionAnswering": ["start_logits", "end_logits"]}

# what a transformers model needs from a hub repository (not its TF, Flax or ONNX copies)
HUB_FILES = ["*.json", "*.txt", "*.model", "*.safetensors", "pytorch_model.bin"]

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass
class InferenceModel:
    """A fast tokenizer (the `tokenizers` library) and a function from int64 input arrays
    (input_ids, attention_mask, token_type_ids) to the model's outputs as float32 arrays."""
    tokenizer: object  # tokenizers.Tokenizer
    run: Runner
    config: dict  # the model's config.json
    side_by_side: int = 1  # how many calls of `run` are worth making at once (ONNX Runtime's: one per core)


def usable_cores() -> int:
    """The CPU cores this process may run on (a cpuset's or taskset's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_for_inference(spec: ModelSpec, model_class_name: str, on_export: Callable[[str], None] = lambda msg: None) -> InferenceModel:
    runtime = spec.settings.runtime  # its settings checked it is one of RUNTIMES
    folder = local_model_dir(spec)
    config = model_json(spec, "config.json")
    if config is None:
        raise spec.missing(f"{folder} has no config.json")
    tokenizer = _load_tokenizer(folder, spec)
    if runtime == "torch":
        _, model = load_tokenizer_and_model(spec, model_class_name)
        return InferenceModel(tokenizer, _torch_runner(model, OUTPUTS[model_class_name]), config)
    path = onnx_graph(spec, model_class_name, on_export)
    try:
        session = onnx_session(path, OUTPUTS[model_class_name])
    except DamagedGraph as why:  # re-exported once; a second failure is an error
        on_export(f"the cached {spec.role} graph {path} {why}; exporting it again")
        path.unlink(missing_ok=True)
        session = onnx_session(onnx_graph(spec, model_class_name, on_export), OUTPUTS[model_class_name])
    # one small input (a reader's window) keeps every core only partly busy: runs made side by
    # side, each on every core, finish sooner than one after another (README, "Speed")
    return InferenceModel(tokenizer, onnx_runner(session), config, side_by_side=usable_cores())


class DamagedGraph(Exception):
    """A cached ONNX file that cannot be this model's graph: truncated, foreign, or another model's."""


def onnx_graph(spec: ModelSpec, model_class_name: str, on_export: Callable[[str], None] = lambda msg: None) -> Path:
    """The model's ONNX graph in the cache, exported first if it is not there yet."""
    model = f"{spec.role}-{spec.files_fingerprint()}-{model_class_name}"
    path = onnx_cache_dir() / f"{model}-v{EXPORT_VERSION}.onnx"
    remove_abandoned(path.parent, "*.onnx.*.tmp")  # half-written graphs of a killed export
    if not path.is_file():
        on_export(f"preparing the {spec.role} model for fast CPU inference (once; cached in {path.parent})…")
        export_onnx(spec, model_class_name, path)
        _remove_older_exports(path.parent, model)
    if spec.precision == "int8":
        return _quantized(path, INT8_RECIPE[spec.role])
    return path


def _remove_older_exports(folder: Path, model: str) -> None:
    """The model's graphs of older export versions, and their int8 twins, which this rag never
    reads again; a newer version's are kept (another rag may share the cache). Best effort."""
    for graph in folder.glob(f"{model}-v*.onnx"):
        version = graph.name[len(model) + 2:].split("-")[0].removesuffix(".onnx")
        if version.isdigit() and int(version) < int(EXPORT_VERSION):
            with contextlib.suppress(OSError):
                graph.unlink()


# The int8 recipes (ONNX Runtime's quantize_dynamic), by name: the embedder's with its defaults;
# the reader's quantizes MatMul weights per channel, which kept more of its accuracy
# (models/reader/README.md, "The shipped reader in int8")
QUANTIZATION = {"int8": {}, "int8-matmul-per-channel": {"op_types_to_quantize": ["MatMul"], "per_channel": True}}


def _quantized(path: Path, name: str) -> Path:
    """The int8 twin of a float ONNX graph (weights quantized, activations quantized on the fly),
    made once beside it; written to a temporary name and renamed, as exports are."""
    quantized = path.with_name(f"{path.stem}-{name}.onnx")
    if not quantized.is_file():
        tmp = quantized.with_name(f"{quantized.name}.{os.getpid()}.tmp")
        try:
            with _root_logging_untouched():
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, **QUANTIZATION[name])
            os.replace(tmp, quantized)
        except OSError as exc:
            raise RagError(f"could not write the int8 model to {path.parent}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return quantized


@contextlib.contextmanager
def _root_logging_untouched():
    """onnxruntime.quantization calls logging.basicConfig on import and advises on the root
    logger: without this, every library's debug logging (bm25s's) would reach the terminal."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def onnx_runner(session) -> Runner:
    """Runs an ONNX Runtime session on the CPU, feeding it the inputs it declares."""
    names = [i.name for i in session.get_inputs()]
    return lambda feeds: session.run(None, {k: feeds[k] for k in names})


def pad_encodings(encodings) -> dict[str, np.ndarray]:
    """int64 arrays, right-padded to the longest encoding, as every runner takes them. Padded
    positions are masked out, so the pad token's id does not matter."""
    width = max(len(e.ids) for e in encodings)
    arrays = {name: np.zeros((len(encodings), width), dtype=np.int64)
              for name in ("input_ids", "attention_mask", "token_type_ids")}
    for row, e in enumerate(encodings):
        n = len(e.ids)
        arrays["input_ids"][row, :n] = e.ids
        arrays["attention_mask"][row, :n] = 1
        arrays["token_type_ids"][row, :n] = e.type_ids
    return arrays


def onnx_cache_dir() -> Path:
    """$RAG_CACHE_DIR, else the platform's user cache folder for rag."""
    override = os.environ.get("RAG_CACHE_DIR")
    if override:
        return Path(override) / "onnx"
    import platformdirs

    return Path(platformdirs.user_cache_dir("rag")) / "onnx"


def export_onnx(spec: ModelSpec, model_class_name: str, path: Path, attention: str | None = "eager") -> None:
    """Exports with dynamic batch and sequence axes; written beside `path` and renamed into
    place, so a crash or a concurrent export never leaves a half-written graph. `attention`: the
    attention traced, transformers' default when None (eval/read_speed_choices.py compares)."""
    # Exported from the plain ("eager") attention: the default (PyTorch's fused attention) traces
    # into extra masking and NaN guards, which made the reader's graph ~15 % slower on the CPU
    # (README, "Speed"); torch itself keeps the default
    tokenizer, model = load_tokenizer_and_model(spec, model_class_name, attention)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_onnx(model, tokenizer, OUTPUTS[model_class_name], tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise RagError(f"could not write the ONNX model to {path.parent}: {exc.strerror or exc} "
                       "(set RAG_CACHE_DIR to a writable folder, or runtime = \"torch\" in models.toml)") from None
    except Exception as exc:  # the exporter's own errors: this architecture does not export cleanly
        raise RagError(f"the {spec.role} model could not be exported to ONNX ({type(exc).__name__}: {exc}); "
                       f"set runtime = \"torch\" in its models.toml table") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _write_onnx(model, tokenizer, outputs: list[str], path: Path) -> None:
    import warnings

    import torch

    names = _input_names(model)
    sample = tokenizer(["a question?"] * 2, ["a short passage of text"] * 2, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names + tuple(outputs)}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices mean nothing to a user
        torch.onnx.export(_tuple_outputs(model, names, outputs), tuple(sample[n] for n in names), str(path),
                          input_names=list(names), output_names=outputs, dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def model_json(spec: ModelSpec, name: str) -> dict | None:
    """One of the model folder's JSON files (config.json, sentence_bert_config.json), None when
    it has none of that name; one that cannot be read, or is not a JSON object, is the model not
    available, naming the file (it was "unexpected error: JSONDecodeError")."""
    path = local_model_dir(spec) / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as why:
        raise spec.missing(f"{path} cannot be read: {first_line(why)}") from None
    if not isinstance(data, dict):
        raise spec.missing(f"{path} is not a JSON object")
    return data


def local_model_dir(spec: ModelSpec) -> Path:
    """The model's folder on disk; a hub model is looked up in (or fetched into) the HF cache."""
    where = spec.resolve()
    if spec.is_local:
        return Path(where)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(where, allow_patterns=HUB_FILES))
    except Exception as exc:  # offline, unknown repo, no access: all mean the model is not here
        raise spec.missing(str(exc).splitlines()[0]) from None


def load_tokenizer_and_model(spec: ModelSpec, model_class_name: str, attention: str | None = None):
    """(transformers tokenizer, model in eval mode, float32 on CPU). Local sources never touch
    the network. `attention`: the attention implementation, transformers' default when None."""
    where = spec.resolve()
    import transformers  # imported here: it is the slowest part of start-up

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model_class = getattr(transformers, model_class_name)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=spec.is_local)
        model = model_class.from_pretrained(where, local_files_only=spec.is_local, dtype="float32",
                                            **({"attn_implementation": attention} if attention else {}))
    except OSError as exc:
        raise spec.missing(str(exc).splitlines()[0]) from None
    except (ValueError, KeyError) as exc:
        raise RagError(f"the {spec.role} model at {where} could not be loaded: {exc}") from None
    model.eval()
    return tokenizer, model


def _load_tokenizer(folder: Path, spec: ModelSpec):
    from tokenizers import Tokenizer

    if (folder / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    else:  # only a slow tokenizer's files: let transformers convert it
        tokenizer = _transformers_fast_tokenizer(spec)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _transformers_fast_tokenizer(spec: ModelSpec):
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(spec.resolve(), local_files_only=spec.is_local).backend_tokenizer
    except (OSError, ValueError, AttributeError) as exc:
        raise RagError(f"the {spec.role} model at {spec.resolve()} has no usable fast tokenizer: {exc}") from None


def _input_names(model) -> tuple[str, ...]:
    accepted = inspect.signature(model.forward).parameters
    return tuple(n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted)


def _torch_runner(model, outputs: list[str]) -> Runner:
    import torch

    names = _input_names(model)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            result = model(**{k: torch.from_numpy(feeds[k]) for k in names})
        return [result[name].float().numpy() for name in outputs]

    return run


def onnx_session(path: Path, outputs: list[str]):
    onnxruntime = imported("onnxruntime")  # a Ctrl-C while it loads was an ImportError: "unexpected error"

    try:
        with path.open("rb"):
            pass
    except OSError as exc:  # e.g. permissions: the file may be fine, so it is not deleted
        raise RagError(f"cannot read the cached ONNX model {path} ({exc.strerror}); fix its permissions, "
                       f"or delete it to export it again") from None
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    # idle threads that spin-wait steal the few cores from the other model's session (the
    # embedder's, then the reader's, on every question): ~25 % of the read time on 2 cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for truncated or foreign files
        raise DamagedGraph(f"could not be loaded ({first_line(exc)})") from None
    found = [o.name for o in session.get_outputs()]
    if found != outputs:
        raise DamagedGraph(f"is another model's graph (outputs {found}, expected {outputs})")
    return session


def _tuple_outputs(model, names: tuple[str, ...], outputs: list[str]):
    """The model as torch.onnx.export wants it: positional inputs in, a tuple of outputs out."""
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            result = self.model(**dict(zip(names, inputs)))
            return tuple(result[name] for name in outputs)

    return TupleOutputs()
