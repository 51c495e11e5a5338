"""`rag add`'s file side (rag.archive.add_files), without models: what lands in the seeds
folder, and that nothing of the user's is lost on the way."""
import errno
import os
import re
import shutil
from pathlib import Path

import pytest

from rag import archive
from rag.archive import add_files
from rag.errors import RagError


@pytest.fixture
def seeds(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "report.txt").write_text("date 2021-09-06\nThe first version of the report.\n", encoding="utf-8")
    return folder


def incoming(tmp_path, name: str, text: str):
    folder = tmp_path / f"in-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_files_of_the_user_that_look_like_temporary_ones_are_left_alone(seeds, tmp_path):
    mine = [seeds / ".draft.20210906.tmp", seeds / ".draft.99999999999999999999.tmp"]
    for path in mine:
        path.write_text("my notes", encoding="utf-8")
    change = add_files(seeds, [incoming(tmp_path, "new.txt", "A new article.")], tmp_path / "trash")
    assert change.added == ["new.txt"]
    assert all(path.read_text(encoding="utf-8") == "my notes" for path in mine)


def test_a_copy_abandoned_by_a_killed_add_is_removed(seeds, tmp_path):
    abandoned = seeds / f"{archive.COPY_PREFIX}new.txt.999999999.tmp"
    abandoned.write_text("half an article", encoding="utf-8")
    add_files(seeds, [incoming(tmp_path, "other.txt", "Another article.")], tmp_path / "trash")
    assert not abandoned.exists()


def test_an_edit_whose_copy_fails_leaves_the_article_where_it_was(seeds, tmp_path, monkeypatch):
    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    edited = incoming(tmp_path, "report.txt", "date 2021-09-06\nThe second version.\n")
    with pytest.raises(RagError, match="No space left on device"):
        add_files(seeds, [edited], tmp_path / "trash")
    assert "first version" in (seeds / "report.txt").read_text(encoding="utf-8")
    assert not (tmp_path / "trash").exists() and sorted(os.listdir(seeds)) == ["report.txt"]


def test_an_edit_keeps_the_replaced_file_in_the_trash(seeds, tmp_path):
    change = add_files(seeds, [incoming(tmp_path, "report.txt", "The second version.\n")], tmp_path / "trash")
    assert change.updated == ["report.txt"]
    assert (seeds / "report.txt").read_text(encoding="utf-8") == "The second version.\n"
    (kept,) = (tmp_path / "trash").glob("*/report.txt")  # under its own name: `rag add` of it brings it back
    assert "first version" in kept.read_text(encoding="utf-8")


def test_two_files_of_one_name_in_one_add_keep_the_first_and_say_why(seeds, tmp_path):
    first, second = incoming(tmp_path, "x.txt", "The first x."), incoming(tmp_path, "x.txt", "The second x.")
    change = add_files(seeds, [first, second], tmp_path / "trash")
    assert change.added == ["x.txt"] and change.updated == []
    assert (seeds / "x.txt").read_text(encoding="utf-8") == "The first x."
    assert change.skipped == [f"{second}: another file named x.txt comes before it in this add"]


def test_a_file_the_folder_holds_unchanged_is_not_replaced_by_a_second_of_its_name_in_the_same_add(seeds, tmp_path):
    """The first, the same as the folder's, was "unchanged"; the second then replaced it without a word."""
    same = incoming(tmp_path, "report.txt", (seeds / "report.txt").read_text(encoding="utf-8"))
    other = incoming(tmp_path, "report.txt", "Another report.\n")
    change = add_files(seeds, [same, other], tmp_path / "trash")
    assert (change.unchanged, change.updated) == (["report.txt"], [])
    assert change.skipped == [f"{other}: another file named report.txt comes before it in this add"]
    assert "first version" in (seeds / "report.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("there, added", [("a.md.txt", "a.md"), ("a.md", "a.md.txt"), ("a.txt", "a.TXT"),
                                          ("a.md.TXT", "a.md")])
