"""`rag add` and `rag remove`: the seeds folder is the archive, so adding copies files into it
and removing moves them out (into the index folder's `removed/`, never deleted); the index then
catches up incrementally. Each file lands by an atomic rename, and one archive change runs at a
time (a lock in the index folder), so two `rag add` calls never interleave."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rag.converters import NOT_AN_ARTICLE_KIND, converter_for
from rag.corpus import NAMED, Corpus, first_names, ids_in_file, ids_of_file, load_corpus, name_is_text, not_a_folder_message, printable, read_documents, why_skipped
from rag.errors import RagError
from rag.schema import NOTE, Document
from rag.leftovers import fsync_dir, remove_abandoned
from rag.wording import counted

COPY_PREFIX = ".rag-add."  # the half-made copies of `rag add`, and only they, start with it
SAYS_IT_COPIES_FROM = 500  # files: reading and copying them takes seconds (3,000 news articles: about 3 s)


@dataclass
class FolderChange:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: why"; one line may stand for a folder's many files
    skipped_files: int = 0  # how many files the lines stand for
    removed: list[str] = field(default_factory=list)
    # articles an updated file no longer holds (a JSON Lines export replaced by one without them)
    dropped: list[str] = field(default_factory=list)
    # records left out of the JSON Lines files put in place ("name line N: why"): the index
    # says them as it reads the folder, so they are counted here, not said twice
    records_skipped: list[str] = field(default_factory=list)
    read_before: Corpus | None = None  # the folder as read before the change: the index reads again only what changed
    kept: list[Path] = field(default_factory=list)  # where each file taken out of the folder is now

    def skip(self, why: str, files: int = 1) -> None:
        self.skipped.append(why)
        self.skipped_files += files

    def summary(self, trash: Path, passages: int, articles: int) -> str:
        """One line for the user: what changed, where removed or replaced files are kept, the index."""
        return f"{self.what_changed(trash)}; index: {counted(passages, 'passage')} from {counted(articles, 'article')}"

    def what_changed(self, trash: Path) -> str:
        """What changed in the folder, and where removed or replaced files are kept."""
        parts = []
        if self.removed:
            parts.append(removed_said(self.removed))
        else:
            # files, not records: a JSON Lines file's unreadable records are said on their own lines
            count = len(self.records_skipped)
            records = f"; {counted(count, 'JSON Lines record')} skipped" if count else ""
            parts.append(f"files: added {len(self.added)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}, "
                         f"skipped {self.skipped_files}{records}")
        if self.dropped:
            parts.append(f"({removed_said(self.dropped)}, which the files that replaced theirs no longer hold)")
        if self.removed or self.updated:
            parts.append(f"({self._where_kept(trash)})")
        return " ".join(parts)

    def _where_kept(self, trash: Path) -> str:
        """Where the files taken out are: the file, or their folder, so that `rag add` of it undoes the change."""
        if len(self.kept) == 1:
            return f"the file taken out is kept as {self.kept[0]}"
        folders = {path.parent for path in self.kept}
        return f"files taken out are kept in {folders.pop() if len(folders) == 1 else trash}"

    @property
    def moved_any(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def removed_said(doc_ids: list[str]) -> str:
    """"removed a, b", or with more than a few, how many and the first of them (the ids removed
    from an archive can be thousands: each was named on one line)."""
    if len(doc_ids) <= NAMED:
        return f"removed {', '.join(doc_ids)}"
    return f"removed {len(doc_ids)} articles: {first_names(doc_ids)}"


@dataclass(frozen=True)
class Archive:
    """The seeds folder as an archive that articles are added to and removed from."""

    seeds_dir: Path
    index_dir: Path

    @classmethod
    def at(cls, seeds_dir: Path | None, index_dir: Path | None) -> Archive:
        from rag.pipeline import article_folders

        seeds_dir, index_dir = article_folders(seeds_dir, index_dir)
        if not seeds_dir.is_dir():
            raise RagError(not_a_folder_message(seeds_dir))
        return cls(seeds_dir, index_dir)

    @property
    def trash(self) -> Path:
        return self.index_dir / "removed"

    @contextlib.contextmanager
    def locked(self):
        """Held for a whole add or remove, index update included: concurrent calls wait their turn."""
        from rag.index import ARCHIVE_LOCK, IndexStore

        IndexStore(self.index_dir).prepare_for_writing()  # only ever in a folder that is (or becomes) a rag index
        with (self.index_dir / ARCHIVE_LOCK).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def add(self, paths: list[Path], change: FolderChange, on_status: Callable[[str], None] = lambda message: None) -> None:
        """`paths` copied in, `change` saying what moved as it moves (a stop then knows)."""
        from rag.index import IndexStore

        try:  # with the conversions its index keeps: a web page is not converted again
            before = IndexStore(self.index_dir).articles(self.seeds_dir)
        except RagError:  # no article in the folder yet: no id is taken
            before = None
        change.read_before = before
        add_files(self.seeds_dir, paths, self.trash, ids_and_files(before) if before else {}, on_status, change)

    def remove(self, doc_ids: list[str], change: FolderChange) -> None:
        """These articles' files moved to the trash, `change` saying what moved as it moves."""
        from rag.index import IndexStore

        articles = IndexStore(self.index_dir).articles(self.seeds_dir)
        change.read_before = articles
        remove_documents(self.seeds_dir, doc_ids, articles.documents, self.trash, articles.skipped, change)


