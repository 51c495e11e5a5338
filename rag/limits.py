"""The limits of a settings field (its metadata's "min" and "max"), held by every instance:
made from models.toml, from a command's option or in Python (`ChunkSettings(max_chars=0)`, made
in Python, cut an article forever)."""
from __future__ import annotations

import dataclasses
import math

from rag.errors import RagError


def check_limits(settings) -> None:
    """RagError naming the first field of `settings` outside its limits ("max_chars = 0 is not
    valid: expected at least 50")."""
    for field in dataclasses.fields(settings):
        if field.metadata:
            value = getattr(settings, field.name)
            check_range(value, field.metadata, f"{field.name} = {value!r} is not valid")


def check_range(value, limits: dict, saying: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RagError(f"{saying}: expected a finite number")
    least, most = limits.get("min"), limits.get("max")
    if least is not None and value < least:
        raise RagError(f"{saying}: expected at least {least}")
    if most is not None and value > most:
        raise RagError(f"{saying}: expected at most {most}")