def test_a_file_whose_article_id_another_file_has_is_refused_and_said(seeds, tmp_path, there, added):
    (seeds / there).write_text("# Already here\n\nThe article.\n", encoding="utf-8")
    change = add_files(seeds, [incoming(tmp_path, added, "# New\n\nAnother article.\n")], tmp_path / "trash")
    assert change.added == [] and not (seeds / added).exists()
    assert len(change.skipped) == 1 and there in change.skipped[0] and "rename" in change.skipped[0]


@pytest.mark.parametrize("there, there_text, added, added_text", [
    ("feed.jsonl#a.txt", "The mayor resigned.", "feed.jsonl", '{"id": "a", "text": "The river burst its banks."}\n'),
    ("feed.jsonl", '{"id": "a", "text": "The river burst its banks."}\n', "feed.jsonl#a.txt", "The mayor resigned.")])
def test_a_file_whose_article_id_is_a_json_lines_records_is_refused_either_way(seeds, tmp_path, there, there_text,
                                                                                 added, added_text):
    """A .txt named "feed.jsonl#a" gives the id of feed.jsonl's record a: one of the two was
    silently left out of the index while the add said it had added the file."""
    (seeds / there).write_text(there_text, encoding="utf-8")
    given = incoming(tmp_path, added, added_text)
    change = add_files(seeds, [given], tmp_path / "trash")
    assert change.added == [] and not (seeds / added).exists()
    assert change.skipped == [f"{given}: its article id 'feed.jsonl#a' is that of {there}, already in {seeds}; "
                              "rename one of them"]


def test_json_lines_records_never_clash_with_another_files_article(seeds, tmp_path):
    (seeds / "feed.jsonl.txt").write_text("A text file.", encoding="utf-8")  # its id is "feed.jsonl"
    change = add_files(seeds, [incoming(tmp_path, "feed.jsonl", '{"id": "1", "text": "A record."}\n')], tmp_path / "trash")
    assert change.added == ["feed.jsonl"]  # its records are feed.jsonl#1, …


def test_a_file_refused_does_not_keep_out_a_sound_one_of_the_same_name(seeds, tmp_path):
    empty, sound = incoming(tmp_path, "x.txt", ""), incoming(tmp_path, "x.txt", "A sound article.")
    change = add_files(seeds, [empty, sound], tmp_path / "trash")
    assert change.added == ["x.txt"] and (seeds / "x.txt").read_text(encoding="utf-8") == "A sound article."


def test_an_edit_whose_old_file_cannot_be_kept_leaves_both_where_they_were(seeds, tmp_path):
    (tmp_path / "not-a-folder").write_text("", encoding="utf-8")
    with pytest.raises(RagError, match="cannot put report.txt into"):
        add_files(seeds, [incoming(tmp_path, "report.txt", "The second version.\n")], tmp_path / "not-a-folder" / "trash")
    assert "first version" in (seeds / "report.txt").read_text(encoding="utf-8")
    assert sorted(os.listdir(seeds)) == ["report.txt"]  # no staged copy left behind


def test_an_article_whose_name_is_as_long_as_a_name_can_be_is_added_and_replaced(seeds, tmp_path):
    """Its staged copy and its name in the trash would be longer than the 255 bytes a name may have."""
    name = "новости-" * 16 + "x.txt"  # 245 bytes
    assert len(name.encode()) == 245
    added = add_files(seeds, [incoming(tmp_path, name, "The first version.\n")], tmp_path / "trash")
    updated = add_files(seeds, [incoming(tmp_path, name, "The second version.\n")], tmp_path / "trash")
    assert (added.added, updated.updated) == ([name], [name])
    assert (seeds / name).read_text(encoding="utf-8") == "The second version.\n"
    (kept,) = (tmp_path / "trash").glob(f"*/{name}")
    assert kept.read_text(encoding="utf-8") == "The first version.\n"
    assert sorted(os.listdir(seeds)) == sorted(["report.txt", name])


