"""Reader inference speed on CPU, and what makes it faster without losing accuracy.

    python eval/reader_speed.py [--squad ../shared/squad/heldout-dev.json] [--limit 300]

Variants: the float32 model as shipped (fp16 weights loaded as float32), and dynamic int8
quantisation of its Linear layers. For each: milliseconds per window when answering the gold
questions as `rag ask` does (top-k passages in one batch), windows per second on held-out SQuAD
paragraphs (one question + paragraph at a time), and accuracy on both (gold-set F1 through the
full pipeline; held-out HasAns F1 with the null margin 0 decision, as in the model card)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.evaluate import run_questions, summarize  # noqa: E402
from rag.gold import load_gold  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.schema import Passage  # noqa: E402
from rag.squad import load_squad, score  # noqa: E402


def quantized(reader):
    import torch

    reader.model = torch.ao.quantization.quantize_dynamic(reader.model, {torch.nn.Linear}, dtype=torch.qint8)
    return reader


def measure(name: str, pipeline: Pipeline, gold, squad, limit: int) -> dict:
    reader = pipeline.reader
    windows, seconds = 0, 0.0
    for q in gold:
        passages = [r.passage for r in pipeline.index.search(q.question, pipeline.embedder.encode([q.question])[0], pipeline.top_k)]
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
    import tempfile

    gold = load_gold(ROOT / "eval" / "gold.jsonl")
    squad = load_squad(args.squad)
    pipeline = Pipeline.open(ROOT / "seeds", Path(tempfile.mkdtemp()))
    pipeline.ask("warm up")
    rows = [measure("float32", pipeline, gold, squad, args.limit)]
    quantized(pipeline.reader)
    pipeline.ask("warm up")
    rows.append(measure("dynamic int8", pipeline, gold, squad, args.limit))
    print(f"{'variant':14} {'ms/window (ask)':>16} {'windows/s (squad)':>18} {'gold F1':>8} {'held-out F1':>12} {'HasAns F1':>10}")
    for r in rows:
        print(f"{r['variant']:14} {r['ms_per_window_ask']:16.1f} {r['windows_per_s_squad']:18.1f} {r['gold_f1']:8.1f}"
              f" {r['heldout_f1']:12.1f} {r['heldout_has_ans_f1']:10.1f}")
    base, fast = rows
    print(f"int8 speed-up: {base['ms_per_window_ask'] / fast['ms_per_window_ask']:.2f}x per window in ask")


if __name__ == "__main__":
    main()
