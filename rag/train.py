"""`rag train-reader`: fine-tune an extractive reader on SQuAD v1/v2-format data, on the CPU or a
CUDA GPU (inference stays on the CPU, in ONNX Runtime).

Windows of question + paragraph (stride over long paragraphs) are labelled through the
tokenizer's offsets; a window without the answer points at the CLS token. Unanswerable
questions, distant negatives (a question paired with another paragraph of its article),
withheld negatives (its own paragraph with the answer's sentence cut out) and swapped negatives
(a name or number of the question swapped for another from the article or the paragraph,
rag.swapped) teach the reader to abstain. The learning rate warms up, then decays linearly to
zero at whichever ends first, the step budget or the time budget. Checkpoints are written
atomically every few minutes and `--resume` continues from the last one.

Two objectives. `window` (the default): each window is its own example, a softmax over its own
tokens. `shared` (shared normalization, Clark & Gardner 2018): a question's windows from its
own paragraph and from `shared_paragraphs - 1` other paragraphs of its article are read together,
with one softmax over all their tokens, so span scores compare across passages as retrieval
hands them to the reader; the right positions are the answer's in every window that holds it,
or, when none does, every window's CLS: "none of these passages"."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import random
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from rag.config import default_models_file
from rag.errors import INTERRUPTED, TERMINATED, RagError, first_line
from rag.leftovers import fsync_dir, fsync_file, fsync_tree, write_atomically
from rag.squad import SquadData, SquadQuestion, answer_sentence, load_squad
from rag.schema import NOTE
from rag.swapped import ordinary_words, swapped_question, swapped_within
from rag.train_settings import DEVICES, OBJECTIVES, TRAINING_PRECISIONS, SWAP_SOURCES, TrainSettings

CHECKPOINT = "checkpoint"
LOG = "training_log.jsonl"
LOCK = ".lock-train"  # held for a whole run: a second run on the same --out is refused
SNAPSHOTS = "snapshots"  # with --keep-snapshots: step-N, each checkpoint's weights
ENCODE_BATCH = 1000  # question-paragraph pairs tokenized together when windows are made


@dataclass(frozen=True)
class Window:
    input_ids: list[int]
    token_type_ids: list[int]
    start: int  # token index of the answer start, 0 (CLS) when the window has no answer
    end: int


def read_article_list(path: Path) -> tuple[str, ...]:
    """Article titles, one a line; blank lines and # comments are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RagError(f"cannot read the article list {path}: {exc}", 2) from None
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def parse_duration(text: str) -> float:
    """'2h', '90m', '45s' or plain seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    text = text.strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise RagError(f"not a duration: {text!r} (use e.g. 2h, 90m, 600s)", 2) from None


def make_windows(data: SquadData, tokenizer, settings: TrainSettings) -> list[Window]:
    """All answer windows of each answerable question plus at most one answer-less window (long
    papers would otherwise swamp training), one window per unanswerable question (repeated
    unanswerable_copies times), distant negatives, withheld negatives and swapped negatives."""
    rng = random.Random(settings.seed)
    # A separate stream, so that turning withheld negatives on (or off) leaves every other draw,
    # and so a resumed run's windows, as they were.
    withheld_rng = random.Random(f"withheld-{settings.seed}")
    swapped_rng = random.Random(f"swapped-{settings.seed}")
    by_article = data.paragraphs_by_article()
    swaps = SwappedNegatives(data, settings.swap_from) if settings.swapped_negatives else None
    windows = []
    for q, (encoded, rows) in zip(data.questions, _own_paragraph_encodings(data, tokenizer, settings)):
        own = _labelled_windows(q, encoded, rows, rng)
        windows += own if q.answers else own * settings.unanswerable_copies
        if q.answers and rng.random() < settings.distant_negatives:
            others = [c for c in by_article[q.article] if c != q.context_id and not states_any(q, data.contexts[c])]
            if others:
                negative = SquadQuestion(q.id + "-neg", q.question, [], rng.choice(others))
                windows += _question_windows(negative, data.contexts[negative.context_id], tokenizer, settings, rng)
        if settings.withheld_negatives and q.answers and withheld_rng.random() < settings.withheld_negatives:
            rest = without_answer_sentence(data.contexts[q.context_id], q)
            if rest:
                windows += _question_windows(SquadQuestion(q.id + "-withheld", q.question, [], q.context_id),
                                             rest, tokenizer, settings, withheld_rng)
        if settings.swapped_negatives and q.answers and swapped_rng.random() < settings.swapped_negatives:
            swapped = swaps.question_for(q, swapped_rng)
            if swapped:
                windows += _question_windows(SquadQuestion(q.id + "-swapped", swapped, [], q.context_id),
                                             data.contexts[q.context_id], tokenizer, settings, swapped_rng)
    return windows


class SwappedNegatives:
    """Swapped negatives (rag.swapped) for the questions of one data set, with a name or number
    from the article or the paragraph (`swap_from`). What it learns of the data once: each
    article's paragraphs, and the words its texts write in lower case (never swapped)."""

    def __init__(self, data: SquadData, swap_from: str, ordinary: frozenset[str] | None = None):
        """`ordinary`: the data's ordinary words, when already learnt (they take a pass over every text)."""
        self.data = data
        self.swap_from = swap_from
        self.by_article = data.paragraphs_by_article()
        self.ordinary = ordinary_words(data.contexts.values()) if ordinary is None else ordinary

    def question_for(self, q: SquadQuestion, rng: random.Random) -> str | None:
        """The question with a name or number swapped; None when it has none to swap."""
        context = self.data.contexts[q.context_id]
        if self.swap_from == "paragraph":
            sentence = answer_sentence(context, q)
            return swapped_within(q.question, context, context[slice(*sentence)], rng, self.ordinary) if sentence else None
        others = [self.data.contexts[c] for c in self.by_article[q.article] if c != q.context_id]
        return swapped_question(q.question, context, others, rng, self.ordinary)


