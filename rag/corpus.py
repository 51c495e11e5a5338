"""Articles on disk -> Documents -> sentence spans -> overlapping passages, all in file offsets."""
from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import itertools
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from rag.converters import CONVERTERS, FORMATS, NOT_AN_ARTICLE_KIND, conversion_key, converter_for
from rag.converters import text as plain_text
from rag.dates import DATE_ONLY, HEAD_LINES, story_begins
from rag.errors import RagError
from rag.limits import check_limits
from rag.schema import NOTE, Document, Passage

# A sentence ends at . ! or ? (plus closing quotes/brackets, and footnote marks as pages copied
# from the web keep them: "in 2020.[1] The") followed by space and a capital, digit or opening
# quote; a line break ends one too, unless it only wraps a paragraph (_wraps).
SENTENCE_END = re.compile(r"""[.!?]+["'”’)\]]*(?:\[\d{1,3}\])*(?=\s+["'“‘(\[]?[A-Z0-9])""")
# No sentence ends at these, though a capital or a digit follows: titles before a name ("Sen.
# Lindsey Graham"), months before a day ("Sept. 11"). "Inc.", "Co." and "a.m." are left out: a
# capital after them more often starts a new sentence than not.
ABBREVIATIONS = frozenset((
    "Mr.", "Mrs.", "Ms.", "Messrs.", "Dr.", "Prof.", "Rev.", "Hon.", "St.", "Mt.", "Ft.", "Jr.", "Sr.",
    "Sen.", "Sens.", "Rep.", "Reps.", "Gov.", "Pres.", "Amb.", "Supt.", "Det.", "Insp.",
    "Gen.", "Gens.", "Col.", "Lt.", "Maj.", "Brig.", "Adm.", "Cmdr.", "Sgt.", "Capt.", "Cpl.", "Pvt.",
    "Jan.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.", "Aug.", "Sep.", "Sept.", "Oct.", "Nov.", "Dec.",
    "No.", "vs.", "e.g.", "i.e.",
))
CAPITALISED = frozenset(word.upper() for word in ABBREVIATIONS if not word.isupper())
OPENING = r"(?:^|[\s(\[\"'“‘—–-])"  # what comes before a word: nothing, a space, a bracket, a quote or a dash
ACRONYM = re.compile(OPENING + r"(?:[A-Z]\.){2,}$")  # "the U.S. Army", "J.K. Rowling"
INITIAL = re.compile(OPENING + r"[A-Z]\.$")  # one capital letter: "John F.", "F. Scott Fitzgerald"
NEXT_INITIAL = re.compile(r"\s+[A-Z]\.")
NUMERALS = "IVX"  # after a capitalised word, more often a numeral than an initial ("World War I.")
# What follows a full stop without a new sentence starting: a news agency after a dateline
# ("BOULDER, Colo. (AP) —"), and after a time, its day or time zone ("at 2 p.m. Tuesday").
AGENCY = re.compile(r"\s+\((?:AP|Reuters|AFP|UPI|dpa)\)")
DAY_OR_ZONE = re.compile(r"\s+(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
                         r"|[ECMP][SD]?T|GMT|UTC|BST|CET)\b")
TIMES = frozenset(("a.m.", "p.m."))
LONGEST_WORD_ENDING = max(map(len, ABBREVIATIONS | CAPITALISED | TIMES))


def word_ending(words: Iterable[str]) -> re.Pattern:
    """One of these words at the end of the text searched, a whole word (no letter before it):
    one compiled search, since every sentence end of every article is checked."""
    alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
    return re.compile(rf"(?<![^\W\d_])(?:{alternatives})\Z")


