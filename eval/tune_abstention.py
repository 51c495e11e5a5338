"""Fit when `rag` answers and when it says "not in the articles". Writes the [reader.abstention]
table of models.toml; never looks at the gold set, which stays for measuring.

    python eval/tune_abstention.py [--pool both|tune|calibration] [--threshold-from tune|pool]
                                   [--features a,b,c] [--fitted-second d] [--runs FILE] [--dry-run]

The pool: `both` (the default) is the two below together, so the fit sees hundreds of questions
and the news articles' own kind of question; `tune` is eval/tune.jsonl on the bundled articles
(130 questions); `calibration` is the SQuAD 2.0 dev copies of the six articles that
eval/calibration_articles.txt keeps out of reader training, from
../shared/squad/train-full.json, each written as one article and indexed.
Each of their 792 answerable questions is asked twice through the whole pipeline: as it is, and
with its own paragraph and every passage holding its answer withheld from retrieval. Withheld,
it becomes what an unanswerable news question is: about the articles' people and places, and
not stated in them. (SQuAD 2.0's own unanswerable questions are left out: written to trap a
reader inside the paragraph, they made the fit far too cautious on news; README, "Answer or
abstain".) A calibration fit is then also scored on tune.jsonl, which its weights never saw.

Every candidate span (one per retrieved passage) is labelled right (F1 >= 0.5 with a gold
answer) or wrong; a logistic model over its evidence (rag.evidence.Evidence: the reader's
margin and span score, the retrieval cosine and rank, agreeing passages and articles, other
articles corroborating it, and how the answer fits the question) gives P(right). Evidence that
fires on a handful of candidates (FITTED_SECOND_FOR) is fitted second, on top of the first fit
held fixed. The threshold then maximises, per question, F1 on answerable questions plus 1 for
each correct abstention on unanswerable ones, over the pool.
`--threshold-from tune` takes the weights from the pool and the threshold from tune.jsonl's
news questions instead (README, "Answer or abstain", measures each procedure)."""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import load_models_config  # noqa: E402
from rag.gold import load_gold  # noqa: E402
from rag.metrics import best_over, f1_score, states_an_answer  # noqa: E402
from rag.corpus import SENTENCE_RULES  # noqa: E402
from rag.decision import FEATURES, Abstention  # noqa: E402
from rag.evidence import EVIDENCE_RULES  # noqa: E402
from rag.evaluate import RIGHT_F1  # noqa: E402
from rag.assembly import build_pipeline  # noqa: E402
from rag.gold import GoldQuestion  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.train import read_article_list  # noqa: E402

L2 = 1e-2
TRAIN_FULL = ROOT.parent / "shared" / "squad" / "train-full.json"
GOLD = ROOT / "eval" / "gold.jsonl"
CALIBRATION_SOURCE = "squad20-dev"  # the copy of each calibration article that has unanswerable questions


READER_AND_COSINE = ("margin", "span_score", "dense_score")
AGREEMENT = ("agreeing_articles", "agreeing_passages", "corroborating_articles")
FEATURES_FOR = {  # what each pool's fit weighs by default (README, "Answer or abstain", measures them)
    "both": READER_AND_COSINE,
    "tune": READER_AND_COSINE,
    # the calibration articles are single articles, so agreement between articles never occurs there
    "calibration": tuple(name for name in FEATURES if name not in AGREEMENT),
}
# Corroboration fires on about a dozen of the pools' 8,556 candidates. Fitted together with the
# rest, it also moved their weights and the threshold, which cost held-out F1; fitted second, with
# the first fit's logit held fixed, it can only raise the candidates it fires on.
FITTED_SECOND_FOR = {"both": ("corroborating_articles",), "tune": ("corroborating_articles",), "calibration": ()}
WITHHOLD_DEPTH = 20  # passages retrieved beyond top-k, so that top-k remain once the withheld are dropped


def features(candidate, names=FEATURES) -> list[float]:
    return [float(getattr(candidate.evidence, name)) for name in names]


@dataclass(frozen=True)
class CalibrationQuestion:
    question: GoldQuestion
    paragraph: tuple[int, int]  # where the question's paragraph lies in its article's text


def calibration_titles() -> set[str]:
    """The titles, in train-full, of the calibration articles' copies with unanswerable questions."""
    return {f"{CALIBRATION_SOURCE}:{name}" for name in read_article_list(ROOT / "eval" / "calibration_articles.txt")}