def test_a_folder_added_says_what_in_it_is_not_read(seeds, tmp_path):
    folder = tmp_path / "archive"
    (folder / "2023" / "06").mkdir(parents=True)
    (folder / "2023" / "06" / "story.txt").write_text("A story kept in a subfolder.\n", encoding="utf-8")
    (folder / "notes.json").write_text("{}", encoding="utf-8")
    (folder / ".draft.md").write_text("# Draft\n\nNot yet.\n", encoding="utf-8")
    (folder / "kept.txt").write_text("An article.\n", encoding="utf-8")
    os.mkfifo(folder / "pipe.txt")
    (folder / "dangling.txt").symlink_to(folder / "gone.txt")
    (folder / os.fsdecode(b"caf\xe9.txt")).write_text("Latin-1 named.\n", encoding="utf-8")
    change = add_files(seeds, [folder], tmp_path / "trash")
    assert change.added == ["kept.txt"]
    assert sorted(change.skipped) == [f"{folder}/: {why}" for why in (  # the folder as given, not only its name
        "1 left out, hidden file, not read: .draft.md",
        "1 left out, its file name is not UTF-8 text; rename it to add it: caf\ufffd.txt",
        "1 left out, not a kind of file rag reads (.txt, .md, .markdown, .html, .htm, .jsonl): notes.json",
        "1 left out, subfolder(s), not read (add each folder): 2023",
        "2 left out, not a regular file (a pipe, device, socket or broken link): dangling.txt, pipe.txt")]
    assert change.skipped_files == 6  # files, not lines: the summary said "skipped 5"
    assert "skipped 6" in change.summary(tmp_path / "trash", 1, 1)


def test_a_folder_with_no_article_file_in_it_is_said_not_passed_over(seeds, tmp_path):
    empty, hidden_only = tmp_path / "emptyin", tmp_path / "hidden"
    empty.mkdir()
    hidden_only.mkdir()
    (hidden_only / ".DS_Store").write_bytes(b"\0")
    change = add_files(seeds, [empty, hidden_only], tmp_path / "trash")
    assert change.skipped == [f"{empty}/: no article files in it", f"{hidden_only}/: no article files in it"]
    assert change.added == [] and change.skipped_files == 2  # so rag add exits 1, as a script must see


def test_a_pipe_named_to_rag_add_is_skipped_saying_why_and_the_rest_added(seeds, tmp_path):
    pipe = tmp_path / "pipe.txt"
    os.mkfifo(pipe)
    change = add_files(seeds, [pipe, incoming(tmp_path, "new.txt", "A new article.")], tmp_path / "trash")
    assert change.added == ["new.txt"] and change.skipped == [f"{pipe}: not a regular file (a pipe, device, socket or broken link)"]


def test_files_read_for_an_archive_keep_the_first_of_one_article_id_and_say_why(tmp_path):
    """The Milvus archive has no folder to refuse a clash in: two files giving one id in one
    add would overwrite each other there."""
    from rag.archive import read_files

    first, second, third = (incoming(tmp_path, "story.md", "# Story\n\nA baby giraffe named Tumi.\n"),
                            incoming(tmp_path, "story.md", "# Story\n\nThe ferry was cancelled.\n"),
                            incoming(tmp_path, "story.md.txt", "The museum will reopen.\n"))
    documents, skipped = read_files([first, second, third])
    assert [(d.doc_id, d.path) for d in documents] == [("story.md", str(first))]
    assert len(skipped) == 2 and all("its article id 'story.md' is that of" in line for line in skipped)


