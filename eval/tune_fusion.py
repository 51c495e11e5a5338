"""Choose `[retrieval] rrf_k`, the constant of the reciprocal rank fusion of the dense and BM25
rankings, by how often the passages read hold the answer. Never looks at the gold set.

    python eval/tune_fusion.py [--values 0,1,2,5,10,20,30,60] [--top-k 5]

Two question sets, each asked through the real retriever once per value:
- the calibration pool: the answerable questions of the six articles that
  eval/calibration_articles.txt keeps out of reader training, with the six indexed together
  (a passage holds the answer when it is part of the question's paragraph or states an answer);
- eval/tune.jsonl on the bundled articles (a passage holds it when it states an answer).
The value chosen has the best recall@k on the pool; ties go to the better tune.jsonl recall, then
to the value closest to the paper's 60. Retrieval alone: the reader is not run."""
from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from tune_abstention import calibration_pool, holds_the_answer  # noqa: E402
from rag.assembly import build_pipeline, with_store  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.gold import load_gold  # noqa: E402
from rag.metrics import states_an_answer  # noqa: E402
from rag.retrieval.fusion import RRF_K  # noqa: E402
from rag.retrieval.retriever import Retriever  # noqa: E402

DEFAULT_VALUES = "0,1,2,5,10,20,30,60"


def with_rrf_k(retriever: Retriever, rrf_k: int) -> Retriever:
    """The same retriever (every part shared) fusing with another constant."""
    other = copy.copy(retriever)
    other.rrf_k = rrf_k
    return other


def recall(retriever: Retriever, questions, holds, top_k: int) -> float:
    """The share of `questions` with a passage among the top_k retrieved that `holds(question, passage)`."""
    found = sum(any(holds(q, r.passage) for r in retriever.retrieve(q.question, top_k)) for q in questions)
    return 100 * found / len(questions)


def chosen(results: dict[int, tuple[float, float]]) -> int:
    """The best pool recall, then the best tune.jsonl recall, then nearest the paper's constant."""
    return max(results, key=lambda k: (results[k][0], results[k][1], -abs(k - RRF_K)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", default=DEFAULT_VALUES, help="comma-separated rrf_k values to try")
    parser.add_argument("--top-k", type=int, help="passages read per question (default: [retrieval] top_k)")
    parser.add_argument("--models", type=Path, default=ROOT / "models.toml")
    parser.add_argument("--tune", type=Path, default=ROOT / "eval" / "tune.jsonl")
    args = parser.parse_args()
    values = [int(v) for v in args.values.split(",")]
    config = with_store(load_models_config(args.models), "faiss")  # the pool's index is a throwaway, never an archive
    top_k = args.top_k or config.retrieval.top_k
    folder = Path(tempfile.mkdtemp(prefix="rag-fusion-"))
    try:
        compare_values(config, values, top_k, folder, args.tune)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compare_values(config, values: list[int], top_k: int, folder: Path, tune_file: Path) -> None:
    (folder / "articles").mkdir()
    pool = calibration_pool(folder / "articles")
    bundled = build_pipeline(config, ROOT / "seeds", on_status=print)
    calibration = build_pipeline(config, folder / "articles", folder / "index", on_status=print,
                                 embedder=bundled.retriever.embedder, reader=bundled.reader)
    paragraph_of = {item.question.id: item for item in pool}
    tune = [q for q in load_gold(tune_file) if q.answerable]
    print(f"recall@{top_k}: {len(pool)} pool questions over {calibration.retriever.passage_count} passages; "
          f"{len(tune)} answerable tune.jsonl questions over {bundled.retriever.passage_count}")
    results = {}
    for k in values:
        results[k] = (recall(with_rrf_k(calibration.retriever, k), [i.question for i in pool],
                             lambda q, p: holds_the_answer(paragraph_of[q.id], p), top_k),
                      recall(with_rrf_k(bundled.retriever, k), tune,
                             lambda q, p: states_an_answer(p.text, q.answers), top_k))
        print(f"rrf_k {k:>4}: pool {results[k][0]:.1f}  tune.jsonl {results[k][1]:.1f}", flush=True)
    print(f"chosen: rrf_k = {chosen(results)}")


if __name__ == "__main__":
    main()