TITLE_OR_MONTH = word_ending(ABBREVIATIONS | CAPITALISED)  # as written, or in a dateline's capitals ("ST. LOUIS —")
TIME = word_ending(TIMES)
# Which rules cut sentences: an index records it beside the chunking settings, so that passages
# cut by older rules are cut again. Raise it whenever the splitter cuts differently.
SENTENCE_RULES = 10  # 5: a sentence goes on across the line breaks of a hard-wrapped paragraph, and ends after a footnote mark; 6: also one ending in a colon; 7: a .txt's first date line is read past with its time ("2024-03-12 14:05"); 8: a line that only dates the article is no sentence; 9: only in the article's head, in more forms; 10: a .txt's first date line is read past whole when all of it dates the article ("Date: 2024-03-12, 14:05"), and Posted/Updated lines date it
# A line that only dates the article, as its head gives it ("Date: 2024-05-06", "Posted on May
# 6, 2024", "Mon 6 May 2024 14.05 BST", "2024-05-07 (updated 2024-05-08)"): no sentence, and no
# answer comes from it. Only in its head: its first HEAD_RUNS lines (a headline, a byline, a
# date or two) before one below the headline that ends a sentence; further down, "Date:
# 2024-06-10" is the story's own (a meeting's day).
HEAD_RUNS = HEAD_LINES
CITED_SENTENCE_CHARS = 1000  # a citation's sentence is cut around the answer beyond this
LINE = re.compile(r"[^\n]+")
# Wire copy, e-mail and fixed-width exports wrap paragraphs at 60 to 80 characters: the widest
# line of such a paragraph is in this range; a paragraph written on one line is wider.
WRAPPED_WIDTH = (40, 100)
LIST_ITEM = re.compile(r"[ \t]*(?:[-*•–—]|\d+[.)]|[a-z][.)]|\(\w{1,3}\))\s")  # "- ", "2. ", "b) ", "(iv) "
# "KABUL (Reuters) - ", "NEW YORK, Sept 3 (AP) — ", "KABUL — ": a story's first line; not "NATO, the", which wraps
DATELINE = re.compile(r"[ \t]*[A-Z][A-Z'.-]+(?: [A-Z][A-Z'.-]+)*(?:,[^\n(—–]{1,24}?)?(?: \([A-Za-z .]{2,20}\))? [-—–] ")
COLUMNS = re.compile(r"\S(?: {2,}|\t)\S")  # a table's gap between columns
PROSE_END = re.compile(r"""[.!?:;]["'”’)\]]*\s*$""")  # how a stretch of sentences ends (":" before a list)
MAX_ARTICLE_BYTES = 10_000_000  # a long news article is ~100 kB; anything far bigger is not one
SNIFF_BYTES = 8192  # how much is read to tell text from binary before reading a file whole


@dataclass(frozen=True)
class ChunkSettings:
    max_chars: int = field(default=600, metadata={"min": 50})
    overlap_sentences: int = field(default=1, metadata={"min": 0})

    def __post_init__(self):
        check_limits(self)

    def as_dict(self) -> dict:
        """What an index records of how its passages were cut: these settings and the sentence rules."""
        return asdict(self) | {"sentence_rules": SENTENCE_RULES}


@dataclass(frozen=True)
class Conversion:
    """What one converted (not .txt) file gave: its documents, and what in it was skipped and why."""
    key: str  # rag.converters.conversion_key: its bytes, and the converter that read them
    documents: list[Document]
    problems: list[str]


@dataclass(frozen=True)
class FileRead:
    """What one article file gave when it was read, and how it stood then: a later read of the
    folder takes it from here while that is unchanged."""
    signature: tuple[int, ...] | None  # size, modification and change times, inode, device (None: unknown)
    documents: list[Document]
    problems: list[str]
    key: str | None  # its conversion key (None for .txt, never converted)
    converted_now: bool  # converted by that read, not taken from the index


RACY_S = 2  # a file changed this close to its read may change again within its times' resolution (git's "racy" rule)


