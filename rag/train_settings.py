"""How `rag train-reader` trains: its settings, apart from the training code, so the CLI can take
its option defaults from here without importing that code at every start-up."""
from __future__ import annotations

from dataclasses import dataclass

from rag.config import ReaderSettings


@dataclass(frozen=True)
class TrainSettings:
    max_seq_len: int = ReaderSettings.max_seq_len  # windows cut as the reader will read them: rag
    stride: int = ReaderSettings.stride  # train-reader takes both from models.toml's [reader]
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int | None = None
    time_budget_s: float | None = None
    distant_negatives: float = 0.3  # share of answerable questions also paired with another paragraph
    # Unanswerable questions are ~5% of train-full, yet they are the ones that teach "a plausible
    # span nearby is not an answer"; more copies weigh them up in the window objective.
    unanswerable_copies: int = 1
    # Share of answerable questions also read in their own paragraph with the answer's sentence
    # cut out, labelled "no answer": the hard case of retrieval, an on-topic passage that lacks it.
    withheld_negatives: float = 0.0
    # Share of answerable questions also read in their own paragraph with a name or number of the
    # question swapped for one that only other paragraphs of the article mention, labelled "no
    # answer": SQuAD 2.0's kind of trap, which train-full holds few of (rag/swapped.py).
    swapped_negatives: float = 0.0
    # Where the swapped-in name comes from: "article", a name only other paragraphs mention (absent
    # from the own paragraph, so easy to spot), or "paragraph", one the own paragraph mentions
    # outside the answer's sentence, so the reader must check what the paragraph says of it.
    swap_from: str = "article"
    sort_chunk: int = 800  # windows are length-sorted within chunks of this size, to cut padding
    checkpoint_every_s: float = 600.0
    # Also keep each checkpoint's weights, as a reader directory OUT/snapshots/step-N, to average
    # the final weights with the second half's (eval/average_readers.py). For piece 18 that gave
    # gold F1 71.4 against 69.2, held-out 65.2 against 65.8 (models/reader/README.md).
    keep_snapshots: bool = False
    seed: int = 0  # fixes the shuffle; a later piece started with --init takes a new seed to see new batches first
    excluded_articles: tuple[str, ...] = ()  # article titles kept out of training (the calibration pool)
    objective: str = "window"  # or "shared": see rag/train.py's docstring
    shared_paragraphs: int = 4  # paragraphs read together per question with the shared objective
    # "bf16": the forward and backward passes in bfloat16 under autocast, weights and optimizer kept
    # in float32. On a CPU with bf16 instructions (AVX-512 BF16, AMX) a step takes about 0.6 of the
    # time, with the same gradients to within rounding (README, "Training a reader").
    precision: str = "fp32"
    # Where the steps run: "cuda" (an NVIDIA GPU), "cpu", or "auto", the GPU when torch sees one.
    # How a run computes, not what it learns: a run records where it ran, and --resume takes
    # --device afresh (auto unless given), so a checkpoint moves between machines.
    device: str = "auto"
    # What training started from (a reader directory or the base encoder). Filled in when a run
    # starts and saved with its checkpoints, so a resumed run's model card still names it; None
    # in a checkpoint written before it was recorded.
    init: str | None = None


# A reader continued with --init takes smaller steps than a new span head on the base encoder.
CONTINUED_LEARNING_RATE = 3e-5


def learning_rate_for(init: str | None) -> float:
    return CONTINUED_LEARNING_RATE if init else TrainSettings.learning_rate


OBJECTIVES = ("window", "shared")
TRAINING_PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
SWAP_SOURCES = ("article", "paragraph")
