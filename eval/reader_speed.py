"""Reader inference speed on CPU, and what makes it faster without losing accuracy.

    python eval/reader_speed.py [--squad ../shared/squad/heldout-dev.json] [--limit 300]

Variants of the same reader: transformers on torch (float32; fp16 weights loaded as float32),
the ONNX graph exported from it on ONNX Runtime (what `rag` runs), and that graph with dynamic
int8 quantisation of its MatMul weights (`precision = "int8"` in [reader], rag.models.QUANTIZATION).
For each: milliseconds per window when answering the gold questions as `rag ask` does (top-k passages in one batch), windows per second on held-out
SQuAD paragraphs (one question + paragraph at a time), and accuracy on both (gold-set F1 through
the full pipeline; held-out F1 and HasAns F1 with the null margin 0 decision, as in the model
card). Also printed: the share of padding in the batched windows of `rag ask`, which bounds
what sorting windows by length could save. The decision stays the one models.toml fitted for
the float32 reader, so int8's gold F1 here is not its own: eval/measure_reader.py with a
models.toml that says int8 refits it first."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.assembly import build_pipeline  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.evaluate import run_questions, summarize  # noqa: E402
from rag.gold import BUNDLED_GOLD, load_gold  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.reader import Reader  # noqa: E402
from rag.schema import Passage  # noqa: E402
from rag.squad import load_squad, score  # noqa: E402


def on_runtime(pipeline: Pipeline, runtime: str, precision: str = "float32") -> Pipeline:
    spec = pipeline.reader.spec
    settings = dataclasses.replace(spec.settings, runtime=runtime, precision=precision)
    return pipeline.with_reader(Reader(dataclasses.replace(spec, settings=settings)))


def padding_share(pipeline: Pipeline, gold) -> float:
    real = padded = 0
    for q in gold:
        passages = [r.passage for r in pipeline.retriever.retrieve(q.question, pipeline.top_k)]
        lengths = [len(w.ids) for _, w in pipeline.reader.windows(q.question, passages)]
        real, padded = real + sum(lengths), padded + max(lengths) * len(lengths)
    return 1 - real / padded


def measure(name: str, pipeline: Pipeline, gold, squad, limit: int) -> dict:
    reader = pipeline.reader
    windows, seconds = 0, 0.0
    for q in gold:
        passages = [r.passage for r in pipeline.retriever.retrieve(q.question, pipeline.top_k)]
        started = time.perf_counter()
        reader.read(q.question, passages)
        seconds += time.perf_counter() - started
        windows += len(passages)
    gold_f1 = summarize(run_questions(pipeline, gold))["f1"]
    predictions, squad_windows, started = {}, 0, time.perf_counter()
    questions = squad.questions[:limit]
    for q in questions:
        context = squad.contexts[q.context_id]
        (guess,) = reader.read(q.question, [Passage(q.context_id, 0, len(context), context)])
        predictions[q.id] = context[guess.start:guess.end] if guess.span_score > guess.null_score else None
        squad_windows += 1
    squad_s = time.perf_counter() - started
    held_out = score(predictions, questions)
    return {"variant": name, "ms_per_window_ask": 1000 * seconds / windows,
            "windows_per_s_squad": squad_windows / squad_s, "gold_f1": gold_f1,
            "heldout_has_ans_f1": held_out["has_ans_f1"], "heldout_f1": held_out["f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "squad" / "heldout-dev.json")
    parser.add_argument("--limit", type=int, default=300, help="held-out questions to time and score")
    args = parser.parse_args()
    gold = load_gold(BUNDLED_GOLD)
    squad = load_squad(args.squad)
    pipeline = build_pipeline(load_models_config(ROOT / "models.toml"), ROOT / "seeds", Path(tempfile.mkdtemp()))
    rows = []
    for name, prepare in [("torch float32", lambda p: on_runtime(p, "torch")), ("onnx float32", lambda p: on_runtime(p, "onnx")),
                          ("onnx int8", lambda p: on_runtime(p, "onnx", "int8"))]:
        variant = prepare(pipeline)
        variant.ask("warm up")
        rows.append(measure(name, variant, gold, squad, args.limit))
    print(f"{'variant':14} {'ms/window (ask)':>16} {'windows/s (squad)':>18} {'gold F1':>8} {'held-out F1':>12} {'HasAns F1':>10}")
    for r in rows:
        print(f"{r['variant']:14} {r['ms_per_window_ask']:16.1f} {r['windows_per_s_squad']:18.1f} {r['gold_f1']:8.1f}"
              f" {r['heldout_f1']:12.1f} {r['heldout_has_ans_f1']:10.1f}")
    base = rows[0]
    for r in rows[1:]:
        print(f"{r['variant']}: {base['ms_per_window_ask'] / r['ms_per_window_ask']:.2f}x the speed of {base['variant']} per window in ask")
    print(f"padding in the batched windows of ask: {padding_share(pipeline, gold):.0%} of the tokens read")


if __name__ == "__main__":
    main()