def add_files(seeds_dir: Path, paths: list[Path], trash: Path, taken: dict[str, str] | None = None,
              on_status: Callable[[str], None] = lambda message: None, change: FolderChange | None = None) -> FolderChange:
    """Copy each article file (or the article files directly in each folder) into the seeds
    folder. A file of the same name with other content replaces it (an edit); the replaced
    file is kept in `trash`, since the seeds folder may hold the only copy. A file one of whose
    article ids another file gives (`taken`: id -> file name; read from the folder when not
    given) is refused: the folder would read only one of the two. Many files are said first
    (`on_status`), as reading and copying them takes a while before the embedding starts.
    `change` (a new one when not given) says what moved, file by file."""
    change = FolderChange() if change is None else change
    remove_abandoned(seeds_dir, f"{COPY_PREFIX}*.tmp")  # half copies of an add that was killed
    taken = dict(article_ids_in(seeds_dir) if taken is None else taken)
    ids_by_file: dict[str, list[str]] = {}  # the same map turned round: a replaced file's ids go in one step
    for doc_id, name in taken.items():
        ids_by_file.setdefault(name, []).append(doc_id)
    named: set[str] = set()  # the file names this add has taken
    files = _expand(paths, change)
    if len(files) >= SAYS_IT_COPIES_FROM:
        on_status(f"reading and copying {len(files):,} article files into {seeds_dir}…")
    for path in files:
        try:
            found, problems = read_documents(path)  # refuse what the corpus would skip, and say why now
        except ValueError as why:
            change.skip(f"{_as_given(path)}: {why}")
            continue
        if path.name in named:  # a second file would silently replace the first in the same add
            change.skip(f"{_as_given(path)}: another file named {path.name} comes before it in this add")
            continue
        held = next(((doc.doc_id, taken[doc.doc_id]) for doc in found if taken.get(doc.doc_id, path.name) != path.name),
                    None)
        if held:  # the folder would read only one of the two, and drop the other
            change.skip(f"{_as_given(path)}: its article id {held[0]!r} is that of {held[1]}, already in "
                        f"{seeds_dir}; rename one of them")
            continue
        change.records_skipped += [problem for problem in problems if not problem.startswith(NOTE)]  # not warnings
        put_in_place = _put_in_place(path, seeds_dir / path.name, trash, change)
        if put_in_place or path.name in change.unchanged:  # unchanged too: a later one of that name would replace it
            named.add(path.name)
        if put_in_place:
            held_before = ids_by_file.pop(path.name, ())
            change.dropped += sorted(set(held_before) - {doc.doc_id for doc in found})
            for doc_id in held_before:  # its old version's ids go
                del taken[doc_id]
            taken.update((doc.doc_id, path.name) for doc in found)
            ids_by_file[path.name] = [doc.doc_id for doc in found]
    return change


