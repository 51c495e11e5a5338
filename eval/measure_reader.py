"""Measure a trained reader the way the shipped one was measured, in one command: fit its
answer-or-abstain decision, then the gold set (beside the shipped reader's answers), held-out
SQuAD as `rag` decides and with `--open`, tydiqa, and the trap margins.

    python eval/measure_reader.py READER_DIR [--out eval/out/readers/NAME] [--baseline GOLD.jsonl]

Each step writes its own file under --out and is skipped when that file is already there, so a
run that was stopped continues where it stopped. To redo a step, delete its file and those of the
steps after it (they rest on it). With no --baseline, the shipped reader's gold answers are made
first (shipped-gold.jsonl). About seven minutes on 2 CPU cores. The figures end in
summary.json and a table, as the model card gives them. Issue 5's rule ships a reader only if it
beats the shipped one on gold F1 and on held-out F1 as `rag` decides: the table gives gold beside
the shipped reader's answers; compare held-out with the shipped reader's figures in
models/reader/README.md (or this script's run on models/reader)."""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "squad"
READER_SOURCE = re.compile(r'(\[reader\][^\[]*?^source = )"[^"\n]*"', re.M | re.S)


def models_for(reader_dir: Path, shipped: Path) -> str:
    """The shipped models.toml with the [reader] source pointed at `reader_dir`, and nothing else
    changed (its comments kept, so the fit can rewrite its table in place)."""
    original = shipped.read_text(encoding="utf-8")
    text = READER_SOURCE.sub(lambda m: m.group(1) + json.dumps(source_of(reader_dir)), original, count=1)
    wanted = tomllib.loads(original)
    wanted.setdefault("reader", {})["source"] = source_of(reader_dir)
    if tomllib.loads(text) != wanted:
        sys.exit(f"error: cannot point the [reader] source of {shipped} at {reader_dir}: no `source = \"…\"` line of its own")
    return text


def source_of(reader_dir: Path) -> str:
    return f"path:{reader_dir.resolve()}"


def steps(models: Path, out: Path, baseline: Path, shipped_models: Path | None) -> list[tuple[str, Path, list[str]]]:
    """(name, output file, command) in order; each command's stdout is its output file. With
    `shipped_models`, the first step makes the `baseline` answers with it."""
    rag, python = [sys.executable, "-m", "rag"], sys.executable
    held_out, tydiqa = str(SQUAD / "heldout-dev.json"), str(SQUAD / "tydiqa-en-dev.json")
    shipped = [("shipped reader on gold", baseline.with_suffix(".json"),
                [*rag, "eval", "--json", "--models", str(shipped_models), "--predictions", str(baseline)])]
    return [*(shipped if shipped_models else []),
            ("fit the decision", out / "fit.txt",
             [python, str(ROOT / "eval" / "tune_abstention.py"), "--models", str(models), "--runs", str(out / "runs.pkl")]),
            ("gold", out / "gold.json",
             [*rag, "eval", "--json", "--models", str(models), "--predictions", str(out / "gold.jsonl"), "--baseline", str(baseline)]),
            ("held-out", out / "heldout.json", [*rag, "eval", "--squad", held_out, "--json", "--models", str(models)]),
            ("held-out --open", out / "open.json", [*rag, "eval", "--squad", held_out, "--open", "--json", "--models", str(models)]),
            ("tydiqa", out / "tydiqa.json", [*rag, "eval", "--squad", tydiqa, "--json", "--models", str(models)]),
            ("trap margins", out / "traps.txt", [python, str(ROOT / "eval" / "trap_margins.py"), "--models", str(models)])]


def check_made_with(out: Path, models: Path, baseline: Path | None, shipped: Path) -> None:
    """A step is skipped when its file is there: that file must be of this reader's weights (the
    same folder may hold a later training run's) and this baseline. Recorded in made_with.json."""
    sys.path.insert(0, str(ROOT))  # here, not at the top: the file stays stdlib-only for eval/peer_haystack.py
    from rag.config import load_models_config

    made_with = {"reader": load_models_config(models).reader.files_fingerprint(),
                 "baseline": hashlib.sha256(baseline.read_bytes()).hexdigest() if baseline
                 else f"the answers of the shipped reader {load_models_config(shipped).reader.files_fingerprint()}"}
    record = out / "made_with.json"
    if record.exists():
        before = json.loads(record.read_text(encoding="utf-8"))
        differ = [key for key in made_with if before.get(key) != made_with[key]]
        if differ:
            sys.exit(f"error: {out} holds measures made with another {' and '.join(differ)}; delete it or give another --out")
    record.write_text(json.dumps(made_with) + "\n", encoding="utf-8")


def run_step(number: int, total: int, name: str, output: Path, command: list[str]) -> None:
    if output.exists():
        print(f"[{number}/{total}] {name}: done before ({output.name})")
        return
    print(f"[{number}/{total}] {name}…", flush=True)
    started, partial, log = time.perf_counter(), output.with_name(output.name + ".partial"), output.with_suffix(".log")
    with partial.open("w", encoding="utf-8") as stdout, log.open("w", encoding="utf-8") as stderr:
        code = subprocess.call(command, stdout=stdout, stderr=stderr, cwd=ROOT)
    if code != 0:
        sys.exit(f"error: {name} failed (exit {code}); see {log}")
    partial.replace(output)  # only a finished step counts as done
    print(f"      {time.perf_counter() - started:.0f} s")


