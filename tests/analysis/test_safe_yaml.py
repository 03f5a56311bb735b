"""analysis.safe_yaml: alias bombs and absurd nesting are refused by every YAML reader, at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from analysis.safe_yaml import MAX_ALIAS_NODES, MAX_DEPTH, YamlBombError, bounded_yaml
from coordinator.errors import SpecError
from coordinator.spec import load_objectives, load_spec
from deploy.errors import KubernetesError
from deploy.manifests import load_manifests
from promote.errors import PromotionError
from promote.patch import kustomize_image

ROOT = Path(__file__).resolve().parents[2]
WORD = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def laughs(levels: int, key: str = "lol") -> str:
    """Return a "billion laughs" mapping: ``levels`` anchors, each ten aliases of the one before."""
    text = f"{key}0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, levels):
        text += f"{key}{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    return text


BOMBS = [
    pytest.param(laughs(9), "aliases expand to more than 10,000 nodes", 4, id="billion-laughs"),
    pytest.param("a: &a [1, *a]\n", "refers to a collection that contains it", 1, id="cycle"),
    pytest.param("a: " + "[" * 5000 + "]" * 5000 + "\n", f"more than {MAX_DEPTH} levels", 1,
                 id="deep-flow-nesting"),
    pytest.param("a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 150)),
                 f"more than {MAX_DEPTH} nested levels", 101, id="deep-through-aliases"),
]


@pytest.mark.parametrize("typ", ["safe", "rt"])
@pytest.mark.parametrize(("text", "problem", "line"), BOMBS)
def test_bombs_are_refused_with_the_line(typ: str, text: str, problem: str, line: int) -> None:
    """Each hostile document raises YamlBombError whose problem and mark say what and where."""
    with pytest.raises(YamlBombError) as caught:
        bounded_yaml(typ).load(text)  # type: ignore[arg-type]
    assert problem in caught.value.problem
    assert caught.value.problem_mark.line + 1 == line


def test_aliases_within_the_budget_load_as_plain_yaml_does() -> None:
    """Merge keys, and aliases adding 1,220 nodes (under the budget), load as ruamel loads them."""
    text = "base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  z: 3\n" + laughs(3)
    assert bounded_yaml().load(text) == YAML(typ="safe", pure=True).load(text)
    assert bounded_yaml("rt").load(text)["lol2"][9][9][9] == "x"


def test_the_budget_counts_expanded_nodes() -> None:
    """Four levels add 110 + 1,110 + 11,110 nodes: the fourth passes the budget on its line."""
    with pytest.raises(YamlBombError) as caught:
        bounded_yaml().load(laughs(4))
    assert caught.value.problem_mark.line + 1 == 4
    assert 110 + 1_110 <= MAX_ALIAS_NODES < 110 + 1_110 + 11_110


def test_nesting_at_the_limit_loads() -> None:
    """A document nested exactly MAX_DEPTH levels deep still loads."""
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    node = bounded_yaml().load(text)
    depth = 0
    while isinstance(node, list):
        node, depth = (node[0] if node else None), depth + 1
    assert depth == MAX_DEPTH


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(WORD, max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(WORD, min_size=1, max_size=5), inner, max_size=4),
                    max_leaves=30))
def test_ordinary_documents_load_unchanged(data: object) -> None:
    """Any document without aliases (JSON is YAML) loads through bounded_yaml unchanged."""
    assert bounded_yaml().load(json.dumps(data)) == data


# --- every reader of the project ------------------------------------------------------------

SPEC = "name: t\ntarget: http://127.0.0.1:8080\nload: {rate: 10, duration: 1s}\n"


def test_spec_bomb_is_a_spec_error_naming_file_and_line(tmp_path: Path) -> None:
    """A spec carrying a nine-level alias bomb is refused with file:line, not expanded."""
    path = tmp_path / "bomb.yaml"
    path.write_text(SPEC + laughs(9, key="x-"), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == (f"{path}:7: malformed YAML: aliases expand to more than "
                                 f"{MAX_ALIAS_NODES:,} nodes (an alias bomb?)")


def test_objectives_bomb_is_a_spec_error(tmp_path: Path) -> None:
    """An objectives file with an alias bomb is refused the same way."""
    path = tmp_path / "objectives.yaml"
    path.write_text("objectives:\n  - {metric: error-rate, upperLimit: 1%}\n" + laughs(9),
                    encoding="utf-8")
    with pytest.raises(SpecError, match=r"objectives\.yaml:6: malformed YAML: aliases expand"):
        load_objectives(path)


def test_manifest_bomb_is_a_kubernetes_error_naming_the_file(tmp_path: Path) -> None:
    """A ConfigMap whose data hides an alias bomb is refused when the manifests are read."""
    path = tmp_path / "candidate.yaml"
    body = "".join("  " + line + "\n" for line in laughs(9).splitlines())
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n" + body,
                    encoding="utf-8")
    with pytest.raises(KubernetesError) as caught:
        load_manifests([path])
    assert str(caught.value).startswith(f"manifest {path}: invalid YAML at line 8: aliases "
                                        "expand to more than")


def test_kustomization_bomb_is_a_promotion_error() -> None:
    """A kustomization with an alias bomb is refused by the patcher, not expanded on dump."""
    text = "resources: [a.yaml]\n" + laughs(9)
    with pytest.raises(PromotionError, match="malformed YAML at line 5: aliases expand"):
        kustomize_image(text, name="app", new_tag="2")


def test_cli_refuses_a_bomb_in_one_line(tmp_path: Path) -> None:
    """`slogate run` on a billion-laughs spec prints one line and exits 2 (it used to run
    until memory ran out)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(SPEC + laughs(9), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "coordinator.cli", "run", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"slogate: error: {path}:7: malformed YAML: aliases expand to more than 10,000 nodes "
        "(an alias bomb?)"]