def _put_in_place(path: Path, target: Path, trash: Path, change: FolderChange) -> bool:
    """`path` copied to `target` (whole, or not at all), the file it replaces kept in `trash`;
    False when `target` already holds the same bytes."""
    if target.is_dir():  # os.replace cannot put a file there, and reading it as bytes fails
        change.skip(f"{_as_given(path)}: {target} is a folder; rename one of them")
        return False
    try:
        same = target.exists() and target.read_bytes() == path.read_bytes()
    except OSError as exc:  # the file there, or the one given, cannot be read (permissions)
        change.skip(f"{_as_given(path)}: cannot compare it with {target}: {exc.strerror}")
        return False
    if same:
        change.unchanged.append(path.name)
        return False
    staged = _staged_copy(path, target)
    kept = None
    try:
        if target.exists():  # only once the new copy is whole: the seeds folder may hold the only copy
            # copied, not moved: until os.replace swaps the new copy in, the article stays in place
            kept = _keep_in_trash(target, trash, copy=True)
        os.replace(staged, target)
    except BaseException as exc:  # a Ctrl-C too: no half-made copy left in the folder
        staged.unlink(missing_ok=True)
        if kept:  # the earlier file is still in place, unchanged: its copy in the trash would only mislead
            _take_back(kept)
        if not isinstance(exc, (OSError, RagError)):
            raise
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        unchanged = f"; the {path.name} there is as it was" if kept else ""
        raise RagError(f"cannot put {path.name} into {target.parent}: {why}{unchanged}") from None
    (change.updated if kept else change.added).append(path.name)
    change.kept += [kept] if kept else []
    return True


def _take_back(kept: Path) -> None:
    """A copy kept in the trash removed again, with the folders it made when nothing else is in them."""
    kept.unlink(missing_ok=True)
    _remove_if_empty(kept.parent, kept.parent.parent)


def _remove_if_empty(*folders: Path) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty (another file kept by this run or an earlier one), or not there
            folder.rmdir()


def article_ids_in(seeds_dir: Path) -> dict[str, str]:
    """ids_and_files of the seeds folder as it is read now ({} when it holds no article yet)."""
    try:
        return ids_and_files(load_corpus(seeds_dir))
    except RagError:
        return {}


def ids_and_files(corpus: Corpus) -> dict[str, str]:
    """Article id -> the name of the file that gives it (JSON Lines records included: a .txt
    named "feed.jsonl#a" gives record a's id)."""
    return {doc_id: Path(doc.path).name for doc_id, doc in corpus.documents.items()}


def read_files(paths: list[Path]) -> tuple[list[Document], list[str]]:
    """The articles of these files (or of the article files directly in these folders), and
    "name: why" for each that was skipped."""
    change = FolderChange()
    documents: dict[str, Document] = {}
    for path in _expand(paths, change):
        try:
            found, problems = read_documents(path)
        except ValueError as why:
            change.skipped.append(f"{_as_given(path)}: {why}")
            continue
        change.skipped += problems  # each names its file (and line) already
        for doc in found:  # one id is one article: a second would silently overwrite the first
            if doc.doc_id in documents:
                change.skipped.append(f"{_as_given(path)}: its article id {doc.doc_id!r} is that of {documents[doc.doc_id].path}, "
                                      "given first in this add")
            else:
                documents[doc.doc_id] = doc
    return list(documents.values()), change.skipped


