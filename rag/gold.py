"""Gold question files (eval/gold.jsonl, eval/tune.jsonl): one JSON object a line,
{"id", "question", "answers": [exact substrings], "docs": [doc ids]}; "answers": [] = unanswerable;
"docs" and the flags "paraphrased" and "conflict" may be left out (README, "Your own gold set")."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rag.paths import GOLD_FILE, PROJECT_ROOT, local_or_bundled
from rag.errors import BadInput, RagError
from rag.metrics import normalize_answer
from rag.pipeline import validate_question

BUNDLED_GOLD = PROJECT_ROOT / GOLD_FILE  # the questions on the bundled articles


def default_gold_file() -> Path:
    """./eval/gold.jsonl where `rag` runs, else the bundled gold set."""
    return local_or_bundled(GOLD_FILE)


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    question: str
    answers: list[str]
    docs: list[str]
    paraphrased: bool = False
    conflict: bool = False
    line: int = field(default=0, compare=False)  # where the gold file holds it, for errors found later (0: not read from one)

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


KEYS = {"id", "question", "answers", "docs", "paraphrased", "conflict"}
REQUIRED = ("id", "question", "answers")
REQUIRED_MEANS = {"id": "a name for the question, unique in the file", "question": "the question, as asked",
                  "answers": "the answers as the articles write them; [] for a question they do not answer"}


def load_gold(path: Path) -> list[GoldQuestion]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")  # a byte-order mark is read past; U+2028 ends no line
    except OSError as exc:
        raise RagError(f"cannot read the gold file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RagError(f"{path} is not UTF-8 text, so not a gold file (JSON Lines)") from None
    questions, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            question = _gold_question(json.loads(line), number)
        except ValueError as exc:
            raise RagError(f"{path}:{number}: not a gold question ({exc})") from None
        if question.id in seen:
            raise RagError(f"{path}:{number}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise RagError(f"{path} holds no questions")
    return questions


def _gold_question(row, line: int = 0) -> GoldQuestion:
    if not isinstance(row, dict):
        raise ValueError('a line is one JSON object: {"id": ..., "question": ..., "answers": [...], "docs": [...]}')
    unknown = sorted(set(row) - KEYS)
    if unknown:  # a mistyped "answer" would make an answerable question look unanswerable
        raise ValueError(f"unknown key {unknown[0]!r}; a gold question has {', '.join(sorted(KEYS))}")
    missing = [key for key in REQUIRED if key not in row]
    if missing:  # a forgotten "answers" would make an answerable question count as unanswerable
        raise ValueError(f'no "{missing[0]}" ({REQUIRED_MEANS[missing[0]]})')
    return GoldQuestion(id=_id(row["id"]), question=_question(row["question"]), answers=_answers(row["answers"]),
                        docs=_strings("docs", row.get("docs", [])), paraphrased=_flag("paraphrased", row),
                        conflict=_flag("conflict", row), line=line)


def _id(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError(f'"id" must be a non-empty string or a whole number, not {json.dumps(value)}')
    return str(value)


def _flag(key: str, row: dict) -> bool:
    value = row.get(key, False)
    if not isinstance(value, bool):  # bool("no") is True
        raise ValueError(f'"{key}" must be true or false, not {json.dumps(value)}')
    return value


def _question(value) -> str:
    """The question as `rag ask` takes it (rag.pipeline.validate_question): a file of questions it
    would refuse fails here, naming the line, not halfway through a run."""
    if not isinstance(value, str):
        raise ValueError('"question" must be a string')
    try:
        return validate_question(value)
    except BadInput as why:
        raise ValueError(str(why)) from None


def _strings(key: str, value) -> list[str]:
    """A list of strings (a bare string would be read as a list of its letters)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f'"{key}" must be a list of strings')
    return value


def _answers(value) -> list[str]:
    answers = _strings("answers", value)
    empty = [a for a in answers if not normalize_answer(a)]
    if empty:  # nothing could ever score on it, and declining would count as a miss
        raise ValueError(f"the answer {empty[0]!r} has no words to score")
    return answers
