"""What adding one article to a large archive costs, besides embedding it: the update `rag add`
makes, timed beside the same update building the keyword index from every passage (as every
update did before the keyword index was kept as postings) and beside one that also cuts every
article again (as every update did before unchanged articles kept their stored passages), in
the same run.

    python eval/update_speed.py [--articles 3000] [--repeats 3]

The archive is the contexts of ../shared/squad/train-full.json, grouped by article into .txt
articles, in a temporary folder. Its vectors are random (an embedder that costs nothing), so
the figures are what an update costs beyond the embedding of the new article's passages:
reading the folder, cutting passages, BM25, the vector store, saving the build.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.corpus import ChunkSettings, load_corpus  # noqa: E402
from rag.index import IndexStore, Manifest, build_index  # noqa: E402

TRAIN_FULL = ROOT.parent / "shared" / "squad" / "train-full.json"


@dataclasses.dataclass(frozen=True)
class FreeSpec:
    id: str = "random-unit-vectors"

    def fingerprint(self) -> str:
        return "random-1"


class FreeEmbedder:
    """Random unit vectors: what an update costs besides embedding."""

    dimension = 384
    spec = FreeSpec()

    def encode(self, texts: list[str], on_batch=None) -> np.ndarray:
        rows = np.random.default_rng(len(texts)).standard_normal((len(texts), self.dimension)).astype(np.float32)
        if on_batch:
            on_batch(len(texts))
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def write_articles(folder: Path, count: int) -> None:
    data = json.loads(TRAIN_FULL.read_text(encoding="utf-8"))["data"]
    for n, article in enumerate(data[:count]):
        text = "\n\n".join(paragraph["context"] for paragraph in article["paragraphs"])
        (folder / f"{n:05d}.txt").write_text(f"Published: 2021-09-{n % 28 + 1:02d}\n{text}\n", encoding="utf-8")


WAYS = {  # label: (stored cuts kept, stored keyword index updated)
    "rag add (cuts and keywords kept)": (True, True),
    "keyword index built whole": (True, False),
    "that, and every article cut again": (False, False),
}


def update(seeds: Path, store: IndexStore, embedder, cut_alike: bool, keywords_kept: bool) -> float:
    """Seconds to bring the index up to date after one article was added, as `rag add` does."""
    started = time.perf_counter()
    corpus = store.articles(seeds)
    expected = Manifest.expected(corpus, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension,
                                 ChunkSettings(), "faiss")
    reusable = store.reusable(corpus, expected)
    if reusable is None:
        raise SystemExit("the stored index could not be reused: nothing to measure")
    if reusable.keywords is None:
        raise SystemExit("the stored keyword index could not be reused: nothing to measure")
    reusable = dataclasses.replace(reusable, cut_alike=reusable.cut_alike and cut_alike,
                                   keywords=reusable.keywords if keywords_kept else None)
    index, counts = build_index(corpus, embedder, ChunkSettings(), "faiss", reusable=reusable)
    store.save(index)
    assert counts.embedded <= 2, counts  # only the new article's passages
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    embedder = FreeEmbedder()
    with tempfile.TemporaryDirectory() as scratch:
        seeds, store = Path(scratch) / "seeds", IndexStore(Path(scratch) / "index")
        seeds.mkdir()
        write_articles(seeds, args.articles)
        corpus = load_corpus(seeds)
        index, _ = build_index(corpus, embedder, ChunkSettings(), "faiss")
        store.save(index)
        megabytes = sum(len(doc.text) for doc in corpus.documents.values()) / 1e6
        print(f"archive: {len(corpus.documents)} articles, {megabytes:.1f} M characters, {len(index.passages)} passages")
        times = {label: [] for label in WAYS}
        for n in range(args.repeats):  # interleaved, so that every way sees the same machine
            for way, (label, (cut_alike, keywords_kept)) in enumerate(WAYS.items()):
                (seeds / f"new-{way}-{n}.txt").write_text(f"The ferry number {n} leaves at ten.\n", encoding="utf-8")
                times[label].append(update(seeds, store, embedder, cut_alike, keywords_kept))
        for label, seconds in times.items():
            print(f"{label:<36} median {statistics.median(seconds):6.2f} s  (runs: {', '.join(f'{s:.2f}' for s in seconds)})")


if __name__ == "__main__":
    main()