@dataclass(frozen=True)
class Corpus:
    directory: Path
    documents: dict[str, Document]
    skipped: list[str]  # human-readable reasons for files that were not loaded, and notes (NOTE) on some that were
    files: dict[str, FileRead] = field(default_factory=dict, repr=False, compare=False)  # file name -> its read
    # ids of the folder's articles that are not searched: an index that cannot be written answers
    # as it is, without those added or edited since (rag.assembly); they are no typo of a gold set
    not_searched: tuple[str, ...] = ()

    @property
    def converted(self) -> dict[str, Conversion]:
        """Converted (not .txt) file name -> what it gave."""
        return {name: Conversion(read.key, read.documents, read.problems) for name, read in self.files.items()
                if read.key is not None}

    @property
    def converted_now(self) -> tuple[str, ...]:
        """Those of them converted by this load, not taken from the index."""
        return tuple(name for name, read in self.files.items() if read.converted_now)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc_id in sorted(self.documents):
            digest.update(doc_id.encode() + b"\0" + self.documents[doc_id].text.encode() + b"\0")
        return digest.hexdigest()

    @property
    def date_range(self) -> tuple[str, str] | None:
        return date_range(d.date for d in self.documents.values())

    @property
    def undated(self) -> int:
        return count_undated(d.date for d in self.documents.values())


def date_range(dates: Iterable[str | None]) -> tuple[str, str] | None:
    """The first and last of these article dates (YYYY-MM-DD, None for an undated one); None
    when none is dated. /healthz asks it at every answer the page shows: no sort."""
    dated = [d for d in dates if d]
    return (min(dated), max(dated)) if dated else None


def count_undated(dates: Iterable[str | None]) -> int:
    """How many of these article dates are None: the articles a date filter leaves out whatever the range."""
    return sum(1 for d in dates if not d)


# (file name, conversion key) -> what it gave when converted before: converting an archive of
# web pages on every run would cost minutes, so the index keeps what each file gave
Known = Mapping[tuple[str, str], Conversion]


RECORD = re.compile(r" line \d+$")  # how a skipped JSON Lines record is named: "feed.jsonl line 3"


def why_skipped(skipped: list[str], doc_id: str) -> str:
    """" (name.txt: why it was skipped)" when the file that would have been article `doc_id` was
    skipped when the folder was read, else "". (Notes on files that were read are not skips.)"""
    for reason in skipped:
        name = reason.partition(": ")[0]
        if RECORD.search(name):  # a JSON Lines record skipped ("feed.jsonl line 3"): not the file
            continue
        if not reason.startswith(NOTE) and doc_id in (name, Path(name).stem):
            return f" ({reason})"
    return ""


def ids_of_file(name: str, documents: dict[str, Document]) -> list[str]:
    """The article ids the file of this name gave (one, or a JSON Lines file's records): for a
    file name given where an article id belongs. With no file of that name, those of a file
    named so but for the suffix its id keeps ("report" for report.md, whose id is "report.md")."""
    name = Path(name).name
    return ids_in_file(name, documents) or [doc_id for doc_id, doc in documents.items()
                                            if Path(doc.path).stem == name and doc_id != name]


def ids_in_file(name: str, documents: dict[str, Document]) -> list[str]:
    """The article ids the file of exactly this name gave."""
    return [doc_id for doc_id, doc in documents.items() if Path(doc.path).name == name]


def a_files_ids(name: str, documents: dict[str, Document]) -> str:
    """" (that file's article id is 'x')", or its records', when `name` is a file's name; else ""."""
    ids = ids_of_file(name, documents)
    if len(ids) == 1:
        return f" (that file's article id is {ids[0]!r})"
    return f" (that file's records are {first_names(ids)})" if ids else ""


def not_a_folder_message(path: Path) -> str:
    """Why `path` cannot be read as a folder of articles."""
    if path.is_file():
        return f"{path} is a file; --seeds takes the folder of articles (rag add copies files into one)"
    return f"articles folder not found: {path}"


def _entries(directory: Path) -> list[Path]:
    """What is in the folder of articles, sorted; a missing or unreadable folder is an error."""
    if not directory.is_dir():
        raise RagError(not_a_folder_message(directory))
    try:
        return sorted(directory.iterdir(), key=lambda path: path.name)  # as Paths sort, 4x faster (a second at 70k files)
    except OSError as exc:
        raise RagError(f"cannot read the articles folder {directory}: {exc.strerror or exc}") from None


