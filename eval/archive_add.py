"""What `rag add` of one article costs on a large archive, besides embedding it: the command's own
path (`rag.assembly.add_articles`), timed beside the same add as it was before this stop's two
changes (the IVF clusters trained again at every update, and the articles folder read whole a
second time for the index), in the same run, alternated.

    python eval/archive_add.py [--passages 1000000] [--repeats 3]

The archive is the contexts of ../shared/squad/train-full.json, one .txt per article, written
again with a running number until it makes about --passages passages; its vectors are random
(eval/update_speed.py's FreeEmbedder), so nothing here is embedding. Indexing it first takes
several minutes at 1M. Then one profile of an add prints where its time goes.
"""
from __future__ import annotations

import argparse
import cProfile
import contextlib
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.update_speed import TRAIN_FULL, FreeEmbedder  # noqa: E402
from rag import assembly, index as index_module  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.retrieval import FaissStore, faiss_store  # noqa: E402

PASSAGE_CHARS = 370  # about what a passage covers (eval/scale.py)


def write_archive(folder: Path, passages: int) -> int:
    """Articles until about `passages` passages; returns how many were written."""
    articles = [("\n\n".join(p["context"] for p in a["paragraphs"]))
                for a in json.loads(TRAIN_FULL.read_text(encoding="utf-8"))["data"]]
    written, chars = 0, 0
    while chars < passages * PASSAGE_CHARS:
        text = articles[written % len(articles)]
        (folder / f"{written:06d}.txt").write_text(f"Published: 2021-09-{written % 28 + 1:02d}\nCopy {written}.\n{text}\n",
                                                   encoding="utf-8")
        written, chars = written + 1, chars + len(text)
    return written


@contextlib.contextmanager
def as_before():
    """The add as it was: the clusters trained again (a renumbered store is a new flat one, so
    saving it trains), and the folder read whole again for the index (no earlier read kept)."""
    renumbered, load_corpus = FaissStore.renumbered, index_module.load_corpus  # the name IndexStore.articles calls

    def flat_copy(store, old_ids, new_ids):
        copy = FaissStore.create(store.dimension)
        copy.add(new_ids, store.vectors(old_ids))
        return copy

    FaissStore.renumbered = flat_copy
    index_module.load_corpus = lambda directory, known=None, earlier=None: load_corpus(directory, known)
    try:
        yield
    finally:
        FaissStore.renumbered, index_module.load_corpus = renumbered, load_corpus


def one_add(config, seeds: Path, index: Path, scratch: Path, name: str) -> float:
    new = scratch / f"{name}.txt"
    new.write_text(f"The ferry {name} leaves at ten. It returns at noon.\n", encoding="utf-8")
    started = time.perf_counter()
    assembly.add_articles(config, [new], seeds, index, embedder=FreeEmbedder())  # this script's models: nothing is embedded
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = load_models_config(ROOT / "models.toml")
    with tempfile.TemporaryDirectory(prefix="rag-archive-add-") as scratch:
        scratch = Path(scratch)
        seeds, index = scratch / "seeds", scratch / "index"
        seeds.mkdir()
        articles = write_archive(seeds, args.passages)
        started = time.perf_counter()
        opened = assembly.open_index(config, seeds, index, on_status=lambda line: print(f"   {line}", flush=True),
                                     embedder=FreeEmbedder())
        print(f"archive: {articles:,} articles, {len(opened.index.passages):,} passages, "
              f"{opened.index.vectors.kind} index; indexed in {time.perf_counter() - started:.0f} s\n", flush=True)
        del opened
        seconds = {"rag add now": [], "as before (clusters trained, folder read twice)": []}
        for n in range(args.repeats):
            seconds["rag add now"].append(one_add(config, seeds, index, scratch, f"now-{n}"))
            with as_before():
                seconds["as before (clusters trained, folder read twice)"].append(one_add(config, seeds, index, scratch, f"before-{n}"))
        print("| way | median | runs |\n|---|---|---|")
        for way, runs in seconds.items():
            print(f"| {way} | {statistics.median(runs):.2f} s | {', '.join(f'{s:.2f}' for s in runs)} |")
        profile = cProfile.Profile()
        profile.enable()
        one_add(config, seeds, index, scratch, "profiled")
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        print("\nwhere one add's time goes (cumulative):\n" + out.getvalue())
        print(f"(IVF from {faiss_store.EXACT_BELOW:,} passages)")


if __name__ == "__main__":
    main()
