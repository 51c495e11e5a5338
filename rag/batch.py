"""Questions read one a line from a byte stream (a pipe or a file), for `rag ask` batches and
piped `rag chat`. Lines are decoded one by one, so an undecodable line is that line's error and
never ends the batch; blank lines are skipped, and each question keeps its input line number."""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator


@dataclass(frozen=True)
class QuestionLine:
    number: int  # 1-based line number in the input
    text: str  # the decoded line (undecodable bytes shown as U+FFFD when `problem` is set)
    problem: str | None = None  # why this line cannot be asked


def question_lines(stream: BinaryIO) -> Iterator[QuestionLine]:
    for number, raw in enumerate(stream, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark from a Windows editor
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield QuestionLine(number, raw.decode("utf-8", errors="replace").strip(), "the line is not UTF-8 text")
            continue
        if text.strip():
            yield QuestionLine(number, text.strip())