def _no_articles(directory: Path, detail: str = "") -> RagError:
    return RagError(f"no readable articles ({FORMATS}; UTF-8) in {directory}{detail}")


def check_articles_folder(directory: Path) -> None:
    """What load_corpus would refuse at once (no folder, an unreadable one, no article file in
    it), found without reading or converting any article."""
    if not any(not p.name.startswith(".") and converter_for(p) for p in _entries(Path(directory))):
        raise _no_articles(directory)


def load_corpus(directory: Path, known: Known | None = None, earlier: Corpus | None = None) -> Corpus:
    """The articles directly in `directory`, one converter per suffix (rag.converters): .txt,
    .md, .html and .jsonl. Subfolders, hidden files and files of other kinds are not read (and
    are named in `skipped`); a symlink is read when it leads to a regular file, wherever that is.
    A file that stands as it did in `earlier` (a read of this folder moments before: `rag add`
    reads it for the ids it holds, then for the index) is taken from that read."""
    directory = Path(directory).absolute()  # a citation's source names the file wherever it is read from
    entries = _entries(directory)
    reads = earlier.files if earlier is not None and earlier.directory == directory else {}
    documents, skipped, subfolders, unread, files = {}, [], [], [], {}
    for path in entries:
        if path.name.startswith("."):
            if path.name.lower().endswith(tuple(CONVERTERS)):
                skipped.append(f"{printable(path.name)}: hidden file, not read")
        elif path.is_dir():
            subfolders.append(printable(path.name))
        elif converter_for(path) and not name_is_text(path.name):  # its id could be neither written nor shown
            skipped.append(f"{printable(path.name)}: its file name is not UTF-8 text; rename it to read it")
        elif converter_for(path):
            try:
                read = _read_file(path, known, reads.get(path.name))
            except ValueError as why:
                skipped.append(f"{path.name}: {why}")
                continue
            files[path.name] = read
            skipped += read.problems
            for doc in read.documents:
                if doc.doc_id in documents:
                    skipped.append(f"{path.name}: its id {doc.doc_id!r} is taken by {Path(documents[doc.doc_id].path).name}")
                else:
                    documents[doc.doc_id] = doc
        else:  # a .pdf or .docx dropped in with the articles: said, so that nobody thinks it was read
            unread.append(printable(path.name))
    if subfolders:
        skipped.append(f"{first_names(subfolders)}: subfolders are not read")
    if unread:
        skipped.append(f"{first_names(unread)}: {NOT_AN_ARTICLE_KIND}")
    skipped += _copies_said(documents)
    if not documents:
        raise _no_articles(directory, f" ({'; '.join(skipped)})" if skipped else "")
    return Corpus(directory=directory, documents=documents, skipped=skipped, files=files)


def _read_file(path: Path, known: Known | None, earlier: FileRead | None) -> FileRead:
    """What the article file gives: `earlier`'s read while the file stands as it did then."""
    signature = _signature(path)
    if earlier is not None and signature is not None and earlier.signature == signature:
        # converted_now is the index's to say, and the index may have been switched since
        return dataclasses.replace(earlier, converted_now=earlier.key is not None and not (known and (path.name, earlier.key) in known))
    raw = read_article_bytes(path)
    key = None if converter_for(path) is plain_text else conversion_key(path, raw)  # hashed once
    cached = _known_documents(path, key, known)
    found, problems = cached or read_documents(path, raw)
    return FileRead(signature, found, problems, key, converted_now=key is not None and cached is None)


def _signature(path: Path) -> tuple[int, ...] | None:
    """How the file stands, None when that cannot tell a later change: a change to its bytes
    changes its size or times (the change time even when the modification time is set back), a
    file put in its place has another inode; a file changed within RACY_S of now could change
    again within the times' resolution and look the same."""
    try:
        info = path.stat()
    except OSError:  # read_article_bytes says why
        return None
    if time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) < RACY_S * 1_000_000_000:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev


NAMED = 5  # names a message lists before "…": a line, not 150 kB, when ten thousand files are meant


def first_names(names: list[str]) -> str:
    """The first NAMED names, and an ellipsis when there are more."""
    return ", ".join(names[:NAMED]) + (", …" if len(names) > NAMED else "")


def _copies_said(documents: dict[str, Document]) -> list[str]:
    """A note for articles whose text another has word for word (a file saved twice, one wire
    story in two feeds): read, but their passages are retrieved once and never corroborate each other."""
    first_with: dict[str, str] = {}
    copies = []
    for doc_id, doc in documents.items():
        original = first_with.setdefault(doc.text, doc_id)
        if original != doc_id:
            copies.append(f"{printable(doc_id)} (of {printable(original)})")
    if not copies:
        return []
    more = f", and {len(copies) - NAMED} more" if len(copies) > NAMED else ""
    return [f"{NOTE}{len(copies)} article(s) copy another word for word: {', '.join(copies[:NAMED])}{more}; "
            "each text is read once and a copy is no second source"]


def _known_documents(path: Path, key: str | None, known: Known | None) -> tuple[list[Document], list[str]] | None:
    """What this file gave when it was converted before (its conversion `key` unchanged: bytes and
    converter), else None; a .txt file (no key) is never converted, so never cached."""
    if not known or key is None:
        return None
    before = known.get((path.name, key))
    if before is None:
        return None
    moved = lambda d: dataclasses.replace(d, path=str(path), source=str(path) if d.source == d.path else d.source)  # noqa: E731
    return [moved(d) for d in before.documents], list(before.problems)  # its problems are said again, every run


def read_documents(path: Path, raw: bytes | None = None) -> tuple[list[Document], list[str]]:
    """The documents of one file and what in it was skipped (ValueError when none can be read)."""
    converter = converter_for(path)
    if converter is None:
        raise ValueError(f"no converter for {path.suffix or 'files without a suffix'}")
    try:
        documents, problems = converter.convert(path, raw if raw is not None else read_article_bytes(path))
    except ValueError:
        raise
    except Exception as exc:  # a converter's library failing on a malformed file: skip it, say why
        raise ValueError(f"could not be converted ({type(exc).__name__}: {str(exc)[:120]})") from None
    # a byte-order mark alone (Notepad's empty file) or invisible characters: nothing a reader can read.
    # The index keeps what this returns for converted files: a change here raises each converter's VERSION.
    kept, wordless = [], []
    for document in documents:
        (kept if has_words(document.text[document.body_start:]) else wordless).append(document)
    if not kept:
        raise ValueError("no words in it")
    return kept, problems + [f"{path.name}: {d.doc_id} has no words in it" for d in wordless]


def has_words(text: str) -> bool:
    return any(character.isalnum() for character in text)


def status_line(reason: str) -> str:
    """How a reason in Corpus.skipped is said: a file (or record) left out, or a note on one read."""
    return reason if reason.startswith(NOTE) else f"skipped {reason}"


def say_skipped(reasons: Iterable[str], say: Callable[[str], None]) -> None:
    """Say each reason of a folder's reading (Corpus.skipped), one line each: every command that
    reads the folder says them."""
    for reason in reasons:
        say(status_line(reason))


def name_is_text(name: str) -> bool:
    """A file name the filesystem gave as bytes that are not UTF-8 (held as surrogates) cannot be
    an article id: ids are written to the index and shown, as UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _why_not_text(head: bytes) -> str:
    """Why a file with NUL bytes in its head is no article: text in UTF-16 or UTF-32 (Windows
    editors and Excel save it so; each ASCII letter then comes with NUL bytes), or binary."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return _not_utf8("UTF-32")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _not_utf8("UTF-16")
    for width in (4, 2):
        place = _printable_at(head, width)
        if place is not None:  # no byte-order mark: iconv must be told the byte order
            return _not_utf8(f"UTF-{8 * width}{'LE' if place == 0 else 'BE'}")
    return "binary file, not text"