def states_any(q: SquadQuestion, context: str) -> bool:
    """Does `context` hold any of the question's answers? Such a paragraph is no "no answer" one."""
    return any(answer in context for answer in q.answers)


def without_answer_sentence(context: str, q: SquadQuestion) -> str | None:
    """The paragraph with the sentence(s) holding the answer cut out; None when no answer can be
    placed, or when the answer (any of its texts) is still in what is left."""
    sentence = answer_sentence(context, q)
    if sentence is None:
        return None
    cut_start, cut_end = sentence
    rest = f"{context[:cut_start].rstrip()} {context[cut_end:].lstrip()}".strip()
    if not rest or any(a.strip() and a.strip().lower() in rest.lower() for a in q.answers):
        return None
    return rest


def make_groups(data: SquadData, tokenizer, settings: TrainSettings) -> list[list[Window]]:
    """For the shared objective: per question, the windows of its own paragraph (as make_windows
    takes them) and one window of each of up to shared_paragraphs - 1 other paragraphs of its
    article that do not contain its answer."""
    rng = random.Random(settings.seed)
    by_article = data.paragraphs_by_article()
    groups = []
    for q, (encoded, rows) in zip(data.questions, _own_paragraph_encodings(data, tokenizer, settings)):
        group = _labelled_windows(q, encoded, rows, rng)
        others = [c for c in by_article[q.article] if c != q.context_id and not states_any(q, data.contexts[c])]
        for other in rng.sample(others, min(len(others), settings.shared_paragraphs - 1)):
            negative = SquadQuestion(q.id + "-shared", q.question, [], other)
            group.append(rng.choice(_question_windows(negative, data.contexts[other], tokenizer, settings, rng)))
        groups.append(group)
    return groups


