"""Fit when `rag` answers and when it says "not in the articles", on eval/tune.jsonl (never on
the gold set, which stays for measuring). Writes the [reader.abstention] table of models.toml.

    python eval/tune_abstention.py [--tune eval/tune.jsonl] [--models models.toml] [--dry-run]

Every candidate span (one per retrieved passage) is labelled right (F1 >= 0.5 with a gold
answer) or wrong; a logistic model over (span-vs-null margin, span score, retrieval cosine)
gives P(right). The threshold then maximises, per question, F1 on answerable questions plus
1 for each correct abstention on unanswerable ones."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.config import load_models_config  # noqa: E402
from rag.gold import load_gold  # noqa: E402
from rag.metrics import best_over, f1_score  # noqa: E402
from rag.decision import Abstention  # noqa: E402
from rag.assembly import build_pipeline  # noqa: E402

FEATURES = ("margin", "span_score", "dense_score")
RIGHT_F1 = 0.5
L2 = 1e-2


def features(candidate) -> list[float]:
    return [candidate.margin, candidate.span_score, candidate.dense_score]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 100) -> np.ndarray:
    """Newton's method on the L2-regularised log loss; returns [bias, *weights]."""
    x1 = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x1.shape[1])
    penalty = l2 * np.eye(len(w))
    penalty[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x1 @ w, -50, 50)))
        gradient = x1.T @ (p - y) + penalty @ w
        hessian = x1.T @ (x1 * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def question_utility(abstention: Abstention, runs) -> float:
    total = 0.0
    for gold, candidates in runs:
        scored = [(abstention.confidence(*features(c)), c) for c in candidates]
        confidence, best = max(scored, key=lambda s: s[0]) if scored else (0.0, None)
        answered = best is not None and confidence >= abstention.threshold
        if gold.answerable:
            total += best_over(f1_score, best.text, gold.answers) if answered else 0.0
        else:
            total += 0.0 if answered else 1.0
    return total / len(runs)


def write_abstention_table(models_file: Path, abstention: Abstention, note: str) -> None:
    text = models_file.read_text(encoding="utf-8")
    values = "".join(f"{name} = {getattr(abstention, name):.6g}\n" for name in ("bias", *FEATURES, "threshold"))
    values += f'fitted_for = "{abstention.fitted_for}"  # the reader\'s fingerprint: another reader gets a warning\n'
    table = f"[reader.abstention]\n# {note}\n{values}"
    pattern = re.compile(r"^\[reader\.abstention\]\n(?:(?!\[)[^\n]*\n?)*", re.M)
    if not pattern.search(text):
        raise SystemExit(f"{models_file} has no [reader.abstention] table to rewrite")
    models_file.write_text(pattern.sub(table, text, count=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--tune", type=Path, default=root / "eval" / "tune.jsonl")
    parser.add_argument("--models", type=Path, default=root / "models.toml")
    parser.add_argument("--seeds", type=Path, default=root / "seeds")
    parser.add_argument("--dry-run", action="store_true", help="print the fit, do not rewrite models.toml")
    args = parser.parse_args()

    questions = load_gold(args.tune)
    config = load_models_config(args.models)
    pipeline = build_pipeline(config, args.seeds, on_status=print)
    runs = [(q, pipeline.ask(q.question).candidates) for q in questions]
    x = np.array([features(c) for _, cands in runs for c in cands])
    y = np.array([float(q.answerable and best_over(f1_score, c.text, q.answers) >= RIGHT_F1)
                  for q, cands in runs for c in cands])
    w = fit_logistic(x, y)
    thresholds = np.round(np.arange(0.05, 0.96, 0.01), 2)
    utilities = [question_utility(Abstention(*w, threshold=t), runs) for t in thresholds]
    # the middle of the best plateau, so a small shift in scores does not flip many decisions
    best = [t for t, u in zip(thresholds, utilities) if u >= max(utilities) - 1e-9]
    chosen = Abstention(*w, threshold=float(best[len(best) // 2]), fitted_for=config.reader.fingerprint())
    answerable = sum(q.answerable for q in questions)
    note = (f"fitted by eval/tune_abstention.py on {args.tune.name}: {len(questions)} questions "
            f"({answerable} answerable), {len(y)} candidates ({int(y.sum())} right); utility {max(utilities):.3f}")
    print(note)
    print("weights:", dict(zip(("bias", *FEATURES), np.round(w, 4))), "threshold:", chosen.threshold,
          "(untuned utility:", round(question_utility(Abstention(), runs), 3), ")")
    if not args.dry_run:
        write_abstention_table(args.models, chosen, note)
        print(f"wrote [reader.abstention] to {args.models}")


if __name__ == "__main__":
    main()
