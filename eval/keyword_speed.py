"""The keyword index at archive scale: `rag`'s postings beside bm25s's precomputed scores (what
`rag` used before), in the same run, on the same passages and questions.

    python eval/keyword_speed.py [--passages 1000000] [--questions 200]

Passages are the contexts of ../shared/squad/train-full.json cut into 500-character pieces,
repeated with a running number appended (so that every passage is its own text) until there are
`--passages`; the questions are train-full's. It prints, for both: building from every passage,
an update that removes 20 passages and adds 20 (bm25s has no update: it builds again), the
question's scoring time (p50, p95), and whether the two give the same scores.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.retrieval.keyword import BM25_B, BM25_K1, KeywordIndex, tokenize  # noqa: E402

TRAIN_FULL = ROOT.parent / "shared" / "squad" / "train-full.json"


def passages_and_questions(count: int, questions: int) -> tuple[list[str], list[str]]:
    data = json.loads(TRAIN_FULL.read_text(encoding="utf-8"))["data"]
    pieces, asked = [], []
    for article in data:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            pieces += [context[i:i + 500] for i in range(0, len(context), 500)]
            asked += [qa["question"] for qa in paragraph["qas"][:1]]
    texts = [f"{pieces[n % len(pieces)]} {n}" for n in range(count)]
    rng = np.random.default_rng(0)
    return texts, [asked[i] for i in rng.choice(len(asked), questions, replace=False)]


def timed(work):
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def bm25s_index(texts: list[str]):
    import bm25s

    index = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    index.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    return index


def bm25s_scores(index, question: str) -> np.ndarray:
    words = tokenize([question])[0]
    if not index.get_tokens_ids(words):
        return np.zeros(index.scores["num_docs"])
    return np.asarray(index.get_scores(words), dtype=np.float64)


def percentiles(seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    return f"p50 {statistics.median(ms):7.2f} ms  p95 {ms[int(0.95 * (len(ms) - 1))]:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args()
    texts, questions = passages_and_questions(args.passages, args.questions)
    print(f"{len(texts):,} passages, {len(questions)} questions")

    postings, built = timed(lambda: KeywordIndex.build(texts))
    reference, reference_built = timed(lambda: bm25s_index(texts))
    removed = set(range(0, len(texts), max(len(texts) // 20, 1))[:20])
    kept = np.array([n for n in range(len(texts)) if n not in removed], dtype=np.int64)
    added = {len(kept) + n: f"The ferry number {n} to Marsh End leaves at ten." for n in range(20)}
    updated, update_took = timed(lambda: postings.updated(kept, np.arange(len(kept)), added, len(texts)))
    now = [texts[n] for n in kept] + list(added.values())
    _, reference_update_took = timed(lambda: bm25s_index(now))

    ours, theirs, same = [], [], 0
    for question in questions:  # interleaved, so that both see the same machine
        mine, took = timed(lambda: postings.scores(question))
        ours.append(took)
        expected, took = timed(lambda: bm25s_scores(reference, question))
        theirs.append(took)
        same += np.array_equal(mine, expected)
    print(f"{'':<28}{'postings (rag)':>18}{'bm25s (before)':>18}")
    print(f"{'build from every passage':<28}{built:>16.1f} s{reference_built:>16.1f} s")
    print(f"{'update: -20 +20 passages':<28}{update_took:>16.2f} s{reference_update_took:>16.1f} s  (bm25s builds again)")
    print(f"question's scores   ours    {percentiles(ours)}")
    print(f"                    bm25s's {percentiles(theirs)}")
    print(f"same scores, bit for bit: {same} of {len(questions)} questions")
    sample = questions[:20]
    fresh = KeywordIndex.build(now)
    agree = sum(np.array_equal(updated.scores(q), fresh.scores(q)) for q in sample)
    print(f"updated index scores as one built from every passage: {agree} of {len(sample)} questions")


if __name__ == "__main__":
    main()
