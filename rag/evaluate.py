"""`rag eval`: run gold questions through the same Pipeline.ask as `rag ask`, and measure.

Gold-set metrics: EM/F1 (SQuAD normalisation, best over acceptable answers, on answerable
questions; an abstention scores 0), retrieval recall@1/3/5 and MRR (rank of the first passage
from a supporting article), citation accuracy (the cited span slices to the answer and lies in
a supporting article), abstention recall, false-abstention rate, latency. Percentages 0-100."""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rag.compare import compare
from rag.decision import answered_at
from rag.errors import BadInput, RagError, Stopped
from rag.gold import GoldQuestion
from rag.leftovers import write_atomically
from rag.metrics import best_over, exact_match, f1_score, states_an_answer
from rag.schema import Answer
from rag.wording import counted

# "2021-09-06-" of 2021-09-06-kabul.txt (or "2021-09-" of 2021-09-kabul.txt): a date, then "-" or
# "_" and a word that begins with a letter (a name that is a date, or a date and a suffix, stays whole)
LEADING_DATE = re.compile(r"^\d{4}[-_]?\d{2}(?:[-_]?\d{2})?[-_]+(?=[^\W\d_])")

RIGHT_F1 = 0.5  # an answer this close to a gold one (SQuAD F1) counts as right


@dataclass(frozen=True)
class QuestionResult:
    gold: GoldQuestion
    answer: Answer
    source_text: str | None  # the cited article, to check the citation by slicing it

    @property
    def em(self) -> float:
        return best_over(exact_match, self.answer.text, self.gold.answers) if self.answer.text else 0.0

    @property
    def f1(self) -> float:
        return best_over(f1_score, self.answer.text, self.gold.answers) if self.answer.text else 0.0

    @property
    def retrieval_rank(self) -> int | None:
        """1-based rank of the first retrieved passage from a supporting article."""
        return next((i for i, r in enumerate(self.answer.passages, 1) if r.passage.doc_id in self.gold.docs), None)

    @property
    def best_span(self) -> str | None:
        """The most trusted candidate's text, answered or declined."""
        return self.answer.candidates[0].text if self.answer.candidates else None

    @property
    def best_span_right(self) -> bool:
        """Is the most trusted candidate right (F1 >= RIGHT_F1), answered or declined?"""
        return (self.gold.answerable and self.best_span is not None
                and best_over(f1_score, self.best_span, self.gold.answers) >= RIGHT_F1)

    @property
    def declined_right_span(self) -> bool:
        """Declined, though the most trusted candidate was right: the decision's miss."""
        return self.answer.abstained and self.best_span_right

    @property
    def answer_read(self) -> bool:
        """Does a passage the reader read hold a gold answer (rag.metrics.states_an_answer)? An upper
        bound: a short answer ("three") may stand there about something else."""
        return any(states_an_answer(r.passage.text, self.gold.answers) for r in self.answer.passages)

    @property
    def citation_ok(self) -> bool:
        c = self.answer.citation
        return (c is not None and self.source_text is not None and c.doc_id in self.gold.docs
                and self.source_text[c.start:c.end] == self.answer.text)

    @property
    def correct(self) -> bool:
        """Right answer (F1 >= RIGHT_F1) to an answerable question, or abstention on an unanswerable one."""
        return self.f1 >= RIGHT_F1 if self.gold.answerable else self.answer.abstained


def run_questions(pipeline, questions: list[GoldQuestion], on_done: Callable[[], None] = lambda: None,
                  dates=None, on_result: Callable[[QuestionResult], None] = lambda result: None) -> list[QuestionResult]:
    results = []
    for q in questions:
        answer = pipeline.ask(q.question, dates)
        source = pipeline.corpus.documents[answer.citation.doc_id].text if answer.citation else None
        results.append(QuestionResult(q, answer, source))
        on_result(results[-1])
        on_done()
    return results


def partial_of(predictions: Path) -> Path:
    """Where a run's answers are kept as they come, until its --predictions file is written whole."""
    return predictions.with_name(f"{predictions.name}.partial")


