"""promote.patch: manifest edits keep comments and layout, are idempotent, and fail in one line."""

from __future__ import annotations

import difflib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from coordinator.errors import EXPECTED, exit_code
from promote.errors import PromotionError
from promote.patch import (
    Edit,
    changed,
    copy_manifest,
    helm_value,
    kustomize_image,
    safe_repo_path,
    set_values,
    unified_diff,
)

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "patch"
BASELINE = (HELLO / "baseline.yaml").read_text()
CANDIDATE = (HELLO / "candidate.yaml").read_text()
KUSTOMIZATION = (GOLDEN / "kustomization.yaml").read_text()
VALUES = (GOLDEN / "values.yaml").read_text()
IMAGE_PATH = "spec.template.spec.containers[name=hello].image"


def _load_all(text: str) -> list[Any]:
    """Return every document of ``text`` as plain round-trip data."""
    return list(YAML(typ="rt").load_all(text))


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """Return the (old, new) line pairs of a diff in which lines were only replaced, never moved."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def _comments(text: str) -> list[str]:
    """Return every comment of ``text`` (the part from ``#`` on), in order."""
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def _check_golden(text: str, name: str, update_golden: bool) -> None:
    """Compare ``text`` with the golden file ``name``, rewriting it under --update-golden."""
    golden = GOLDEN / name
    if update_golden:
        golden.write_text(text)
    assert text == golden.read_text()


# --- goldens on the repo's examples and our fixtures ---------------------------------------------


@pytest.mark.parametrize(("name", "patch"), [
    pytest.param("baseline-copy.yaml", lambda: copy_manifest(BASELINE, CANDIDATE), id="copy"),
    pytest.param("baseline-image.yaml",
                 lambda: set_values(BASELINE, [Edit(path=IMAGE_PATH, value="ghcr.io/slogate/hello:2.0")],
                                    document="Deployment/hello"), id="set-image"),
    pytest.param("kustomization-tag.yaml",
                 lambda: kustomize_image(KUSTOMIZATION, name="ghcr.io/slogate/hello", new_tag="2.0"),
                 id="kustomize-tag"),
    pytest.param("kustomization-add.yaml",
                 lambda: kustomize_image(KUSTOMIZATION, name="busybox", new_tag="1.36"),
                 id="kustomize-add"),
    pytest.param("kustomization-digest.yaml",
                 lambda: kustomize_image(KUSTOMIZATION, name="redis", new_tag="7.2"),
                 id="kustomize-tag-drops-digest"),
    pytest.param("values-tag.yaml", lambda: helm_value(VALUES, key="image.tag", value="2.0"),
                 id="helm-tag"),
])
def test_patch_matches_golden_file(name: str, patch: object, update_golden: bool) -> None:
    """Each strategy's output on a realistic manifest equals its golden file byte for byte."""
    assert callable(patch)
    _check_golden(patch(), name, update_golden)


def test_copy_keeps_stable_identity_and_takes_candidate_content() -> None:
    """copy_manifest yields the candidate's data except the stable names and selectors it keeps."""
    out = _load_all(copy_manifest(BASELINE, CANDIDATE))
    expected = _load_all(CANDIDATE)
    stable = _load_all(BASELINE)
    for doc, old in zip(expected, stable, strict=True):
        doc["metadata"]["name"] = old["metadata"]["name"]
        doc["spec"]["selector"] = old["spec"]["selector"]
    template_labels = stable[0]["spec"]["template"]["metadata"]["labels"]
    expected[0]["spec"]["template"]["metadata"]["labels"] = template_labels
    assert out == expected
    assert out[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/slogate/hello:2.0"
    assert out[1]["spec"]["selector"] == {"app": "hello", "version": "1.0"}


def test_copy_keeps_every_stable_comment() -> None:
    """copy_manifest keeps the stable file's comments, line count and quote style."""
    out = copy_manifest(BASELINE, CANDIDATE)
    assert _comments(out) == _comments(BASELINE)
    assert all(old.count('"') == new.count('"') for old, new in _changed_lines(BASELINE, out))


def test_copy_without_keep_names_takes_everything() -> None:
    """copy_manifest(keep_names=False) makes the stable file's data equal the candidate's."""
    assert _load_all(copy_manifest(BASELINE, CANDIDATE, keep_names=False)) == _load_all(CANDIDATE)


def test_copy_pairs_named_list_items_by_name() -> None:
    """A candidate that inserts an env var keeps each stable comment on the var it belongs to."""
    candidate = CANDIDATE.replace("            - name: HELLO_HOST",
                                  "            - name: HELLO_DEBUG\n              value: \"1\"\n"
                                  "            - name: HELLO_HOST")
    out = copy_manifest(BASELINE, candidate)
    assert "- name: HELLO_HOST  # listen on all interfaces inside the pod" in out
    env = _load_all(out)[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["HELLO_VERSION", "HELLO_DEBUG", "HELLO_HOST", "HELLO_PORT"]


def test_set_image_changes_exactly_one_line() -> None:
    """Setting the image of Deployment/hello changes only the image line; every comment survives."""
    out = set_values(BASELINE, [Edit(path=IMAGE_PATH, value="ghcr.io/slogate/hello:2.0")],
                     document="Deployment/hello")
    diff = [line for line in difflib.ndiff(BASELINE.splitlines(), out.splitlines())
            if line[:2] in ("- ", "+ ")]
    assert diff == ["-           image: ghcr.io/slogate/hello:1.0  # the tag is the app version",
                    "+           image: ghcr.io/slogate/hello:2.0  # the tag is the app version"]
    assert _comments(out) == _comments(BASELINE)


def test_untouched_documents_stay_byte_identical() -> None:
    """Editing the Service leaves the Deployment document and the '---' line byte for byte."""
    out = set_values(BASELINE, [Edit(path="spec.ports[0].port", value=9090)], document="Service/hello")
    head, _, tail = BASELINE.partition("\n---\n")
    new_head, _, new_tail = out.partition("\n---\n")
    assert new_head == head and new_tail == tail.replace("port: 8080", "port: 9090")


def test_longer_value_keeps_the_comment_gap() -> None:
    """A longer value pushes its end-of-line comment right, keeping the two spaces before it."""
    image = "ghcr.io/slogate/hello:2.0.1-rc.1+build.5"
    out = set_values(BASELINE, [Edit(path=IMAGE_PATH, value=image)])
    assert f"image: {image}  # the tag is the app version" in out


def test_quoted_value_keeps_its_quotes() -> None:
    """A string written over a double-quoted string stays double-quoted."""
    out = set_values(BASELINE, [Edit(path="metadata.labels.version", value="2.0")],
                     document="Deployment/hello")
    assert _changed_lines(BASELINE, out) == [('    version: "1.0"', '    version: "2.0"')]


def test_several_edits_in_one_call() -> None:
    """Edits resolving in different documents are all applied, each where its path resolves."""
    out = set_values(BASELINE, [Edit(path=IMAGE_PATH, value="ghcr.io/slogate/hello:2.0"),
                                Edit(path="spec.ports[name=http].port", value=9090)])
    assert len(_changed_lines(BASELINE, out)) == 2


@pytest.mark.parametrize(("source", "patch"), [
    pytest.param(BASELINE, lambda t: copy_manifest(t, CANDIDATE), id="copy"),
    pytest.param(BASELINE, lambda t: set_values(t, [Edit(path=IMAGE_PATH, value="x:2")]),
                 id="set-values"),
    pytest.param(KUSTOMIZATION, lambda t: kustomize_image(t, name="ghcr.io/slogate/hello", new_tag="2.0"),
                 id="kustomize"),
    pytest.param(KUSTOMIZATION,
                 lambda t: kustomize_image(t, name="new", new_name="a/new", digest="sha256:ab"),
                 id="kustomize-add"),
    pytest.param(VALUES, lambda t: helm_value(t, key="image.tag", value="2.0"), id="helm"),
])
def test_reapplying_is_a_no_op(source: str, patch: object) -> None:
    """Applying the same patch to its own output returns that output byte for byte."""
    assert callable(patch)
    once = patch(source)
    assert changed(source, once)
    twice = patch(once)
    assert twice == once and not changed(once, twice)


def test_unchanged_edit_returns_the_same_text() -> None:
    """An edit to the value already there returns the input unchanged (already promoted)."""
    same = set_values(BASELINE, [Edit(path=IMAGE_PATH, value="ghcr.io/slogate/hello:1.0")])
    assert same is BASELINE
    assert copy_manifest(BASELINE, BASELINE) == BASELINE
    assert helm_value(VALUES, key="replicaCount", value="2") != VALUES  # "2" is not 2


def test_kustomize_digest_drops_stale_tag() -> None:
    """Pinning a digest removes the newTag that kustomize would otherwise be overridden by."""
    out = _load_all(kustomize_image(KUSTOMIZATION, name="ghcr.io/slogate/hello", digest="sha256:ab"))
    assert out[0]["images"][0] == {"name": "ghcr.io/slogate/hello", "digest": "sha256:ab"}


def test_kustomize_adds_images_list() -> None:
    """A kustomization without images gets the list and the entry."""
    out = kustomize_image("kind: Kustomization\nresources:\n  - base\n", name="app", new_tag="2")
    assert out == "kind: Kustomization\nresources:\n  - base\nimages:\n  - name: app\n    newTag: '2'\n"


@pytest.mark.parametrize(("call", "message"), [
    pytest.param(lambda: set_values(BASELINE, [Edit(path=IMAGE_PATH, value="x")],
                                    document="Deployment/hello-v1"),
                 "no Deployment/hello-v1 in the file; found: Deployment/hello, Service/hello",
                 id="missing-document"),
    pytest.param(lambda: set_values(BASELINE, [Edit(path="spec.template.spec.containers[name=hellox].image",
                                                    value="x")], document="Deployment/hello"),
                 "spec.template.spec.containers[name=hellox]: no item with name=hellox",
                 id="missing-item"),
    pytest.param(lambda: set_values(BASELINE, [Edit(path="spec.template.spec.containers[3].image",
                                                    value="x")], document="Deployment/hello"),
                 "spec.template.spec.containers[3]: no item 3 (the list has 1)", id="index-out-of-range"),
    pytest.param(lambda: set_values(BASELINE, [Edit(path="spec.replicaz", value=2)],
                                    document="Deployment/hello"),
                 "spec.replicaz: no key replicaz (keys: replicas, selector, template)", id="missing-key"),
    pytest.param(lambda: set_values(BASELINE, [Edit(path="metadata.labels.version", value="2")]),
                 "metadata.labels.version resolves in 2 documents (Deployment/hello, Service/hello); "
                 "pick one with document='Kind/name'", id="ambiguous"),
    pytest.param(lambda: set_values(BASELINE, [Edit(path="spec.nothing", value=2)]),
                 "spec.nothing resolves in no document; Deployment/hello: spec.nothing: no key nothing "
                 "(keys: replicas, selector, template); Service/hello: spec.nothing: no key nothing "
                 "(keys: selector, ports)", id="nowhere"),
    pytest.param(lambda: set_values(BASELINE, [Edit(path="spec.template", value=2)],
                                    document="Deployment/hello"),
                 "spec.template: is a mapping, not a scalar", id="not-a-scalar"),
    pytest.param(lambda: set_values(BASELINE, [Edit(path="spec..x", value=2)]),
                 "spec..x: bad path syntax at character 5", id="bad-path"),
    pytest.param(lambda: set_values("a: 1\n---\nb: [1, 2\nc: 3\n", [Edit(path="a", value=2)]),
                 "malformed YAML at line 4: expected ',' or ']', but got ':'", id="malformed"),
    pytest.param(lambda: helm_value(VALUES, key="image.tagg", value="2.0"),
                 "image.tagg: no key tagg (keys: repository, tag, pullPolicy)", id="helm-missing-key"),
    pytest.param(lambda: helm_value(VALUES, key="replicaCount.x", value="2.0"),
                 "replicaCount.x: not a mapping (found int)", id="helm-into-scalar"),
    pytest.param(lambda: kustomize_image(KUSTOMIZATION, name="x"),
                 "kustomize image x: give new_tag, new_name or digest", id="kustomize-nothing"),
    pytest.param(lambda: kustomize_image(KUSTOMIZATION, name="x", new_tag="1", digest="sha256:a"),
                 "kustomize image x: give new_tag or digest, not both", id="kustomize-both"),
    pytest.param(lambda: kustomize_image(BASELINE, name="x", new_tag="1"),
                 "expected a kustomization with one YAML document, found 2", id="kustomize-multi-doc"),
    pytest.param(lambda: copy_manifest(BASELINE, CANDIDATE.partition("\n---\n")[0]),
                 "the candidate's documents do not match the stable ones by kind: stable has "
                 "Deployment/hello, Service/hello; candidate has Deployment/hello-candidate",
                 id="copy-kinds-differ"),
])
def test_errors_name_what_is_wrong(call: object, message: str) -> None:
    """Each failure raises PromotionError (exit 2) with a one-line message naming the problem."""
    assert callable(call)
    with pytest.raises(PromotionError) as info:
        call()
    assert str(info.value) == message
    assert "\n" not in message and isinstance(info.value, EXPECTED)
    assert exit_code(info.value) == 2


def test_unified_diff_has_git_headers() -> None:
    """unified_diff labels the sides a/path and b/path and is empty for equal texts."""
    out = helm_value(VALUES, key="image.tag", value="2.0")
    diff = unified_diff(VALUES, out, "charts/hello/values.yaml")
    assert diff.splitlines()[:2] == ["--- a/charts/hello/values.yaml", "+++ b/charts/hello/values.yaml"]
    assert '-  tag: "1.0"  # the app version; slogate promotes this' in diff.splitlines()
    assert unified_diff(VALUES, VALUES, "v.yaml") == ""


_TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(tag=_TAGS)
def test_random_image_tag_round_trips(tag: str) -> None:
    """Any valid image tag set with set_values reads back unchanged and touches at most one line."""
    image = f"ghcr.io/slogate/hello:{tag}"
    out = set_values(BASELINE, [Edit(path=IMAGE_PATH, value=image)])
    container = _load_all(out)[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    assert len(_changed_lines(BASELINE, out)) == (0 if image == "ghcr.io/slogate/hello:1.0" else 1)


@settings(max_examples=150, deadline=None)
@given(tag=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20))
def test_any_string_value_reads_back(tag: str) -> None:
    """Any printable string written by helm_value reads back as the same string."""
    out = helm_value(VALUES, key="image.tag", value=tag)
    assert YAML(typ="rt").load(io.StringIO(out))["image"]["tag"] == tag


@pytest.mark.parametrize(("relative", "ok"), [
    pytest.param("deploy/prod/hello.yaml", True, id="nested"),
    pytest.param("./hello.yaml", True, id="dot"),
    pytest.param("inside-link/hello.yaml", True, id="symlink-inside"),
    pytest.param("../other/hello.yaml", False, id="dotdot"),
    pytest.param("deploy/../../x.yaml", False, id="dotdot-nested"),
    pytest.param("/etc/passwd", False, id="absolute"),
    pytest.param("C:/x.yaml", False, id="drive"),
    pytest.param("outside-link/hello.yaml", False, id="symlink-outside"),
    pytest.param("", False, id="empty"),
])
def test_safe_repo_path(tmp_path: Path, relative: str, ok: bool) -> None:
    """safe_repo_path accepts paths inside the repository and refuses any that leave it."""
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / "deploy").mkdir(parents=True)
    outside.mkdir()
    os.symlink(repo / "deploy", repo / "inside-link")
    os.symlink(outside, repo / "outside-link")
    if ok:
        path = safe_repo_path(repo, relative)
        assert path.is_relative_to(repo.resolve())
    else:
        with pytest.raises(PromotionError):
            safe_repo_path(repo, relative)
