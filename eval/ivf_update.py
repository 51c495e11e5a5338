"""What keeping an IVF index's clusters through updates costs and saves: recall when new articles
are on the same subjects and on new ones, and the time of an update at archive size, each beside
the clusters trained again (as every update did before), in the same run.

    python eval/ivf_update.py [--passages 100000] [--size 1000000] [--repeats 3] [--no-real] [--cache DIR]

(0 for --passages or --size skips that part; about 3 minutes for part 1 the first time, and
10 for part 2 at 1M, on 2 cores.)

1. Subjects. Paragraphs of ../shared/squad/train-full.json from two disjoint sets of articles,
   and a question on each, are embedded by `rag`'s embedder (once; kept in --cache): set A is
   what the archive holds, set B the new subjects. The archive is --passages vectors, copies of
   set A's with Gaussian noise as eval/scale.py makes them; its IVF index is trained. Then each
   scenario adds vectors (copies of A's, or of B's) to that index with its clusters kept, and to
   one trained again on everything. For each: recall@10 against exact search of set A's and set
   B's questions, how many of the new vectors fit the clusters worse than 9 in 10 of the vectors
   k-means did not train on ("strangers"), and whether `rag` would train the clusters again
   (`Clusters.outgrown`). Then the share of strangers among real paragraphs, not copies.
2. Time. A stored IVF index of --size synthetic vectors (the same copies); one update removes 20
   of them and adds 20, as `rag add` of an article does: loaded memory-mapped, renumbered with its
   clusters kept, saved; beside the same update with a new store that trains its clusters again.
   The two ways alternate, --repeats times each; the median is printed.
3. Real paragraphs (REAL_PARAGRAPHS of them: about 30 minutes of embedding the first time):
   part 1 again with real, distinct paragraphs, at the scale they allow (see real_subjects).
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
REAL_PARAGRAPHS = 12_288  # part 3: real, distinct paragraphs (train-full holds about 27k)


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


def real_paragraphs(cache: Path) -> dict[str, np.ndarray]:
    """The first REAL_PARAGRAPHS distinct paragraphs of train-full.json embedded (some 30 minutes
    the first time on 2 cores, a chunk at a time, so a stopped run goes on), with each one's
    article number and its first question, embedded too."""
    files = {name: cache / f"all-{name}.npy" for name in ("paragraphs", "articles", "questions")}
    if all(path.is_file() for path in files.values()):
        return {name: np.load(path) for name, path in files.items()}
    from rag.config import load_models_config
    from rag.embedder import Embedder

    data = json.loads(TRAIN_FULL.read_text(encoding="utf-8"))["data"]
    seen, texts, articles, questions = set(), [], [], []
    for number, article in enumerate(data):
        for paragraph in article["paragraphs"]:
            if paragraph["context"] in seen or not paragraph["qas"]:
                continue
            seen.add(paragraph["context"])
            texts.append(paragraph["context"])
            articles.append(number)
            questions.append(paragraph["qas"][0]["question"])
    texts, articles, questions = texts[:REAL_PARAGRAPHS], articles[:REAL_PARAGRAPHS], questions[:REAL_PARAGRAPHS]
    embedder = Embedder(load_models_config(ROOT / "models.toml").embedder)
    chunk = 2048
    for kind, items in (("paragraphs", texts), ("questions", questions)):
        for start in range(0, len(items), chunk):
            part = cache / f"all-{kind}-{start:06d}.npy"
            if not part.is_file():
                print(f"embedding {kind} {start:,}-{min(len(items), start + chunk):,} of {len(items):,}…", flush=True)
                np.save(part, embedder.encode(items[start:start + chunk]))
        parts = [cache / f"all-{kind}-{start:06d}.npy" for start in range(0, len(items), chunk)]
        np.save(files[kind], np.concatenate([np.load(path) for path in parts]))
        for path in parts:
            path.unlink()
    np.save(files["articles"], np.array(articles))
    return {name: np.load(path) for name, path in files.items()}


def real_subjects(cache: Path, work: Path) -> None:
    """Part 1 again with real, distinct paragraphs, at the scale they allow: the archive is
    two-thirds of REAL_PARAGRAPHS' articles (less 1,024 of their paragraphs, added later as the
    same subjects), the new subjects the other articles. The index is made IVF at this size,
    k-means sampling 32 vectors a cluster (so that some are left to measure the fit on), and a
    search probes the share of clusters it probes at 100,000 passages."""
    from rag.retrieval import faiss_store

    real = real_paragraphs(cache)
    vectors, articles, questions = real["paragraphs"], real["articles"], real["questions"]
    rng = np.random.default_rng(0)
    numbers = rng.permutation(np.unique(articles))
    sizes = np.cumsum([np.sum(articles == number) for number in numbers])
    held_articles = numbers[:int(np.searchsorted(sizes, 2 * len(vectors) // 3)) + 1]
    held = np.flatnonzero(np.isin(articles, held_articles))
    later = rng.choice(held, 1_024, replace=False)
    stored_rows = np.setdiff1d(held, later)
    other = np.flatnonzero(~np.isin(articles, held_articles))
    clusters = int(2 * np.sqrt(len(stored_rows)))
    settings = faiss_store.EXACT_BELOW, faiss_store.TRAINING_POINTS_PER_CLUSTER, faiss_store.PROBES
    faiss_store.EXACT_BELOW, faiss_store.TRAINING_POINTS_PER_CLUSTER = 1_000, 32
    faiss_store.PROBES = max(1, round(faiss_store.PROBES * clusters / int(2 * np.sqrt(100_000))))
    try:
        _real_rows(vectors, questions, stored_rows, later, other, rng, work)
    finally:
        faiss_store.EXACT_BELOW, faiss_store.TRAINING_POINTS_PER_CLUSTER, faiss_store.PROBES = settings


def _real_rows(vectors, questions, stored_rows, later, other, rng, work: Path) -> None:
    from rag.retrieval import faiss_store

    stored = saved_store(vectors[stored_rows], work / "real")
    print(f"\n3. Real paragraphs: an IVF index of {len(stored_rows):,} ({stored.clusters.lists} clusters, "
          f"{faiss_store.PROBES} probed), then each scenario's paragraphs added\n")
    print("| added | strangers | rag trains again | recall@10, held paragraphs' questions: kept / trained again | added paragraphs' questions: kept / trained again |")
    print("|---|---|---|---|---|")
    asked_held = rng.choice(len(stored_rows), QUESTIONS, replace=False)
    for label, added in [("the same articles' other paragraphs", later)] + [
            ("other articles' paragraphs", other[rng.permutation(len(other))[:count]]) for count in (256, 1_024, len(other))]:
        rows = np.concatenate([stored_rows, added])
        kept = stored.renumbered(np.arange(len(stored_rows)), np.arange(len(stored_rows)))
        kept.add(np.arange(len(stored_rows), len(rows)), vectors[added])
        again = saved_store(vectors[rows], work / f"real-{label[:5]}-{len(added)}")
        asked_added = len(stored_rows) + rng.choice(len(added), min(QUESTIONS, len(added)), replace=False)
        row = [f"{len(added):,}, {label}", f"{kept.clusters.strangers:,} ({kept.clusters.strangers / len(added):.0%})",
               "yes" if kept.clusters.outgrown() else "no"]
        for asked in (asked_held, asked_added):
            row.append(f"{recall_at_10(kept, vectors[rows], questions[rows[asked]]):.3f} / "
                       f"{recall_at_10(again, vectors[rows], questions[rows[asked]]):.3f}")
        print("| " + " | ".join(row) + " |", flush=True)


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
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=True, help="part 3 (--no-real: skip it)")
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
        if args.real:
            real_subjects(args.cache, Path(work))


if __name__ == "__main__":
    main()