def test_an_edit_killed_before_the_new_copy_is_swapped_in_leaves_the_article_in_place(seeds, tmp_path, monkeypatch):
    """The replaced file was moved to the trash first: killed then, the article was out of the
    folder (and out of the index at the next start) until added again."""
    def killed(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(archive.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        add_files(seeds, [incoming(tmp_path, "report.txt", "The second version.\n")], tmp_path / "trash")
    assert "first version" in (seeds / "report.txt").read_text(encoding="utf-8")
    assert sorted(os.listdir(seeds)) == ["report.txt"] and not list((tmp_path / "trash").rglob("*.txt"))  # no copy left


def test_a_copy_stopped_half_made_is_taken_away(seeds, tmp_path, monkeypatch):
    """A Ctrl-C while a file was copied left ".rag-add.<hash>.<pid>.tmp" in the articles folder."""
    def stopped_half_way(source, target):
        Path(target).write_text("The second", encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(archive.shutil, "copyfile", stopped_half_way)
    with pytest.raises(KeyboardInterrupt):
        add_files(seeds, [incoming(tmp_path, "new.txt", "The second article.\n")], tmp_path / "trash")
    assert sorted(os.listdir(seeds)) == ["report.txt"]


def test_an_export_replaced_by_one_without_some_of_its_records_says_which_articles_go(seeds, tmp_path):
    """A weekly export added under last week's name took 45 articles out of the index, said only
    inside the progress line; the add said "updated 1"."""
    (seeds / "cms-export.jsonl").write_text("".join(f'{{"id": "w1-{n}", "text": "Story {n}."}}\n' for n in range(3)),
                                            encoding="utf-8")
    change = add_files(seeds, [incoming(tmp_path, "cms-export.jsonl", '{"id": "w2-0", "text": "A new story."}\n')],
                       tmp_path / "trash")
    assert change.updated == ["cms-export.jsonl"] and change.dropped == [f"cms-export.jsonl#w1-{n}" for n in range(3)]
    assert change.what_changed(tmp_path / "trash") == (
        "files: added 0, updated 1, unchanged 0, skipped 0 (removed cms-export.jsonl#w1-0, cms-export.jsonl#w1-1, "
        "cms-export.jsonl#w1-2, which the files that replaced theirs no longer hold) (the file taken out is kept as "
        f"{change.kept[0]})")
    assert change.kept[0].parent.parent == tmp_path / "trash" and change.kept[0].name == "cms-export.jsonl"  # rag add undoes it


def test_a_folder_in_the_way_or_one_that_cannot_be_listed_is_said_not_an_unexpected_error(seeds, tmp_path, monkeypatch):
    (seeds / "notes.txt").mkdir()
    given = incoming(tmp_path, "notes.txt", "An article.")
    change = add_files(seeds, [given], tmp_path / "trash")
    assert change.added == [] and change.skipped == [f"{given}: {seeds / 'notes.txt'} is a folder; rename one of them"]
    locked = tmp_path / "locked"
    locked.mkdir()
    real = type(locked).iterdir

    def refused(self):
        if self == locked:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(type(locked), "iterdir", refused)
    change = add_files(seeds, [locked], tmp_path / "trash")
    assert change.skipped == [f"{locked}/: cannot be listed (Permission denied)"]


def test_a_warning_on_an_added_article_is_no_skipped_record(seeds, tmp_path):
    """The article is read (undated, said so): `rag add` must not exit 1 for it."""
    change = add_files(seeds, [incoming(tmp_path, "d.txt", " date March 15, 2024 The council met.\n"),
                               incoming(tmp_path, "f.jsonl", '{"id": "a", "date": "2021-02-30", "text": "It rained."}\n'
                                                              '{"id": "b", "text": ""}\n{"id": "c", "text": 42}\n')],
                       tmp_path / "trash")
    assert change.added == ["d.txt", "f.jsonl"] and change.skipped == []
    assert change.records_skipped == ["f.jsonl line 2: no text", "f.jsonl line 3: its text is a number, not a string"]
    assert change.what_changed(tmp_path / "trash").startswith("files: added 2, updated 0, unchanged 0, skipped 0; "
                                                              "2 JSON Lines records skipped")


def test_an_edit_that_cannot_be_swapped_in_leaves_the_old_file_and_nothing_in_the_trash(seeds, tmp_path, monkeypatch):
    def refused(source, target):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(archive.os, "replace", refused)
    with pytest.raises(RagError, match="Operation not permitted; the report.txt there is as it was"):
        add_files(seeds, [incoming(tmp_path, "report.txt", "The second version.\n")], tmp_path / "trash")
    assert "first version" in (seeds / "report.txt").read_text(encoding="utf-8")
    assert not list((tmp_path / "trash").glob("*/report.txt")) and sorted(os.listdir(seeds)) == ["report.txt"]
    assert not (tmp_path / "trash").exists()  # nor an empty folder of the time it would have been kept under


def test_a_removed_symlink_is_kept_as_its_text_so_adding_it_back_restores_the_article(seeds, tmp_path):
    """Moved as it was, a relative link led nowhere from the trash, and `rag add` of it failed."""
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "alias.txt").symlink_to("report.txt")  # relative, to another article of the folder
    corpus = load_corpus(seeds)
    remove_documents(seeds, ["alias"], corpus.documents, tmp_path / "trash")
    assert not (seeds / "alias.txt").exists() and not (seeds / "alias.txt").is_symlink()
    assert (seeds / "report.txt").read_text(encoding="utf-8") == corpus.documents["report"].text  # the target stays
    (kept,) = (tmp_path / "trash").glob("*/alias.txt")
    assert not kept.is_symlink() and kept.read_text(encoding="utf-8") == corpus.documents["alias"].text
    assert add_files(seeds, [kept], tmp_path / "trash").added == ["alias.txt"]


def test_a_json_lines_file_replaced_in_the_same_add_gives_up_the_ids_of_its_old_records(seeds, tmp_path):
    (seeds / "feed.jsonl").write_text('{"id": "a", "text": "Record a."}\n{"id": "b", "text": "Record b."}\n', encoding="utf-8")
    change = add_files(seeds, [incoming(tmp_path, "feed.jsonl", '{"id": "b", "text": "Record b."}\n'),
                               incoming(tmp_path, "feed.jsonl#a.txt", "Now a file of its own.")], tmp_path / "trash")
    assert change.updated == ["feed.jsonl"] and change.added == ["feed.jsonl#a.txt"] and change.skipped == []


def test_rag_add_of_the_folder_it_runs_in_names_it(seeds, tmp_path, monkeypatch):
    empty = tmp_path / "inbox"
    empty.mkdir()
    monkeypatch.chdir(empty)
    from pathlib import Path

    assert add_files(seeds, [Path(".")], tmp_path / "trash").skipped == ["inbox/: no article files in it"]


def test_removing_many_articles_names_how_many_and_the_first_few(seeds, tmp_path):
    """440 ids removed were said on one line of 16,000 characters."""
    from rag.archive import remove_documents
    from rag.corpus import NAMED, load_corpus

    for n in range(12):
        (seeds / f"story{n:02}.txt").write_text(f"Story {n} of the day.\n", encoding="utf-8")
    documents = load_corpus(seeds).documents
    few = remove_documents(seeds, ["story00", "story01"], documents, tmp_path / "trash")
    assert few.what_changed(tmp_path / "trash").startswith("removed story00, story01 (files taken out are kept in")
    many = remove_documents(seeds, [f"story{n:02}" for n in range(2, 12)], documents, tmp_path / "trash")
    said = many.what_changed(tmp_path / "trash")
    assert said.startswith("removed 10 articles: " + ", ".join(f"story{n:02}" for n in range(2, 2 + NAMED)) + ", …")
    assert sorted(os.listdir(seeds)) == ["report.txt"]


@pytest.mark.parametrize("given", [["feed.jsonl"], ["feed.jsonl#a", "feed.jsonl#b"]])
def test_a_json_lines_file_is_removed_whole_by_its_name_or_all_its_records_but_not_one_record(seeds, tmp_path, given):
    """A whole CMS export could not be taken out: each record was refused as "one record of" it."""
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "feed.jsonl").write_text('{"id": "a", "text": "First."}\n{"id": "b", "text": "Second."}\n', encoding="utf-8")
    documents = load_corpus(seeds).documents
    with pytest.raises(RagError, match=r"feed.jsonl#a is one record of feed.jsonl: edit that file to remove it "
                                       r"\(or remove feed.jsonl whole, by its name\); nothing was removed"):
        remove_documents(seeds, ["feed.jsonl#a"], documents, tmp_path / "trash")
    change = remove_documents(seeds, given, documents, tmp_path / "trash")
    assert change.removed == ["feed.jsonl#a", "feed.jsonl#b"] and sorted(os.listdir(seeds)) == ["report.txt"]
    assert [kept.name for kept in (tmp_path / "trash").glob("*/*")] == ["feed.jsonl"]


def test_an_id_given_without_the_suffix_it_keeps_is_named(seeds, tmp_path):
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "riverton.md").write_text("# Title\n\nRiverton won.\n", encoding="utf-8")
    with pytest.raises(RagError, match=r"no article 'riverton' in .*\(rag remove takes article ids: that file's is 'riverton.md'\)"):
        remove_documents(seeds, ["riverton"], load_corpus(seeds).documents, tmp_path / "trash")


