"""eval/measure_reader.py: the reader tried is the one named, everything else as shipped; a step
that finished is not run again, and one that failed leaves nothing that passes for done.
eval/average_readers.py: the averaged reader holds the mean of the weights."""
import sys
import tomllib

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "eval"))
import measure_reader  # noqa: E402


def test_the_configuration_tried_differs_from_the_shipped_one_only_in_the_reader(tmp_path):
    reader = tmp_path / 'piece "16"'  # a quote in the path stays a valid TOML string
    tried = tomllib.loads(measure_reader.models_for(reader, ROOT / "models.toml"))
    shipped = tomllib.loads((ROOT / "models.toml").read_text(encoding="utf-8"))
    assert tried["reader"].pop("source") == f"path:{reader.resolve()}"
    shipped["reader"].pop("source")
    assert tried == shipped


def test_a_finished_step_is_skipped_and_a_failed_one_leaves_no_output(tmp_path, capsys):
    done = tmp_path / "gold.json"
    measure_reader.run_step(1, 2, "gold", done, [sys.executable, "-c", "print('{}')"])
    measure_reader.run_step(1, 2, "gold", done, [sys.executable, "-c", "raise SystemExit(3)"])  # not run again
    assert done.read_text() == "{}\n" and "done before" in capsys.readouterr().out
    failed = tmp_path / "heldout.json"
    with pytest.raises(SystemExit, match="held-out failed"):
        measure_reader.run_step(2, 2, "held-out", failed, [sys.executable, "-c", "print('half'); raise SystemExit(3)"])
    assert not failed.exists()


def test_measures_of_other_weights_or_another_baseline_are_not_taken_for_done(tmp_path):
    reader, out = tmp_path / "reader", tmp_path / "out"
    reader.mkdir()
    out.mkdir()
    (reader / "config.json").write_text("{}", encoding="utf-8")
    (reader / "model.safetensors").write_bytes(b"first weights")
    models = out / "models.toml"
    models.write_text(measure_reader.models_for(reader, ROOT / "models.toml"), encoding="utf-8")
    baseline = tmp_path / "shipped.jsonl"
    baseline.write_text("{}\n", encoding="utf-8")
    shipped = ROOT / "models.toml"
    measure_reader.check_made_with(out, models, baseline, shipped)
    measure_reader.check_made_with(out, models, baseline, shipped)  # the same: the done steps stand
    other_answers = tmp_path / "other.jsonl"
    other_answers.write_text("[]\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="another baseline"):
        measure_reader.check_made_with(out, models, other_answers, shipped)
    (reader / "model.safetensors").write_bytes(b"weights of a later run in the same folder")
    with pytest.raises(SystemExit, match="another reader"):
        measure_reader.check_made_with(out, models, baseline, shipped)


def test_the_shipped_answers_are_made_first_only_when_no_baseline_is_given(tmp_path):
    made = measure_reader.steps(tmp_path / "models.toml", tmp_path, tmp_path / "shipped-gold.jsonl", ROOT / "models.toml")
    given = measure_reader.steps(tmp_path / "models.toml", tmp_path, tmp_path / "mine.jsonl", None)
    names = [name for name, _, _ in given]
    assert [name for name, _, _ in made] == ["shipped reader on gold", *names] and names[:2] == ["fit the decision", "gold"]
    assert str(tmp_path / "mine.jsonl") in given[1][2]  # the gold step compares with the answers given


def test_averaged_readers_hold_the_mean_of_their_weights(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, str(ROOT / "eval"))
    import average_readers

    readers = []
    for i, value in enumerate((1.0, 3.0)):
        reader = tmp_path / f"r{i}"
        reader.mkdir()
        save_file({"w": torch.full((2, 2), value, dtype=torch.float16)}, reader / "model.safetensors")
        for name in average_readers.COPIED:
            (reader / name).write_text(f"{name} of r{i}")
        readers.append(reader)
    average_readers.average(readers, tmp_path / "mean")
    mean = load_file(tmp_path / "mean" / "model.safetensors")["w"]
    assert mean.dtype == torch.float16 and torch.equal(mean, torch.full((2, 2), 2.0, dtype=torch.float16))
    assert (tmp_path / "mean" / "config.json").read_text() == "config.json of r0"
