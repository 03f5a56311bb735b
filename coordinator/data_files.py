"""Request data files: read an endpoint's CSV or JSON-lines file once, and find its placeholders.

The file is read at the coordinator, once per process: :func:`read_table` keeps what it read,
keyed by path, size and modification time, so the spec check (:mod:`coordinator.spec`, which
names the spec line of a placeholder without a column) and the plan
(:mod:`coordinator.request_data`, which renders the rows) share one read. Bounds: at most
:data:`MAX_DATA_BYTES` and :data:`MAX_ROWS` rows, refused with one line otherwise.

CSV: the first line names the columns; every row has as many fields. JSON lines: one object
per line (blank lines skipped), its keys are the columns; values are scalars.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.errors import SpecError
from coordinator.placeholders import names_in

MAX_DATA_BYTES = 16 * 2**20
MAX_ROWS = 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """The rows of one data file: values as text (JSON lines: scalars), with their lines."""

    source: str
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    lines: tuple[int, ...]  # 1-based line of each row in the file


def read_table(path: Path) -> Table:
    """Return the rows of a CSV or JSON-lines file; SpecError naming the file (and line) for a
    missing, oversized, empty or malformed one."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the data file ({exc.strerror or exc})") from None
    if not path.is_file():
        raise SpecError(f"{path}: the data file is not a regular file")
    if stat.st_size > MAX_DATA_BYTES:
        raise SpecError(f"{path}: the data file has {stat.st_size / 2**20:.1f} MiB, over the "
                        f"{MAX_DATA_BYTES // 2**20} MiB allowed (its requests travel in every "
                        "worker's plan); use fewer rows")
    return _read_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(path))


@functools.lru_cache(maxsize=8)
def _read_cached(resolved: str, size: int, mtime_ns: int, shown: str) -> Table:
    try:
        text = Path(resolved).read_bytes()[:MAX_DATA_BYTES + 1].decode("utf-8-sig")
    except OSError as exc:
        raise SpecError(f"{shown}: cannot read the data file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{shown}: the data file is not UTF-8 text") from None
    suffix = Path(resolved).suffix.lower()
    if suffix == ".csv":
        table = _parse_csv(text, shown)
    elif suffix in (".jsonl", ".ndjson"):
        table = _parse_jsonl(text, shown)
    else:
        raise SpecError(f"{shown}: a data file is .csv (with a header line) or .jsonl/.ndjson "
                        "(one JSON object per line)")
    if not table.rows:
        raise SpecError(f"{shown}: the data file has no rows")
    if len(table.rows) > MAX_ROWS:
        raise SpecError(f"{shown}: {len(table.rows):,} rows, over the {MAX_ROWS:,} allowed")
    return table


def _parse_csv(text: str, source: str) -> Table:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or not any(header):
            raise SpecError(f"{source}:1: the first line must name the columns")
        rows, lines = [], []
        line = reader.line_num
        for fields in reader:
            if fields:
                if len(fields) != len(header):
                    raise SpecError(f"{source}:{line + 1}: {len(fields)} fields, but the header "
                                    f"names {len(header)} columns")
                rows.append(dict(zip(header, fields, strict=True)))
                lines.append(line + 1)
            line = reader.line_num
    except csv.Error as exc:
        raise SpecError(f"{source}:{reader.line_num}: malformed CSV ({exc})") from None
    return Table(source=source, columns=tuple(header), rows=tuple(rows), lines=tuple(lines))


def _parse_jsonl(text: str, source: str) -> Table:
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SpecError(f"{source}:{number}: not JSON ({exc.args[0].split(':')[0]})") from None
        if not isinstance(row, dict):
            raise SpecError(f"{source}:{number}: expected a JSON object per line")
        nested = next((k for k, v in row.items() if isinstance(v, (dict, list))), None)
        if nested is not None:
            raise SpecError(f"{source}:{number}: {nested!r} is not a scalar value")
        rows.append(row)
        lines.append(number)
    columns = tuple(rows[0]) if rows else ()
    return Table(source=source, columns=columns, rows=tuple(rows), lines=tuple(lines))


def placeholders(endpoint: Any) -> list[tuple[list[str | int], str]]:
    """Return (location in the endpoint, column) of every placeholder of ``endpoint``."""
    found: list[tuple[list[str | int], str]] = [(["path"], n) for n in names_in(endpoint.path)]
    for key, value in endpoint.query.items():
        found += [(["query", key], n) for n in names_in(key) + names_in(value)]
    for name, value in endpoint.headers.items():
        found += [(["headers", name], n) for n in names_in(value)]
    if endpoint.body is not None:
        found += [(["body"], n) for n in names_in(endpoint.body)]
    found += _json_placeholders(endpoint.json_body, ["json"])
    return found


def _json_placeholders(node: Any, loc: list[str | int]) -> list[tuple[list[str | int], str]]:
    if isinstance(node, str):
        return [(loc, n) for n in names_in(node)]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _json_placeholders(v, [*loc, k])]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _json_placeholders(v, [*loc, i])]
    return []


def check_columns(spec: Any, base_dir: Path, where: Callable[[list[Any]], str]) -> None:
    """Read each data file and refuse a placeholder naming no column: SpecError starting with
    ``where(location)`` (the spec's file, line and field)."""
    for index, endpoint in enumerate(spec.endpoints):
        if endpoint.dataset is None:
            continue
        loc: list[Any] = ["endpoints", index, "dataset", "file"]
        try:
            table = read_table(base_dir / endpoint.dataset.file)
        except SpecError as exc:
            raise SpecError(f"{where(loc)}: {exc}") from None
        for field, name in placeholders(endpoint):
            if name not in table.columns:
                raise SpecError(f"{where(['endpoints', index, *field])}: {{{{ {name} }}}} "
                                f"names no column of {endpoint.dataset.file} (columns: "
                                f"{', '.join(table.columns)})")


