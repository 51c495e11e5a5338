"""How `rag` scales: 10k, 100k and 1M passages, each beside exact flat search in the same run.

    python eval/scale.py [--cache DIR] [--sizes 10000,100000,1000000] [--real-passages 20000]

1. Real text. The contexts of ../shared/squad/train-full.json, grouped by article, are written
   as .txt articles until they make about --real-passages passages, and indexed with `rag index`
   (build throughput and peak memory of that process). The built index is kept in --cache, so a
   second run does not embed again (it then says when the build was measured).
2. Vector search at each size, in one fresh process per row and index type: building the store
   (passages/s of the vector index alone: embedding is part 1's figure), then, in another fresh
   process, the store loaded as `rag` loads it (memory-mapped) and searched with real question
   embeddings: p50/p95 latency of one search as deep as `rag` searches, recall@10 against exact
   search over the same vectors, and that process's peak memory. Sizes up to the real corpus use
   its vectors. Larger sizes are SYNTHETIC: each vector is a real passage's vector plus Gaussian
   noise (cosine ~0.85 to it), renormalised, so the set keeps the real vectors' clusters.
   Milvus Lite (a FLAT index in a local file, through pymilvus) gets a row at each size up to
   100k when it is installed (pip install -e '.[milvus]').
3. End to end: warm `Pipeline.ask` p50 on the real corpus beside the 45 bundled passages.
4. The embedder at float32 and int8: passages/s on real passages, and recall@5, for the gold
   set (the full pipeline's retrieval) and for dense retrieval of real questions' passages.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SQUAD = ROOT.parent / "shared" / "squad" / "train-full.json"
NOISE = 0.035  # per dimension: a 384-d noise vector of norm ~0.69, so a copy keeps cosine ~0.82-0.86
QUERIES = 200
MILVUS_UP_TO = 100_000  # Milvus Lite rows up to this size (it is for one machine and development)
MILVUS_LITE = "milvus:" + str(Path(tempfile.gettempdir()) / "rag-scale-milvus.db")


# --- part 1: a real-text corpus ----------------------------------------------------------------

def write_real_corpus(folder: Path, target_passages: int) -> list[dict]:
    """Articles from train-full.json contexts (one .txt per article title, paragraphs joined by a
    blank line) until about `target_passages` passages; returns their answerable questions, with
    the doc id and the answer's offset in the article."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    folder.mkdir(parents=True, exist_ok=True)
    seen, questions, chars = set(), [], 0
    for number, article in enumerate(data):
        if chars >= target_passages * 370:  # ~370 characters a passage: 600 at most, sentence-aligned, 1 overlapping
            break
        parts, offset, found = [], 0, []
        for paragraph in article["paragraphs"]:
            context = paragraph["context"].replace("\r", " ")
            if context in seen:  # adversarial SQuAD repeats contexts
                continue
            seen.add(context)
            for qa in paragraph["qas"]:
                if qa["answers"]:
                    found.append({"question": qa["question"], "at": offset + qa["answers"][0]["answer_start"]})
            parts.append(context)
            offset += len(context) + 2
        if not parts:
            continue
        doc_id = f"{number:05d}_{re.sub(r'[^A-Za-z0-9]+', '-', article.get('title', 'article'))[:40]}"
        (folder / f"{doc_id}.txt").write_text("\n\n".join(parts), encoding="utf-8")
        questions += [dict(q, doc_id=doc_id) for q in found]
        chars += offset
    return questions


