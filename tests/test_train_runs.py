"""How `rag train-reader` treats its --out folder and what it tells a user to run next, without
training (fast tier: no model is loaded)."""
import shutil

import pytest

from rag.config import load_models_config
from rag.errors import RagError
from rag.train import TrainingRun, TrainSettings, check_unused, checkpoint_in, saved_settings
from tests.conftest import ROOT


def test_a_new_run_does_not_go_where_another_runs_checkpoint_or_snapshots_are(tmp_path):
    check_unused(tmp_path / "new")  # a folder not there yet
    (tmp_path / "done" / "snapshots").mkdir(parents=True)
    check_unused(tmp_path / "done")  # an empty snapshots folder holds nothing to mix
    (tmp_path / "done" / "snapshots" / "step-300").mkdir()
    with pytest.raises(RagError, match="another run's snapshots: continue it with --resume, or give another --out"):
        check_unused(tmp_path / "done")


def test_a_crash_between_the_checkpoints_two_renames_resumes_from_the_previous_one(tmp_path):
    state = '{"settings": {"batch_size": 4, "max_steps": 3}, "step": 2}'
    (tmp_path / "checkpoint.old").mkdir()
    (tmp_path / "checkpoint.old" / "trainer_state.json").write_text(state, encoding="utf-8")
    assert checkpoint_in(tmp_path) == tmp_path / "checkpoint.old"  # `checkpoint` renamed away, the new one not yet in
    assert saved_settings(tmp_path).max_steps == 3
    shutil.copytree(tmp_path / "checkpoint.old", tmp_path / "checkpoint")
    assert checkpoint_in(tmp_path) == tmp_path / "checkpoint"


def test_the_resume_command_keeps_the_runs_scoring_data_and_models_file(tmp_path):
    models = tmp_path / "models.toml"
    models.write_text((ROOT / "models.toml").read_text(encoding="utf-8").replace('"path:models/reader"',
                                                                                 f'"path:{ROOT / "models" / "reader"}"'))
    run = TrainingRun(tmp_path / "train.json", tmp_path / "out", TrainSettings(max_steps=3), load_models_config(models),
                      None, resume=False, eval_data=tmp_path / "dev.json")
    assert run.resume_command() == (f"rag train-reader --data {tmp_path / 'train.json'} --out {tmp_path / 'out'} --resume "
                                    f"--eval-data {tmp_path / 'dev.json'} --models {models}")