def test_a_json_lines_files_name_without_its_suffix_is_named_whole_and_no_skipped_record_is_blamed(seeds, tmp_path):
    """"rag remove feed" was told of a record skipped in feed.jsonl, as if that were why."""
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "feed.jsonl").write_text('{"id": "a", "text": "First."}\n{"id": "b", "text": "Second."}\nnot json\n',
                                      encoding="utf-8")
    corpus = load_corpus(seeds)
    assert any(reason.startswith("feed.jsonl line 3: ") for reason in corpus.skipped)
    with pytest.raises(RagError) as raised:
        remove_documents(seeds, ["feed"], corpus.documents, tmp_path / "trash", corpus.skipped)
    assert str(raised.value) == (f"no article 'feed' in {seeds} (to remove all the records of feed.jsonl, give that name); "
                                 "nothing was removed")


def test_a_json_lines_file_given_with_one_of_its_records_is_removed_once(seeds, tmp_path):
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "feed.jsonl").write_text('{"id": "a", "text": "First."}\n{"id": "b", "text": "Second."}\n', encoding="utf-8")
    change = remove_documents(seeds, ["feed.jsonl", "feed.jsonl#a"], load_corpus(seeds).documents, tmp_path / "trash")
    assert change.removed == ["feed.jsonl#a", "feed.jsonl#b"]


