"""eval/device_sweep.py: the reader it brings back from a GPU machine comes in pieces the device
tool can carry (16 MiB a file) and is put back together exactly, or refused."""
import json
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "eval"))
import device_sweep  # noqa: E402
from device_sweep import PART_BYTES, WEIGHTS, best_f1, config_name, pack, train_all, train_command, unpack  # noqa: E402


def a_reader(folder, size):
    folder.mkdir()
    (folder / WEIGHTS).write_bytes(bytes(range(256)) * (size // 256))
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "README.md").write_text("card", encoding="utf-8")
    return folder


def test_a_reader_packed_in_parts_is_put_back_together_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(device_sweep, "PART_BYTES", 1000)
    reader = a_reader(tmp_path / "reader", 2560)
    out = tmp_path / "out"
    packed = pack(reader, out)
    assert packed["parts"] == 3 and all((out / f"{WEIGHTS}.part{n}").stat().st_size <= 1000 for n in range(3))
    (out / "sweep.json").write_text(json.dumps({"best": "lr5e-05-b64", "packed": packed}), encoding="utf-8")
    unpack(out, tmp_path / "back")
    for name in (WEIGHTS, "config.json", "README.md"):
        assert (tmp_path / "back" / name).read_bytes() == (reader / name).read_bytes()


def test_weights_that_differ_from_the_ones_packed_are_refused(tmp_path):
    out = tmp_path / "out"
    packed = pack(a_reader(tmp_path / "reader", 2560), out)
    (out / "sweep.json").write_text(json.dumps({"best": "x", "packed": packed}), encoding="utf-8")
    (out / f"{WEIGHTS}.part0").write_bytes(b"\0" * 2560)
    with pytest.raises(SystemExit, match="differ from the ones packed"):
        unpack(out, tmp_path / "back")
    assert not (tmp_path / "back").exists()


def test_parts_fit_the_device_tools_limit():
    assert PART_BYTES <= 16 * 2**20


def test_each_config_trains_from_the_shipped_reader_with_the_calibration_articles_kept_out(tmp_path):
    command = train_command(tmp_path / "train-full.json", "5e-5:64", 4, 31, tmp_path / "out", "cuda")
    assert command[command.index("--init") + 1] == str(ROOT / "models" / "reader")
    assert command[command.index("--exclude-articles") + 1] == "eval/calibration_articles.txt"
    assert (command[command.index("--lr") + 1], command[command.index("--batch-size") + 1]) == ("5e-05", "64")
    assert command[command.index("--time-budget") + 1] == "4m" and config_name("5e-5:64") == "lr5e-05-b64"
    with pytest.raises(SystemExit, match="a --config is LR:BATCH"):
        config_name("5e-5")


def test_an_unpacked_reader_goes_into_a_new_folder_only(tmp_path):
    out = tmp_path / "out"
    packed = pack(a_reader(tmp_path / "reader", 2560), out)
    (out / "sweep.json").write_text(json.dumps({"best": "x", "packed": packed}), encoding="utf-8")
    (tmp_path / "back").mkdir()
    (tmp_path / "back" / "old.txt").write_text("another reader's", encoding="utf-8")
    with pytest.raises(SystemExit, match="is not empty"):
        unpack(out, tmp_path / "back")


def test_a_training_still_running_at_the_deadline_is_stopped_and_the_finished_ones_kept(tmp_path):
    import time

    commands = {"quick": [sys.executable, "-c", "print('done')"],
                "slow": [sys.executable, "-c", "import time; time.sleep(60)"]}
    started = time.monotonic()
    codes = train_all(commands, tmp_path / "logs", time.monotonic() + 3)
    assert codes == {"quick": 0, "slow": None} and time.monotonic() - started < 30
    assert (tmp_path / "logs" / "quick.log").read_text() == "done\n"


def test_readers_are_compared_at_the_null_margin_that_suits_each():
    from rag.squad import SquadQuestion

    questions = [SquadQuestion("a", "?", ["Kabul"], "c"), SquadQuestion("b", "?", ["Herat"], "c"),
                 SquadQuestion("n", "?", [], "c")]
    # right spans at margins 5 and 4, a wrong one to an unanswerable question at 1: best above 1, not at 0
    scores = best_f1({"a": (5.0, "Kabul"), "b": (4.0, "Herat"), "n": (1.0, "Mazar")}, questions)
    assert scores["f1"] == 100.0 and 1.0 <= scores["margin"] < 4.0
    assert scores["f1_at_margin_0"] == round(100 * 2 / 3, 1)