def calibration_articles() -> list[dict]:
    """The calibration articles' copies with unanswerable questions, as train-full.json holds them."""
    names = calibration_titles()
    if not TRAIN_FULL.is_file():
        raise SystemExit(f"{TRAIN_FULL} is missing: the calibration pool comes from it "
                         f"(`eval/tune_abstention.py --pool tune` fits without it)")
    articles = [a for a in json.loads(TRAIN_FULL.read_text(encoding="utf-8"))["data"] if a["title"] in names]
    if len(articles) != len(names):
        raise SystemExit(f"{TRAIN_FULL} lacks some of the calibration articles {sorted(names)}")
    return articles


def calibration_pool(folder: Path) -> list[CalibrationQuestion]:
    """The calibration articles written into `folder` as .txt articles, and their answerable questions."""
    names = calibration_titles()
    pool = []
    for article in calibration_articles():
        doc_id = re.sub(r"[^A-Za-z0-9]+", "_", article["title"].partition(":")[2]).strip("_")
        (folder / f"{doc_id}.txt").write_text("\n\n".join(p["context"] for p in article["paragraphs"]), encoding="utf-8")
        start = 0
        for paragraph in article["paragraphs"]:
            end = start + len(paragraph["context"])
            pool += [CalibrationQuestion(GoldQuestion(qa["id"], qa["question"], [a["text"] for a in qa["answers"]], [doc_id]),
                                         (start, end)) for qa in paragraph["qas"] if qa["answers"]]
            start = end + 2
    if len({item.question.docs[0] for item in pool}) != len(names):
        raise SystemExit(f"{TRAIN_FULL} lacks some of the calibration articles {sorted(names)}")
    return pool


class WithholdingRetriever:
    """Retrieval that never returns a passage `withheld(passage)` keeps back."""

    def __init__(self, retriever):
        self.retriever = retriever
        self.withheld = lambda passage: False

    @property
    def passage_count(self) -> int:
        return self.retriever.passage_count

    def retrieve(self, question: str, k: int, dates=None) -> list:
        found = self.retriever.retrieve(question, k + WITHHOLD_DEPTH, dates)
        return [r for r in found if not self.withheld(r.passage)][:k]


def holds_the_answer(item: CalibrationQuestion, passage) -> bool:
    """Is the passage part of the question's paragraph, or does it hold one of its answers, as
    whole words, anywhere? (An answer that normalizes to nothing, like "the", holds nothing.)"""
    start, end = item.paragraph
    in_paragraph = passage.doc_id == item.question.docs[0] and passage.start < end and passage.end > start
    return in_paragraph or states_an_answer(passage.text, item.question.answers)


def ask_calibration(pipeline: Pipeline, pool: list[CalibrationQuestion]) -> list:
    """Each question asked as it is, and again with what answers it withheld (then unanswerable)."""
    withholding = WithholdingRetriever(pipeline.retriever)
    withheld = Pipeline(pipeline.corpus, withholding, pipeline.reader, pipeline.decision, pipeline.top_k)
    runs = []
    for n, item in enumerate(pool, 1):
        q = item.question
        withholding.withheld = lambda passage, item=item: holds_the_answer(item, passage)
        runs.append((q, pipeline.ask(q.question).candidates))
        runs.append((GoldQuestion(f"{q.id}:withheld", q.question, [], []), withheld.ask(q.question).candidates))
        if n % 100 == 0:
            print(f"  {n}/{len(pool)} questions", flush=True)
    return runs