def test_many_files_are_said_before_they_are_read_and_copied(seeds, tmp_path, monkeypatch):
    folder = tmp_path / "incoming"
    folder.mkdir()
    for n in range(3):
        (folder / f"story{n}.txt").write_text(f"Story number {n}.", encoding="utf-8")
    said = []
    add_files(seeds, [folder], tmp_path / "trash", on_status=said.append)
    assert said == []  # a few files: nothing to wait for
    monkeypatch.setattr(archive, "SAYS_IT_COPIES_FROM", 3)
    (folder / "story3.txt").write_text("Story number 3.", encoding="utf-8")
    change = add_files(seeds, [folder], tmp_path / "trash", on_status=said.append)
    assert said == [f"reading and copying 4 article files into {seeds}…"] and change.added == ["story3.txt"]


def test_a_path_that_is_not_there_is_skipped_and_the_others_are_added(seeds, tmp_path):
    """A typo in one of many names stopped the whole add, and said nothing of the others."""
    given = [incoming(tmp_path, "one.txt", "The first article."), tmp_path / "typo.txt",
             incoming(tmp_path, "two.txt", "The second article.")]
    change = add_files(seeds, given, tmp_path / "trash")
    assert change.added == ["one.txt", "two.txt"]
    assert change.skipped == [f"{tmp_path / 'typo.txt'}: not found"] and change.skipped_files == 1


def test_a_file_given_twice_is_one_file(seeds, tmp_path, monkeypatch):
    story = incoming(tmp_path, "story.txt", "A story.")
    monkeypatch.chdir(story.parent)
    change = add_files(seeds, [story, story.relative_to(story.parent), story.parent],
                       tmp_path / "trash")
    assert change.added == ["story.txt"] and change.unchanged == [] and change.skipped == []


