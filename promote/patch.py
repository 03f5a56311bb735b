"""Patch GitOps manifests for a promotion: text in, text out, comments and layout kept.

Every strategy takes the file's text and returns the new text; nothing here reads or writes files
(except :func:`safe_repo_path`, which only resolves a path). Invariants:

- A multi-document file is split on its ``---`` lines; only the documents an edit changes are
  re-emitted (by ruamel.yaml's round-trip dumper, with the indentation detected in that document),
  every other document and every ``---`` line is copied byte for byte.
- An edit that changes nothing returns the input text itself (byte-identical), so the caller can
  say "already promoted" by comparing with :func:`changed`.
- A string written over a quoted string keeps the old quote style; an end-of-line comment keeps its
  column, or its old distance from the value when the value grows.
- Nothing is created silently: a missing document, key or list item raises
  :class:`~promote.errors.PromotionError` with a one-line message (only
  :func:`kustomize_image` adds an ``images`` entry, because that is what it is for); text that is
  not YAML (or that the bounded loader refuses, an alias bomb) raises its subclass
  :class:`MalformedYAML`, which knows the line, so the caller can name the file.

Path syntax (:class:`Edit`, :func:`helm_value`): dotted keys, ``[N]`` for a list index and
``[key=value]`` for the one list item whose ``key`` equals ``value``, e.g.
``spec.template.spec.containers[name=hello].image``.
"""

from __future__ import annotations

import difflib
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tokens import CommentToken

from analysis.safe_yaml import bounded_yaml
from promote.errors import PromotionError

Scalar = str | int | float | bool

# Kinds whose spec.selector is immutable and must match the pod template's labels.
_WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
_MARKER = re.compile(r"---(?=[ \t\r\n]|$)")
_STEP = re.compile(r"(?P<dot>\.)?(?P<key>[^.\[\]]+)|\[(?P<index>\d+)\]"
                   r"|\[(?P<field>[^\]=]+)=(?P<want>[^\]]*)\]")
_KEPT_STYLES = (DoubleQuotedScalarString, SingleQuotedScalarString, LiteralScalarString,
                FoldedScalarString)


