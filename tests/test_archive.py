"""`rag add` and `rag remove` as a user runs them: files in, files out, only new text embedded."""
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rag.index import IndexStore
from tests.conftest import ROOT, SEEDS, run_rag

pytestmark = pytest.mark.integration  # rag in a subprocess, real models

FORMATS = ROOT / "tests" / "formats"


@pytest.fixture
def archive(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name in ("000_882549ac45e52293.txt", "001_fb70659820c0e01f.txt"):
        shutil.copy(SEEDS / name, seeds)
    assert run_rag("index", "--seeds", str(seeds), "--index-dir", str(tmp_path / "index")).returncode == 0
    return seeds, tmp_path / "index"


def folders(archive) -> list[str]:
    return ["--seeds", str(archive[0]), "--index-dir", str(archive[1])]


def test_add_copies_files_and_embeds_only_them(archive):
    result = run_rag("add", str(SEEDS / "002_517ffae1740f5ca3.txt"), str(FORMATS / "taliban-claim.html"), *folders(archive))
    assert result.returncode == 0, result.stderr
    assert "added 2, updated 0, unchanged 0" in result.stderr and ", 0 reused)" not in result.stderr
    assert (archive[0] / "taliban-claim.html").is_file()
    answer = json.loads(run_rag("ask", "--json", "Who is the Taliban's chief spokesman?", *folders(archive)).stdout)
    assert answer["passages"] and any(p["doc_id"] == "taliban-claim.html" for p in answer["passages"])
    again = run_rag("add", str(FORMATS / "taliban-claim.html"), *folders(archive))
    assert again.returncode == 0 and "added 0, updated 0, unchanged 1" in again.stderr
    (archive[0].parent / "notes.pdf").write_bytes(b"%PDF-1.4")
    refused = run_rag("add", str(archive[0].parent / "notes.pdf"), *folders(archive))
    assert refused.returncode == 1 and "skipped 1" in refused.stderr  # a script sees that nothing was added


def test_remove_moves_the_file_out_and_keeps_it(archive):
    result = run_rag("remove", "000_882549ac45e52293", *folders(archive))
    assert result.returncode == 0, result.stderr
    assert not (archive[0] / "000_882549ac45e52293.txt").exists()
    (kept,) = (archive[1] / "removed").glob("*/000_882549ac45e52293.txt")
    assert kept.read_text(encoding="utf-8") == (SEEDS / "000_882549ac45e52293.txt").read_text(encoding="utf-8")
    assert "(0 embedded" in result.stderr  # nothing new to embed when an article goes
    assert run_rag("remove", "nope", *folders(archive)).returncode == 1
    restored = run_rag("add", str(kept), *folders(archive))  # undone: the same article id again
    assert restored.returncode == 0 and (archive[0] / "000_882549ac45e52293.txt").is_file()


def test_a_killed_add_leaves_an_index_that_loads_and_catches_up(archive):
    command = [sys.executable, "-m", "rag", "add", str(FORMATS), *folders(archive)]
    for delay in (1.0, 3.0):
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert IndexStore(archive[1]).current_build.is_dir()  # the index before the add still loads
    result = run_rag("add", str(FORMATS), *folders(archive))
    assert result.returncode == 1, result.stderr  # all three files are in; two lines of the JSON Lines file are not
    assert "wire-export.jsonl line 3: not JSON" in result.stderr and "skipped 0; 2 JSON Lines records skipped" in result.stderr
    assert not list(archive[0].glob(".*.tmp"))  # half copies of killed adds are cleaned up
    answer = json.loads(run_rag("ask", "--json", "Where did the aid flight land?", *folders(archive)).stdout)
    assert any(p["doc_id"] == "wire-export.jsonl#w-102" for p in answer["passages"])


def test_two_adds_at_once_both_land(archive):
    first = subprocess.Popen([sys.executable, "-m", "rag", "add", str(SEEDS / "002_517ffae1740f5ca3.txt"), *folders(archive)],
                             cwd=ROOT, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([sys.executable, "-m", "rag", "add", str(FORMATS / "valley-report.md"), *folders(archive)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    index = run_rag("index", *folders(archive))
    assert "4 articles" in index.stderr and "embedded" not in index.stderr  # both are in, nothing left to do
