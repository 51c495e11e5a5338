"""Train readers on a lent GPU in one call: a small sweep of learning rate and batch size, run side
by side on the one GPU, each reader scored on the calibration articles, the best brought back.

On the device machine, from the repository root (its python3 has torch and transformers; `rag`
itself is not installed there, nor needed: training reads models/reader, not the embedder's wheel):

    python3 eval/device_sweep.py run --data .data/train-full.json.gz --minutes 3 --out $OUT

Each --config LR:BATCH trains `rag train-reader --init models/reader --device cuda` with the
recipe of the shipped reader's pieces (README, "Training a reader"), for --minutes, all at
once. Each is then scored, reader alone, on the calibration articles (the SQuAD 2.0 dev copies
of eval/calibration_articles.txt, kept out of training; never the held-out files), at the null
margin that suits it best; the best so far is packed at once under --out, in pieces small
enough for the device tool (16 MiB a file): model.safetensors.partN, rest.tar.gz (config,
tokenizer, card, training log) and sweep.json (every config's command, last log line and
scores, and the files' SHA-256), rewritten after each step. What still runs at --deadline-s is
stopped, so that what finished comes back within one call. The starting reader is scored last,
when there is time.

Here, put it back together and measure it as any reader is measured:

    python eval/device_sweep.py unpack FOLDER_OF_THOSE_FILES /work/reader-training/gpu1
    python eval/measure_reader.py /work/reader-training/gpu1 --out eval/out/readers/gpu1 --baseline ..."""
from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIGS = ("3e-5:32", "5e-5:64", "1e-4:64")
RECIPE = ("--precision", "bf16", "--swapped-negatives", "0.3", "--swap-from", "paragraph",
          "--exclude-articles", "eval/calibration_articles.txt", "--checkpoint-every", "60m")
PART_BYTES = 15 * 2**20  # the device tool brings back files of up to 16 MiB
WEIGHTS = "model.safetensors"
# the calibration articles' copies with unanswerable questions, as eval/tune_abstention.py names
# them (not imported from there: it needs faiss and the embedder's wheel, which the GPU machine lacks)
CALIBRATION_SOURCE = "squad20-dev"
BACK_FILES, BACK_BYTES = 8, 64 * 2**20  # what the device tool brings back from one call
READER_SCORING_S = 60  # one reader's scoring on the GPU machine's CPUs, with room to spare
SCORING_RESERVE_S = 2 * READER_SCORING_S  # trainings still running then are stopped: two readers get scored
SCORED_ON = "calibration articles, reader alone, F1 at the reader's best null margin"


def plain_data(data: Path, work: Path) -> Path:
    """The SQuAD file, unzipped into `work` when it is a .gz (the tree that travels is limited)."""
    if data.suffix != ".gz":
        return data
    plain = work / data.stem
    with gzip.open(data, "rb") as zipped, open(plain, "wb") as out:
        shutil.copyfileobj(zipped, out)
    return plain


def calibration_file(data: Path, work: Path) -> Path:
    """The calibration articles' SQuAD 2.0 dev copies, as a SQuAD file of their own."""
    from rag.train import read_article_list

    names = {f"{CALIBRATION_SOURCE}:{name}" for name in read_article_list(ROOT / "eval" / "calibration_articles.txt")}
    articles = [a for a in json.loads(data.read_text(encoding="utf-8"))["data"] if a["title"] in names]
    if len(articles) != len(names):
        sys.exit(f"error: {data} lacks some calibration articles: {sorted(names - {a['title'] for a in articles})}")
    out = work / "calibration.json"
    out.write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    return out


def config_name(config: str) -> str:
    lr, batch = parse_config(config)
    return f"lr{lr:g}-b{batch}"


def parse_config(config: str) -> tuple[float, int]:
    try:
        lr, batch = config.split(":")
        return float(lr), int(batch)
    except ValueError:
        sys.exit(f"error: a --config is LR:BATCH, e.g. 5e-5:64, not {config!r}")


def train_command(data: Path, config: str, minutes: float, seed: int, out: Path, device: str) -> list[str]:
    lr, batch = parse_config(config)
    return [sys.executable, "-m", "rag", "train-reader", "--data", str(data), "--init", str(ROOT / "models" / "reader"),
            "--device", device, "--lr", f"{lr:g}", "--batch-size", str(batch), "--time-budget", f"{minutes:g}m",
            "--seed", str(seed), *RECIPE, "--out", str(out)]


