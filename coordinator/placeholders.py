"""The ``{{ column }}`` placeholders of request data (pure, no I/O).

Grammar: ``{{``, optional spaces, a column name (a letter or ``_``, then letters, digits, ``_``,
``.`` or ``-``), optional spaces, ``}}``. Anything else between braces is literal text. A
placeholder is filled with the row's value of that column (see :mod:`coordinator.request_data`
for how a value is encoded in a path, a query, a header and a body).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")


def names_in(text: str) -> list[str]:
    """Return the column names of the placeholders in ``text``, in order (repeats kept)."""
    return PLACEHOLDER.findall(text)


def encode_around(text: str, encode: Callable[[str], str]) -> str:
    """Return ``text`` with ``encode`` applied to the literal stretches between placeholders,
    each placeholder written back as ``{{ name }}`` (so encoding twice changes nothing)."""
    out, last = [], 0
    for match in PLACEHOLDER.finditer(text):
        out.append(encode(text[last:match.start()]))
        out.append("{{ " + match.group(1) + " }}")
        last = match.end()
    out.append(encode(text[last:]))
    return "".join(out)


def fill(text: str, values: Mapping[str, str], encode: Callable[[str], str] = str) -> str:
    """Return ``text`` with each placeholder replaced by ``encode(values[name])``; KeyError
    names a column missing from ``values``."""
    return PLACEHOLDER.sub(lambda match: encode(values[match.group(1)]), text)