def summary(out: Path) -> dict:
    gold = _json(out / "gold.json")
    held_out, tydiqa = _json(out / "heldout.json"), _json(out / "tydiqa.json")
    change = {m["key"]: m for m in gold.get("against_baseline", {}).get("measures", [])}.get("f1", {})
    return {
        "gold_f1": gold["f1"], "gold_em": gold["em"], "gold_f1_shipped": change.get("baseline"),
        "gold_f1_change": change.get("change"), "gold_f1_change_interval": change.get("interval"),
        "gold_abstention_recall": gold["abstention_recall"], "gold_false_abstention": gold["false_abstention_rate"],
        "gold_citation_accuracy": gold["citation_accuracy"], "gold_answer_in_passages": gold.get("answer_in_passages"),
        "gold_declined_right_span": gold.get("declined_right_span"),
        "heldout_f1": held_out["abstention model"]["f1"], "heldout_has_ans_f1": held_out["abstention model"]["has_ans_f1"],
        "heldout_no_ans_accuracy": held_out["abstention model"]["no_ans_accuracy"],
        "heldout_has_ans_f1_null_margin_0": held_out["null margin 0"]["has_ans_f1"],
        "open_f1": _json(out / "open.json")["open (retrieve, then read)"]["f1"],
        "tydiqa_f1": tydiqa["abstention model"]["f1"], "tydiqa_f1_null_margin_0": tydiqa["null margin 0"]["f1"],
        "decision": tomllib.loads((out / "models.toml").read_text(encoding="utf-8"))["reader"]["abstention"],
        "traps": (out / "traps.txt").read_text(encoding="utf-8").strip().splitlines(),
    }


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        sys.exit(f"error: cannot read {path} ({exc}); delete it to redo its step")


def table(figures: dict) -> str:
    rows = [("gold F1 / EM", f"{figures['gold_f1']} / {figures['gold_em']} (shipped {figures['gold_f1_shipped']}; change "
                             f"{figures['gold_f1_change']}, 95 % interval {figures['gold_f1_change_interval']})"),
            ("gold abstention recall / false abstention (of it, declined with the right span)",
             f"{figures['gold_abstention_recall']} / {figures['gold_false_abstention']} ({figures['gold_declined_right_span']})"),
            ("gold citation accuracy", figures["gold_citation_accuracy"]),
            ("held-out F1 as rag decides (HasAns, NoAns)",
             f"{figures['heldout_f1']} ({figures['heldout_has_ans_f1']}, {figures['heldout_no_ans_accuracy']})"),
            ("held-out HasAns F1, null margin 0", figures["heldout_has_ans_f1_null_margin_0"]),
            ("held-out --open F1", figures["open_f1"]),
            ("tydiqa F1 as rag decides / null margin 0", f"{figures['tydiqa_f1']} / {figures['tydiqa_f1_null_margin_0']}")]
    return "\n".join(["| measure | this reader |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reader", type=Path, help="a reader directory (config.json, model.safetensors, tokenizer)")
    parser.add_argument("--out", type=Path, default=None, help="where each step's file goes (default eval/out/readers/NAME)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="the shipped reader's gold answers (`rag eval --predictions`); made first when not given")
    parser.add_argument("--models", type=Path, default=ROOT / "models.toml", help="the configuration the reader is tried in")
    args = parser.parse_args()
    if not (args.reader / "config.json").is_file():
        sys.exit(f"error: no reader at {args.reader} (it has no config.json)")
    missing = [p.name for p in (SQUAD / "heldout-dev.json", SQUAD / "tydiqa-en-dev.json", SQUAD / "train-full.json")
               if not p.is_file()]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not in {SQUAD}")
    if args.baseline and not args.baseline.is_file():
        sys.exit(f"error: no --baseline answers at {args.baseline}")
    out = args.out or ROOT / "eval" / "out" / "readers" / args.reader.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    models = out / "models.toml"
    if models.exists() and tomllib.loads(models.read_text(encoding="utf-8"))["reader"]["source"] != source_of(args.reader):
        sys.exit(f"error: {out} holds the measures of another reader; give another --out")
    if not (out / "fit.txt").exists():  # the fit step rewrites its [reader.abstention]: start it from the shipped one
        models.write_text(models_for(args.reader, args.models), encoding="utf-8")
    baseline = args.baseline or out / "shipped-gold.jsonl"
    check_made_with(out, models, args.baseline, args.models)
    plan = steps(models, out, baseline, None if args.baseline else args.models)
    for number, (name, output, command) in enumerate(plan, 1):
        run_step(number, len(plan), name, output, command)
    figures = summary(out)
    (out / "summary.json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    print(table(figures))
    print("\n".join(figures["traps"]))
    print(f"(every file in {out})")


if __name__ == "__main__":
    main()
