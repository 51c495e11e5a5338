"""What keeping an IVF index's clusters through updates costs and saves: recall when new articles
are on the same subjects and on new ones, and the time of an update at archive size, each beside
the clusters trained again (as every update did before), in the same run.

    python eval/ivf_update.py [--passages 100000] [--size 1000000] [--repeats 3] [--cache DIR]

(0 for --passages or --size skips that part; about 3 minutes for part 1 the first time, and
10 for part 2 at 1M, on 2 cores.)

1. Subjects. Paragraphs of ../shared/squad/train-full.json from two disjoint sets of articles,
   and a question on each, are embedded by `rag`'s embedder (once; kept in --cache): set A is
   what the archive holds, set B the new subjects. The archive is --passages vectors, copies of
   set A's with Gaussian noise as eval/scale.py makes them; its IVF index is trained. Then each
   scenario adds vectors (copies of A's, or of B's) to that index with its clusters kept, and to
   one trained again on everything. For each: recall@10 against exact search of set A's and set
   B's questions, how many of the new vectors fit the clusters worse than 9 in 10 of those they
   were trained for ("strangers"), and whether `rag` would train the clusters again
   (`Clusters.outgrown`). Then the share of strangers among real paragraphs, not copies.
2. Time. A stored IVF index of --size synthetic vectors (the same copies); one update removes 20
   of them and adds 20, as `rag add` of an article does: loaded memory-mapped, renumbered with its
   clusters kept, saved; beside the same update with a new store that trains its clusters again.
   The two ways alternate, --repeats times each; the median is printed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.scale import noisy_copies  # noqa: E402
from rag.retrieval import FaissStore, make_vector_store  # noqa: E402
from rag.retrieval.faiss_store import EXACT_BELOW  # noqa: E402

TRAIN_FULL = ROOT.parent / "shared" / "squad" / "train-full.json"
PARAGRAPHS = {"A": 3000, "B": 1500}  # held, new subjects
QUESTIONS = 200


def embedded_subjects(cache: Path) -> dict[str, np.ndarray]:
    """Set A's and set B's paragraph and question vectors, embedded once and kept in `cache`."""
    files = {f"{name}-{kind}": cache / f"{name}-{kind}.npy" for name in PARAGRAPHS for kind in ("passages", "questions")}
    if not all(path.is_file() for path in files.values()):
        from rag.config import load_models_config
        from rag.embedder import Embedder

        cache.mkdir(parents=True, exist_ok=True)
        data = json.loads(TRAIN_FULL.read_text(encoding="utf-8"))["data"]
        order = np.random.default_rng(0).permutation(len(data))
        embedder = Embedder(load_models_config(ROOT / "models.toml").embedder)
        taken = 0
        for name, wanted in PARAGRAPHS.items():
            texts, questions = [], []
            while len(texts) < wanted:
                for paragraph in data[order[taken]]["paragraphs"][:25]:
                    texts.append(paragraph["context"])
                    questions += [qa["question"] for qa in paragraph["qas"][:1]]
                taken += 1
            print(f"embedding set {name}: {len(texts)} paragraphs…", flush=True)
            picked = np.random.default_rng(1).permutation(len(questions))[:QUESTIONS]
            np.save(files[f"{name}-passages"], embedder.encode(texts))
            np.save(files[f"{name}-questions"], embedder.encode([questions[i] for i in picked]))
    return {name: np.load(path) for name, path in files.items()}


def saved_store(vectors: np.ndarray, folder: Path) -> FaissStore:
    """`vectors` under ids 0..n-1, saved as rag saves a store (an IVF index from EXACT_BELOW on), and loaded as rag loads it."""
    folder.mkdir(parents=True, exist_ok=True)
    store = make_vector_store("faiss", vectors.shape[1])
    for start in range(0, len(vectors), 100_000):
        store.add(np.arange(start, min(len(vectors), start + 100_000)), vectors[start:start + 100_000])
    store.save(folder)
    return FaissStore.load(folder)


def recall_at_10(store: FaissStore, vectors: np.ndarray, questions: np.ndarray) -> float:
    truth = np.argsort(-(questions @ vectors.T), axis=1)[:, :10]
    return float(np.mean([len({i for i, _ in store.search(q, 10)} & set(t.tolist())) / 10 for q, t in zip(questions, truth)]))


def subjects(cache: Path, passages: int, work: Path) -> None:
    real = embedded_subjects(cache)
    held = noisy_copies(real["A-passages"], passages, 1)
    stored = saved_store(held, work / "held")
    print(f"\n1. Subjects: an IVF index of {passages:,} vectors ({stored.clusters.lists} clusters), then each scenario's "
          f"vectors added\n")
    print("| added | strangers | rag trains again | recall@10, held subjects: kept / trained again | new subjects: kept / trained again |")
    print("|---|---|---|---|---|")
    scenarios = [("same subjects", "A", passages // 2), ("same subjects", "A", passages // 20)]
    scenarios += [("new subjects", "B", count) for count in (passages // 500, passages // 100, passages // 20, passages // 2)]
    for seed, (label, source, count) in enumerate(scenarios, start=2):
        added = noisy_copies(real[f"{source}-passages"], count, seed)
        everything = np.concatenate([held, added])
        kept = stored.renumbered(np.arange(passages), np.arange(passages))
        kept.add(np.arange(passages, len(everything)), added)
        again = saved_store(everything, work / f"again-{seed}")
        row = [f"{count:,} on {label}", f"{kept.clusters.strangers:,} ({kept.clusters.strangers / count:.0%})",
               "yes" if kept.clusters.outgrown() else "no"]
        for questions in (real["A-questions"], real["B-questions"]):
            row.append(f"{recall_at_10(kept, everything, questions):.3f} / {recall_at_10(again, everything, questions):.3f}")
        print("| " + " | ".join(row) + " |", flush=True)


def real_strangers(cache: Path) -> None:
    """The share of strangers among real paragraphs (not noisy copies, which sit tight around the
    paragraph they copy, so that any other paragraph is far from them): k-means (40 clusters) on
    2,000 of set A's paragraphs, fit measured on 500 others of A, then the rest of A (new
    paragraphs of the same articles) and set B (other articles)."""
    import faiss

    real = embedded_subjects(cache)
    held = real["A-passages"][np.random.default_rng(0).permutation(len(real["A-passages"]))]
    kmeans = faiss.Kmeans(held.shape[1], 40, niter=25, seed=1)
    kmeans.train(held[:2000])
    centres = faiss.IndexFlatIP(held.shape[1])
    centres.add(kmeans.centroids)
    fit = np.quantile(centres.search(held[2000:2500], 1)[0][:, 0], 0.1)
    shares = {label: float((centres.search(rows, 1)[0][:, 0] < fit).mean())
              for label, rows in (("same articles' other paragraphs", held[2500:]), ("other articles", real["B-passages"]))}
    print("\n   real paragraphs that fit badly: " + "; ".join(f"{label} {share:.0%}" for label, share in shares.items()))


def one_update(stored: Path, into: Path, keep_clusters: bool, added: np.ndarray) -> float:
    """Seconds of one update of the stored index: 20 vectors out, `added` in, saved into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store = FaissStore.load(stored)
    old = np.arange(20, len(store))
    new = np.arange(len(old))
    if keep_clusters:
        updated = store.renumbered(old, new)
    else:
        updated = make_vector_store("faiss", store.dimension)
        updated.add(new, store.vectors(old))
    updated.add(np.arange(len(old), len(old) + len(added)), added)
    updated.save(into)
    seconds = time.perf_counter() - started
    for leftover in into.iterdir():
        leftover.unlink()
    return seconds


