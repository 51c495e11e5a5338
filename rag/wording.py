"""How counts are written in what rag says: "1 passage", "2,048 passages"."""


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1 (nouns that take an s: passage, article, record)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