def test_add_says_a_file_it_skips_as_the_folder_does_and_names_each_file_as_given(seeds, tmp_path):
    """`rag add` said "notes.docx: not an article format" where `rag index` says "not a kind of
    file rag reads", and named a skipped file by its name but a missing one by its path."""
    from rag.corpus import load_corpus

    new = tmp_path / "new"
    new.mkdir()
    (new / "notes.docx").write_bytes(b"PK\3\4")
    change = add_files(seeds, [new / "notes.docx", new / "missing.txt"], tmp_path / "trash")
    (seeds / "notes.docx").write_bytes(b"PK\3\4")
    (read_by_the_folder,) = load_corpus(seeds).skipped
    assert read_by_the_folder.startswith("notes.docx: ")
    assert change.skipped == [f"{new / 'notes.docx'}: {read_by_the_folder.partition(': ')[2]}",
                              f"{new / 'missing.txt'}: not found"]


def unwritable(monkeypatch, folder):
    """`folder` as a user without write permission sees it (the tests may run as root, whom chmod
    does not stop): no file in it can be renamed or unlinked, and os.access says so."""
    real_rename, real_unlink, real_access = os.rename, os.unlink, os.access

    def inside(path) -> bool:
        return os.path.dirname(os.path.abspath(path)) == str(folder)

    def rename(source, target, **kwargs):
        if inside(source) or inside(target):
            raise PermissionError(13, "Permission denied", str(source), str(target))
        return real_rename(source, target, **kwargs)

    def unlink(path, **kwargs):
        if inside(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_unlink(path, **kwargs)

    def access(path, mode, **kwargs):
        return False if os.path.abspath(path) == str(folder) and mode & os.W_OK else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "access", access)


def test_a_remove_from_a_folder_that_cannot_be_written_leaves_nothing_in_the_trash_and_blames_the_folder(seeds, tmp_path,
                                                                                                          monkeypatch):
    """It said "cannot move …/ferry.txt to …/removed: Permission denied" and left a copy in
    removed/<time>/ while the article stayed in the folder: two copies, and the wrong folder blamed."""
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "ferry.txt").write_text("The ferry leaves at ten.", encoding="utf-8")
    documents = load_corpus(seeds).documents
    unwritable(monkeypatch, seeds)
    trash = tmp_path / "index" / "removed"
    with pytest.raises(RagError, match=f"^cannot move ferry.txt out of the articles folder {re.escape(str(seeds))}: "
                                       "Permission denied; nothing was removed$"):
        remove_documents(seeds, ["ferry"], documents, trash)
    assert sorted(os.listdir(seeds)) == ["ferry.txt", "report.txt"]
    assert not trash.exists()  # no copy, and no empty folder named by the time


def renames_across_filesystems(monkeypatch, folder: Path) -> None:
    """A file of `folder` is renamed elsewhere as if onto another filesystem: EXDEV, so a move is a copy."""
    real_rename = os.rename

    def across(source, target, **kwargs):
        if os.path.dirname(os.path.abspath(source)) == str(folder):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(source), str(target))
        return real_rename(source, target, **kwargs)

    monkeypatch.setattr(os, "rename", across)


def test_a_remove_across_filesystems_onto_a_full_disk_leaves_no_part_of_the_article_in_the_trash(seeds, tmp_path,
                                                                                                   monkeypatch):
    """A copy that fails half-way (ENOSPC) left the part written in the trash, for `rag add` to bring back cut short."""
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "ferry.txt").write_text("The ferry leaves at ten.", encoding="utf-8")
    documents = load_corpus(seeds).documents

    def half_then_full(source, target, **kwargs):
        open(target, "w", encoding="utf-8").write("The ferry")
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    renames_across_filesystems(monkeypatch, seeds)
    monkeypatch.setattr(shutil, "copy2", half_then_full)
    trash = tmp_path / "removed"
    with pytest.raises(RagError, match="No space left on device"):
        remove_documents(seeds, ["ferry"], documents, trash)
    assert (seeds / "ferry.txt").read_text(encoding="utf-8") == "The ferry leaves at ten." and not trash.exists()


