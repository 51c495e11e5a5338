"""Milvus against FAISS on the gold set, and Milvus's RRF ranker against the project's rrf().

    python eval/milvus_compare.py [--gold eval/gold.jsonl] [--store milvus:/tmp/x.db]

The bundled articles are indexed twice with the same models: into the FAISS index folder as
`rag` keeps it, and into a Milvus archive (Milvus Lite in a temporary file unless --store names
one). Every gold question is then asked of FAISS and of Milvus with each fusion:
- "rrf": a dense search and a BM25 search in Milvus, fused by the project's rrf();
- "milvus": one hybrid search, fused by Milvus's RRFRanker.
Printed per fusion: how many answers or citations differ from FAISS's (and for those, whether the
retrieved passages differ only in order among equal fused scores: a tie), how many retrieved
passage lists differ, and the p50 of retrieval alone.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.assembly import build_pipeline, with_store  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.gold import BUNDLED_GOLD, load_gold  # noqa: E402
from rag.retrieval.milvus_retriever import FUSIONS, MilvusRetriever  # noqa: E402

SEEDS = ROOT / "seeds"


def passages_of(answer) -> list[tuple]:
    return [(r.passage.doc_id, r.passage.start) for r in answer.passages]


def tie_only(faiss_answer, milvus_answer) -> bool:
    """Whether the two retrievals hold the same passages with the same fused scores, in another
    order (equal scores ranked differently), which is all that may change the reader's pick."""
    a = sorted((round(r.score, 9), r.passage.doc_id, r.passage.start) for r in faiss_answer.passages)
    b = sorted((round(r.score, 9), r.passage.doc_id, r.passage.start) for r in milvus_answer.passages)
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gold", type=Path, default=BUNDLED_GOLD)
    parser.add_argument("--store", help="a Milvus store spec: an empty one, or one that holds the bundled articles "
                                        "alone (rag index --store ...) [default: a fresh Milvus Lite file]")
    args = parser.parse_args()
    questions = load_gold(args.gold)
    workdir = Path(tempfile.mkdtemp(prefix="rag-milvus-compare-"))
    config = load_models_config()
    faiss = build_pipeline(config, SEEDS, workdir / "faiss-index")
    store = args.store or f"milvus:{workdir / 'compare.db'}"
    milvus = build_pipeline(with_store(config, store), SEEDS, embedder=faiss.retriever.embedder, reader=faiss.reader)
    base = milvus.retriever
    faiss_answers = [faiss.ask(q.question) for q in questions]
    faiss_timings = []
    for q in questions:
        started = time.perf_counter()
        faiss.retriever.retrieve(q.question, faiss.top_k)
        faiss_timings.append(1000 * (time.perf_counter() - started))
    print(f"{len(questions)} gold questions; FAISS index folder against {store}; FAISS retrieval p50 "
          f"{statistics.median(faiss_timings):.1f} ms")
    print("| fusion | answers or citations that differ | of them, ties | retrieved lists that differ (same passages, "
          "other order) | retrieval p50 |")
    print("|---|---|---|---|---|")
    for fusion in FUSIONS:
        milvus.retriever = MilvusRetriever(base.embedder, base.archive, base.articles, base.rrf_k, base.candidates, fusion)
        differ = ties = lists = reordered = 0
        timings = []
        for q, a in zip(questions, faiss_answers):
            started = time.perf_counter()
            milvus.retriever.retrieve(q.question, milvus.top_k)
            timings.append(1000 * (time.perf_counter() - started))
            b = milvus.ask(q.question)
            lists += passages_of(a) != passages_of(b)
            reordered += passages_of(a) != passages_of(b) and sorted(passages_of(a)) == sorted(passages_of(b))
            if (a.text, a.citation) != (b.text, b.citation):
                differ += 1
                ties += tie_only(a, b)
                print(f"  {fusion}: {q.id} FAISS {a.text!r} / Milvus {b.text!r}", file=sys.stderr)
        print(f"| {fusion} | {differ} | {ties} | {lists} ({reordered}) | {statistics.median(timings):.1f} ms |")


if __name__ == "__main__":
    main()