def _not_utf8(encoding: str) -> str:
    return f"{encoding.removesuffix('LE').removesuffix('BE')} text, not UTF-8; iconv -f {encoding} -t UTF-8 turns it into UTF-8"


def _printable_at(head: bytes, width: int) -> int | None:
    """English text in UTF-16 (width 2) or UTF-32 (4) without a byte-order mark: in each group of
    `width` bytes, the one at a place is printable and the others NUL (a file of zeros is no
    text). That place (0: little-endian), or None."""
    groups = [head[n:n + width] for n in range(0, len(head) - width + 1, width)]
    if len(groups) < 4:
        return None
    for place in range(width):
        printable = sum(group[place] in (9, 10, 13) or 32 <= group[place] < 127 for group in groups)
        if printable >= 0.8 * len(groups) and sum(group.count(0) == width - 1 for group in groups) >= 0.8 * len(groups):
            return place
    return None


def read_article_bytes(path: Path) -> bytes:
    """A regular file's bytes, refused (ValueError) before reading it whole when it is no
    article: a pipe or device (which could block or never end), too big, or binary."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file (a pipe, device or socket)")
        if info.st_size > MAX_ARTICLE_BYTES:
            raise ValueError(f"too big for an article ({info.st_size / 1e6:,.1f} MB; the limit is {MAX_ARTICLE_BYTES / 1e6:.0f} MB)")
        head = handle.read(SNIFF_BYTES)
        if b"\0" in head:
            raise ValueError(_why_not_text(head))
        raw = head + handle.read(MAX_ARTICLE_BYTES + 1 - len(head))
    if len(raw) > MAX_ARTICLE_BYTES:  # it grew while we read it
        raise ValueError(f"too big for an article (the limit is {MAX_ARTICLE_BYTES / 1e6:.0f} MB)")
    if b"\0" in raw:
        raise ValueError("binary file, not text")
    return raw


@functools.lru_cache(maxsize=256)  # an answer looks up the sentences of a few articles, again and again
def sentence_spans(doc: Document) -> tuple[tuple[int, int], ...]:
    """(start, end) of each sentence of the article body, whitespace trimmed; a line that only
    dates the article (date_lines) is none."""
    spans, dating = [], set(date_lines(doc))
    for run_start, run_end in _runs(doc.text, doc.body_start):
        if (run_start, run_end) in dating:
            continue
        start = run_start
        for end_mark in SENTENCE_END.finditer(doc.text, run_start, run_end):
            if _ends_with_abbreviation(doc.text, run_start, end_mark.end()):
                continue
            spans.append((start, end_mark.end()))
            start = end_mark.end()
        spans.append((start, run_end))
    return tuple(trimmed for s, e in spans if (trimmed := _trim(doc.text, s, e)) and has_words(doc.text[s:e]))


@functools.lru_cache(maxsize=256)
def date_lines(doc: Document) -> tuple[tuple[int, int], ...]:
    """(start, end) of each line of the article's head that only dates it (DATE_ONLY, in its first
    HEAD_RUNS lines): no answer comes from one. Asked "When will the bridge reopen?", the reader
    answered the date under the headline at 0.84, and the citation sliced it faithfully."""
    dating = []
    for n, (start, end) in enumerate(itertools.islice(_runs(doc.text, doc.body_start), HEAD_RUNS)):
        if DATE_ONLY.fullmatch(doc.text, start, end):
            dating.append((start, end))
        elif n and story_begins(doc.text[start:end]):  # the story has begun (a headline may end in a stop)
            break
    return tuple(dating)


def date_lines_in(doc: Document, passage: Passage) -> list[tuple[int, int]]:
    """`date_lines` of the article that lie in one of its passages, as offsets into its text."""
    return [(max(start, passage.start) - passage.start, min(end, passage.end) - passage.start)
            for start, end in date_lines(doc) if start < passage.end and end > passage.start]


def _runs(text: str, start: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of text that a line break ends: a line, or the lines of a
    hard-wrapped paragraph that were broken only to wrap it (a sentence goes on across those)."""
    for paragraph in _paragraphs(text, start):
        run_start = paragraph[0][0]
        for line, following, wrap in zip(paragraph, paragraph[1:], _wraps(text, paragraph)):
            if not wrap:
                yield run_start, line[1]
                run_start = following[0]
        yield run_start, paragraph[-1][1]