@contextlib.contextmanager
def answers_kept_as_they_come(predictions: Path | None):
    """A function that appends each answer to PREDICTIONS.partial as it comes, flushed: a long
    run stopped or failed half-way keeps what it answered, and its line says where
    (write_predictions removes the file once the whole one is written). A partial file of an
    earlier run is moved aside first (.partial.1, …), not overwritten. Nothing without
    --predictions."""
    if predictions is None:
        yield lambda result: None
        return
    partial, kept = partial_of(predictions), 0
    with _writing(partial):
        _move_aside(partial)
        out = partial.open("w", encoding="utf-8")

    def keep(result: QuestionResult) -> None:
        nonlocal kept
        with _writing(partial):
            out.write(json.dumps(result.answer.to_json(), ensure_ascii=False) + "\n")
            out.flush()
        kept += 1

    try:
        yield keep
    except KeyboardInterrupt as stop:
        raise Stopped.by(stop, "while answering", _kept_in(kept, partial)) from None
    except RagError as problem:
        raise RagError(f"{problem}; {_kept_in(kept, partial)}", problem.exit_code) from None
    except BaseException:
        _kept_in(kept, partial)  # an unexpected error: what was answered stays, an empty file goes
        raise
    finally:
        out.close()


def _move_aside(partial: Path) -> None:
    """An earlier run's partial file, kept under the first free .partial.N name."""
    if not partial.exists():
        return
    n = 1
    while partial.with_name(f"{partial.name}.{n}").exists():
        n += 1
    partial.rename(partial.with_name(f"{partial.name}.{n}"))


def _kept_in(kept: int, partial: Path) -> str:
    if not kept:
        partial.unlink(missing_ok=True)
        return "no question was answered yet"
    return f"the {counted(kept, 'answer')} so far {'is' if kept == 1 else 'are'} in {partial}, one rag ask --json line each"


@dataclass(frozen=True)
class GoldRun:
    """One evaluation of a gold set: every answer, and what the answers measure."""
    results: list[QuestionResult]
    summary: dict
    by_article: dict[str, dict]
    tradeoff: list[dict]  # the same answers decided again under other thresholds
    against_baseline: dict | None  # rag.compare.compare's changes, when a baseline was given
    left_out: tuple[str, ...] = ()  # gold questions not asked (GoldCheck.left_out)

    def to_json(self) -> dict:
        return (self.summary | {"at_other_thresholds": self.tradeoff}
                | ({"against_baseline": self.against_baseline} if self.against_baseline else {})
                | ({"left_out": list(self.left_out)} if self.left_out else {}))


def evaluate_gold(pipeline, questions: list[GoldQuestion], dates=None, baseline: dict[str, str | None] | None = None,
                  on_done: Callable[[], None] = lambda: None, left_out: tuple[str, ...] = (),
                  on_result: Callable[[QuestionResult], None] = lambda result: None) -> GoldRun:
    """Ask every question through `pipeline` and measure; `baseline` is an earlier run's answers
    (rag.compare.load_baseline), to show what changed; `left_out`, the gold set's questions not
    given here, is reported with the measures; `on_result` hears of each answer as it comes."""
    results = run_questions(pipeline, questions, on_done, dates, on_result)
    answers = {r.gold.id: None if r.answer.abstained else r.answer.text for r in results}
    return GoldRun(results, summarize(results), summarize_by_article(results), tradeoff(results),
                   compare(questions, answers, baseline) if baseline else None, tuple(left_out))


@dataclass(frozen=True)
class GoldCheck:
    """A gold set against the articles, before any question is asked."""
    questions: list[GoldQuestion]  # those to ask
    unstated: list[str]  # ids of questions none of whose cited articles states an answer
    left_out: tuple[str, ...]  # ids of the questions not asked: dated out, or not searched
    not_searched: tuple[str, ...] = ()  # ids of questions all of whose articles are not searched

    @property
    def dated_out(self) -> list[str]:
        """Ids of the questions left out because only articles outside the dates answer them."""
        return [q for q in self.left_out if q not in self.not_searched]


@dataclass(frozen=True)
class GoldOutputs:
    """What `rag eval` on a gold set writes, each when asked for."""
    predictions: Path | None = None  # every answer, one `rag ask --json` line each
    report: Path | None = None  # markdown, with its calibration picture beside it

    def by_option(self) -> dict[str, Path | None]:
        return {"--predictions": self.predictions, "--report": self.report}


