"""eval/peer_haystack.py's rag side, with a stand-in `rag` that records how it was called (fast
tier: neither Haystack nor a model is loaded)."""
import importlib.util
import json
import stat
import sys

from tests.conftest import ROOT

FAKE_RAG = """#!{python}
import json, sys
args = sys.argv[1:]
models = open(args[args.index("--models") + 1], encoding="utf-8").read()
json.dump({{"args": args, "models": models}}, open({record!r}, "w"))
row = {{"answer": "five lions", "timings_ms": {{"total": 12.0}}}}
open(args[args.index("--predictions") + 1], "w").write(json.dumps(row) + "\\n")
"""


def peer_script():
    spec = importlib.util.spec_from_file_location("peer_haystack", ROOT / "eval" / "peer_haystack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rags_side_runs_with_the_reader_articles_and_top_k_haystacks_side_gets(tmp_path):
    record, rag = tmp_path / "called.json", tmp_path / "rag"
    rag.write_text(FAKE_RAG.format(python=sys.executable, record=str(record)), encoding="utf-8")
    rag.chmod(rag.stat().st_mode | stat.S_IEXEC)
    reader, seeds = tmp_path / "other-reader", tmp_path / "other-seeds"
    answers, latencies = peer_script().rag_answers(str(rag), ROOT / "eval" / "gold.jsonl", reader, seeds, 7,
                                                   abstaining=False)
    assert answers == ["five lions"] and latencies == [12.0]
    called = json.loads(record.read_text())
    args = called["args"]
    assert args[args.index("--seeds") + 1] == str(seeds) and args[args.index("--top-k") + 1] == "7"
    assert f'source = "path:{reader.resolve()}"' in called["models"] and "\nthreshold = 0.0" in called["models"]
