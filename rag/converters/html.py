"""News web pages: the article's main text, title and publication date, by trafilatura (made
for exactly this: it drops navigation, ads and comments, and finds dates with htmldate). Also
the text of an HTML fragment, as a CMS export keeps an article's body (`fragment_text`)."""
from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path

from rag.schema import Document

VERSION = 7  # raised when it reads the same bytes otherwise: cached conversions are then redone
LIBRARIES = ("trafilatura", "htmldate")  # their versions are in the cached conversions' key too

# Elements that each make a block of their own; a record's HTML is text the CMS wrote, not a page
# to find an article in, so every block of it is kept.
BLOCKS = {"p", "div", "section", "article", "header", "footer", "aside", "blockquote", "pre", "figcaption",
          "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "table", "ul", "ol"}
INLINE = {"a", "b", "i", "em", "strong", "span", "br", "td", "th", "sup", "sub", "img"}
MARKUP = re.compile(rf"</?(?:{'|'.join(sorted(BLOCKS | INLINE))})(?=[\s/>])[^<>]*>", re.I)  # "<a.doe@x.org>" is none
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # no XML parser takes them; Word's line break is one
LAYOUT_ROW_CHARS = 400  # a table row longer than this holds an article laid out in a table, not data
# a page whose text is this much links' text is a section or index page of a crawled site: its
# headlines would be answered from, their stories are elsewhere (a list of headlines, each with
# its "2 hours ago", is ~75 % links; a page of teasers, a headline over a paragraph, ~25 %)
LINKS_SHARE_OF_A_LIST = 0.7
SHORTEST_LINK = 3  # characters: "»" or "1" links are found in any text


def convert(path: Path, raw: bytes) -> tuple[list[Document], list[str]]:
    # Tables are kept (results, budgets, polls: news puts facts in them), a row a line, "| a | b |";
    # without them a short page fell back to an extraction that put the whole page on one line. A
    # page laid out in a table (older archives, newsletters) is read without them, as its article
    # would else be one row.
    extracted = _extract(raw, tables=True)
    lines = _lines(extracted)
    if any(line.startswith("|") and len(line) > LAYOUT_ROW_CHARS for line in lines):
        extracted = _extract(raw, tables=False)
        lines = _lines(extracted)
    # a blank line between blocks, as between paragraphs of a .txt: no answer runs from a heading into
    # the body, or from one row of a table into the next
    text = "\n\n".join(lines)
    if not text.strip():
        raise ValueError("no article text found in the page")
    if _is_a_list_of_links(raw, lines):
        raise ValueError("a page of links (a section or index page), not an article")
    return [Document(doc_id=path.name, path=str(path), text=text, date=extracted.date or None, body_start=0,
                     title=extracted.title or None, source=extracted.url or str(path))], []


def _extract(raw: bytes, tables: bool):
    import trafilatura

    # htmldate's extensive search reads dates out of the story itself ("a plan first drawn up in
    # 2019" made a page of 1 January 2019): only the page's own marks of publication are taken
    return trafilatura.bare_extraction(raw, with_metadata=True, include_comments=False, include_tables=tables,
                                       date_extraction_params={"extensive_search": False, "original_date": True})


def _is_a_list_of_links(raw: bytes, lines: list[str]) -> bool:
    """Whether the page's text is mostly its links' text, wherever it stands in its lines (a
    headline beside its time, or the extraction's lines run together)."""
    import lxml.html
    from lxml.etree import ParserError

    try:
        links = Counter(" ".join(link.text_content().split()) for link in lxml.html.fromstring(raw).iter("a"))
    except (ValueError, ParserError):  # trafilatura read it: a page lxml cannot is no list of links to it
        return False
    text = "\n".join(" ".join(line.split()) for line in lines)
    linked = bytearray(len(text))  # 1 where a link's text stands: each character once, however many links hold it
    for link, times in links.items():
        if len(link) >= SHORTEST_LINK:  # as whole words, and no more often than the page links it
            for found in itertools.islice(re.finditer(rf"(?<!\w){re.escape(link)}(?!\w)", text), times):
                linked[found.start():found.end()] = b"\x01" * len(link)
    return sum(linked) >= LINKS_SHARE_OF_A_LIST * len(text)


def _lines(extracted) -> list[str]:
    """The extraction's lines that hold words (a table's rule row, "|---|", holds none)."""
    lines = ((extracted.text if extracted else "") or "").splitlines()
    return [line.strip() for line in lines if any(character.isalnum() for character in line)]


def looks_like_markup(text: str) -> bool:
    return MARKUP.search(text) is not None


def fragment_text(markup: str) -> str:
    """The text of an HTML fragment (a CMS export's article body): a blank line between blocks,
    a table's row "| a | b |" as on a page, entities read, scripts and styles dropped."""
    import lxml.html

    root = lxml.html.fragment_fromstring(CONTROL.sub(" ", markup), create_parent="div")
    for element in list(root.iter("script", "style")):
        element.drop_tree()
    for element in root.iter():
        in_cell = any(True for _ in element.iterancestors("td", "th"))  # a cell's blocks stay in its row
        if element.tag in ("td", "th") and not in_cell:
            element.tail = " | " + (element.tail or "")
        elif element.tag == "tr" and not in_cell:
            element.text, element.tail = "\n\n| " + (element.text or ""), "\n\n" + (element.tail or "")
        elif element.tag == "br":
            element.tail = "\n" + (element.tail or "")
        elif element.tag in BLOCKS and not in_cell:
            element.text, element.tail = "\n\n" + (element.text or ""), "\n\n" + (element.tail or "")
    # a line break kept, as CMS bodies written as text with a few tags have them ("- item⏎- item")
    blocks = ("\n".join(" ".join(line.split()) for line in block.split("\n") if line.strip())
              for block in re.split(r"\n\s*\n", root.text_content().replace("\r\n", "\n").replace("\r", "\n")))
    return "\n\n".join(block for block in blocks if block)