def refuse_the_gold_set(tune: Path) -> None:
    """The gold set measures the fit; fitted on any of its questions, its figures would flatter."""
    if not tune.is_file():
        return
    shared = {q.question for q in load_gold(tune)} & {q.question for q in load_gold(GOLD)}
    if shared:
        raise SystemExit(f"error: {tune} shares {len(shared)} questions with the gold set, which is kept for measuring: "
                         f"fit on eval/tune.jsonl or another file")


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 100,
                 offset: np.ndarray | float = 0.0, intercept: bool = True) -> np.ndarray:
    """Newton's method on the L2-regularised log loss of sigmoid(offset + [bias] + x . weights);
    returns [bias, *weights], or just the weights without an intercept."""
    x1 = np.hstack([np.ones((len(x), 1)), x]) if intercept else x
    w = np.zeros(x1.shape[1])
    penalty = l2 * np.eye(len(w))
    if intercept:
        penalty[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(offset + x1 @ w, -50, 50)))
        gradient = x1.T @ (p - y) + penalty @ w
        hessian = x1.T @ (x1 * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def question_utility(abstention: Abstention, runs) -> float:
    total = 0.0
    for gold, candidates in runs:
        scored = [(abstention.confidence(c.evidence), c) for c in candidates]
        confidence, best = max(scored, key=lambda s: s[0]) if scored else (0.0, None)
        answered = best is not None and abstention.answers(confidence)
        if gold.answerable:
            total += best_over(f1_score, best.text, gold.answers) if answered else 0.0
        else:
            total += 0.0 if answered else 1.0
    return total / len(runs)


def write_abstention_table(models_file: Path, abstention: Abstention, note: str) -> None:
    text = models_file.read_text(encoding="utf-8")
    values = "".join(f"{name} = {getattr(abstention, name):.6g}\n" for name in ("bias", *FEATURES, "threshold"))
    values += f'fitted_for = "{abstention.fitted_for}"  # the reader\'s fingerprint: another reader gets a warning\n'
    table = f"[reader.abstention]\n# {note}\n{values}"
    pattern = re.compile(r"^\[reader\.abstention\]\n(?:(?!\[)[^\n]*\n?)*", re.M)
    if not pattern.search(text):
        raise SystemExit(f"{models_file} has no [reader.abstention] table to rewrite")
    models_file.write_text(pattern.sub(table, text, count=1), encoding="utf-8")


def ask_pool(args, config) -> tuple[list, list, str]:
    """(the pool's questions with their candidates, the same for tune.jsonl, the pool's name)."""
    if args.pool != "tune":  # read train-full.json first, so that a missing file fails before any question is asked
        folder = Path(tempfile.mkdtemp(prefix="rag-calibration-"))
        (folder / "articles").mkdir()
        pool = calibration_pool(folder / "articles")
    bundled = build_pipeline(config, args.seeds, on_status=print)
    check = [(q, bundled.ask(q.question).candidates) for q in load_gold(args.tune)]
    if args.pool == "tune":
        return check, check, f"{args.tune.name} (the bundled articles)"
    print(f"asking the {len(pool)} calibration questions, each also with its answer withheld…", flush=True)
    pipeline = build_pipeline(config, folder / "articles", folder / "index", on_status=print,
                              embedder=bundled.retriever.embedder, reader=bundled.reader)
    described = (f"the calibration pool ({len({item.question.docs[0] for item in pool})} articles of {TRAIN_FULL.name},"
                 " each question also asked with its answer withheld)")
    if args.pool == "both":
        return ask_calibration(pipeline, pool) + check, check, f"{described} and {args.tune.name}"
    return ask_calibration(pipeline, pool), check, described


def asked_runs(args, config) -> tuple[list, list, str]:
    """ask_pool's result: from --runs when it was asked the same way there, else asked now (and
    kept in --runs)."""
    reading = config.reader.settings
    asked_with = {"reader": config.reader.fingerprint(), "embedder": config.embedder.fingerprint(),
                  "windows": (reading.max_seq_len, reading.stride, reading.max_answer_tokens),
                  "retrieval": repr(config.retrieval), "chunking": repr(config.chunking), "pool": args.pool,
                  "version of the rules": (SENTENCE_RULES, EVIDENCE_RULES),  # how sentences are cut, evidence computed
                  "tune": hashlib.sha256(args.tune.read_bytes()).hexdigest(), "seeds": str(args.seeds.resolve())}
    if args.runs and args.runs.is_file():
        kept = pickle.loads(args.runs.read_bytes())
        if not isinstance(kept, dict):
            raise SystemExit(f"error: {args.runs} was written by an older version of this script; delete it to ask again")
        before = kept.get("asked_with", {})
        differ = sorted(key for key in asked_with if before.get(key) != asked_with[key])
        if differ:  # fitting another reader's candidates would stamp the fit with this reader's fingerprint
            raise SystemExit(f"error: {args.runs} was asked with another {', '.join(differ)}; delete it to ask again")
        return kept["runs"], kept["check"], kept["described"]
    runs, check, described = ask_pool(args, config)
    if args.runs:  # written whole or not at all: a later run trusts what it finds there
        partial = args.runs.with_name(args.runs.name + ".partial")
        partial.write_bytes(pickle.dumps({"asked_with": asked_with, "runs": runs, "check": check, "described": described}))
        partial.replace(args.runs)
    return runs, check, described


def feature_names(option: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated --features or --fitted-second value ('' is none), or the default."""
    if option is None:
        return default
    names = tuple(name.strip() for name in option.split(",") if name.strip())
    if unknown := sorted(set(names) - set(FEATURES)):
        raise SystemExit(f"unknown features {unknown} (known: {', '.join(FEATURES)})")
    if len(set(names)) < len(names):
        raise SystemExit(f"a feature is named twice in {option!r}")
    return names


def fit_weights(runs, names=FEATURES, second: tuple[str, ...] = ()) -> np.ndarray:
    """Logistic weights over these features of the candidates' evidence, then over the `second`
    ones with the first fit's logit as a fixed offset (the others weigh 0), as [bias, *one per
    FEATURES name]."""
    y = np.array([float(q.answerable and best_over(f1_score, c.text, q.answers) >= RIGHT_F1)
                  for q, cands in runs for c in cands])

    def evidence(names):
        return np.array([features(c, names) for _, cands in runs for c in cands]).reshape(len(y), len(names))

    x = evidence(names)
    bias, *weights = first = fit_logistic(x, y)
    fitted = dict(zip(names, weights)) | {"bias": bias}
    if second:
        x_second = evidence(second)
        if unseen := [name for name, column in zip(second, x_second.T) if not column.any()]:
            raise SystemExit(f"{', '.join(unseen)} is 0 for every candidate, so there is nothing to fit it on "
                             "(a --runs file from before it existed?)")
        offset = first[0] + x @ first[1:]
        fitted |= dict(zip(second, fit_logistic(x_second, y, offset=offset, intercept=False)))
    return np.array([fitted.get(name, 0.0) for name in ("bias", *FEATURES)])


def best_threshold(w: np.ndarray, runs) -> tuple[float, float]:
    """The threshold with the best utility on these runs (the middle of the best plateau, so a
    small shift in scores does not flip many decisions), and that utility."""
    thresholds = np.round(np.arange(0.05, 0.96, 0.01), 2)
    utilities = [question_utility(Abstention.from_weights(w, t), runs) for t in thresholds]
    best = [t for t, u in zip(thresholds, utilities) if u >= max(utilities) - 1e-9]
    return float(best[len(best) // 2]), max(utilities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", choices=tuple(FEATURES_FOR), default="both")
    parser.add_argument("--features", help=f"comma-separated evidence to weigh (of {', '.join(FEATURES)}); "
                        "the default depends on the pool, see FEATURES_FOR")
    parser.add_argument("--fitted-second", help="comma-separated evidence fitted after --features, with their fit held "
                        "fixed ('' for none); the default depends on the pool, see FITTED_SECOND_FOR")
    parser.add_argument("--threshold-from", choices=("pool", "tune"), default="pool",
                        help="with --pool calibration or both: choose the threshold on the pool itself (the default) or on "
                        "tune.jsonl's news questions")
    parser.add_argument("--tune", type=Path, default=ROOT / "eval" / "tune.jsonl")
    parser.add_argument("--models", type=Path, default=ROOT / "models.toml")
    parser.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    parser.add_argument("--dry-run", action="store_true", help="print the fit, do not rewrite models.toml")
    parser.add_argument("--runs", type=Path, help="keep the asked questions' candidates in this file (pickle), "
                        "and reuse them when it exists: to refit without asking again")
    args = parser.parse_args()
    refuse_the_gold_set(args.tune)

    config = load_models_config(args.models)
    runs, check, described = asked_runs(args, config)
    names = feature_names(args.features, FEATURES_FOR[args.pool])
    second = feature_names(args.fitted_second, FITTED_SECOND_FOR[args.pool])
    if both := sorted(set(names) & set(second)):
        raise SystemExit(f"{both} cannot be fitted both first and second (--fitted-second '' fits nothing second)")
    w = fit_weights(runs, names, second)
    threshold, utility = best_threshold(w, runs)
    answerable = sum(q.answerable for q, _ in runs)
    candidates = sum(len(c) for _, c in runs)
    note = (f"fitted by eval/tune_abstention.py on {described}: {len(runs)} questions ({answerable} answerable), "
            f"{candidates} candidates; utility {utility:.3f}")
    if args.pool != "tune" and args.threshold_from == "tune":
        print(f"{note} at threshold {threshold:.2f}")
        threshold, utility = best_threshold(w, check)
        note += f"; threshold chosen on {args.tune.name}, utility there {utility:.3f}"
    chosen = Abstention.from_weights(w, threshold, fitted_for=config.reader.fingerprint())
    print(note)
    print("weights:", dict(zip(("bias", *FEATURES), np.round(w, 4))), "threshold:", chosen.threshold)
    previous = config.reader.settings.abstention
    print(f"on {args.tune.name}: utility {question_utility(chosen, check):.3f} with this fit, "
          f"{question_utility(previous, check):.3f} with models.toml's")
    if not args.dry_run:
        write_abstention_table(args.models, chosen, note)
        print(f"wrote [reader.abstention] to {args.models}")


if __name__ == "__main__":
    main()