def line_ends(text: str) -> list[int]:
    """Where a line break ends a run of text: the position of every line break but those that only
    wrap a paragraph. No answer runs across one (a list item into the next, a table's rows)."""
    return [end for _, end in _runs(text, 0) if end < len(text)]


@functools.lru_cache(maxsize=256)  # an answer reads passages of a few articles, again and again
def _article_line_ends(doc: Document) -> tuple[int, ...]:
    return tuple(line_ends(doc.text))


def line_ends_in(doc: Document, passage: Passage) -> list[int]:
    """`line_ends` of the article, as offsets into one of its passages: told apart on the whole
    article, since a passage cut mid-paragraph shows too little of it to tell a wrap."""
    ends = _article_line_ends(doc)
    first = bisect.bisect_left(ends, passage.start)
    return [end - passage.start for end in ends[first:bisect.bisect_left(ends, passage.end, first)]]


def _paragraphs(text: str, start: int) -> Iterator[list[tuple[int, int]]]:
    """The (start, end) of the lines of each paragraph: lines with words, a blank line between paragraphs."""
    paragraph: list[tuple[int, int]] = []
    for line in LINE.finditer(text, start):
        if paragraph and (not line.group().strip() or line.start() != paragraph[-1][1] + 1):
            yield paragraph
            paragraph = []
        if line.group().strip():
            paragraph.append(line.span())
    if paragraph:
        yield paragraph


def _wraps(text: str, paragraph: list[tuple[int, int]]) -> list[bool]:
    """For each line break of the paragraph, whether it only wraps it. Lines run on where they
    are hard-wrapped prose: a stretch of lines that ends a sentence and that one width, as wide
    as wrapped text is, explains (every line fits in it, and no line could have taken the next
    line's first word). Lines above such a stretch that it does not explain (a headline, a date
    line) stay apart; so do a rule of dashes, a subhead in capitals, a list item, a dateline
    ("KABUL (Reuters) -"), and every line of a table."""
    lines = [text[begin:end] for begin, end in paragraph]
    wraps = [False] * (len(lines) - 1)
    if any(COLUMNS.search(line) for line in lines):
        return wraps
    for stretch in _stretches(lines):
        for first in range(len(stretch) - 1):  # the longest tail of the stretch that wrapping explains
            if _wrapped_alike(lines[stretch[first]:stretch[-1] + 1]):
                for n in stretch[first:-1]:
                    wraps[n] = True
                break
    return wraps


def _stretches(lines: list[str]) -> Iterator[list[int]]:
    """The numbers of the lines of each stretch that may be wrapped prose: a line that stands
    apart ends one; a list item or a dateline starts one."""
    stretch: list[int] = []
    for n, line in enumerate(lines):
        if _stands_apart(line) or LIST_ITEM.match(line) or DATELINE.match(line):
            if stretch:
                yield stretch
            stretch = [] if _stands_apart(line) else [n]
        else:
            stretch.append(n)
    if stretch:
        yield stretch


def _wrapped_alike(lines: list[str]) -> bool:
    """Whether these lines are prose wrapped at one width: see _wraps."""
    lengths = [len(line) for line in lines]
    reach = [length + 1 + len(following.split(maxsplit=1)[0]) for length, following in zip(lengths, lines[1:])]
    widest = max(lengths)
    return bool(PROSE_END.search(lines[-1])) and WRAPPED_WIDTH[0] <= widest <= WRAPPED_WIDTH[1] and widest < min(reach)


def _stands_apart(line: str) -> bool:
    """A rule of dashes, or a subhead in capitals: a line of its own, wherever it is."""
    return not any(character.isalpha() for character in line) or line.isupper()


