"""Reader training speed on this machine: float32 steps against bf16 mixed-precision steps
(`rag train-reader --precision bf16`), on the same batches of real training windows.

    python eval/train_speed.py [--data ../shared/squad/train.json] [--batches 6] [--reader models/reader]
                               [--batch-size 16] [--device auto|cpu|cuda]

For each batch (16 windows as `rag train-reader` makes them, with the widest padded as in
training): seconds for one forward and backward pass in each precision, the loss in each, and
the cosine and norm ratio between the two gradients. Dropout is off (the model in eval mode),
so both passes compute the same function and any difference is rounding. The first batch of
each precision is a warm-up and is not timed."""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.squad import SquadData, load_squad  # noqa: E402
from rag.train import collate, computing_in, load_for_training, make_windows, on_device, resolve_device  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.train_settings import DEVICES, TrainSettings  # noqa: E402


def sample_windows(data_path: Path, tokenizer, questions: int, seed: int) -> list:
    data = load_squad(data_path)
    chosen = random.Random(seed).sample(data.questions, min(questions, len(data.questions)))
    sample = SquadData({q.context_id: data.contexts[q.context_id] for q in chosen}, chosen, data.titles)
    windows = make_windows(sample, tokenizer, TrainSettings(distant_negatives=0.0))
    random.Random(seed).shuffle(windows)
    return windows


def gradient(model, batch, precision: str, device: str):
    """(loss, the flattened gradient, seconds) of one forward and backward pass, as training runs it."""
    import torch

    started = time.perf_counter()
    with computing_in(precision, device):
        loss = model(**on_device(device, collate(batch, 0))).loss
    loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()  # the GPU works asynchronously: time the work, not its launch
    seconds = time.perf_counter() - started
    flat = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return loss.item(), flat, seconds


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "squad" / "train.json")
    parser.add_argument("--reader", default=str(ROOT / "models" / "reader"))
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument("--device", choices=DEVICES, default=TrainSettings.device)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: {args.data} is not here (it comes with ../shared); give --data")
    try:
        device = resolve_device(args.device)
    except RagError as problem:
        sys.exit(f"error: {problem}")
    tokenizer, model = load_for_training(args.reader, None)
    model.to(device)
    model.eval()  # no dropout: both precisions compute the same function
    windows = sample_windows(args.data, tokenizer, 20 * args.batch_size * (args.batches + 1), seed=0)
    batches = [windows[i * args.batch_size:(i + 1) * args.batch_size] for i in range(args.batches + 1)]
    if len(batches[-1]) < args.batch_size:
        sys.exit(f"error: {args.data} gives {len(windows)} windows, too few for {args.batches + 1} batches of {args.batch_size}")
    where = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {where}, batch {args.batch_size}")
    print("batch  width  fp32 s  bf16 s  speed-up  loss fp32  loss bf16  grad cosine  norm ratio")
    totals = [0.0, 0.0]
    for number, batch in enumerate(batches):
        loss32, grad32, s32 = gradient(model, batch, "fp32", device)
        loss16, grad16, s16 = gradient(model, batch, "bf16", device)
        if number == 0:
            continue  # warm-up
        totals[0] += s32
        totals[1] += s16
        cosine = torch.nn.functional.cosine_similarity(grad32.double(), grad16.double(), 0).item()
        width = max(len(w.input_ids) for w in batch)
        print(f"{number:5d}  {width:5d}  {s32:6.3f}  {s16:6.3f}  {s32 / s16:7.2f}x  {loss32:9.4f}  {loss16:9.4f}"
              f"  {cosine:11.5f}  {grad16.norm().item() / grad32.norm().item():10.4f}")
    print(f"all    {'':5s}  {totals[0]:6.3f}  {totals[1]:6.3f}  {totals[0] / totals[1]:7.2f}x")
    timed = args.batches * args.batch_size  # windows in the timed batches (the warm-up left out)
    print(f"windows a second, forward and backward: fp32 {timed / totals[0]:,.0f}, bf16 {timed / totals[1]:,.0f}")


if __name__ == "__main__":
    main()