def remove_documents(seeds_dir: Path, doc_ids: list[str], documents: dict, trash: Path,
                     skipped: list[str] = (), change: FolderChange | None = None) -> FolderChange:
    """Move the files of these articles out of the seeds folder into `trash`. Every id is
    checked before any file moves; `skipped` (Corpus.skipped) explains an id whose file was not
    read. `change` (a new one when not given) says what moved, file by file."""
    change = FolderChange() if change is None else change
    doc_ids = list(dict.fromkeys(doc_id for given in doc_ids for doc_id in _ids_meant(given, documents)))
    articles_in_file = Counter(d.path for d in documents.values())
    removed_of_file = Counter(documents[doc_id].path for doc_id in doc_ids if doc_id in documents)
    for doc_id in doc_ids:
        document = documents.get(doc_id)
        if document is None:
            raise RagError(f"no article {doc_id!r} in {seeds_dir}{_id_of_file(doc_id, documents)}"
                           f"{why_skipped(skipped, doc_id)}; nothing was removed")
        if removed_of_file[document.path] < articles_in_file[document.path]:
            name = Path(document.path).name
            raise RagError(f"{doc_id} is one record of {name}: edit that file to remove it (or remove {name} "
                           "whole, by its name); nothing was removed")
    if set(documents) <= set(doc_ids):  # checked before any file moves, as the ids are
        raise RagError(f"that would remove every article in {seeds_dir}, and an index needs at least one; "
                       "nothing was removed")
    for path in dict.fromkeys(documents[doc_id].path for doc_id in doc_ids):  # a JSON Lines file moves once
        try:
            change.kept.append(_keep_in_trash(Path(path), trash))
        except RagError as problem:  # what was removed before it, the caller says (with the command that goes on)
            if change.removed:
                raise
            raise RagError(f"{problem}; nothing was removed") from None
        change.removed += [doc_id for doc_id in doc_ids if documents[doc_id].path == path]
    return change


def _ids_meant(given: str, documents: dict) -> list[str]:
    """The article ids `given` stands for: itself, or, for the name of a JSON Lines file in the
    folder, each of its records (the whole file is removed)."""
    if given in documents or not given.lower().endswith(".jsonl"):
        return [given]
    return ids_in_file(given, documents) or [given]


def _id_of_file(given: str, documents: dict) -> str:
    """A hint for a file's path given where its article id belongs (`rag add` takes paths), or a
    JSON Lines file's name without its suffix (its records go by the whole name)."""
    ids = ids_of_file(given, documents)
    if len(ids) == 1:
        return f" (rag remove takes article ids: that file's is {ids[0]!r})"
    files = sorted({Path(documents[doc_id].path).name for doc_id in ids})
    return f" (to remove all the records of {files[0]}, give that name)" if len(files) == 1 else ""


def _keep_in_trash(path: Path, trash: Path, copy: bool = False) -> Path:
    """`path` moved (or copied) into a folder of its own in `trash` (named by the time), under its
    own name, so that `rag add` of the kept file brings the article back under its id (across
    filesystems too). A move or copy that fails leaves the article where it was and nothing in
    the trash, not even the folder. A symlink is kept as the text it leads to, and then
    unlinked: moved as it is, a relative link would lead nowhere from the trash, and the article
    could not come back."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = trash / stamp, 1
    try:
        while (folder / path.name).exists():
            n += 1
            folder = trash / f"{stamp}-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        kept = folder / path.name
        if copy:
            _copy_whole(path, kept)
        else:
            _move_out(path, kept)
    except OSError as exc:
        _remove_if_empty(folder, trash)
        if isinstance(exc, _StaysInFolder):  # the articles folder (or the file) cannot be changed, not the trash
            raise RagError(f"cannot move {path.name} out of the articles folder {path.parent}: {exc.strerror}") from None
        raise RagError(f"cannot {'copy' if copy else 'move'} {path} to {trash}: {exc.strerror}") from None
    return kept


class _StaysInFolder(OSError):
    """The article's file could not be taken out of its folder: a folder that cannot be written, or a file that cannot be unlinked."""


REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _move_out(path: Path, kept: Path) -> None:
    """`path` moved to `kept`: by one rename where it can be, so the article is in one place or the
    other, never both nor neither. Across filesystems (or for a symlink) it is copied whole and
    synced first, then unlinked; a crash between the two leaves it in both places, never in
    neither, and an unlink refused takes the copy back."""
    if not path.is_symlink():
        try:
            os.rename(path, kept)
            return
        except OSError as exc:
            if exc.errno in REFUSED and os.access(kept.parent, os.W_OK):  # the trash could be written: the folder is why
                raise _StaysInFolder(exc.errno, exc.strerror, str(path)) from None
            if exc.errno != errno.EXDEV:
                raise
    _copy_whole(path, kept)
    try:
        path.unlink()
    except OSError as exc:
        kept.unlink(missing_ok=True)  # the article is still in its folder: a copy in the trash would only mislead
        raise _StaysInFolder(exc.errno, exc.strerror, str(path)) from None


