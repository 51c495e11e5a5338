"""A greedy model soup (Wortsman et al. 2022, "Model soups", recipe 2): score every reader on
the calibration pool, then, best first, add each to the average only if the average scores at
least as well with it. The pool is the six articles that eval/calibration_articles.txt keeps
out of reader training (their SQuAD 2.0 dev copies in ../shared/squad/train-full.json, with
their unanswerable questions), so neither the gold set nor the held-out sets choose the soup.

    python eval/greedy_soup.py OUT READER_DIR [READER_DIR ...] [--models models.toml]

The score is the reader's alone, the passage given: SQuAD v2 F1 at the best null margin (the
official script's best_f1), so it weighs both the span and the null score that rag's decision
reads. OUT becomes a reader directory to measure with eval/measure_reader.py; OUT/soup.json
records every reader's score and which ones the soup kept."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from average_readers import COPIED, average  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.metrics import SQUAD_PUNCTUATION, best_over, f1_score, normalize_answer  # noqa: E402
from rag.squad import SquadData, squad_articles  # noqa: E402
from rag.schema import Passage  # noqa: E402
from tune_abstention import calibration_articles  # noqa: E402


def calibration_data() -> SquadData:
    """The calibration articles' SQuAD 2.0 dev copies: answerable and unanswerable questions."""
    return squad_articles(calibration_articles())


def best_f1(answer_f1: np.ndarray, abstain_f1: np.ndarray, margins: np.ndarray) -> float:
    """F1 over all questions when answering exactly those whose margin is over the best cut."""
    order = np.argsort(-margins, kind="stable")  # equal margins in question order, as the official script
    answered_first = np.concatenate([[0.0], np.cumsum(answer_f1[order])])  # the top n answered
    abstained_rest = np.concatenate([np.cumsum(abstain_f1[order][::-1])[::-1], [0.0]])  # the others declined
    return float(100 * np.max(answered_first + abstained_rest) / len(margins))


def score_reader(reader_dir: Path, data: SquadData, models: Path) -> dict:
    """The reader on each calibration question's own paragraph (torch runtime: no ONNX export)."""
    from rag.reader import Reader

    spec = load_models_config(models).reader
    spec = dataclasses.replace(spec, source=f"path:{reader_dir.resolve()}",
                               settings=dataclasses.replace(spec.settings, runtime="torch"))
    reader = Reader(spec)
    overlap = functools.partial(f1_score, punctuation=SQUAD_PUNCTUATION)
    answer_f1, abstain_f1, margins = [], [], []
    for q in data.questions:
        context = data.contexts[q.context_id]
        (guess,) = reader.read(q.question, [Passage(q.context_id, 0, len(context), context)])
        # as the official script: answers that normalise to nothing drop out, the question stays answerable
        golds = [a for a in q.answers if normalize_answer(a, SQUAD_PUNCTUATION)] or [""]
        answer_f1.append(best_over(overlap, context[guess.start:guess.end], golds) if q.answers else 0.0)
        abstain_f1.append(0.0 if q.answers else 1.0)
        margins.append(guess.span_score - guess.null_score)
    answer_f1, abstain_f1, margins = map(np.array, (answer_f1, abstain_f1, margins))
    answerable = abstain_f1 == 0
    return {"best_f1": round(best_f1(answer_f1, abstain_f1, margins), 2),
            "has_ans_f1_at_0": round(float(100 * np.mean(answer_f1[answerable] * (margins[answerable] > 0))), 2)}


def greedy_soup(readers: list[Path], out: Path, models: Path) -> dict:
    data = calibration_data()
    print(f"calibration pool: {len(data.questions)} questions, "
          f"{sum(1 for q in data.questions if q.answers)} answerable", flush=True)
    alone = {}
    for reader in readers:
        alone[str(reader)] = score_reader(reader, data, models)
        print(f"{reader}: {alone[str(reader)]}", flush=True)
    ranked = sorted(readers, key=lambda r: -alone[str(r)]["best_f1"])
    kept, best = [ranked[0]], alone[str(ranked[0])]
    tries = []
    with tempfile.TemporaryDirectory(prefix="rag-soup-") as folder:
        for reader in ranked[1:]:
            trial = Path(folder) / "trial"
            average([*kept, reader], trial)
            result = score_reader(trial, data, models)
            taken = result["best_f1"] >= best["best_f1"]
            tries.append({"reader": str(reader), **result, "kept": taken})
            print(f"+ {reader}: {result} {'kept' if taken else 'left out'}", flush=True)
            if taken:
                kept, best = [*kept, reader], result
    if len(kept) > 1:
        average(kept, out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", *COPIED):
            (out / name).write_bytes((kept[0] / name).read_bytes())
    record = {"pool": "calibration (squad20-dev copies)", "questions": len(data.questions), "alone": alone,
              "tries": tries, "kept": [str(r) for r in kept], "soup": best}
    (out / "soup.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("readers", type=Path, nargs="+")
    parser.add_argument("--models", type=Path, default=ROOT / "models.toml",
                        help="the models.toml whose reader settings (window, stride) to read with")
    args = parser.parse_args()
    missing = [str(r) for r in args.readers if not all((r / name).is_file() for name in ("model.safetensors", *COPIED))]
    if missing:
        sys.exit(f"error: not a reader directory (model.safetensors, {', '.join(COPIED)}): {', '.join(missing)}")
    record = greedy_soup(args.readers, args.out, args.models)
    print(f"kept {len(record['kept'])} of {len(args.readers)} readers into {args.out}: {record['soup']}")


if __name__ == "__main__":
    main()
