"""Loading transformers models offline from a ModelSpec, with errors a user can act on."""
from __future__ import annotations

from rag.config import ModelSpec
from rag.errors import RagError


def load_tokenizer_and_model(spec: ModelSpec, model_class_name: str):
    """(tokenizer, model in eval mode, float32 on CPU). Local sources never touch the network."""
    where = spec.resolve()
    import transformers  # imported here: it is the slowest part of start-up

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model_class = getattr(transformers, model_class_name)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=spec.is_local)
        model = model_class.from_pretrained(where, local_files_only=spec.is_local, dtype="float32")
    except OSError as exc:
        raise spec.missing(str(exc).splitlines()[0]) from None
    except (ValueError, KeyError) as exc:
        raise RagError(f"the {spec.role} model at {where} could not be loaded: {exc}") from None
    model.eval()
    return tokenizer, model
