"""Speed and memory of `rag`, against a baseline measured in the same run.

    python eval/bench.py [--gold eval/gold.jsonl] [--cold-runs 3]

Ours: retrieve the top-k passages (FAISS + BM25), read only those. Baseline: no retrieval,
the reader over every passage of every article (what a reader alone would have to do).
Printed: warm answer latency p50/p95 over the gold questions, cold `rag ask` wall time (new
process to printed answer, index already built), index build time, and peak memory. The cold
`rag ask` is also timed with both models on the torch runtime instead of ONNX Runtime.
Last, a loopback load test of `rag serve`: the gold questions over HTTP from 1 and from 8
concurrent clients (at most --serve-requests each, and 120 s), p50/p95, answers/s and errors,
beside the same process's single-threaded `Pipeline.ask`."""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.assembly import build_pipeline, open_index  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.gold import BUNDLED_GOLD, load_gold  # noqa: E402
from rag.metrics import best_over, f1_score  # noqa: E402

BASELINE_ONCE = """
import sys, time
sys.path.insert(0, {root!r})
from rag.config import load_models_config
from rag.corpus import ChunkSettings, chunk_corpus, load_corpus
from rag.reader import Reader
corpus = load_corpus({seeds!r})
passages = chunk_corpus(corpus, ChunkSettings())
guesses = Reader(load_models_config().reader).read({question!r}, passages)
best = max(guesses, key=lambda g: g.span_score - g.null_score)
print(corpus.documents[passages[best.passage_index].doc_id].text[best.start:best.end])
"""


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def timed_process(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def torch_runtime_models(folder: Path) -> Path:
    """models.toml with runtime = "torch" for both models, in float32 (int8 runs on ONNX Runtime
    only), relative paths made absolute."""
    text = (ROOT / "models.toml").read_text(encoding="utf-8")
    text = re.sub(r'^precision = "int8".*\n', "", text, flags=re.M)
    text = text.replace('source = "path:models', f'source = "path:{ROOT}/models')
    for table in ("[embedder]", "[reader]"):
        text = text.replace(f"{table}\n", f'{table}\nruntime = "torch"\n')
    path = folder / "models-torch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def serve_and_wait(index_dir: Path, seeds: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port), "--index-dir", str(index_dir),
                               "--seeds", str(seeds)], cwd=ROOT, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                if json.loads(response.read())["status"] == "ready":
                    return server, base
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("rag serve did not become ready")


