"""The grammar of every name that reaches a GitHub API URL, checked before any call is made.

A promotion block names a repository (and an upstream), manifest paths and ``from`` files, an
app and a version (both in the branch name), a base branch and labels. PyGithub quotes them into
URL paths, and an HTTP stack collapses ``..`` segments afterwards, so a name such as
``../../../victim/gitops/contents/x`` would reach another repository the token can write to.
Every such name is held here to a strict grammar instead of being escaped:

- repositories: ``owner/name`` as GitHub spells them (letters, digits, ``-``; names also ``.``
  and ``_``), never ``.`` or ``..``;
- paths (``path``, ``from``): relative, ``/``-separated, no empty, ``.`` or ``..`` segment, no
  backslash, ``%`` (percent-encoding), control character or leading ``/``;
- app and version: ``[A-Za-z0-9_][A-Za-z0-9._+-]*`` (no ``/``), at most 63 and 128 characters;
- branches (the base branch, and the generated ``slogate/promote-<app>-<version>``): git's
  ``check-ref-format`` rules for ``refs/heads/<name>``, and no ``%``;
- labels: 1 to 50 characters (GitHub's limit), no control character, ``%``, backslash, and no
  ``.``/``..`` segment between slashes.

Pure module: :func:`check_promotion_names` raises :class:`PromotionError` naming the field and
the rule broken, and :func:`repository_error`, :func:`path_error`, :func:`branch_error` return
the broken rule (``None`` when the name is fine) for callers that name things their own way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from promote.errors import PromotionError
from promote.spec import PromotionSpec

_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\%]")
MAX_PATH_CHARS = 1024
MAX_BRANCH_CHARS = 255
MAX_LABEL_CHARS = 50
MAX_APP_CHARS = 63
MAX_VERSION_CHARS = 128


def repository_error(name: str) -> str | None:
    """Return why ``name`` is not a GitHub ``owner/name``, or None when it is one."""
    owner, slash, repo = name.partition("/")
    if not slash or not _OWNER.fullmatch(owner) or not _REPO.fullmatch(repo) \
            or repo in (".", ".."):
        return "is not owner/name (letters, digits and -; the name also . and _)"
    return None


def path_error(path: str) -> str | None:
    """Return why ``path`` is not a safe repository-relative file path, or None."""
    if not path:
        return "is empty"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if path.startswith("/"):
        return "is absolute; give it relative to the repository root"
    if "\\" in path:
        return "has a backslash"
    if "%" in path:
        return "has a % (percent-encoding is not allowed)"
    if _CONTROL.search(path):
        return "has a control character"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "has an empty, . or .. segment"
    return None


def branch_error(branch: str) -> str | None:
    """Return which ``git check-ref-format`` rule (or ours: no ``%``) ``branch`` breaks, or None."""
    if not branch:
        return "is empty"
    if len(branch) > MAX_BRANCH_CHARS:
        return f"is longer than {MAX_BRANCH_CHARS} characters"
    if _REF_FORBIDDEN.search(branch):
        return "has a space, control character or one of ~ ^ : ? * [ \\ %"
    if ".." in branch or "@{" in branch or branch == "@":
        return "has .. or @{, or is @"
    if branch.startswith(("/", "-")) or branch.endswith(("/", ".")) or "//" in branch:
        return "starts with / or -, ends with / or ., or has //"
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        return "has a component starting with . or ending with .lock"
    return None


def label_error(label: str) -> str | None:
    """Return why ``label`` is not a safe pull-request label, or None."""
    if not label or len(label) > MAX_LABEL_CHARS:
        return f"must be 1 to {MAX_LABEL_CHARS} characters"
    if _CONTROL.search(label) or "%" in label or "\\" in label:
        return "has a control character, % or backslash"
    if any(part in (".", "..") for part in label.split("/")):
        return "has a . or .. segment"
    return None


def _token_error(text: str, limit: int) -> str | None:
    if len(text) > limit or not _TOKEN.fullmatch(text):
        return (f"must be 1 to {limit} of letters, digits, . _ + - (not starting with . + -), "
                "no /")
    return None


def _named(promotion: PromotionSpec, branches: tuple[str, ...]
           ) -> Iterator[tuple[str, str, str | None]]:
    """Yield (field, value, rule broken or None) for every name of ``promotion``."""
    if promotion.provider == "github":  # a local repository is a path on disk, not a URL part
        yield "repository", promotion.repository, repository_error(promotion.repository)
    if promotion.upstream is not None:
        yield "upstream", promotion.upstream, repository_error(promotion.upstream)
    yield "app", promotion.app, _token_error(promotion.app, MAX_APP_CHARS)
    yield "version", promotion.version, _token_error(promotion.version, MAX_VERSION_CHARS)
    yield "baseBranch", promotion.base_branch, branch_error(promotion.base_branch)
    for index, item in enumerate(promotion.manifests):
        yield f"manifests[{index}].path", item.path, path_error(item.path)
        if item.from_ is not None:
            yield f"manifests[{index}].from", item.from_, path_error(item.from_)
    for index, label in enumerate(promotion.labels):
        yield f"labels[{index}]", label, label_error(label)
    for branch in branches:
        yield "branch", branch, branch_error(branch)


def check_promotion_names(promotion: PromotionSpec, branches: tuple[str, ...] = ()) -> None:
    """Raise PromotionError naming the first field of ``promotion`` (or of the generated
    ``branches``) that breaks its grammar; return None when every name is safe."""
    for field, value, error in _named(promotion, branches):
        if error is not None:
            raise PromotionError(f"promotion.{field}: {value!r} {error}")