def prepare_gold_run(gold: Path, outputs: GoldOutputs, baseline: Path | None,
                     read_folders: dict[str, Path]) -> tuple[list[GoldQuestion], dict[str, str | None] | None]:
    """The gold set's questions and the baseline's answers, each read and checked, and every file
    to write checked writable (its folder made): all before the long run, which would otherwise
    fail only at its end. Nothing may be written over an input, or into `read_folders` (the
    articles and their index)."""
    from rag.compare import load_baseline
    from rag.gold import load_gold

    questions = load_gold(gold)
    check_outputs_apart({"--gold": gold, "--baseline": baseline}, outputs.by_option())
    check_outputs_outside(outputs.by_option(), read_folders)
    for path in files_written(outputs.by_option()).values():
        check_output_path(path)
    return questions, load_baseline(baseline, questions) if baseline else None


def write_gold_run(run: GoldRun, outputs: GoldOutputs, threshold: float, gold_name: str,
                   baseline: Path | None = None) -> Path | None:
    """Write what was asked for; the report's calibration picture, when one was drawn."""
    if outputs.predictions:
        write_predictions(outputs.predictions, run.results)
    if outputs.report:
        return write_report(outputs.report, run, threshold, gold_name, baseline)
    return None


def check_gold_against(corpus, questions: list[GoldQuestion], gold: Path, dates=None) -> GoldCheck:
    """What the articles (`corpus`: .documents and .directory) say of the gold set; an error when
    it cites none of them (another folder's gold set: F1 0 would say nothing), when it cites one
    they lack (a typo: that question's retrieval and citation measures would be wrong, and the
    id would get a column of its own), or when the dates leave no question to ask."""
    documents = corpus.documents
    not_searched = set(getattr(corpus, "not_searched", ()))  # a Milvus archive's articles are all searched
    unknown = [doc_id for doc_id in articles_not_in(documents, questions) if doc_id not in not_searched]
    if unknown and len(unknown) == len({d for q in questions for d in q.docs}):
        raise RagError(f"none of the articles {gold} cites is in {corpus.directory} ({', '.join(unknown[:3])}"
                       f"{', …' if len(unknown) > 3 else ''} {'is' if len(unknown) == 1 else 'are'} not): "
                       "give --gold a file of questions on these articles")
    if unknown:
        raise RagError(not_an_article_message(gold, corpus.directory, questions, unknown))
    left_out = tuple(answered_only_outside(documents, questions, dates)) if dates else ()
    unsearched = tuple(q.id for q in questions if q.docs and set(q.docs) <= not_searched)
    asked = [q for q in questions if q.id not in left_out and q.id not in unsearched]
    if not asked:
        raise RagError("no question is left: only articles outside the dates, or not searched, answer them all")
    searched = [q for q in questions if q.id not in unsearched]
    return GoldCheck(asked, answers_not_stated(documents, searched), left_out + unsearched, unsearched)


def not_an_article_message(gold: Path, folder: Path, questions: list[GoldQuestion], unknown: list[str]) -> str:
    """One line for the doc ids in "docs" that name no article: the first, at its first line, with
    how many questions name it, then the others."""
    naming = {doc_id: [q.line for q in questions if doc_id in q.docs] for doc_id in unknown}
    first, *others = sorted(unknown, key=lambda doc_id: naming[doc_id][0])
    times = len(naming[first])
    also = f"; nor {'is' if len(others) == 1 else 'are'} {_listed(others)}" if others else ""
    return (f'{gold}:{naming[first][0]}: "docs" names {first!r}, no article of {folder} '
            f"({counted(times, 'question')} {'names' if times == 1 else 'name'} it{also}): a doc id is the file name, "
            ".txt dropped (rag ask --json shows them)")


def _listed(doc_ids: list[str], most: int = 3) -> str:
    return ", ".join(map(repr, doc_ids[:most])) + (f" and {len(doc_ids) - most} more" if len(doc_ids) > most else "")


def articles_not_in(documents, questions: list[GoldQuestion]) -> list[str]:
    """The articles the gold set cites that `documents` (doc id -> Document) lacks."""
    return sorted({d for q in questions for d in q.docs} - set(documents))


def answered_only_outside(documents, questions: list[GoldQuestion], dates) -> list[str]:
    """The ids of answerable questions every article of which `documents` holds is dated outside
    `dates` (or undated): under the filter, declining them is right, so they are no measure of it."""
    def outside(q: GoldQuestion) -> bool:
        cited = [documents[d] for d in q.docs if d in documents]
        return bool(cited) and not any(dates.holds(d.date) for d in cited)

    return [q.id for q in questions if q.answerable and outside(q)]


def answers_not_stated(documents, questions: list[GoldQuestion]) -> list[str]:
    """The ids of answerable gold questions none of whose answers any article they cite states,
    as scoring compares them (a typo in the gold file makes a question no reader can get right)."""
    def stated(q: GoldQuestion) -> bool:
        return any(states_an_answer(documents[d].text, q.answers) for d in q.docs if d in documents)

    return [q.id for q in questions if q.answerable and q.docs and not stated(q)]


def write_predictions(path: Path, results: list[QuestionResult]) -> None:
    """Every answer, one `rag ask --json` line each; written whole or not at all."""
    with _writing(path):
        write_atomically(path, "".join(json.dumps(r.answer.to_json(), ensure_ascii=False) + "\n" for r in results))
    partial_of(path).unlink(missing_ok=True)  # the answers kept as they came: all in the file now


@contextlib.contextmanager
def _writing(path: Path):
    """A disk that is full or turned read-only during a run is one line, naming the file."""
    try:
        yield
    except OSError as exc:
        raise RagError(f"cannot write {path}: {exc.strerror or exc}") from None


def summarize(results: Iterable[QuestionResult], digits: int | None = 1) -> dict:
    """The measures over these results, in percent, rounded to `digits` (None: not rounded)."""
    results = list(results)
    pct = functools.partial(_pct, digits=digits)
    answerable = [r for r in results if r.gold.answerable]
    unanswerable = [r for r in results if not r.gold.answerable]
    answered = [r for r in answerable if not r.answer.abstained]
    # retrieval and citations can only be judged where the gold names its articles: n/a (None) otherwise
    ranks = [r.retrieval_rank for r in answerable if r.gold.docs]
    read = max((len(r.answer.passages) for r in answerable), default=0)

    def recall_at(k: int) -> float | None:  # with fewer passages read (--top-k 3), recall@5 would be recall@3
        return pct(rank is not None and rank <= k for rank in ranks) if k <= read else None

    latencies = [r.answer.timings_ms["total"] for r in results]
    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "em": pct(r.em for r in answerable),
        "f1": pct(r.f1 for r in answerable),
        "recall_at_1": recall_at(1),
        "recall_at_3": recall_at(3),
        "recall_at_5": recall_at(5),
        "mrr": pct(1 / rank if rank else 0.0 for rank in ranks),
        "answer_in_passages": pct(r.answer_read for r in answerable),
        "declined_right_span": pct(r.declined_right_span for r in answerable),
        "citation_accuracy": pct(r.citation_ok for r in answered if r.gold.docs),
        "abstention_recall": pct(r.answer.abstained for r in unanswerable),
        "false_abstention_rate": pct(r.answer.abstained for r in answerable),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
    }


TRADEOFF_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TRADEOFF_COLUMNS = [("threshold", "threshold"), ("F1", "f1"), ("abstention recall", "abstention_recall"),
                    ("false-abstention rate", "false_abstention_rate")]


def tradeoff(results: Iterable[QuestionResult], thresholds: Iterable[float] = TRADEOFF_THRESHOLDS) -> list[dict]:
    """F1, abstention recall and false abstention had `rag` declined under each of these thresholds
    instead of its own: what answering more, or less, would gain and cost. No question is asked
    again: each answer keeps its best candidate and that candidate's score."""
    results = list(results)
    answerable = [r for r in results if r.gold.answerable]
    unanswerable = [r for r in results if not r.gold.answerable]
    return [{"threshold": t,
             "f1": _pct(_f1_at(r, t) for r in answerable),
             "abstention_recall": _pct(not _answers_at(r, t) for r in unanswerable),
             "false_abstention_rate": _pct(not _answers_at(r, t) for r in answerable)} for t in thresholds]


def _answers_at(result: QuestionResult, threshold: float) -> bool:
    return bool(result.answer.candidates) and answered_at(result.answer.score, threshold)


def _f1_at(result: QuestionResult, threshold: float) -> float:
    if not _answers_at(result, threshold):
        return 0.0
    return best_over(f1_score, result.best_span, result.gold.answers)


def summarize_by_article(results: list[QuestionResult]) -> dict[str, dict]:
    """Answerable questions grouped under each article that supports them."""
    groups: dict[str, list[QuestionResult]] = defaultdict(list)
    for r in results:
        for doc_id in r.gold.docs:
            groups[doc_id].append(r)
    return {doc_id: summarize(groups[doc_id]) for doc_id in sorted(groups)}


def _pct(values: Iterable, digits: int | None = 1) -> float | None:
    values = [float(v) for v in values]
    if not values:
        return None
    share = 100 * sum(values) / len(values)
    return share if digits is None else round(share, digits)


SUMMARY_ROWS = [("EM", "em"), ("F1", "f1"), ("retrieval recall@1", "recall_at_1"), ("recall@3", "recall_at_3"),
                ("recall@5", "recall_at_5"), ("MRR", "mrr"),
                ("answer in passages read", "answer_in_passages"), ("citation accuracy", "citation_accuracy"),
                ("abstention recall", "abstention_recall"), ("false-abstention rate", "false_abstention_rate"),
                ("declined with the right span", "declined_right_span"),
                ("latency p50 (ms)", "latency_ms_p50"), ("latency p95 (ms)", "latency_ms_p95")]