def peak_mb() -> float:
    """This process's peak resident memory since it started its program (VmHWM; ru_maxrss
    would also count the memory of the parent it was forked from)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


RAG_WITH_PEAK = ("import atexit, sys; sys.path.insert(0, {root!r}); from eval.scale import peak_mb; "
                 "atexit.register(lambda: print(f'peak {{peak_mb()}}', file=sys.stderr)); "
                 "from rag.cli import main; sys.argv = ['rag', *sys.argv[1:]]; main()")


def run_rag_measured(*args: str) -> tuple[float, float]:
    """Wall seconds and peak memory (MB) of `rag ARGS...` in a child process."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RAG_WITH_PEAK.format(root=str(ROOT)), *args], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode:
        raise SystemExit(f"rag {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - started, float(out.stderr.rsplit("peak ", 1)[1])


def real_index(cache: Path, target: int) -> dict:
    """The real-text corpus and its index in `cache`, built (and measured) once."""
    record = cache / "real-build.json"
    if record.is_file():
        return json.loads(record.read_text())
    seeds, index_dir = cache / "seeds", cache / "index"
    questions = write_real_corpus(seeds, target)
    print(f"indexing the real-text corpus ({len(list(seeds.iterdir()))} articles) with `rag index`…", flush=True)
    seconds, peak = run_rag_measured("index", "--seeds", str(seeds), "--index-dir", str(index_dir))
    from rag.index import IndexStore

    passages = sum(1 for _ in (IndexStore(index_dir).current_build / "passages.jsonl").open())
    built = {"passages": passages, "seconds": seconds, "peak_mb": peak, "questions": questions,
             "measured": datetime.date.today().isoformat(), "cpus": os.cpu_count()}
    record.write_text(json.dumps(built))
    return built


# --- part 2: vector search at each size --------------------------------------------------------

def vectors_of_size(cache: Path, size: int) -> tuple[np.ndarray, str]:
    real = np.load(cache / "real-vectors.npy", mmap_mode="r")
    if size <= len(real):
        return np.ascontiguousarray(real[:size]), "real"
    return noisy_copies(real, size, seed=size), "synthetic"


def noisy_copies(real: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` unit vectors, each a random one of `real` plus Gaussian noise (cosine ~0.85 to it)."""
    rng = np.random.default_rng(seed)
    rows = np.empty((count, real.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        block = real[rng.integers(0, len(real), n)] + rng.normal(0, NOISE, (n, real.shape[1])).astype(np.float32)
        rows[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return rows


def build_row(cache: Path, size: int, kind: str) -> None:
    """Child process: build the store of `size` vectors as `kind` and save it."""
    from rag.retrieval import faiss_store

    from rag.retrieval import make_vector_store

    vectors, origin = vectors_of_size(cache, size)
    faiss_store.EXACT_BELOW = size + 1 if kind == "exact" else 0
    folder = cache / f"store-{size}-{kind}"
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    store = make_vector_store(MILVUS_LITE if kind == "milvus-lite" else "faiss", vectors.shape[1])
    for start in range(0, size, 100_000):
        store.add(np.arange(start, min(size, start + 100_000)), vectors[start:start + 100_000])
    del vectors  # as in a rag build, where embedded chunks go straight into the store
    store.save(folder)
    seconds = time.perf_counter() - started
    print(json.dumps({"origin": origin, "build_s": seconds, "build_peak_mb": peak_mb()}))


def search_row(cache: Path, size: int, kind: str, depth: int) -> None:
    """Child process: load the saved store as rag does and search it with the real questions."""
    from rag.retrieval import backend

    store = backend(MILVUS_LITE if kind == "milvus-lite" else "faiss").load(cache / f"store-{size}-{kind}")
    assert getattr(store, "kind", kind) == kind
    queries = np.load(cache / "query-vectors.npy")
    store.search(queries[0], depth)
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        hits = store.search(query, depth)
        times.append(1000 * (time.perf_counter() - started))
        found.append([i for i, _ in hits[:10]])
    np.save(cache / f"found-{size}-{kind}.npy", np.array(found))
    store.release(cache / f"store-{size}-{kind}")  # here: Milvus Lite lets one process at a time open its file
    print(json.dumps({"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
                      "search_peak_mb": peak_mb()}))


def child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"scale.py {' '.join(map(str, args))} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def vector_rows(cache: Path, sizes: list[int], depth: int) -> list[dict]:
    rows = []
    for size in sizes:
        for kind in ("exact", "ivf", "milvus-lite") if size <= MILVUS_UP_TO and milvus_installed() else ("exact", "ivf"):
            print(f"  {size:,} passages, {kind}…", flush=True)
            row = {"size": size, "kind": kind, **child("--build-row", cache, size, kind),
                   **child("--search-row", cache, size, kind, depth)}
            if kind == "exact":
                truth = np.load(cache / f"found-{size}-exact.npy")
            found = np.load(cache / f"found-{size}-{kind}.npy")
            row["recall_at_10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
            row["passages_per_s"] = size / row["build_s"]
            rows.append(row)
            for leftover in (cache / f"store-{size}-{kind}").iterdir():
                leftover.unlink()
    return rows


def milvus_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("pymilvus", "milvus_lite"))


# --- parts 3 and 4 -------------------------------------------------------------------------------

def warm_p50(pipeline, questions: list[str]) -> float:
    pipeline.ask(questions[0])
    return float(np.percentile([pipeline.ask(q).timings_ms["total"] for q in questions], 50))


def dense_recall_at_5(passage_vectors: np.ndarray, query_vectors: np.ndarray, targets: list[int]) -> float:
    best = np.argsort(-(query_vectors @ passage_vectors.T), axis=1)[:, :5]
    return 100 * float(np.mean([t in row for t, row in zip(targets, best)]))


def embedder_rows(config, passages, real_vectors, sample_questions, targets, gold) -> list[dict]:
    from rag.assembly import build_pipeline
    from rag.embedder import Embedder
    from rag.evaluate import run_questions, summarize

    # passages of the sampled questions plus others, 5,000 in all: dense recall@5 among them
    others = [i for i in range(0, len(passages), max(1, len(passages) // 5000)) if i not in set(targets)]
    pool = sorted(set(targets) | set(others[:5000 - len(set(targets))]))
    where = {p: n for n, p in enumerate(pool)}
    rows = []
    for precision in ("float32", "int8"):
        spec = dataclasses.replace(config.embedder, settings=dataclasses.replace(config.embedder.settings, precision=precision))
        embedder = Embedder(spec)
        sample = [passages[i].text for i in pool[:1024]]
        embedder.encode(sample[:32])
        started = time.perf_counter()
        embedder.encode(sample)
        per_s = len(sample) / (time.perf_counter() - started)
        pool_vectors = real_vectors[pool] if precision == "float32" else embedder.encode([passages[i].text for i in pool])
        dense = dense_recall_at_5(pool_vectors, embedder.encode(sample_questions), [where[t] for t in targets])
        pipeline = build_pipeline(dataclasses.replace(config, embedder=spec), ROOT / "seeds",
                                  Path(tempfile.mkdtemp(prefix="rag-scale-")), rebuild=True, embedder=embedder)
        gold_recall = summarize(run_questions(pipeline, gold))["recall_at_5"]
        rows.append({"precision": precision, "passages_per_s": per_s, "gold_recall_at_5": gold_recall,
                     "dense_recall_at_5": dense, "pool": len(pool)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rag-scale")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--real-passages", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    from rag.assembly import build_pipeline
    from rag.config import load_models_config
    from rag.gold import BUNDLED_GOLD, load_gold
    from rag.index import IndexStore
    from rag.retrieval import FaissStore

    config = load_models_config()
    built = real_index(args.cache, args.real_passages)
    real = build_pipeline(config, args.cache / "seeds", args.cache / "index", rebuild=False)
    passages = real.retriever.passages
    rng = np.random.default_rng(0)
    picked = [built["questions"][i] for i in rng.choice(len(built["questions"]), 300, replace=False)]
    embedded = real.retriever.embedder.encode([q["question"] for q in picked])
    np.save(args.cache / "query-vectors.npy", embedded[:QUERIES])
    store = FaissStore.load(IndexStore(args.cache / "index").current_build)
    real_vectors = store.vectors(range(len(passages)))
    np.save(args.cache / "real-vectors.npy", real_vectors)

    print(f"\nReal text: {built['passages']:,} passages from train-full.json contexts, built "
          f"{'in this run' if built['measured'] == datetime.date.today().isoformat() else 'on ' + built['measured']} "
          f"on {built['cpus']} CPU cores")
    print(f"  `rag index`: {built['seconds']:.0f} s, {built['passages'] / built['seconds']:.1f} passages/s "
          f"(embedding, float32), peak memory {built['peak_mb']:.0f} MB")

    sizes = [int(s) for s in args.sizes.split(",")]
    print("\nVector search (one fresh process per row; * = synthetic vectors, see --help):", flush=True)
    rows = vector_rows(args.cache, sizes, config.retrieval.candidates)
    print(f"\n{'passages':>10} {'index':11} {'build p/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10} "
          f"{'search MB':>10} {'build MB':>9}")
    for row in rows:
        mark = "*" if row["origin"] == "synthetic" else " "
        print(f"{row['size']:>9,}{mark} {row['kind']:11} {row['passages_per_s']:10,.0f} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} "
              f"{row['recall_at_10']:10.3f} {row['search_peak_mb']:10.0f} {row['build_peak_mb']:9.0f}")
    print(f"  (search: top {config.retrieval.candidates}, as deep as rag's dense ranking goes; "
          f"targets at 1M: p50 <= 20 ms, memory <= 3 GB, recall@10 >= 0.95)")

    gold = load_gold(BUNDLED_GOLD)
    small = build_pipeline(config, ROOT / "seeds", Path(tempfile.mkdtemp(prefix="rag-scale-")), rebuild=True,
                           embedder=real.retriever.embedder, reader=real.reader)
    small_p50 = warm_p50(small, [q.question for q in gold])
    real_p50 = warm_p50(real, [q["question"] for q in picked[:60]])
    print(f"\nEnd to end, warm `ask` p50: {real_p50:.0f} ms on {len(passages):,} passages, "
          f"{small_p50:.0f} ms on {len(small.retriever.passages)} (ratio {real_p50 / small_p50:.2f}, target <= 1.3)")

    starts = {}
    for n, p in enumerate(passages):
        starts.setdefault(p.doc_id, []).append((p.start, p.end, n))
    targets = [next(n for s, e, n in starts[q["doc_id"]] if s <= q["at"] < e) for q in picked]
    print("\nEmbedder precision (passages/s on 1,024 real passages; recall@5 of the full pipeline on the gold set, "
          "and of dense retrieval of 300 real questions' passages among ~5,000):", flush=True)
    embedders = embedder_rows(config, passages, real_vectors, [q["question"] for q in picked], targets, gold)
    for row in embedders:
        print(f"  {row['precision']:8} {row['passages_per_s']:7.1f} passages/s   gold recall@5 {row['gold_recall_at_5']:5.1f}   "
              f"dense recall@5 {row['dense_recall_at_5']:5.1f}")
    if args.json:
        args.json.write_text(json.dumps({"real": {k: v for k, v in built.items() if k != "questions"}, "vector_rows": rows,
                                         "end_to_end_p50_ms": {"real": real_p50, "bundled": small_p50},
                                         "embedders": embedders}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--build-row":
        build_row(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "--search-row":
        search_row(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        main()