def post_question(base: str, question: str) -> float:
    """Milliseconds for one answer over HTTP (an exception for any non-200)."""
    request = urllib.request.Request(base + "/ask", data=json.dumps({"question": question}).encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        json.loads(response.read())
    return 1000 * (time.perf_counter() - started)


def load_test(base: str, questions: list[str], clients: int, requests: int, seconds: float = 120) -> dict:
    """`requests` questions from `clients` concurrent clients, stopping early after `seconds`."""
    deadline = time.time() + seconds
    latencies, errors = [], 0

    def one(question: str):
        nonlocal errors
        if time.time() > deadline:
            return
        try:
            latencies.append(post_question(base, question))
        except Exception:
            errors += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, [questions[i % len(questions)] for i in range(requests)]))
    wall = time.perf_counter() - started
    return {"clients": clients, "answers": len(latencies), "errors": errors, "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95), "answers_per_s": len(latencies) / wall}


QUESTION = "Who leads the resistance in the Panjshir Valley?"  # the cold runs' question


def cold_figures(index_dir: Path, seeds: Path, runs: int) -> dict:
    """New process to printed answer, index already built: ours on ONNX Runtime and on torch, and
    the baseline. Run first, while this process is small: a child's peak memory counts what it
    forked from."""
    ask = [sys.executable, "-m", "rag", "ask", "--index-dir", str(index_dir), "--seeds", str(seeds), QUESTION]
    subprocess.run([sys.executable, "-m", "rag", "index", "--index-dir", str(index_dir), "--seeds", str(seeds)],
                   cwd=ROOT, check=True, capture_output=True)
    timed_process(ask)  # exports the ONNX graphs if this machine has none cached yet
    cold = [timed_process(ask) for _ in range(runs)]
    cold_peak = peak_rss_mb(resource.RUSAGE_CHILDREN)
    torch_models = torch_runtime_models(Path(tempfile.mkdtemp()))
    cold_torch = [timed_process([*ask[:-1], "--models", str(torch_models), QUESTION]) for _ in range(runs)]
    script = BASELINE_ONCE.format(root=str(ROOT), seeds=str(seeds), question=QUESTION)
    cold_baseline = [timed_process([sys.executable, "-c", script]) for _ in range(runs)]
    return {"cold_s_median": statistics.median(cold), "baseline_cold_s_median": statistics.median(cold_baseline),
            "cold_s_median_torch_runtime": statistics.median(cold_torch), "peak_rss_mb_cold_ask": cold_peak}


def warm_figures(pipeline, questions) -> dict:
    """Each gold question answered by the warm pipeline (retrieve, then read the top k) and by the
    baseline (the reader over every passage), with the latency and score of each."""
    ours, ours_f1 = [], []
    for q in questions:
        answer = pipeline.ask(q.question)
        ours.append(answer.timings_ms["total"])
        ours_f1.append(best_over(f1_score, answer.text or "", q.answers) if q.answerable else float(answer.abstained))
    passages = pipeline.retriever.passages
    baseline, baseline_f1 = [], []
    for q in questions:
        started = time.perf_counter()
        guesses = pipeline.reader.read(q.question, passages)
        best = max(guesses, key=lambda g: g.span_score - g.null_score)
        baseline.append(1000 * (time.perf_counter() - started))
        text = pipeline.corpus.documents[passages[best.passage_index].doc_id].text[best.start:best.end]
        baseline_f1.append(best_over(f1_score, text, q.answers) if q.answerable else 0.0)
    return {"questions": len(questions), "passages": len(passages), "top_k": pipeline.top_k,
            "warm_ms_p50": percentile(ours, 50), "warm_ms_p95": percentile(ours, 95),
            "warm_answers_per_s": 1000 / float(np.mean(ours)),
            "baseline_warm_ms_p50": percentile(baseline, 50), "baseline_warm_ms_p95": percentile(baseline, 95),
            "mean_score": float(np.mean(ours_f1)), "baseline_mean_score": float(np.mean(baseline_f1)),
            "peak_rss_mb_warm_process": peak_rss_mb()}


def serve_figures(index_dir: Path, seeds: Path, questions: list[str], requests: int) -> list[dict]:
    """The load test of `rag serve` over loopback, from 1 and from 8 concurrent clients."""
    server, base = serve_and_wait(index_dir, seeds)
    try:
        post_question(base, "warm up")
        return [load_test(base, questions, clients, requests) for clients in (1, 8)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def print_figures(f: dict) -> None:
    rows = [
        ("warm answer p50 (ms)", f["warm_ms_p50"], f["baseline_warm_ms_p50"], "<= 120"),
        ("warm answer p95 (ms)", f["warm_ms_p95"], f["baseline_warm_ms_p95"], ""),
        ("cold `rag ask` (s, median)", f["cold_s_median"], f["baseline_cold_s_median"], "<= 4"),
    ]
    print(f"{f['questions']} gold questions, {f['passages']} passages, top-k {f['top_k']}, on {os.cpu_count()} CPU cores\n")
    print(f"{'measure':30} {'rag':>10} {'baseline':>10} {'baseline/rag':>13}  target")
    for name, value, base, target in rows:
        print(f"{name:30} {value:10.1f} {base:10.1f} {base / value:12.1f}x  {target}")
    torch_cold = f["cold_s_median_torch_runtime"]
    print(f"{'cold `rag ask`, torch runtime':30} {torch_cold:10.1f}   (ONNX Runtime is {torch_cold / f['cold_s_median']:.1f}x faster to start)")
    print(f"{'index build (s)':30} {f['index_build_s']:10.2f}   (first open incl. model loading: {f['open_with_build_s']:.2f} s)")
    print(f"{'peak memory (MB)':30} {f['peak_rss_mb_cold_ask']:10.0f}   (a `rag ask` process; this benchmark's own process: {f['peak_rss_mb_warm_process']:.0f} MB)")
    print(f"{'quality (mean F1/abstention)':30} {f['mean_score']:10.3f} {f['baseline_mean_score']:10.3f}")


def print_serve(f: dict, requests: int) -> None:
    print(f"\n`rag serve` over loopback ({requests} questions per row), beside single-process Pipeline.ask:")
    print(f"{'clients':>8} {'p50 ms':>8} {'p95 ms':>8} {'answers/s':>10} {'errors':>7}")
    print(f"{'(ask)':>8} {f['warm_ms_p50']:8.0f} {f['warm_ms_p95']:8.0f} {f['warm_answers_per_s']:10.1f} {0:7d}")
    for row in f["serve"]:
        print(f"{row['clients']:8d} {row['p50_ms']:8.0f} {row['p95_ms']:8.0f} {row['answers_per_s']:10.1f} {row['errors']:7d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gold", type=Path, default=BUNDLED_GOLD)
    parser.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--serve-requests", type=int, default=48, help="questions per client count in the load test")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    questions = load_gold(args.gold)
    index_dir = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    figures = cold_figures(index_dir, args.seeds, args.cold_runs)

    started = time.perf_counter()
    config = load_models_config()
    pipeline = build_pipeline(config, args.seeds, index_dir, rebuild=True)
    figures["open_with_build_s"] = time.perf_counter() - started
    started = time.perf_counter()
    open_index(config, args.seeds, index_dir, rebuild=True, embedder=pipeline.retriever.embedder)
    figures["index_build_s"] = time.perf_counter() - started  # models already imported: mostly chunk, embed, write
    pipeline.ask("warm up")
    figures.update(warm_figures(pipeline, questions))
    print_figures(figures)

    figures["serve"] = serve_figures(index_dir, args.seeds, [q.question for q in questions], args.serve_requests)
    print_serve(figures, args.serve_requests)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