def write_report(path: Path, run: GoldRun, threshold: float, gold_name: str, baseline: Path | None = None) -> Path:
    """Markdown report plus a calibration picture (PNG) beside it; what changed against the
    baseline (`baseline`: its file), when the run was compared with one."""
    results, summary, by_article, tradeoff_rows = run.results, run.summary, run.by_article, run.tradeoff
    path = Path(path)
    picture = calibration_picture_of(path)
    with _writing(picture):
        plot_calibration(results, threshold, picture)
    lines = [f"# rag evaluation on {gold_name}", "",
             f"{summary['questions']} questions ({summary['answerable']} answerable, {summary['unanswerable']} not). "
             "Percentages; EM/F1 on answerable questions (an abstention scores 0).", "",
             "| metric | all | " + " | ".join(map(_md, by_article)) + " |",
             "|---|---|" + "---|" * len(by_article)]
    for label, key in SUMMARY_ROWS:
        cells = [cell(summary[key])] + [cell(s[key]) for s in by_article.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"![answer score vs correctness]({picture.name})", "",
              f"## Had rag declined under another threshold (its own: {threshold:g})", "",
              "| " + " | ".join(label for label, _ in TRADEOFF_COLUMNS) + " |", "|---" * len(TRADEOFF_COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(row[key]) for _, key in TRADEOFF_COLUMNS) + " |" for row in tradeoff_rows]
    if run.against_baseline:
        lines += _baseline_lines(run.against_baseline, baseline)
    lines += ["",
              "## Every question", "", "✗ marks a miss: a wrong or missing answer, or an answer where the articles say nothing. "
              "\"answer read\" no: no passage the reader read holds the answer, so the miss is retrieval's. "
              f"Declined with a right best span (F1 ≥ {RIGHT_F1:g}): the miss is the decision's.", "",
              "| | id | question | gold | prediction | score | F1 | answer read | cited |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        gold = " / ".join(r.gold.answers) or "*(not in the articles)*"
        prediction = r.answer.text if not r.answer.abstained else f"*(abstained; best span: {r.best_span or 'none'})*"
        cited = f"{r.answer.citation.doc_id} {r.answer.citation.start}-{r.answer.citation.end}" if r.answer.citation else ""
        f1 = f"{r.f1:.2f}" if r.gold.answerable else ""
        read = ("yes" if r.answer_read else "no") if r.gold.answerable else ""
        lines.append(f"| {'' if r.correct else '✗'} | {_md(r.gold.id)} | {_md(r.gold.question)} | {_md(gold)} | "
                     f"{_md(prediction)} | {r.answer.score:.2f} | {f1} | {read} | {_md(cited)} |")
    with _writing(path):
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return picture


def _baseline_lines(against: dict, baseline: Path | None) -> list[str]:
    """rag.compare.compare's measures and changed answers, as the terminal shows them."""
    said = lambda answer: "*(declined)*" if answer is None else _md(answer)  # noqa: E731
    lines = ["", f"## Against the baseline ({_md(str(baseline or 'an earlier run'))})", "",
             "The interval: 95 %, paired bootstrap over the questions.", "",
             "| measure | baseline | now | change | 95 % interval |", "|---|---|---|---|---|"]
    for row in against["measures"]:
        low, high = row["interval"]
        lines.append(f"| {row['measure']} | {cell(row['baseline'])} | {cell(row['now'])} | {cell(row['change'])} | "
                     f"{cell(low)} to {cell(high)} |")
    if against["changed"]:
        lines += ["", "| | id | question | baseline | now |", "|---|---|---|---|---|"]
        lines += [f"| {c['verdict']} | {_md(c['id'])} | {_md(c['question'])} | {said(c['baseline'])} | {said(c['now'])} |"
                  for c in against["changed"]]
    else:
        lines += ["", "No answer changed."]
    return lines


def plot_calibration(results: list[QuestionResult], threshold: float, path: Path) -> None:
    """Answer score against correctness, with the abstention threshold drawn: if scores mean
    something, right answers sit to the right of the line and wrong ones to the left. A declined
    question counts by its best span, so the decision's misses show left of the line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.array([r.answer.score for r in results])
    right = np.array([r.best_span_right for r in results])
    fig, (scatter, bars) = plt.subplots(1, 2, figsize=(11, 4.2))
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(scores))
    for label, mask, colour in ((f"best span right (F1 ≥ {RIGHT_F1:g})", right, "tab:green"),
                                ("answerable, wrong", ~right & np.array([r.gold.answerable for r in results]), "tab:red"),
                                ("not in the articles", np.array([not r.gold.answerable for r in results]), "tab:gray")):
        scatter.scatter(scores[mask], np.where(right[mask], 1, 0) + jitter[mask], s=22, alpha=0.75, c=colour, label=label)
    for axis in (scatter, bars):
        axis.axvline(threshold, color="black", linestyle="--", linewidth=1)
    scatter.text(threshold, 1.25, f" abstain below {threshold:.2f}", fontsize=8, va="center")
    scatter.set(xlim=(0, 1), ylim=(-0.35, 1.4), yticks=[0, 1], yticklabels=["wrong / none", "right"],
                xlabel="answer score (P(right) from the abstention model)", title="each question")
    scatter.legend(fontsize=7, loc="center left")
    edges = np.linspace(0, 1, 6)
    which = np.clip(np.digitize(scores, edges) - 1, 0, 4)
    counts = [(which == b).sum() for b in range(5)]
    rate = [right[which == b].mean() if counts[b] else np.nan for b in range(5)]  # an empty bin has no bar, not one of 0
    bars.bar(edges[:-1] + 0.1, rate, width=0.18, color="tab:blue", alpha=0.7)
    bars.plot([0, 1], [0, 1], color="gray", linewidth=1, label="perfect calibration")
    for b in range(5):
        bars.text(edges[b] + 0.1, (0 if np.isnan(rate[b]) else rate[b]) + 0.02, f"n={counts[b]}", ha="center", fontsize=8)
    bars.set(xlim=(0, 1), ylim=(0, 1.1), xlabel="answer score", ylabel="share right", title="calibration")
    bars.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def shortest_unique_prefixes(names: list[str], shortest: int = 3) -> list[str]:
    """Each name cut at the end of its first words (at a "-", "_", ".", "#"…; at least `shortest`
    characters) that no other name starts with: column heads that still say which article, in
    words ("bristol" for bristol-mayor.md, "000" for 000_fb70…), never cut mid-word ("bri").
    A leading date is left out where the names differ without it ("kabul" for
    2021-09-06-kabul.txt): an archive's files all begin with one, and "2021-09" said nothing."""
    undated = [LEADING_DATE.sub("", name) for name in names]
    if len(set(undated)) == len(names):
        names = undated

    def cut(name: str) -> str:
        others = [other for other in names if other != name]
        ends = [i for i in range(shortest, len(name)) if not name[i].isalnum()]
        return next((name[:i] for i in ends if not any(other.startswith(name[:i]) for other in others)), name)
    return [cut(name) for name in names]


def cell(value) -> str:
    return "n/a" if value is None else f"{value:g}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


GATES = {"f1": "F1", "citation_accuracy": "citation accuracy", "abstention_recall": "abstention recall"}


def check_gates(gates: dict[str, float | None]) -> None:
    """Each gate a percentage (BadInput naming its option): NaN would pass any run, and 0.97 (a
    fraction) nearly any."""
    for option, bar in gates.items():
        if bar is not None and not 0 <= bar <= 100:
            raise BadInput(f"{option} is a percentage from 0 to 100, not {bar:g}")
        if bar is not None and 0 < bar < 1:
            raise BadInput(f"{option} is a percentage from 0 to 100: {bar:g} would pass nearly any run "
                           f"(for {100 * bar:g} %, give {100 * bar:g})")


def gate_failures(results: list[QuestionResult], bars: dict[str, float | None]) -> list[str]:
    """Each quality gate missed, as "F1 72.96 < 73"; a metric that is n/a misses its gate. The
    measures are not rounded first: a gate at 73 stops 72.96, which the summary shows as 73.0."""
    exact = summarize(results, digits=None)
    return [f"{GATES[key]} {_cut(exact[key])} < {bar:g}" for key, bar in bars.items()
            if bar is not None and (exact[key] is None or exact[key] < bar)]


def _cut(value: float | None) -> str:
    """Two decimals, cut rather than rounded: 72.996 misses a gate at 73, so it is not "73.00"."""
    return "n/a" if value is None else f"{math.floor(value * 100) / 100:.2f}"


def calibration_picture_of(report: Path) -> Path:
    return report.with_suffix(".calibration.png")


def check_outputs_apart(inputs: dict[str, Path | None], outputs: dict[str, Path | None]) -> None:
    """No file `rag eval` writes may be one it reads, or another it writes: the gold set or an
    earlier run's answers would be lost for good. (--baseline and --predictions may be one file:
    the earlier answers are read before the new ones replace them.)"""
    seen: dict[Path, str] = {}
    for option, path in files_written(outputs).items():
        where = path.resolve()
        clash = seen.get(where) or next((name for name, read in inputs.items() if read and read.resolve() == where
                                         and not (name == "--baseline" and option == "--predictions")), None)
        if clash:
            raise RagError(f"{option} {path} is the file of {clash}: it would be overwritten; give another file name", 2)
        seen[where] = option


def files_written(outputs: dict[str, Path | None]) -> dict[str, Path]:
    """Each option's file, and the picture --report draws beside its own."""
    report = outputs.get("--report")
    written = {**outputs, **({"--report's calibration picture": calibration_picture_of(report)} if report else {})}
    return {option: path for option, path in written.items() if path is not None}


def check_outputs_outside(outputs: dict[str, Path | None], folders: dict[str, Path]) -> None:
    """No file `rag eval` writes may land in the articles folder or the index: it would replace
    an article for good, or be read as one by the next question. Links count both ways: a name
    in the folder that links elsewhere, and a name elsewhere for a file a link there reads."""
    written = files_written(outputs)
    if not written:  # nothing to check: the folders' links are not read (an archive may hold many files)
        return
    resolved = {name: Path(folder).resolve() for name, folder in folders.items()}
    links = {name: linked_from(folder) for name, folder in resolved.items()}  # read once, not per output
    for option, path in written.items():
        named_at, written_at = path.absolute().parent.resolve() / path.name, path.resolve()
        for name, folder in resolved.items():
            if named_at.is_relative_to(folder) or written_at.is_relative_to(folder) or written_at in links[name]:
                raise RagError(f"{option} {path} is inside {name} {folder}, which rag reads (it would take the "
                               f"file for its own, or overwrite one there): write it elsewhere", 2)


def linked_from(folder: Path) -> set[Path]:
    """Where the links in `folder` (a symlinked article) lead."""
    try:
        return {entry.resolve() for entry in folder.iterdir() if entry.is_symlink()}
    except OSError:  # no such folder yet: nothing links from it
        return set()


def check_output_path(path: Path) -> None:
    """Make sure `path` can be written (its folder made) before a long run, not after."""
    if path.is_dir():
        raise RagError(f"cannot write {path}: it is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RagError(f"cannot write {path}: {exc.strerror}") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise RagError(f"cannot write {path}: permission denied")