def _encode(tokenizer, settings: TrainSettings, questions: list[str], contexts: list[str]):
    """The strided windows of each (question, context) pair, tokenized as one batch: (the
    encoding, each pair's rows in it)."""
    encoded = tokenizer(questions, contexts, truncation="only_second", max_length=settings.max_seq_len,
                        stride=settings.stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    rows: list[list[int]] = [[] for _ in questions]
    for row, pair in enumerate(encoded["overflow_to_sample_mapping"]):
        rows[pair].append(row)
    return encoded, rows


def _own_paragraph_encodings(data: SquadData, tokenizer, settings: TrainSettings):
    """(encoding, rows) of each question with its own paragraph, in order. Tokenized ENCODE_BATCH
    pairs at a time, since a fast tokenizer spreads a batch over the CPU's cores."""
    for first in range(0, len(data.questions), ENCODE_BATCH):
        chunk = data.questions[first:first + ENCODE_BATCH]
        encoded, rows = _encode(tokenizer, settings, [q.question for q in chunk], [data.contexts[q.context_id] for q in chunk])
        yield from ((encoded, pair_rows) for pair_rows in rows)


def _question_windows(q: SquadQuestion, context: str, tokenizer, settings: TrainSettings, rng) -> list[Window]:
    encoded, (rows,) = _encode(tokenizer, settings, [q.question], [context])
    return _labelled_windows(q, encoded, rows, rng)


def _labelled_windows(q: SquadQuestion, encoded, rows: list[int], rng) -> list[Window]:
    """The question's windows (these rows of the encoding) that hold its answer, and at most one
    that does not."""
    answer = None
    if q.answers and q.answer_start is not None:
        answer = (q.answer_start, q.answer_start + len(q.answers[0]))
    with_answer, without = [], []
    for w in rows:
        label = _label(encoded.sequence_ids(w), encoded["offset_mapping"][w], answer)
        window = Window(encoded["input_ids"][w], encoded["token_type_ids"][w], *label)
        (with_answer if label != (0, 0) else without).append(window)
    return with_answer + ([rng.choice(without)] if without else [])


def _label(sequence_ids: list, offsets: list, answer: tuple[int, int] | None) -> tuple[int, int]:
    if answer is None:
        return 0, 0
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    first, last = context[0], context[-1]
    if not (offsets[first][0] <= answer[0] and answer[1] <= offsets[last][1]):
        return 0, 0
    start = next(i for i in context if offsets[i][1] > answer[0])
    end = next(i for i in reversed(context) if offsets[i][0] < answer[1])
    return start, end


def batches(windows: list[Window], settings: TrainSettings, epoch: int) -> list[list[Window]]:
    """Length-sorted batches within shuffled chunks, in a shuffled order fixed by (seed, epoch)."""
    rng = random.Random(settings.seed * 1000 + epoch)
    order = list(windows)
    rng.shuffle(order)
    result = []
    for i in range(0, len(order), settings.sort_chunk):
        chunk = sorted(order[i:i + settings.sort_chunk], key=lambda w: len(w.input_ids))
        result += [chunk[j:j + settings.batch_size] for j in range(0, len(chunk), settings.batch_size)]
    rng.shuffle(result)
    return result


def group_batches(groups: list[list[Window]], settings: TrainSettings, epoch: int) -> list[list[list[Window]]]:
    """Batches of whole groups, about batch_size windows each (a bigger group is a batch alone),
    length-sorted within shuffled chunks as `batches` does, in an order fixed by (seed, epoch)."""
    rng = random.Random(settings.seed * 1000 + epoch)
    order = list(groups)
    rng.shuffle(order)
    result = []
    chunk_groups = max(1, settings.sort_chunk // max(1, settings.shared_paragraphs))
    for i in range(0, len(order), chunk_groups):
        current, size = [], 0
        for group in sorted(order[i:i + chunk_groups], key=lambda g: max(len(w.input_ids) for w in g)):
            if current and size + len(group) > settings.batch_size:
                result.append(current)
                current, size = [], 0
            current.append(group)
            size += len(group)
        if current:
            result.append(current)
    rng.shuffle(result)
    return result


def shared_loss(start_logits, end_logits, batch: list[list[Window]], token_type_ids, attention_mask):
    """Mean over the batch's groups of the negative log of the probability, under one softmax over
    the CLS and context tokens of all the group's windows, of the right positions (start and end
    averaged)."""
    import torch

    allowed = (token_type_ids == 1) & (attention_mask == 1)
    allowed[:, 0] = True  # CLS: "no answer in this window"
    losses, row = [], 0
    for group in batch:
        rows = slice(row, row + len(group))
        row += len(group)
        answered = any(w.start > 0 for w in group)
        for logits, position in ((start_logits, "start"), (end_logits, "end")):
            scores = logits[rows].masked_fill(~allowed[rows], float("-inf"))
            right = torch.zeros_like(allowed[rows])
            for r, w in enumerate(group):
                if answered and w.start > 0:
                    right[r, getattr(w, position)] = True
                elif not answered:
                    right[r, 0] = True
            losses.append(torch.logsumexp(scores.flatten(), 0) - torch.logsumexp(scores.masked_fill(~right, float("-inf")).flatten(), 0))
    return torch.stack(losses).mean()


def computing_in(precision: str, device: str = "cpu"):
    """The context a training step's forward pass runs in: bf16 autocast, or plain float32."""
    import torch

    return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")


def resolve_device(name: str) -> str:
    """"cpu" or "cuda" for a --device of auto, cpu or cuda (check_budget has checked it is one);
    asking for a GPU torch cannot see is an error."""
    import torch

    if name == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if name == "auto":
        return "cpu"
    raise RagError(f"--device cuda, but torch {torch.__version__} sees no CUDA GPU here; use --device cpu", 2)


def cpu_lacks_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU's flags say it has no bfloat16 instructions (AVX-512 BF16 or AMX), so
    torch emulates bf16 (about 20 times slower than float32 on an AVX2 EPYC, README); False where
    the flags cannot be read."""
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), None)
    except OSError:
        return False
    return flags is not None and not {"avx512_bf16", "amx_bf16"} & set(flags.split(":", 1)[-1].split())


def on_device(device: str, tensors: dict) -> dict:
    return {name: tensor.to(device) for name, tensor in tensors.items()}


def collate(batch: list[Window], pad_id: int):
    import torch

    width = max(len(w.input_ids) for w in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, w in enumerate(batch):
        n = len(w.input_ids)
        ids[row, :n] = torch.tensor(w.input_ids)
        types[row, :n] = torch.tensor(w.token_type_ids)
        mask[row, :n] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
            "start_positions": torch.tensor([w.start for w in batch]),
            "end_positions": torch.tensor([w.end for w in batch])}


def windows_digest(windows: list) -> str:
    """Identifies the training windows in their order (their labels, lengths and the tokens at
    both ends, where the question and the paragraph show), so a resume notices other windows
    even when their number is the same."""
    digest = hashlib.sha256()
    for window in (w for item in windows for w in (item if isinstance(item, list) else [item])):
        ids = window.input_ids
        digest.update(f"{window.start},{window.end},{len(ids)},{list(ids[:16])},{list(ids[-16:])};".encode())
    return digest.hexdigest()[:16]


class Trainer:
    def __init__(self, model, tokenizer, windows: list, settings: TrainSettings, out: Path):
        """`windows`: Windows for the window objective, groups of them (make_groups) for the shared one."""
        import torch

        self.torch = torch
        self.model, self.tokenizer, self.windows, self.settings, self.out = model, tokenizer, windows, settings, Path(out)
        self.device = resolve_device(settings.device)
        model.to(self.device)  # before the optimizer is made, so its state lives beside the weights
        decay = [p for n, p in model.named_parameters() if not any(k in n for k in ("bias", "LayerNorm"))]
        rest = [p for n, p in model.named_parameters() if any(k in n for k in ("bias", "LayerNorm"))]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                            {"params": rest, "weight_decay": 0.0}], lr=settings.learning_rate)
        self.step, self.epoch, self.batch_in_epoch, self.elapsed_s = 0, 0, 0, 0.0
        self.windows_seen = 0  # a shared step packs whole question groups, so not steps x batch size
        self.windows_digest = windows_digest(windows)  # kept with each checkpoint, checked on resume
        self.losses: list[float] = []

    def learning_rate(self) -> float:
        s = self.settings
        warmup = min(s.warmup_steps, s.max_steps // 10) if s.max_steps else s.warmup_steps  # short runs warm up fast
        warm = min(1.0, (self.step + 1) / max(1, warmup))
        done = max(self.step / s.max_steps if s.max_steps else 0.0,
                   self.elapsed_s / s.time_budget_s if s.time_budget_s else 0.0)
        return s.learning_rate * warm * max(0.0, 1.0 - done)

    def finished(self) -> bool:
        s = self.settings
        return bool((s.max_steps and self.step >= s.max_steps) or (s.time_budget_s and self.elapsed_s >= s.time_budget_s))

    def train(self, on_step: Callable[[int, float, float], None] = lambda step, loss, lr: None,
              stop_asked: Callable[[], bool] = lambda: False) -> None:
        """Steps until the budget is spent or `stop_asked()`, which is checked between steps only:
        a checkpoint saved then holds weights and position of the same step."""
        self.model.train()
        last_checkpoint = time.monotonic()
        while not self.finished() and not stop_asked():
            epoch_batches = (group_batches if self.settings.objective == "shared" else batches)(self.windows, self.settings, self.epoch)
            while self.batch_in_epoch < len(epoch_batches) and not self.finished() and not stop_asked():
                started = time.monotonic()
                batch = epoch_batches[self.batch_in_epoch]
                lr = self.learning_rate()
                loss = self._train_step(batch, lr)
                self.windows_seen += window_count(batch, self.settings)
                self.batch_in_epoch += 1
                self.step += 1
                self.elapsed_s += time.monotonic() - started
                self.losses.append(loss)
                self._log(loss, lr)
                on_step(self.step, loss, lr)
                if time.monotonic() - last_checkpoint >= self.settings.checkpoint_every_s:
                    self.save_checkpoint()
                    last_checkpoint = time.monotonic()
            if self.batch_in_epoch >= len(epoch_batches):
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.model.eval()

    def _log(self, loss: float, lr: float) -> None:
        """One line per step: its loss and the learning rate it was taken with."""
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps({"step": self.step, "loss": round(loss, 5), "lr": lr,
                                  "elapsed_s": round(self.elapsed_s, 2)}) + "\n")

    def cut_log(self) -> None:
        """The log back to the restored step: the steps after it, lost with a crash, are taken again."""
        log = self.out / LOG
        if not log.is_file():
            return
        try:  # a damaged line (bytes that are not UTF-8 among them) is dropped, as a line cut short by a crash is
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        except OSError as why:
            raise RagError(f"cannot read the training log {log}: {why.strerror}") from None
        kept = [line for line in lines if (step := _logged_step(line)) is not None and step <= self.step]
        write_atomically(log, "".join(kept))

    def _train_step(self, batch: list, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with computing_in(self.settings.precision, self.device):
            if self.settings.objective == "shared":
                inputs = on_device(self.device, collate([w for group in batch for w in group], self.tokenizer.pad_token_id or 0))
                del inputs["start_positions"], inputs["end_positions"]
                output = self.model(**inputs)
                loss = shared_loss(output.start_logits.float(), output.end_logits.float(), batch,
                                   inputs["token_type_ids"], inputs["attention_mask"])
            else:  # the model's own cross-entropy, which autocast computes in float32
                loss = self.model(**on_device(self.device, collate(batch, self.tokenizer.pad_token_id or 0))).loss
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def save_checkpoint(self, snapshot: bool = True) -> Path:
        """Model, optimizer and position, written beside the final place and renamed into it;
        with --keep-snapshots and `snapshot`, its weights kept as a snapshot too."""
        target = self.out / CHECKPOINT
        tmp = self.out / (CHECKPOINT + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        self.torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        cuda = self.torch.cuda.get_rng_state_all() if self.torch.cuda.is_available() else []
        self.torch.save({"cpu": self.torch.get_rng_state(), "cuda": cuda}, tmp / "rng.pt")  # dropout resumes as it was
        state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "elapsed_s": self.elapsed_s, "losses": self.losses, "settings": asdict(self.settings),
                 "windows": len(self.windows), "windows_digest": self.windows_digest,
                 "windows_seen": self.windows_seen}
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        fsync_tree(tmp)
        old = self.out / (CHECKPOINT + ".old")
        if target.exists():  # for a moment only checkpoint.old exists: checkpoint_in() then finds it
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)  # (a run resumed from checkpoint.old keeps it until this new one is in place)
        fsync_dir(self.out)
        shutil.rmtree(old, ignore_errors=True)
        if self.settings.keep_snapshots and snapshot:
            self._keep_snapshot(target)
        return target

    def _keep_snapshot(self, checkpoint: Path) -> None:
        """The checkpoint's weights and tokenizer, without its optimizer, as a reader directory
        OUT/snapshots/step-N, copied beside its place and renamed into it."""
        snapshot = self.out / SNAPSHOTS / f"step-{self.step}"
        if snapshot.exists():  # saved again at the same step (an interruption right after a checkpoint)
            return
        tmp = snapshot.with_name(snapshot.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(checkpoint, tmp, ignore=shutil.ignore_patterns("optimizer.pt", "trainer_state.json", "rng.pt"))
        fsync_tree(tmp)
        tmp.rename(snapshot)
        fsync_dir(snapshot.parent)

    def restore(self, checkpoint: Path) -> None:
        state = _read_state(checkpoint / "trainer_state.json")
        # The position in an epoch means something only over the same windows: data, or the rules
        # that make windows (rag.swapped's, say), changed since the checkpoint would silently mean
        # other batches. (A checkpoint from before the count was kept is taken as it is.)
        # (A checkpoint from before the digest was kept is checked by the count alone.)
        if state.get("windows", len(self.windows)) != len(self.windows) or \
                state.get("windows_digest", self.windows_digest) != self.windows_digest:
            raise RagError(f"{checkpoint} was trained over {state['windows']:,} windows, and its data and settings now "
                           f"make {len(self.windows):,} other ones: the data or the rules that make windows changed "
                           f"since it started. Resume with the code and data it started with, or continue it as a new "
                           f"piece with --init {checkpoint}", 2)
        # loaded onto the CPU: load_state_dict moves the moments beside their weights and keeps each
        # step count on the CPU, where AdamW reads it (a checkpoint written on a GPU resumes on a CPU too)
        self.optimizer.load_state_dict(self.torch.load(checkpoint / "optimizer.pt", map_location="cpu"))
        if (checkpoint / "rng.pt").is_file():  # (older checkpoints did not keep it)
            rng = self.torch.load(checkpoint / "rng.pt")
            self.torch.set_rng_state(rng["cpu"])
            if rng["cuda"] and self.torch.cuda.is_available() and len(rng["cuda"]) == self.torch.cuda.device_count():
                self.torch.cuda.set_rng_state_all(rng["cuda"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.elapsed_s, self.losses = state["elapsed_s"], state["losses"]
        self.windows_seen = state.get("windows_seen", self.step * self.settings.batch_size)  # older checkpoints: about


def _logged_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line torn by the crash


def load_for_training(init: str | None, resume_from: Path | None):
    """(tokenizer, model): from a checkpoint when resuming, else from `init` (a base encoder
    gets a new span head)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    source = str(resume_from) if resume_from else init
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = transformers.AutoModelForQuestionAnswering.from_pretrained(source, local_files_only=True, dtype="float32")
    except (OSError, ValueError) as exc:  # transformers' own errors for a folder that holds no model
        raise RagError(f"cannot load a model to train from {source}: {first_line(exc)}", 2) from None
    return tokenizer, model


def check_start(init: str | None) -> None:
    """A mistyped --init fails now, not after the minutes of loading the data."""
    if init is not None and not (Path(init) / "config.json").is_file():
        raise RagError(f"--init {init} is not a model directory (it has no config.json)", 2)


def save_reader(model, tokenizer, out: Path, card: str) -> None:
    """The final reader: fp16 safetensors (half the size; loaded back as float32), tokenizer, card."""
    import copy

    out.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(model).half().save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(card, encoding="utf-8")
    for path in out.iterdir():  # the reader's files on disk before the checkpoint goes (not the checkpoint's own)
        if path.is_file():
            fsync_file(path)
    fsync_dir(out)


def model_card(data_path: Path, windows: int, settings: TrainSettings, trainer: Trainer,
               scores: dict | None, eval_path: Path | None, next_piece: str = "") -> str:
    lines = ["# Extractive QA reader trained by `rag train-reader`", "",
             "A `BertForQuestionAnswering` span reader; load with `AutoModelForQuestionAnswering.from_pretrained(dir)`.", "",
             "## How it was made",
             f"- Initialised from: `{settings.init}`" if settings.init else
             "- Initialised from: not recorded (resumed from a checkpoint written before `rag` recorded it)",
             f"- Data: `{data_path}` ({windows:,} training windows, {_negatives(settings)})",
             f"- Settings: {json.dumps(asdict(settings))}",
             f"- Trained {trainer.step:,} steps ({trainer.windows_seen:,} windows) in {trainer.elapsed_s:,.0f} s",
             f"- Loss: first 50 steps {np.mean(trainer.losses[:50]):.3f}, last 50 steps {np.mean(trainer.losses[-50:]):.3f}"
             if trainer.losses else "- Loss: no steps",
             f"- Articles kept out of training: {', '.join(settings.excluded_articles) or 'none'}",
             f"- Finished its budget; a next piece continues from it with: `{next_piece}`" if next_piece else "", ""]
    if scores:
        lines += [f"## Scores on `{eval_path}`", "", "| decision | EM | F1 | HasAns EM | HasAns F1 | NoAns accuracy |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {rule} | {r['em']} | {r['f1']} | {r['has_ans_em']} | {r['has_ans_f1']} | {r['no_ans_accuracy']} |"
                  for rule, r in scores.items()]
    return "\n".join(lines) + "\n"


def _negatives(settings: TrainSettings) -> str:
    if settings.objective == "shared":
        return f"each question with up to {settings.shared_paragraphs - 1} other paragraphs of its article under one softmax"
    copies = f"{settings.unanswerable_copies} cop{'y' if settings.unanswerable_copies == 1 else 'ies'}"
    swapped = f" from the {settings.swap_from}" if settings.swapped_negatives else ""
    return (f"distant negatives {settings.distant_negatives:.0%}, {copies} of each unanswerable question, "
            f"withheld negatives {settings.withheld_negatives:.0%}, swapped negatives {settings.swapped_negatives:.0%}{swapped}")


def window_count(windows: list, settings: TrainSettings) -> int:
    """Windows in a list or a batch, for either objective (the shared one's are groups of them)."""
    return sum(map(len, windows)) if settings.objective == "shared" else len(windows)


def check_unused(out: Path) -> None:
    """A new run does not go where another's checkpoint or snapshots are: `--resume` would take
    up the old one, and averaging `OUT/snapshots` would mix the two runs' weights."""
    left = [name for name in (CHECKPOINT, CHECKPOINT + ".old", SNAPSHOTS)
            if (out / name).is_dir() and any((out / name).iterdir())]
    if left:
        raise RagError(f"{out} holds another run's {' and '.join(left)}: continue it with --resume, or give another --out", 2)


def check_budget(settings: TrainSettings) -> None:
    if not settings.max_steps and not settings.time_budget_s:
        raise RagError("give --max-steps or --time-budget, so the learning-rate schedule knows where it ends", 2)
    if settings.max_steps is not None and settings.max_steps < 1:
        raise RagError("--max-steps must be at least 1", 2)
    if settings.batch_size < 1:
        raise RagError("--batch-size must be at least 1", 2)
    if not (settings.learning_rate > 0 and math.isfinite(settings.learning_rate)):
        raise RagError("--lr must be positive", 2)
    if not (settings.checkpoint_every_s > 0 and math.isfinite(settings.checkpoint_every_s)):
        raise RagError("--checkpoint-every must be positive", 2)
    if settings.time_budget_s is not None and not (settings.time_budget_s > 0 and math.isfinite(settings.time_budget_s)):
        raise RagError("--time-budget must be positive", 2)
    if settings.objective not in OBJECTIVES:
        raise RagError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {settings.objective!r}", 2)
    if settings.device not in DEVICES:
        raise RagError(f"--device must be one of {', '.join(DEVICES)}, not {settings.device!r}", 2)
    if settings.precision not in TRAINING_PRECISIONS:
        raise RagError(f"--precision must be one of {', '.join(TRAINING_PRECISIONS)}, not {settings.precision!r}", 2)
    if settings.swap_from not in SWAP_SOURCES:
        raise RagError(f"--swap-from must be one of {', '.join(SWAP_SOURCES)}, not {settings.swap_from!r}", 2)
    if settings.unanswerable_copies < 1:
        raise RagError("--unanswerable-copies must be at least 1", 2)
    if settings.unanswerable_copies > 1 and settings.objective != "window":
        raise RagError("--unanswerable-copies works with --objective window only", 2)
    for option, share in (("--withheld-negatives", settings.withheld_negatives), ("--swapped-negatives", settings.swapped_negatives)):
        if not 0.0 <= share <= 1.0:
            raise RagError(f"{option} must be a share between 0 and 1", 2)
        if share and settings.objective != "window":
            raise RagError(f"{option} works with --objective window only", 2)


def checkpoint_in(out: Path) -> Path:
    """The run's checkpoint folder in `out`: `checkpoint`, or, when a crash came between the two
    renames that replace it, the whole previous one it was about to replace."""
    current, previous = Path(out) / CHECKPOINT, Path(out) / (CHECKPOINT + ".old")
    if not current.is_dir() and (previous / "trainer_state.json").is_file():
        return previous
    return current


def saved_settings(out: Path) -> TrainSettings:
    """The settings of the run whose checkpoint is in `out` (for --resume)."""
    state = checkpoint_in(out) / "trainer_state.json"
    if not state.is_file():
        raise RagError(f"nothing to resume: no checkpoint in {state.parent}", 2)
    saved = _read_state(state).get("settings")
    if not isinstance(saved, dict):
        raise RagError(f"{state} holds no training settings: the checkpoint is damaged; start a new run", 2)
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(saved) - known)
    if unknown:  # written by another version of rag: guessing what it meant would train on other settings
        raise RagError(f"{state} has a setting this version of rag does not know: '{unknown[0]}'; "
                       "resume it with the version that started it", 2)
    try:
        return TrainSettings(**{**saved, "excluded_articles": tuple(saved.get("excluded_articles", ()))})
    except TypeError as exc:
        raise RagError(f"{state} holds settings rag cannot read ({exc}): the checkpoint is damaged", 2) from None


def resumed_settings(out: Path, precision: str | None, device: str) -> TrainSettings:
    """The run's own settings: on --resume only how it computes may change."""
    saved = saved_settings(out)
    return replace(saved, precision=precision or saved.precision, device=device)


def _read_state(state: Path) -> dict:
    try:
        loaded = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RagError(f"cannot read checkpoint state {state}: {exc}", 2) from None
    if not isinstance(loaded, dict):
        raise RagError(f"cannot read checkpoint state {state}: not a JSON object", 2)
    return loaded


TWIN_SIGNAL_S = 1.0  # a second signal of the same kind this soon is the first one's twin, not a second stop


class StopRequest:
    """Called, whether Ctrl-C (SIGINT) or SIGTERM asked training to stop; `exit_code` says which."""

    def __init__(self):
        self.signal: int | None = None
        self.at = 0.0  # when (time.monotonic)

    def __call__(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return TERMINATED if self.signal == signal.SIGTERM else INTERRUPTED


@contextlib.contextmanager
def stop_at_a_step_when_asked():
    """Gives a StopRequest: true once Ctrl-C or SIGTERM came (`timeout`, kill, a job scheduler
    ending a piece), so training stops between two steps and its checkpoint holds one step's
    weights and position. A second one interrupts at once, but the twin of the first: the same
    signal within TWIN_SIGNAL_S (`timeout` signals the run and its process group, so it gets two)."""
    asked = StopRequest()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may take signals
        yield asked
        return

    def on_stop(signum, frame):
        if asked() and (signum != asked.signal or time.monotonic() - asked.at > TWIN_SIGNAL_S):
            raise KeyboardInterrupt
        asked.signal, asked.at = signum, time.monotonic()

    previous = {which: signal.signal(which, on_stop) for which in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for which, handler in previous.items():
            signal.signal(which, handler)


@contextlib.contextmanager
def run_lock(out: Path):
    """An exclusive lock on OUT for a whole run: two runs writing one folder would delete each
    other's half-written checkpoints and mix their logs."""
    with (out / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RagError(f"another rag train-reader is running in {out}; wait for it, or give another --out", 2) from None
        yield


def _no_progress(label: str, total: int | None = None):
    return contextlib.nullcontext(), lambda done=None, total=None: None


class TrainingRun:
    """One `rag train-reader` run: windows, training (or its continuation), the saved reader,
    the held-out scores and the model card."""

    def __init__(self, data: Path, out: Path, settings: TrainSettings, config, init: str | None,
                 resume: bool, eval_data: Path | None):
        self.data, self.out, self.settings, self.config = Path(data), Path(out), settings, config
        self.init, self.resume, self.eval_data = init, resume, eval_data
        self.trainer: Trainer | None = None

    def start(self, on_status: Callable[[str], None] = lambda m: None, progress=_no_progress,
              log: Callable[[str], None] = lambda line: None) -> dict | None:
        """Train, save and score; `progress(label, total)` gives (context, update) for a bar."""
        check_budget(self.settings)
        if not self.resume:
            check_start(self.init)
        # resolved before the minutes of preparing windows, and recorded: the model card says where it ran
        self.settings = replace(self.settings, device=resolve_device(self.settings.device))
        if self.settings.device == "cpu" and self.settings.precision == "bf16" and cpu_lacks_bf16():
            on_status(f"{NOTE}this CPU has no bf16 instructions (AVX-512 BF16 or AMX), so bf16 steps are emulated "
                      "and far slower than --precision fp32")
        made = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            with run_lock(self.out):
                return self._start(on_status, progress, log)
        except RagError:
            if made and [p.name for p in self.out.iterdir()] == [LOCK]:  # refused before any work: leave no folder
                (self.out / LOCK).unlink()
                self.out.rmdir()
            raise

    def _start(self, on_status, progress, log) -> dict | None:
        checkpoint = checkpoint_in(self.out)
        if not self.resume:
            check_unused(self.out)
            (self.out / LOG).unlink(missing_ok=True)
        if not self.resume:  # a resumed run keeps the start its checkpoint recorded
            self.settings = replace(self.settings, init=str(self.init or self.config.embedder.resolve()))
        everything = load_squad(self.data)
        self._check_exclusions(everything)
        squad_data = everything.without_articles(set(self.settings.excluded_articles))
        # read now, not hours later when training is over, and checked to be held out
        held_out = self._held_out(squad_data) if self.eval_data else None
        on_status("preparing training windows…")
        tokenizer, model = load_for_training(self.settings.init, checkpoint if self.resume else None)
        windows = (make_groups if self.settings.objective == "shared" else make_windows)(squad_data, tokenizer, self.settings)
        if not windows:  # no step would ever be taken, and the time budget would never run down
            raise RagError(f"nothing to train on: {self.data} gives no questions"
                           f"{' once --exclude-articles are left out' if self.settings.excluded_articles else ''}", 2)
        self.trainer = trainer = Trainer(model, tokenizer, windows, self.settings, self.out)
        if self.resume:
            trainer.restore(checkpoint)
            trainer.cut_log()
            on_status(f"resuming at step {trainer.step} ({trainer.elapsed_s:.0f} s trained)")
        windows_made = window_count(windows, self.settings)
        on_status(f"{len(squad_data.questions):,} questions -> {windows_made:,} windows; "
                  f"batch {self.settings.batch_size}, peak lr {self.settings.learning_rate:g}, on {self.settings.device} in {self.settings.precision}")
        self._train(trainer, progress, log)
        trainer.save_checkpoint(snapshot=False)  # so an interrupted scoring resumes without training again
        save_reader(model, tokenizer, self.out, "")
        scores = self._score(held_out, progress) if held_out else None
        card = model_card(self.data, windows_made, self.settings, trainer, scores, self.eval_data, self.next_piece())
        save_reader(model, tokenizer, self.out, card)
        for folder in (self.out / CHECKPOINT, self.out / (CHECKPOINT + ".old")):
            shutil.rmtree(folder, ignore_errors=True)
        return scores

    def _check_exclusions(self, data: SquadData) -> None:
        unknown = data.unknown_articles(set(self.settings.excluded_articles))
        if unknown:  # a misspelt name would keep its article in training, and the card would say it was kept out
            raise RagError(f"--exclude-articles names {len(unknown)} article{'s' if len(unknown) > 1 else ''} "
                           f"{self.data} does not have: {', '.join(map(repr, unknown[:3]))}"
                           f"{'…' if len(unknown) > 3 else ''} (titles as the file writes them, e.g. Private_school)", 2)

    def _held_out(self, training: SquadData) -> SquadData:
        """--eval-data, refused when it shares a paragraph with the training data: its scores
        would not be held-out ones."""
        held_out = load_squad(self.eval_data)
        trained_on = set(training.contexts.values())
        shared = sum(1 for text in held_out.contexts.values() if text in trained_on)
        if shared:
            raise RagError(f"--eval-data {self.eval_data} shares {shared:,} paragraph{'s' if shared > 1 else ''} with "
                           f"--data {self.data}: its scores would not be held out", 2)
        return held_out

    def next_piece(self) -> str:
        """How a next piece continues this finished run (it keeps no checkpoint to resume)."""
        return (f"rag train-reader --data {self.data} --init {self.out} --out <another folder> "
                f"--seed <another seed> --time-budget <how long>")

    def resume_command(self) -> str:
        """What continues this run as it was started: its scoring data and models file too."""
        scoring = f" --eval-data {self.eval_data}" if self.eval_data else ""
        models = f" --models {self.config.path}" if self.config.path != default_models_file() else ""
        return f"rag train-reader --data {self.data} --out {self.out} --resume{scoring}{models}"

    def _train(self, trainer: Trainer, progress, log) -> None:
        settings = self.settings
        bar, update = progress("training", settings.max_steps or int(settings.time_budget_s))

        def on_step(step: int, loss: float, lr: float) -> None:
            update(step if settings.max_steps else int(trainer.elapsed_s))
            if step % 50 == 0:
                log(f"step {step}: loss {loss:.3f}, lr {lr:.2e}")

        with bar, stop_at_a_step_when_asked() as stop_asked:
            try:
                trainer.train(on_step, stop_asked)
            except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM, mid-step: the last checkpoint stands
                raise RagError(f"stopped at once; continue from the last checkpoint with: {self.resume_command()}",
                               stop_asked.exit_code) from None
        if stop_asked():
            trainer.save_checkpoint()
            raise RagError(f"interrupted at step {trainer.step}; continue with: {self.resume_command()}", stop_asked.exit_code)

    def _score(self, held_out: SquadData, progress) -> dict:
        from rag.config import ModelSpec
        from rag.embedder import Embedder
        from rag.reader import Reader
        from rag.squad import evaluate_reader

        out = self.out.resolve()
        spec = ModelSpec("reader", str(self.out), f"path:{out}", "", out, self.config.reader.settings)
        bar, advance = progress("scoring the held-out file", len(held_out.questions))
        with bar:
            return evaluate_reader(held_out, Reader(spec), Embedder(self.config.embedder),
                                   self.config.reader.settings.abstention, advance)