def train_all(commands: dict[str, list[str]], logs: Path, deadline: float) -> dict[str, int | None]:
    """Run the trainings side by side (each prepares its windows on its own CPU cores; the small
    model leaves the GPU room for several); their exit codes, None for one stopped at `deadline`
    (time.monotonic()), so that what did finish still comes back."""
    logs.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        "PYTHONUNBUFFERED": "1"}
    codes: dict[str, int | None] = {}
    with contextlib.ExitStack() as files:
        running = {name: subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.STDOUT,
                                          stdout=files.enter_context(open(logs / f"{name}.log", "w")))
                   for name, command in commands.items()}
        for name, process in running.items():
            try:
                codes[name] = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes[name] = None
    return codes


def score_reader(reader_dir: Path, squad_file: Path) -> dict:
    """The reader alone on each question's own paragraph, scored as SQuAD 2.0 is at the null
    margin that suits it best ("best F1"): readers trained otherwise put "no answer" elsewhere,
    and the decision is refitted for whichever ships, so the margin should not pick the reader."""
    from rag.config import ModelSpec, load_models_config
    from rag.reader import Reader
    from rag.schema import Passage
    from rag.squad import load_squad

    settings = load_models_config(ROOT / "models.toml").reader.settings
    reader_dir = reader_dir.resolve()
    reader = Reader(ModelSpec("reader", str(reader_dir), f"path:{reader_dir}", "", reader_dir, settings))
    data = load_squad(squad_file)
    read = {}
    for q in data.questions:
        context = data.contexts[q.context_id]
        (guess,) = reader.read(q.question, [Passage(q.context_id, 0, len(context), context)])
        read[q.id] = (guess.span_score - guess.null_score, context[guess.start:guess.end])
    return best_f1(read, data.questions)