def timing(cache: Path, size: int, repeats: int, work: Path) -> None:
    real = embedded_subjects(cache)
    print(f"\n2. Time: an update of a stored IVF index of {size:,} vectors (20 out, 20 in)…", flush=True)
    started = time.perf_counter()
    saved_store(noisy_copies(real["A-passages"], size, 1), work / "archive")
    print(f"   (the stored index built in {time.perf_counter() - started:.1f} s)\n")
    added = noisy_copies(real["A-passages"], 20, 99)
    ways = {"clusters kept (rag add now)": True, "clusters trained again (before)": False}
    seconds = {way: [] for way in ways}
    for _ in range(repeats):
        for way, keep in ways.items():
            seconds[way].append(one_update(work / "archive", work / "update", keep, added))
    print("| way | median | runs |\n|---|---|---|")
    for way, runs in seconds.items():
        print(f"| {way} | {statistics.median(runs):.2f} s | {', '.join(f'{s:.2f}' for s in runs)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000, help="the archive's size in part 1 (0: skip it)")
    parser.add_argument("--size", type=int, default=1_000_000, help="the archive's size in part 2 (0: skip it)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rag-ivf-update")
    args = parser.parse_args()
    if min(args.passages or EXACT_BELOW, args.size or EXACT_BELOW) < EXACT_BELOW:
        raise SystemExit(f"an index is IVF from {EXACT_BELOW:,} vectors: --passages and --size must be at least that")
    with tempfile.TemporaryDirectory(prefix="rag-ivf-update-") as work:
        if args.passages:
            subjects(args.cache, args.passages, Path(work))
            real_strangers(args.cache)
        if args.size:
            timing(args.cache, args.size, args.repeats, Path(work))


if __name__ == "__main__":
    main()
