"""``slogate run``'s flags as Click parses them: a renamed parameter keeps the flag users type."""

from __future__ import annotations

import pytest

from coordinator.cli import main


@pytest.mark.parametrize(("flags", "expected"), [
    pytest.param(["--aa"], True, id="aa"),
    pytest.param(["--one-version-as-both"], True, id="long-name"),
    pytest.param([], False, id="absent"),
])
def test_aa_flag_and_its_long_name_set_one_version_as_both(flags: list[str],
                                                           expected: bool) -> None:
    """`--aa` (and its spelled-out alias) still turns on the A/A run, now `one_version_as_both`."""
    command = main.get_command(None, "run")  # type: ignore[arg-type]
    assert command is not None
    context = command.make_context("run", ["spec.yaml", *flags])
    assert context.params["one_version_as_both"] is expected
    assert context.params["spec_path"].name == "spec.yaml"
