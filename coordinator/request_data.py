"""Request data: one request rendered per row of an endpoint's data file, for the plans.

The file is read once at the coordinator (:mod:`coordinator.data_files`); the rendered requests
travel in the workers' plans, and no worker reads a file. Rendered requests take at most
:data:`MAX_RENDERED_BYTES` per endpoint and version, refused with one line otherwise.

How a row's value fills a placeholder:

- path: percent-encoded (``a b`` -> ``a%20b``; ``?``, ``#`` and ``%`` too; ``/`` stays);
  after the ``?``, ``&``, ``=`` and ``+`` are encoded as well, so a value stays one value;
- query (the ``query`` mapping, keys and values): as written, then form-encoded as always;
- header values: as written, and refused (naming the data file's line) when the value could
  not be sent as a header (CR, LF, non-ASCII);
- body: as written (a JSON-lines value that is not a string as its JSON text);
- json: a string that is exactly one placeholder becomes the row's value itself (a number
  stays a number with JSON lines); a placeholder inside a longer string is filled as text.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from coordinator.data_files import placeholders, read_table
from coordinator.errors import SpecError
from coordinator.placeholders import fill, names_in
from coordinator.spec import EndpointSpec, _check_header

MAX_RENDERED_BYTES = 64 * 2**20  # what one endpoint's rendered requests may add to the plans
_PATH_VALUE_SAFE = "/:@!$&'()*+,;=-._~"  # a value in the path: '?', '#', '%' are escaped
_QUERY_VALUE_SAFE = "/:@!$'()*,;-._~"  # after the '?': '&', '=', '+' too


def rendered_endpoints(endpoint: EndpointSpec, base_dir: Path, index: int) -> list[EndpointSpec]:
    """Return ``endpoint`` once per row of its data file, placeholders filled (see module)."""
    assert endpoint.dataset is not None
    table = read_table(base_dir / endpoint.dataset.file)
    for field, name in placeholders(endpoint):
        if name not in table.columns:
            raise SpecError(f"endpoints[{index}].{'.'.join(map(str, field))}: {{{{ {name} }}}} "
                            f"names no column of {endpoint.dataset.file}")
    return [_render(endpoint, row, f"{table.source}:{line}")
            for row, line in zip(table.rows, table.lines, strict=True)]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _render(endpoint: EndpointSpec, row: Mapping[str, Any], where: str) -> EndpointSpec:
    """Return ``endpoint`` filled from one row; SpecError naming the data line for a missing
    value or a header value that cannot be sent."""
    values = {k: _text(v) for k, v in row.items()}
    try:
        head, sep, tail = endpoint.path.partition("?")
        path = (fill(head, values, lambda v: quote(v, safe=_PATH_VALUE_SAFE)) + sep
                + fill(tail, values, lambda v: quote(v, safe=_QUERY_VALUE_SAFE)))
        query = {fill(k, values): fill(v, values) for k, v in endpoint.query.items()}
        headers = {k: fill(v, values) for k, v in endpoint.headers.items()}
        body = None if endpoint.body is None else fill(endpoint.body, values)
        json_body = _fill_json(endpoint.json_body, row, values)
    except KeyError as exc:
        raise SpecError(f"{where}: the row has no {exc.args[0]!r}, which endpoint "
                        f"{endpoint.label!r} needs") from None
    for name, value in headers.items():
        try:
            _check_header(name, value)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
    return endpoint.model_copy(update={  # the label stays the endpoint's, not the row's path
        "name": endpoint.label, "path": path, "query": query, "headers": headers, "body": body,
        "json_body": json_body, "dataset": None})


def _fill_json(node: Any, row: Mapping[str, Any], values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        names = names_in(node)
        if len(names) == 1 and node.strip() == node and fill(node, {names[0]: ""}) == "":
            return row[names[0]]  # exactly one placeholder: the row's value, typed
        return fill(node, values)
    if isinstance(node, dict):
        return {k: _fill_json(v, row, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill_json(v, row, values) for v in node]
    return node


def with_rows(template: Any, rows: Sequence[Any], order: str, stream: str) -> Any:
    """Return the RequestTemplate ``template`` carrying ``rows`` (rendered templates)."""
    return dataclasses.replace(template, rows=tuple(rows), order=order, stream=stream)


def rendered_bytes(templates: Sequence[Any]) -> int:
    """Return about how many bytes the rendered requests take in the plans."""
    return sum(len(t.url) + len(t.body or b"") + sum(len(k) + len(v) for k, v in t.headers)
               for t in templates)
