"""What the choices of `rag` cost in reading time: how the reader's ONNX graph is traced
(PyTorch's fused attention, transformers' default and rag's until 2026-12-06, or the plain
"eager" attention rag traces now) and how a question's windows are run (one batch padded to the
longest window, as before; one window a run, one after another, as until 2026-12-07; or one
window a run, as many side by side as there are cores, as now). The five are timed question by
question, interleaved, over the gold questions' retrieved passages, so that this machine's drift (10-20 %
from minute to minute) falls on all alike; each row gives the median reading time of a
question and its share of the old way's.

    python eval/read_speed_choices.py [--rounds 6]"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.assembly import build_pipeline  # noqa: E402
from rag.config import load_models_config  # noqa: E402
from rag.gold import BUNDLED_GOLD, load_gold  # noqa: E402
from rag.models import OUTPUTS, export_onnx, onnx_graph, onnx_runner, onnx_session, pad_encodings, usable_cores  # noqa: E402

QA = "AutoModelForQuestionAnswering"


def run_batched(run, windows) -> list[np.ndarray]:
    return run(pad_encodings(windows))


def run_one_a_time(run, windows) -> list[np.ndarray]:
    return [run(pad_encodings([window])) for window in windows]


SIDE_BY_SIDE = ThreadPoolExecutor(usable_cores())  # as rag.reader.Reader runs them


def run_side_by_side(run, windows) -> list[np.ndarray]:
    return list(SIDE_BY_SIDE.map(lambda window: run(pad_encodings([window])), windows))


HOW = {run_batched: "in one padded batch", run_one_a_time: "one a run, one after another",
       run_side_by_side: f"one a run, {usable_cores()} at once"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="passes over the gold questions")
    args = parser.parse_args()
    config = load_models_config(ROOT / "models.toml")
    pipeline = build_pipeline(config, ROOT / "seeds", Path(tempfile.mkdtemp(prefix="rag-speed-")))
    questions = []
    for q in load_gold(BUNDLED_GOLD):
        passages = [r.passage for r in pipeline.retriever.retrieve(q.question, pipeline.top_k)]
        questions.append([window for _, window in pipeline.reader.windows(q.question, passages)])
    fused = Path(tempfile.mkdtemp(prefix="rag-speed-")) / "fused-attention.onnx"
    print("tracing the reader with PyTorch's fused attention (transformers' default)…", file=sys.stderr)
    export_onnx(config.reader, QA, fused, attention=None)
    graphs = {"fused attention": fused, "plain attention": onnx_graph(config.reader, QA)}
    runners = {name: onnx_runner(onnx_session(path, OUTPUTS[QA])) for name, path in graphs.items()}
    choices = [(graph, how) for graph in graphs for how in (run_batched, run_one_a_time)]
    choices.append(("plain attention", run_side_by_side))
    seconds: dict[tuple, list[float]] = {choice: [] for choice in choices}
    for round_ in range(args.rounds):
        for windows in questions:
            for graph, how in (choices if round_ % 2 == 0 else choices[::-1]):  # neither order favoured
                started = time.perf_counter()
                how(runners[graph], windows)
                seconds[(graph, how)].append(time.perf_counter() - started)
    old = statistics.median(seconds[choices[0]])
    print(f"{len(questions)} gold questions, top-k {pipeline.top_k}, {args.rounds} rounds, interleaved\n")
    print(f"{'graph':16} {'windows run':30} {'median ms/question':>19} {'of the old way':>15}  ({usable_cores()} cores)")
    for (graph, how), times in seconds.items():
        now = "  <- rag" if (graph, how) == choices[-1] else ""
        print(f"{graph:16} {HOW[how]:30} {1000 * statistics.median(times):19.1f} {statistics.median(times) / old:15.0%}{now}")
    padded = sum(max(len(w.ids) for w in ws) * len(ws) for ws in questions)
    print(f"\npadding in the batches: {1 - sum(len(w.ids) for ws in questions for w in ws) / padded:.0%} of the tokens run")
    fused_logits, plain_logits = (np.concatenate([logits.ravel() for run in run_one_a_time(runner, windows) for logits in run])
                                  for runner in runners.values() for windows in questions[:1])
    print(f"largest difference in the logits of the two graphs (first question): {np.abs(fused_logits - plain_logits).max():.1e}")
    side_by_side = np.concatenate([logits.ravel() for run in run_side_by_side(runners["plain attention"], questions[0])
                                   for logits in run])
    print(f"largest difference in the logits run side by side and one after another (first question): "
          f"{np.abs(side_by_side - plain_logits).max():.1e}")


if __name__ == "__main__":
    main()