def test_a_remove_across_filesystems_whose_article_cannot_be_unlinked_takes_its_copy_back(seeds, tmp_path, monkeypatch):
    """Across filesystems a move is a copy, then an unlink: an unlink refused leaves the article in
    its folder and nothing in the trash (a crash between the two leaves it in both, never in neither)."""
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "ferry.txt").write_text("The ferry leaves at ten.", encoding="utf-8")
    documents = load_corpus(seeds).documents
    real_unlink = os.unlink

    def immutable(path, **kwargs):  # the folder may be written, the file not (chattr +i)
        if os.path.abspath(path) == str(seeds / "ferry.txt"):
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_unlink(path, **kwargs)

    renames_across_filesystems(monkeypatch, seeds)
    monkeypatch.setattr(os, "unlink", immutable)
    trash = tmp_path / "removed"
    with pytest.raises(RagError, match=f"^cannot move ferry.txt out of the articles folder {re.escape(str(seeds))}: "
                                       "Operation not permitted; nothing was removed$"):
        remove_documents(seeds, ["ferry"], documents, trash)
    assert (seeds / "ferry.txt").read_text(encoding="utf-8") == "The ferry leaves at ten." and not trash.exists()
    monkeypatch.setattr(os, "unlink", real_unlink)
    remove_documents(seeds, ["ferry"], documents, trash)  # across filesystems, when it can: copied whole, then unlinked
    (kept,) = trash.glob("*/ferry.txt")
    assert kept.read_text(encoding="utf-8") == "The ferry leaves at ten." and sorted(os.listdir(seeds)) == ["report.txt"]


def test_a_remove_whose_trash_cannot_be_written_blames_the_trash(seeds, tmp_path):
    from rag.archive import remove_documents
    from rag.corpus import load_corpus

    (seeds / "ferry.txt").write_text("The ferry leaves at ten.", encoding="utf-8")
    (tmp_path / "not-a-folder").write_text("", encoding="utf-8")
    with pytest.raises(RagError, match=r"^cannot move .*ferry\.txt to .*not-a-folder/removed: .*; nothing was removed$"):
        remove_documents(seeds, ["ferry"], load_corpus(seeds).documents, tmp_path / "not-a-folder" / "removed")
    assert sorted(os.listdir(seeds)) == ["ferry.txt", "report.txt"]


def test_a_file_there_that_cannot_be_read_is_a_skip_that_says_why_not_an_unexpected_error(seeds, tmp_path, monkeypatch):
    """Comparing it with the one given was outside the copy's error handling: "unexpected error: PermissionError"."""
    import pathlib

    real = pathlib.Path.read_bytes

    def unreadable_there(path):
        if path.parent == seeds:
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(pathlib.Path, "read_bytes", unreadable_there)
    given = incoming(tmp_path, "report.txt", "The second version.\n")
    change = add_files(seeds, [given], tmp_path / "trash")
    assert change.skipped == [f"{given}: cannot compare it with {seeds / 'report.txt'}: Permission denied"]
    assert "first version" in (seeds / "report.txt").read_text(encoding="utf-8")


def test_a_folder_given_as_a_relative_path_or_as_dot_is_named_as_given(seeds, tmp_path, monkeypatch):
    """`rag add --seeds news x/y/news` said "news/: 1 left out …", the seeds folder's name too."""
    (tmp_path / "x" / "news").mkdir(parents=True)
    (tmp_path / "x" / "news" / "notes.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "x")
    change = add_files(seeds, [Path("news"), Path(".")], tmp_path / "trash")
    kinds = "not a kind of file rag reads (.txt, .md, .markdown, .html, .htm, .jsonl)"
    assert change.skipped == [f"news/: 1 left out, {kinds}: notes.json",
                              "x/: 1 left out, subfolder(s), not read (add each folder): news"]


def test_a_file_skipped_takes_no_name_from_a_later_one(seeds, tmp_path):
    """The second of two files named notes.txt was told "another file named notes.txt comes
    before it", though the first, skipped, took nothing."""
    (seeds / "notes.txt").mkdir()  # a folder in the way of the first
    first = incoming(tmp_path, "notes.txt", "First notes.\n")
    second = incoming(tmp_path, "notes.txt", "Second notes.\n")
    change = add_files(seeds, [first, second], tmp_path / "trash")
    assert [line.split(": ", 1)[1] for line in change.skipped] == [f"{seeds / 'notes.txt'} is a folder; rename one of them"] * 2