def best_f1(read: dict[str, tuple[float, str]], questions) -> dict:
    """SQuAD 2.0 F1 (and HasAns F1) answering when the margin is over each margin seen, at the
    best of them; with the F1 at margin 0."""
    from rag.squad import score

    def at(margin: float) -> dict:
        return score({q.id: read[q.id][1] if read[q.id][0] > margin else None for q in questions}, questions)

    margins = sorted({round(m, 1) for m, _ in read.values()})
    step = max(1, len(margins) // 60)  # about 60 margins: each is a pass over the questions
    scores = {margin: at(margin) for margin in [0.0, *margins[::step]]}  # each margin scored once
    best_margin = max(scores, key=lambda margin: scores[margin]["f1"])
    best = scores[best_margin]
    return {"f1": best["f1"], "has_ans_f1": best["has_ans_f1"], "no_ans_accuracy": best["no_ans_accuracy"],
            "margin": best_margin, "f1_at_margin_0": scores[0.0]["f1"]}


def steps_trained(run_dir: Path) -> str:
    """The last progress line of a run's training log, as it wrote it."""
    from rag.train import LOG

    log = run_dir / LOG
    lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    return lines[-1] if lines else ""


def check_fits(reader_dir: Path) -> None:
    """Before any device time goes into training: a reader of this size packs into what the
    device tool brings back (at most 8 files, 64 MiB together)."""
    size = (reader_dir / WEIGHTS).stat().st_size
    files = -(-size // PART_BYTES) + 2  # the parts, rest.tar.gz and sweep.json
    if files > BACK_FILES or size + 2**20 > BACK_BYTES:
        sys.exit(f"error: a {size / 2**20:.0f} MiB reader does not fit what the device tool brings back "
                 f"({BACK_FILES} files, {BACK_BYTES // 2**20} MiB)")


def pack(reader_dir: Path, out: Path) -> dict:
    """The reader as files the device tool brings back: its weights in parts, the rest in a tar."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{WEIGHTS}.part*"):  # a better reader replaces the one packed before
        old.unlink()
    weights = (reader_dir / WEIGHTS).read_bytes()
    parts = [weights[i:i + PART_BYTES] for i in range(0, len(weights), PART_BYTES)]
    for n, part in enumerate(parts):
        (out / f"{WEIGHTS}.part{n}").write_bytes(part)
    with tarfile.open(out / "rest.tar.gz", "w:gz") as tar:
        for path in sorted(reader_dir.iterdir()):
            if path.is_file() and path.name != WEIGHTS:
                tar.add(path, arcname=path.name)
    return {"parts": len(parts), "sha256": hashlib.sha256(weights).hexdigest(),
            "rest_sha256": hashlib.sha256((out / "rest.tar.gz").read_bytes()).hexdigest()}


def unpack(folder: Path, reader_dir: Path) -> None:
    """A reader directory from pack()'s files, its weights checked against sweep.json."""
    sweep = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    parts = [folder / f"{WEIGHTS}.part{n}" for n in range(sweep["packed"]["parts"])]
    if missing := [p.name for p in parts if not p.is_file()]:
        sys.exit(f"error: {folder} lacks {', '.join(missing)}")
    weights = b"".join(p.read_bytes() for p in parts)
    if hashlib.sha256(weights).hexdigest() != sweep["packed"]["sha256"]:
        sys.exit(f"error: the weights put together from {folder} differ from the ones packed (SHA-256)")
    if hashlib.sha256((folder / "rest.tar.gz").read_bytes()).hexdigest() != sweep["packed"]["rest_sha256"]:
        sys.exit(f"error: {folder / 'rest.tar.gz'} differs from the one packed (SHA-256)")
    if reader_dir.exists() and any(reader_dir.iterdir()):  # another reader's files would mix with this one's
        sys.exit(f"error: {reader_dir} is not empty; give a new folder")
    reader_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "rest.tar.gz") as tar:
        tar.extractall(reader_dir, filter="data")
    (reader_dir / WEIGHTS).write_bytes(weights)
    (reader_dir / "sweep.json").write_text(json.dumps(sweep, indent=1), encoding="utf-8")
    print(f"{reader_dir}: the sweep's best, {sweep['best']}")


def run(args) -> None:
    started = time.monotonic()
    deadline = started + args.deadline_s
    check_fits(ROOT / "models" / "reader")
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAG_CACHE_DIR", str(work / "cache"))  # the device lacks platformdirs, rag's default's source
    data = plain_data(Path(args.data), work)
    calibration = calibration_file(data, work)
    configs = args.config or list(DEFAULT_CONFIGS)
    commands = {config_name(c): train_command(data, c, args.minutes, args.seed, work / config_name(c), args.device)
                for c in configs}
    codes = train_all(commands, work / "logs", deadline - SCORING_RESERVE_S)
    sweep = {"best": None, "minutes": args.minutes, "scored_on": SCORED_ON, "results": {}}
    for name, command in commands.items():  # each scored in turn; the best so far is packed at once
        result = sweep["results"][name] = {"command": " ".join(command[1:]), "exit": codes[name],
                                           "last_log": steps_trained(work / name)}
        if codes[name] != 0:
            result["output_tail"] = (work / "logs" / f"{name}.log").read_text(encoding="utf-8")[-2000:]
        elif time.monotonic() < deadline - READER_SCORING_S:
            result["score"] = score_reader(work / name, calibration)
            best = sweep["best"]
            if best is None or result["score"]["f1"] > sweep["results"][best]["score"]["f1"]:
                sweep["best"], sweep["packed"] = name, pack(work / name, out)
        print(name, json.dumps(result.get("score") or result.get("output_tail", "not scored: out of time")[-300:]),
              flush=True)
        write_sweep(sweep, out, started)
    if time.monotonic() < deadline - READER_SCORING_S:  # the start, for comparison, if there is time
        sweep["results"]["start (models/reader)"] = {"score": score_reader(ROOT / "models" / "reader", calibration)}
        write_sweep(sweep, out, started)
    if sweep["best"] is None:
        sys.exit("error: no reader was trained and scored; see the output tails above")
    print(json.dumps({name: r.get("score") for name, r in sweep["results"].items()}, indent=1))
    print(f"best: {sweep['best']}; packed into {out} in {round(time.monotonic() - started)} s")


def write_sweep(sweep: dict, out: Path, started: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sweep["wall_s"] = round(time.monotonic() - started)
    (out / "sweep.json").write_text(json.dumps(sweep, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    on_device = verbs.add_parser("run", help="train, score and pack (on the GPU machine)")
    on_device.add_argument("--data", required=True, help="train-full.json, or a .json.gz of it")
    on_device.add_argument("--config", action="append", help=f"LR:BATCH, repeatable (default: {' '.join(DEFAULT_CONFIGS)})")
    on_device.add_argument("--minutes", type=float, default=3.0, help="training time of each config (they run at once)")
    on_device.add_argument("--seed", type=int, default=31)
    on_device.add_argument("--device", default="cuda", help="cuda; cpu only to try this script out")
    on_device.add_argument("--deadline-s", type=float, default=570,
                           help="stop what is still running by then, so that what finished comes back (one call: 600 s)")
    on_device.add_argument("--work", default="/tmp/device-sweep")
    on_device.add_argument("--out", required=True, help="where the best reader's pieces go ($OUT on the device)")
    here = verbs.add_parser("unpack", help="put the best reader back together (here)")
    here.add_argument("folder", type=Path)
    here.add_argument("reader_dir", type=Path)
    args = parser.parse_args()
    if args.verb == "run":
        run(args)
    else:
        unpack(args.folder, args.reader_dir)


if __name__ == "__main__":
    main()