def _copy_whole(path: Path, kept: Path) -> None:
    """`path`'s bytes (what a symlink leads to) in `kept`, on disk before the caller goes on; no
    `kept` at all when the copy fails (a full disk): a part of an article, brought back by `rag
    add`, would be an article cut short."""
    try:
        shutil.copy2(path, kept)
        with kept.open("rb") as f:
            os.fsync(f.fileno())
    except BaseException:
        kept.unlink(missing_ok=True)
        raise
    fsync_dir(kept.parent)  # and the trash, which the folder named by the time is new in
    fsync_dir(kept.parent.parent)


def _expand(paths: list[Path], change: FolderChange) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += _articles_in(path, change)
        elif not (path.exists() or path.is_symlink()):  # a typo in one name: the others are still added
            change.skip(f"{_as_given(path)}: not found")
        elif why := _not_an_article_file(path):
            change.skip(f"{_as_given(path)}: {why}")
        else:
            files.append(path)
    unique: dict[str, Path] = {}  # one file given twice ("rag add a.txt ./a.txt", or a file and its folder) is one file
    for path in files:
        unique.setdefault(os.path.abspath(path), path)
    return list(unique.values())


def _as_given(path: Path) -> str:
    """A file `rag add` was given, as its skip lines name it: as it was given (a file of a folder
    given, as that folder's path and its name), so a mistyped folder shows, and two files of one
    name are told apart."""
    return printable(str(path))


def _not_an_article_file(path: Path) -> str | None:
    """Why the folder of articles would never read this file, or None."""
    if not name_is_text(path.name):
        return "its file name is not UTF-8 text; rename it to add it"
    if path.name.startswith("."):  # the articles folder never reads it: copying it in would add nothing
        return "hidden file, not read"
    if not converter_for(path):
        return NOT_AN_ARTICLE_KIND
    if not path.is_file():
        return "not a regular file (a pipe, device, socket or broken link)"
    return None


def _articles_in(folder: Path, change: FolderChange) -> list[Path]:
    """The article files directly in `folder`; what else is there is said, not silently left."""
    # as it was given, as files are ("x/y/news", not "news", which may be the seeds folder's name too);
    # "rag add ." by the folder's own name
    shown = printable(folder.resolve().name if str(folder) == "." else str(folder).rstrip("/") or "/")
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        change.skip(f"{shown}/: cannot be listed ({exc.strerror})")
        return []
    subfolders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    kept, left_out = [], {}
    for path in entries:
        if path in subfolders or (path.name.startswith(".") and not converter_for(path)):
            continue  # subfolders are said below; a hidden file that is no article (.DS_Store) is nobody's loss
        why = _not_an_article_file(path)
        if why is None:
            kept.append(path)
        else:
            left_out.setdefault(why, []).append(printable(path.name))
    if subfolders:
        left_out["subfolder(s), not read (add each folder)"] = [printable(p.name) for p in subfolders]
    for why, names in left_out.items():  # one line for all of a kind, with how many: a folder of 200 images is one line
        change.skip(f"{shown}/: {len(names)} left out, {why}: {first_names(names)}", len(names))
    if not kept and not left_out:  # empty, or hidden files only: a mistyped folder would pass unnoticed
        change.skip(f"{shown}/: no article files in it")
    return kept


def _staged_copy(source: Path, target: Path) -> Path:
    """`source` copied whole and synced beside `target`, under a hidden name of rag's own (never
    read as an article, and never a name a user's file would have), ready to be renamed into place."""
    # named by a hash of the article's name: the name itself may already be as long as a name can be
    digest = hashlib.sha256(target.name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    tmp = target.with_name(f"{COPY_PREFIX}{digest}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
    except BaseException as exc:  # a Ctrl-C too: no half-made copy left in the folder
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        raise RagError(f"cannot copy {source} into {target.parent}: {exc.strerror}") from None
    return tmp
