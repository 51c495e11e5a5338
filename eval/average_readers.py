"""Average readers' weights: the element-wise mean of readers of one architecture (a "model soup";
Wortsman et al. 2022), for readers trained from the same start, such as two pieces continuing
one reader. The result is a reader directory to measure with eval/measure_reader.py.

    python eval/average_readers.py OUT READER_DIR READER_DIR [...]"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json")  # from the first reader


def average(readers: list[Path], out: Path) -> None:
    from safetensors.torch import load_file, save_file

    states = [load_file(reader / "model.safetensors") for reader in readers]
    if any(state.keys() != states[0].keys() or any(state[k].shape != states[0][k].shape for k in state) for state in states):
        sys.exit("error: the readers differ in architecture: their weights cannot be averaged")
    mean = {k: (sum(state[k].float() for state in states) / len(states)).to(states[0][k].dtype) for k in states[0]}
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copy(readers[0] / name, out / name)
    partial = out / "model.safetensors.partial"
    save_file(mean, partial, metadata={"format": "pt"})
    partial.replace(out / "model.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("readers", type=Path, nargs="+")
    args = parser.parse_args()
    if len(args.readers) < 2:
        sys.exit("error: give at least two readers to average")
    missing = [str(r) for r in args.readers if not all((r / name).is_file() for name in ("model.safetensors", *COPIED))]
    if missing:
        sys.exit(f"error: not a reader directory (model.safetensors, {', '.join(COPIED)}): {', '.join(missing)}")
    average(args.readers, args.out)
    print(f"averaged {len(args.readers)} readers into {args.out}")


if __name__ == "__main__":
    main()
