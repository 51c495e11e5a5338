"""Indexing an archive from several machines at once into one Milvus server.

    python eval/milvus_parallel.py [--passages 1500] [--shards 2]

Real articles (contexts of ../shared/squad/train-full.json, as eval/scale.py writes them) are
split into --shards folders. A Milvus server (Milvus Lite's gRPC server, `milvus-lite server`,
on a local port) is started twice, empty each time:
1. one `rag add` process adds every shard, one after the other (the baseline);
2. one `rag add` process per shard, all started at once.
For each: wall time, passages/s, and the check that every passage of every article is present
exactly once (rows in the passage collection against what chunking the articles gives, with no
(doc id, start, end) twice), and every article's text comes back byte for byte.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.scale import write_real_corpus  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.corpus import chunk_corpus, load_corpus  # noqa: E402
from rag.milvus_archive import ArchiveArticles, MilvusArchive  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
                               "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"milvus://127.0.0.1:{port}"
        time.sleep(0.2)
    raise SystemExit("the Milvus Lite server did not start")


def rag_add(store: str, folders: list[Path]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rag", "add", *map(str, folders)], cwd=ROOT,
                            env=os.environ | {"RAG_STORE": store}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def check(store: str, shards: list[Path]) -> str:
    """'every passage once' or what is wrong."""
    archive = MilvusArchive.open(store)
    documents = {}
    for shard in shards:
        documents |= load_corpus(shard).documents
    expected = {(p.doc_id, p.start, p.end) for shard in shards
                for p in chunk_corpus(load_corpus(shard), load_models_config().chunking)}
    rows = archive.passages.query("", ["doc_id", "start", "end"])
    stored = [(r["doc_id"], r["start"], r["end"]) for r in rows]
    texts = ArchiveArticles(archive)
    if len(stored) != len(set(stored)):
        return f"{len(stored) - len(set(stored))} passages twice"
    if set(stored) != expected:
        return f"{len(expected - set(stored))} passages missing, {len(set(stored) - expected)} unexpected"
    if any(texts[d] != doc for d, doc in documents.items()):
        return "an article's text differs"
    return f"every passage once ({len(stored)} passages, {len(documents)} articles)"


def run(label: str, shards: list[Path], parallel: bool, workdir: Path) -> None:
    data_dir = workdir / f"milvus-{label}"
    server, store = start_server(data_dir)
    try:
        started = time.perf_counter()
        adds = [rag_add(store, [s]) for s in shards] if parallel else [rag_add(store, shards)]
        for add in adds:
            _, err = add.communicate()
            if add.returncode:
                raise SystemExit(f"rag add failed:\n{err[-2000:]}")
        seconds = time.perf_counter() - started
        passages = MilvusArchive.open(store).count()[1]
        print(f"| {label} | {len(adds)} | {seconds:.0f} s | {passages / seconds:.1f} | {check(store, shards)} |", flush=True)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1500, help="about how many passages in all")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rag-milvus-parallel-"))
    articles = workdir / "articles"
    write_real_corpus(articles, args.passages)
    files = sorted(articles.iterdir())
    shards = [workdir / f"shard-{n:02d}" for n in range(args.shards)]
    for n, shard in enumerate(shards):
        shard.mkdir()
        for f in files[n::args.shards]:
            shutil.move(str(f), shard / f.name)
    print(f"{len(files)} articles in {args.shards} shards; {os.cpu_count()} CPU cores")
    print("| run | rag add processes | wall | passages/s | check |")
    print("|---|---|---|---|---|")
    run("one after the other", shards, False, workdir)
    run("all at once", shards, True, workdir)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