def sentence_around(doc: Document, start: int, end: int) -> tuple[int, int]:
    """The sentence (or run of sentences) that contains the span [start, end), cut at spaces to
    about CITED_SENTENCE_CHARS around the span when longer (an article on one line, a huge caption)."""
    spans = sentence_spans(doc)
    covering = [(s, e) for s, e in spans if s < end and e > start] or [(start, end)]
    first, last = min(s for s, _ in covering), max(e for _, e in covering)
    room = (CITED_SENTENCE_CHARS - (end - start)) // 2
    if last - first <= CITED_SENTENCE_CHARS or room <= 0:
        return first, last
    if first < start - room:
        space = doc.text.find(" ", start - room, start)
        first = space + 1 if space != -1 else start - room
    if last > end + room:
        space = doc.text.rfind(" ", end, end + room)
        last = space if space != -1 else end + room
    return first, last


def chunk_document(doc: Document, settings: ChunkSettings) -> list[Passage]:
    """Greedy packing of whole sentences up to max_chars, repeating the last sentences of a
    passage at the start of the next so an answer near a boundary is whole in one of them."""
    sentences = [piece for s, e in sentence_spans(doc) for piece in _split_long(doc.text, s, e, settings.max_chars)]
    passages, i = [], 0
    while i < len(sentences):
        j = i + 1
        while j < len(sentences) and sentences[j][1] - sentences[i][0] <= settings.max_chars:
            j += 1
        start, end = sentences[i][0], sentences[j - 1][1]
        passages.append(Passage(doc.doc_id, start, end, doc.text[start:end]))
        if j >= len(sentences):
            break
        i = max(i + 1, j - settings.overlap_sentences)
    return passages


def chunk_corpus(corpus: Corpus, settings: ChunkSettings) -> list[Passage]:
    return [p for doc_id in sorted(corpus.documents) for p in chunk_document(corpus.documents[doc_id], settings)]


def _ends_with_abbreviation(text: str, run_start: int, end: int) -> bool:
    if AGENCY.match(text, end) or (DAY_OR_ZONE.match(text, end) and _ends_with(text, end, TIME)):
        return True
    return _ends_with_initial(text, run_start, end) or _ends_with(text, end, TITLE_OR_MONTH)


def _ends_with(text: str, end: int, words: re.Pattern) -> bool:
    """Whether text[:end] ends with one of these words (a `word_ending` pattern), a whole word."""
    return words.search(text, max(0, end - LONGEST_WORD_ENDING), end) is not None


def _ends_with_initial(text: str, run_start: int, end: int) -> bool:
    """Initials end no sentence: "U.S." and "J.K." never; one capital letter ("F.") when a name
    or another initial comes just before it ("John F. Kennedy", "W. E. B. Du Bois") or another
    initial just after it. After a lowercase word it is the sentence's last word ("vitamin D.")."""
    before = text[max(run_start, end - 40):end]  # what a sentence of the run can hold: not across a line break that ends it
    if ACRONYM.search(before):
        return True
    if not INITIAL.search(before):
        return False
    if NEXT_INITIAL.match(text, end):
        return True
    words = before[:-2].split()
    if not words:  # it opens the run: "F. Scott Fitzgerald wrote"
        return True
    previous = words[-1].lstrip("\"'“‘([—–-")  # a name, a title ("Dr."), an initial
    return previous[:1].isupper() and before[-2] not in NUMERALS


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than max_chars at spaces (tweets and captions can be huge) into
    pieces that overlap by about a quarter, so that an answer at a cut is whole in one of them."""
    pieces = []
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars)
        cut = cut if cut > start else start + max_chars
        pieces.append((start, cut))
        # the next piece starts about a quarter back; max() keeps a negative bound from counting
        # from the end of the whole article (a long first sentence would skip most of it)
        back = text.rfind(" ", start + 1, max(start + 1, cut - max_chars // 4))
        start = back + 1 if back > start else (cut + 1 if text[cut] == " " else cut)
    pieces.append((start, end))
    return pieces