class MalformedYAML(PromotionError):
    """A text to patch is not YAML slogate reads: ``problem`` at ``line`` (1-based; None when
    unknown) of the stable text, or of the candidate's when ``of_candidate``
    (:func:`copy_manifest`)."""

    def __init__(self, problem: str, line: int | None, *, of_candidate: bool = False) -> None:
        super().__init__(f"malformed YAML{f' at line {line}' if line else ''}: {problem}")
        self.problem, self.line, self.of_candidate = problem, line, of_candidate

    def in_file(self, path: str) -> PromotionError:
        """Return the error as one line naming the file first: ``path:LINE: malformed YAML: …``."""
        return PromotionError(f"{path}{f':{self.line}' if self.line else ''}: malformed YAML: "
                              f"{self.problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Edit:
    """One scalar to set, for :func:`set_values`.

    ``Edit(path="spec.template.spec.containers[name=hello].image", value="ghcr.io/slogate/hello:2.0")``
    """

    path: str
    value: Scalar


@dataclass(frozen=True, slots=True, kw_only=True)
class Indent:
    """Block indentation as ruamel.yaml's ``YAML.indent`` takes it (defaults: Kubernetes style)."""

    mapping: int = 2
    sequence: int = 4
    offset: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class _Doc:
    """One document of a file: its ``---`` line (or ""), its text, where it starts, its data."""

    header: str
    body: str
    first_line: int
    data: Any

    def identity(self, index: int) -> str:
        """``Kind/name`` when the document has them, else ``document N``."""
        if isinstance(self.data, dict):
            kind = self.data.get("kind")
            metadata = self.data.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            if kind and name:
                return f"{kind}/{name}"
            if kind:
                return f"{kind}/(no name)"
        return f"document {index + 1}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    """One step of a path: a key, a list index or a ``[field=want]`` selection; ``text`` so far."""

    text: str
    key: str | None = None
    index: int | None = None
    field: str | None = None
    want: str | None = None


# --- public strategies -------------------------------------------------------------------------


def set_values(text: str, edits: Sequence[Edit], *, document: str | None = None) -> str:
    """Return ``text`` with each edit's scalar set; ``document`` (``Kind/name``) picks the document.

    Without ``document`` each path must resolve in exactly one document of the file.
    """
    docs = _parse(text)
    dirty: set[int] = set()
    for edit in edits:
        steps = _parse_path(edit.path)
        index = _pick_document(docs, steps, edit.path, document)
        parent, accessor = _resolve(docs[index].data, steps)
        if _set_scalar(parent, accessor, edit.value, edit.path):
            dirty.add(index)
    return _render(text, docs, dirty)


def helm_value(text: str, *, key: str, value: str) -> str:
    """Return a Helm values.yaml ``text`` with the existing dotted ``key`` (e.g. ``image.tag``) set."""
    docs = _parse(text)
    index = _single_document(docs, "a values file")
    parent, accessor = _resolve(docs[index].data, _parse_path(key))
    dirty = {index} if _set_scalar(parent, accessor, value, key) else set()
    return _render(text, docs, dirty)


def kustomize_image(text: str, *, name: str, new_tag: str | None = None,
                    new_name: str | None = None, digest: str | None = None) -> str:
    """Return a kustomization.yaml ``text`` whose ``images`` entry for ``name`` is updated or added.

    Setting ``new_tag`` drops a stale ``digest`` from the entry and setting ``digest`` drops a stale
    ``newTag`` (kustomize prefers the digest, so leaving it would silently keep the old image).
    """
    if new_tag is None and new_name is None and digest is None:
        raise PromotionError(f"kustomize image {name}: give new_tag, new_name or digest")
    if new_tag is not None and digest is not None:
        raise PromotionError(f"kustomize image {name}: give new_tag or digest, not both")
    docs = _parse(text)
    index = _single_document(docs, "a kustomization")
    root = docs[index].data
    images = root.get("images")
    if images is not None and not isinstance(images, list):
        raise PromotionError(f"images: not a list (found {_type_name(images)})")
    fields = {"newName": new_name, "newTag": new_tag, "digest": digest}
    wanted = {field: value for field, value in fields.items() if value is not None}
    stale = "digest" if new_tag is not None else "newTag" if digest is not None else None
    matches = [item for item in images or [] if isinstance(item, dict) and item.get("name") == name]
    if len(matches) > 1:
        raise PromotionError(f"images: {len(matches)} entries with name={name}")
    if not matches:
        added = CommentedMap([("name", name), *wanted.items()])
        if images is None:
            root["images"] = CommentedSeq([added])
        else:
            images.append(added)
        return _render(text, docs, {index})
    entry = matches[0]
    dirty = False
    for field, value in wanted.items():
        if field in entry:
            dirty |= _set_scalar(entry, field, value, f"images[name={name}].{field}")
        else:
            entry[field] = value
            dirty = True
    if stale is not None and stale in entry:
        del entry[stale]
        dirty = True
    return _render(text, docs, {index} if dirty else set())


def copy_manifest(stable: str, candidate: str, *, keep_names: bool = True) -> str:
    """Return the stable manifest text rewritten to hold the candidate's content.

    Documents are paired by ``kind``, in order (the n-th Deployment of one file with the n-th of the
    other); both files must have the same kinds the same number of times. Each stable document is
    made equal to its candidate, in place, so the stable file's comments, key order and layout stay.
    With ``keep_names`` these values stay the stable ones, because they identify the stable object
    and the traffic it receives:

    - ``metadata.name`` of every document;
    - for a Deployment (likewise StatefulSet, DaemonSet): ``spec.selector`` (immutable in
      Kubernetes) and, under ``spec.template.metadata.labels``, the labels that
      ``spec.selector.matchLabels`` names, so the pods still match it;
    - for a Service: ``spec.selector``, so it keeps routing to the stable pods.

    Everything else (image, env, other labels, replicas...) comes from the candidate. Items of a list
    whose entries all have a unique ``name`` are paired by name, other lists by position.
    """
    stable_docs = _parse(stable)
    try:
        candidate_docs = _parse(candidate)
    except MalformedYAML as exc:
        raise MalformedYAML(exc.problem, exc.line, of_candidate=True) from exc
    dirty: set[int] = set()
    for s_index, c_index in _pair_by_kind(stable_docs, candidate_docs):
        target, source = stable_docs[s_index].data, candidate_docs[c_index].data
        kept = _kept_paths(target) if keep_names else frozenset()
        if _merge(target, source, (), kept):
            dirty.add(s_index)
    return _render(stable, stable_docs, dirty)


def changed(before: str, after: str) -> bool:
    """Return whether a patch changed the text (False means "already promoted")."""
    return before != after


def unified_diff(before: str, after: str, path: str) -> str:
    """Return a unified diff of ``before`` and ``after`` with ``a/path`` and ``b/path`` headers."""
    lines = difflib.unified_diff(_diff_lines(before), _diff_lines(after),
                                 fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(lines)


def safe_repo_path(root: Path, relative: str) -> Path:
    """Return the resolved path of ``relative`` inside the repository ``root``.

    Raises PromotionError for an empty or absolute path, a ``..`` component, or a path that
    resolves (through symlinks) outside ``root``. The path need not exist.
    """
    if not relative or "\x00" in relative:
        raise PromotionError(f"manifest path {relative!r} is empty or invalid")
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).drive:
        raise PromotionError(f"manifest path {relative!r} is absolute; give it relative to the "
                             "repository root")
    pure = PurePosixPath(relative)
    if ".." in pure.parts:
        raise PromotionError(f"manifest path {relative!r} contains '..'")
    base = root.resolve()
    target = (base / pure).resolve()
    if not target.is_relative_to(base):
        raise PromotionError(f"manifest path {relative!r} resolves to {target}, outside the "
                             f"repository {base}")
    return target


# --- documents: split, parse, render ------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """Return the lines of ``text`` with their ``\\n`` (splitlines would also split on \\f etc.)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _parse(text: str) -> list[_Doc]:
    """Return the documents of ``text``, split on ``---`` lines and parsed round-trip."""
    chunks: list[tuple[str, list[str], int]] = [("", [], 0)]
    for number, line in enumerate(_lines(text)):
        if _MARKER.match(line):
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                raise PromotionError(f"line {number + 1}: content after '---' is not supported")
            chunks.append((line, [], number + 1))
        else:
            chunks[-1][1].append(line)
    loader = _yaml(Indent())
    return [_Doc(header=header, body="".join(body), first_line=first,
                 data=_load(loader, "".join(body), first))
            for header, body, first in chunks]


def _load(loader: YAML, body: str, first_line: int) -> Any:
    """Return the round-trip data of one document, or raise MalformedYAML naming the line."""
    try:
        return loader.load(body)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 + first_line if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise MalformedYAML(problem, line) from exc


def _yaml(indent: Indent) -> YAML:
    """Return a round-trip YAML that keeps quotes and never re-wraps long lines."""
    yaml = bounded_yaml("rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 30
    yaml.indent(mapping=indent.mapping, sequence=indent.sequence, offset=indent.offset)
    return yaml


def _render(text: str, docs: list[_Doc], dirty: set[int]) -> str:
    """Return ``text`` with the ``dirty`` documents re-emitted and all others copied as they were."""
    if not dirty:
        return text
    parts: list[str] = []
    for index, doc in enumerate(docs):
        parts.append(doc.header)
        if index not in dirty:
            parts.append(doc.body)
            continue
        out = io.StringIO()
        _yaml(detect_indent(doc.data) or Indent()).dump(doc.data, out)
        body = out.getvalue()
        parts.append(body if doc.body.endswith("\n") or not doc.body else body.rstrip("\n"))
    return "".join(parts)


def detect_indent(data: Any) -> Indent | None:
    """Return the most common block indentation of a parsed document, None when it has no nesting."""
    mappings: Counter[int] = Counter()
    sequences: Counter[tuple[int, int]] = Counter()
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, CommentedSeq):
            stack.extend(node)
        if not isinstance(node, CommentedMap) or node.fa.flow_style():
            continue
        for key, value in node.items():
            stack.append(value)
            if not isinstance(value, (CommentedMap, CommentedSeq)) or not value \
                    or value.fa.flow_style():
                continue
            try:
                key_line, key_col = node.lc.key(key)
                if isinstance(value, CommentedMap) and value.lc.line > key_line:
                    mappings[value.lc.col - key_col] += 1
                elif isinstance(value, CommentedSeq) and value.lc.line > key_line:
                    item_line, item_col = value.lc.item(0)
                    if item_line == value.lc.line:
                        sequences[(item_col - key_col, value.lc.col - key_col)] += 1
            except (KeyError, TypeError, AttributeError):
                continue
    if not mappings and not sequences:
        return None
    default = Indent()
    mapping = mappings.most_common(1)[0][0] if mappings else default.mapping
    sequence, offset = (sequences.most_common(1)[0][0] if sequences
                        else (default.sequence, default.offset))
    return Indent(mapping=mapping, sequence=sequence, offset=offset)


# --- paths -------------------------------------------------------------------------------------


def _parse_path(path: str) -> tuple[_Step, ...]:
    """Return the steps of a path like ``a.b[0].c[name=x]``, or raise PromotionError."""
    steps: list[_Step] = []
    pos = 0
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None or (match["key"] is not None and bool(match["dot"]) != bool(steps)):
            raise PromotionError(f"{path}: bad path syntax at character {pos + 1}")
        pos = match.end()
        text = path[:pos]
        if match["key"] is not None:
            steps.append(_Step(text=text, key=match["key"]))
        elif match["index"] is not None:
            steps.append(_Step(text=text, index=int(match["index"])))
        else:
            steps.append(_Step(text=text, field=match["field"], want=match["want"]))
    if not steps:
        raise PromotionError("empty path")
    return tuple(steps)


def _resolve(data: Any, steps: tuple[_Step, ...]) -> tuple[Any, Any]:
    """Return the container holding the path's last step and the key or index within it."""
    parent: Any = None
    accessor: Any = None
    node = data
    for step in steps:
        if parent is not None:
            node = parent[accessor]
        parent, accessor = node, _accessor(node, step)
    return parent, accessor


def _accessor(node: Any, step: _Step) -> Any:
    """Return the key or index that ``step`` selects in ``node``, or raise PromotionError."""
    if step.key is not None:
        if not isinstance(node, dict):
            raise PromotionError(f"{step.text}: not a mapping (found {_type_name(node)})")
        if step.key not in node:
            keys = ", ".join(str(key) for key in node) or "none"
            raise PromotionError(f"{step.text}: no key {step.key} (keys: {keys})")
        return step.key
    if not isinstance(node, list):
        raise PromotionError(f"{step.text}: not a list (found {_type_name(node)})")
    if step.index is not None:
        if step.index >= len(node):
            raise PromotionError(f"{step.text}: no item {step.index} (the list has {len(node)})")
        return step.index
    hits = [i for i, item in enumerate(node)
            if isinstance(item, dict) and step.field in item and str(item[step.field]) == step.want]
    if not hits:
        raise PromotionError(f"{step.text}: no item with {step.field}={step.want}")
    if len(hits) > 1:
        raise PromotionError(f"{step.text}: {len(hits)} items with {step.field}={step.want}")
    return hits[0]


def _pick_document(docs: list[_Doc], steps: tuple[_Step, ...], path: str,
                   document: str | None) -> int:
    """Return the index of the document an edit applies to, or raise PromotionError."""
    present = [i for i, doc in enumerate(docs) if doc.data is not None]
    if document is not None:
        hits = [i for i in present if docs[i].identity(i) == document]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise PromotionError(f"{document} appears {len(hits)} times in the file")
        found = ", ".join(docs[i].identity(i) for i in present) or "no documents"
        raise PromotionError(f"no {document} in the file; found: {found}")
    resolved: list[int] = []
    errors: list[str] = []
    for i in present:
        try:
            _resolve(docs[i].data, steps)
        except PromotionError as exc:
            errors.append(f"{docs[i].identity(i)}: {exc}")
        else:
            resolved.append(i)
    if len(resolved) == 1:
        return resolved[0]
    if resolved:
        names = ", ".join(docs[i].identity(i) for i in resolved)
        raise PromotionError(f"{path} resolves in {len(resolved)} documents ({names}); "
                             "pick one with document='Kind/name'")
    if len(errors) == 1:
        raise PromotionError(errors[0].split(": ", 1)[1])
    raise PromotionError(f"{path} resolves in no document; " + "; ".join(errors)
                         if errors else "the file has no documents")


def _single_document(docs: list[_Doc], what: str) -> int:
    """Return the index of the one mapping document of a file, or raise PromotionError."""
    present = [i for i, doc in enumerate(docs) if doc.data is not None]
    if len(present) != 1:
        raise PromotionError(f"expected {what} with one YAML document, found {len(present)}")
    if not isinstance(docs[present[0]].data, dict):
        raise PromotionError(f"expected {what} to be a mapping, found "
                             f"{_type_name(docs[present[0]].data)}")
    return present[0]


# --- scalars and comments ----------------------------------------------------------------------


def _kind(value: Any) -> type:
    """Return the plain type a YAML scalar stands for (bool before int: True == 1 in Python)."""
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain
    return type(value)


def _same(old: Any, new: Any) -> bool:
    """Return whether two scalars are the same YAML value (``1`` is not ``true`` nor ``"1"``)."""
    return _kind(old) is _kind(new) and old == new


def _type_name(value: Any) -> str:
    """Return "mapping", "list" or the scalar's plain type name, for messages."""
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "null" if value is None else _kind(value).__name__


def _set_scalar(parent: Any, accessor: Any, value: Scalar, where: str) -> bool:
    """Set ``parent[accessor]`` to ``value`` keeping its quote style; return whether it changed."""
    old = parent[accessor]
    if isinstance(old, (dict, list)):
        raise PromotionError(f"{where}: is a {_type_name(old)}, not a scalar")
    if _same(old, value):
        return False
    new: Any = value
    if type(value) is str and isinstance(old, _KEPT_STYLES):
        new = type(old)(value)
    parent[accessor] = new
    _shift_comment(parent, accessor, len(str(new)) - len(str(old)))
    return True


def _shift_comment(parent: Any, accessor: Any, grown: int) -> None:
    """Move the end-of-line comment after a value that grew by ``grown`` characters, keeping its gap.

    ruamel writes the comment at its original column, or one space after the value when the value
    now reaches past it; two spaces (yamllint's default) would silently become one.
    """
    tokens = getattr(parent, "ca", None) and parent.ca.items.get(accessor)
    slot = 2 if isinstance(parent, dict) else 0
    if grown <= 0 or not tokens or len(tokens) <= slot:
        return
    token = tokens[slot]
    if isinstance(token, CommentToken) and token.start_mark is not None \
            and not token.value.startswith("\n"):
        # ruamel's own comment tokens carry a CommentMark here (its stubs say StreamMark)
        token.start_mark = CommentMark(token.start_mark.column + grown)  # type: ignore[assignment]


# --- copy_manifest -----------------------------------------------------------------------------


def _pair_by_kind(stable: list[_Doc], candidate: list[_Doc]) -> list[tuple[int, int]]:
    """Return (stable, candidate) document index pairs, the n-th of each kind with the n-th."""
    def by_kind(docs: list[_Doc]) -> dict[Any, list[int]]:
        groups: dict[Any, list[int]] = {}
        for i, doc in enumerate(docs):
            if doc.data is not None:
                kind = doc.data.get("kind") if isinstance(doc.data, dict) else None
                groups.setdefault(kind, []).append(i)
        return groups

    s_groups, c_groups = by_kind(stable), by_kind(candidate)
    if {k: len(v) for k, v in s_groups.items()} != {k: len(v) for k, v in c_groups.items()}:
        s_ids = ", ".join(stable[i].identity(i) for v in s_groups.values() for i in v) or "none"
        c_ids = ", ".join(candidate[i].identity(i) for v in c_groups.values() for i in v) or "none"
        raise PromotionError(f"the candidate's documents do not match the stable ones by kind: "
                             f"stable has {s_ids}; candidate has {c_ids}")
    return sorted(pair for kind, s_list in s_groups.items()
                  for pair in zip(s_list, c_groups[kind], strict=True))


def _kept_paths(doc: Any) -> frozenset[tuple[Any, ...]]:
    """Return the paths whose stable values ``copy_manifest(keep_names=True)`` keeps."""
    if not isinstance(doc, dict):
        return frozenset()
    kept: set[tuple[Any, ...]] = {("metadata", "name")}
    kind = doc.get("kind")
    spec = doc.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    if kind in _WORKLOAD_KINDS:
        kept.add(("spec", "selector"))
        selector = spec.get("selector")
        match_labels = selector.get("matchLabels") if isinstance(selector, dict) else None
        for label in match_labels or {}:
            kept.add(("spec", "template", "metadata", "labels", label))
    elif kind == "Service":
        kept.add(("spec", "selector"))
    return frozenset(kept)


def _merge(target: Any, source: Any, path: tuple[Any, ...], kept: frozenset[tuple[Any, ...]]) -> bool:
    """Make the mapping ``target`` equal ``source`` in place, except ``kept``; return if it changed."""
    dirty = False
    for key in [key for key in target if key not in source]:
        here = (*path, key)
        if not any(k[:len(here)] == here for k in kept):
            del target[key]
            dirty = True
    previous = -1
    for key, value in source.items():
        here = (*path, key)
        if here in kept:
            previous = list(target).index(key) if key in target else previous
            continue
        if key not in target:
            target.insert(previous + 1, key, value)
            dirty = True
        else:
            dirty |= _merge_value(target, key, value, here, kept)
        previous = list(target).index(key)
    return dirty


def _merge_value(parent: Any, accessor: Any, value: Any, path: tuple[Any, ...],
                 kept: frozenset[tuple[Any, ...]]) -> bool:
    """Make ``parent[accessor]`` equal ``value`` (recursing into collections); return if it changed."""
    old = parent[accessor]
    if isinstance(old, dict) and isinstance(value, dict):
        return _merge(old, value, path, kept)
    if isinstance(old, list) and isinstance(value, list):
        return _merge_list(old, value, path, kept)
    if isinstance(old, (dict, list)) or isinstance(value, (dict, list)) or not _same(old, value):
        parent[accessor] = value
        return True
    return False


def _merge_list(target: Any, source: Any, path: tuple[Any, ...],
                kept: frozenset[tuple[Any, ...]]) -> bool:
    """Make the list ``target`` equal ``source``, pairing items by ``name`` when all have one."""
    old_names, new_names = _names(target), _names(source)
    if old_names is not None and new_names is not None and old_names != new_names:
        by_name = dict(zip(old_names, range(len(target)), strict=True))
        comments = dict(target.ca.items) if isinstance(target, CommentedSeq) else {}
        items, new_comments = [], {}
        for position, (name, item) in enumerate(zip(new_names, source, strict=True)):
            if name in by_name:
                old_index = by_name[name]
                _merge(target[old_index], item, (*path, position), kept)
                items.append(target[old_index])
                if old_index in comments:
                    new_comments[position] = comments[old_index]
            else:
                items.append(item)
        target[:] = items
        if isinstance(target, CommentedSeq):
            target.ca.items.clear()
            target.ca.items.update(new_comments)
        return True
    dirty = False
    for position, item in enumerate(source[:len(target)]):
        dirty |= _merge_value(target, position, item, (*path, position), kept)
    if len(source) > len(target):
        target.extend(source[len(target):])
        dirty = True
    while len(target) > len(source):
        if isinstance(target, CommentedSeq):
            target.ca.items.pop(len(target) - 1, None)
        del target[len(target) - 1]
        dirty = True
    return dirty


def _names(items: Any) -> list[Any] | None:
    """Return the ``name`` of each item when every item is a mapping with a unique one, else None."""
    if not items or not all(isinstance(item, dict) and "name" in item for item in items):
        return None
    names = [item["name"] for item in items]
    return names if len(set(map(str, names))) == len(names) else None


def _diff_lines(text: str) -> list[str]:
    """Return lines for difflib, marking a missing final newline the way git does."""
    lines = _lines(text)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines
