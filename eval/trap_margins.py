"""Does the reader say "no answer" to a trap? Its margin (best span score over the "no answer"
score, each question read in its own paragraph alone) on three kinds of question from the
calibration articles, which reader training never sees:

    python eval/trap_margins.py [--models models.toml] [--questions 200] [--seed 0]

answerable questions; the same questions with a name or number swapped as `rag train-reader
--swapped-negatives` swaps it (rag/swapped.py), from the article and, with `--swap-from
paragraph`, from the paragraph itself; and SQuAD 2.0's own unanswerable questions, written to
trap a reader. A reader that knows when a paragraph does not answer gives the last
two kinds negative margins; a margin above 0 is a span it would rather give than nothing."""
from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import load_models_config  # noqa: E402
from rag.reader import Reader  # noqa: E402
from rag.schema import Passage  # noqa: E402
from rag.squad import load_squad  # noqa: E402
from rag.swapped import ordinary_words  # noqa: E402
from rag.train import SwappedNegatives  # noqa: E402
from eval.tune_abstention import TRAIN_FULL, calibration_titles  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=200, help="of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_squad(TRAIN_FULL)
    wanted = calibration_titles()
    articles = {i for i, title in enumerate(data.titles) if title in wanted}
    questions = [q for q in data.questions if q.article in articles]
    reader = Reader(load_models_config(args.models).reader)

    def margin(question: str, context_id: str) -> float:
        context = data.contexts[context_id]
        (guess,) = reader.read(question, [Passage(context_id, 0, len(context), context)])
        return guess.span_score - guess.null_score

    rng = random.Random(args.seed)
    pool = [q for q in questions if q.answers]
    rng.shuffle(pool)
    answerable = pool[:args.questions]
    unanswerable = rng.sample([q for q in questions if not q.answers], args.questions)

    ordinary = ordinary_words(data.contexts.values())  # learnt once, for both kinds of swap

    def swaps(swap_from: str) -> list[tuple[str, str]]:
        """As many as of the other kinds: not every question has a name or number to swap."""
        made = []
        swapper = SwappedNegatives(data, swap_from, ordinary)
        for q in pool:
            swapped = swapper.question_for(q, rng)
            if swapped:
                made.append((swapped, q.context_id))
            if len(made) == args.questions:
                break
        return made

    margins = {
        "answerable": [margin(q.question, q.context_id) for q in answerable],
        "swapped, a name from the article": [margin(s, c) for s, c in swaps("article")],
        "swapped, a name from the paragraph": [margin(s, c) for s, c in swaps("paragraph")],
        "SQuAD 2.0 unanswerable": [margin(q.question, q.context_id) for q in unanswerable],
    }
    print(f"{'questions':38} {'n':>4} {'margin > 0':>10} {'margin > 4':>10} {'median':>7}")
    for kind, values in margins.items():
        above = lambda t: 100 * sum(m > t for m in values) / len(values)  # noqa: E731
        print(f"{kind:38} {len(values):4} {above(0):9.1f}% {above(4):9.1f}% {statistics.median(values):7.2f}")


if __name__ == "__main__":
    main()
