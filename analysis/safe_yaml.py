"""The one way slogate reads YAML: a ruamel ``YAML`` that refuses alias bombs and absurd nesting.

Every YAML file the project reads (experiment specs and objectives files, candidate manifests,
the GitOps files a promotion patches, kustomizations among them) is loaded through
:func:`bounded_yaml`. Why here, in ``analysis``: the three readers sit in ``coordinator``,
``deploy`` and ``promote``, and imports point down (coordinator -> promote, deploy -> analysis ->
workers), so ``analysis`` is the lowest layer all three may import; ``workers`` is lower still but
holds the load engine, which never reads YAML. Pure: text in, data out, no I/O.

Invariants:

- an alias counts as a copy of the node it names: once the nodes aliases add to a document would
  pass :data:`MAX_ALIAS_NODES`, composing stops with :class:`YamlBombError` (a nine-level
  "billion laughs" is refused after a few thousand nodes, in milliseconds, not expanded); an
  alias to a node that contains it (a cycle) is refused the same way;
- nesting deeper than :data:`MAX_DEPTH` is refused, in the text and through aliases (an alias
  to a node nesting more than that), so what is built stays under :data:`MAX_DEPTH` twice over,
  far from Python's recursion limit in the code that walks it;
- the errors are ruamel ``YAMLError`` subclasses with a ``problem`` and a ``problem_mark``, so
  every caller's existing "file:line: malformed YAML: problem" translation names them;
- the pure-Python parser always: the C loader would skip the counting composer.
"""

from __future__ import annotations

from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import CollectionNode, MappingNode, Node, SequenceNode

MAX_ALIAS_NODES = 10_000  # nodes that aliases may add to one document
MAX_DEPTH = 100  # nested collections; Kubernetes manifests use about 15


class YamlBombError(ComposerError):
    """A document whose aliases would expand past the budget, or refer to themselves."""


class _BoundedComposer(Composer):
    """Composes as ruamel does, counting what each alias would expand to when constructed."""

    def compose_document(self: Any) -> Any:
        self._alias_nodes = 0
        self._shapes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.parser.check_event(AliasEvent):
            if self.depth >= MAX_DEPTH:
                raise YamlBombError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                    self.parser.peek_event().start_mark)
            return super().compose_node(parent, index)
        mark = self.parser.peek_event().start_mark
        node = super().compose_node(parent, index)
        if isinstance(node, CollectionNode) and node.end_mark is None:  # still being composed
            raise YamlBombError(None, None, "an alias refers to a collection that contains it "
                                "(a cycle)", mark)
        size, depth = self._shape(node)
        self._alias_nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise YamlBombError(None, None, f"aliases expand to more than {MAX_ALIAS_NODES:,} "
                                "nodes (an alias bomb?)", mark)
        if depth > MAX_DEPTH:
            raise YamlBombError(None, None, f"an alias expands to more than {MAX_DEPTH} nested "
                                "levels", mark)
        return node

    def _shape(self, node: Node) -> tuple[int, int]:
        """Return how many nodes ``node`` stands for, and how deep it nests, once every alias
        inside it is expanded (memoised: an aliased node is measured once)."""
        known = self._shapes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, SequenceNode):
            children = [self._shape(child) for child in node.value]
        elif isinstance(node, MappingNode):
            children = [self._shape(part) for pair in node.value for part in pair]
        else:
            children = []
        shape = (1 + sum(s for s, _ in children), 1 + max((d for _, d in children), default=0))
        self._shapes[id(node)] = shape
        return shape


def bounded_yaml(typ: Literal["safe", "rt"] = "safe") -> YAML:
    """Return a pure-Python ruamel ``YAML`` of type ``typ`` (``rt`` keeps comments and quotes,
    for files slogate edits) whose loads refuse alias bombs and nesting deeper than
    :data:`MAX_DEPTH` with a :class:`YamlBombError`.

    Example::

        data = bounded_yaml().load(path.read_text(encoding="utf-8"))
    """
    yaml = YAML(typ=typ, pure=True)
    yaml.Composer = _BoundedComposer
    return yaml
