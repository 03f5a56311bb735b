"""The promotion part of the experiment spec (``promotion:``): where and how a PASS is promoted.

Pydantic models, validated once with the rest of the spec (:mod:`coordinator.spec` builds on
:class:`SpecModel` and imports these downward), so that promotion, the promotion service
included, reads its block without the coordinator. :class:`SpecModel` is the spec's pydantic
base: it lives here, in the lowest package whose spec is a pydantic model (analysis and workers
take plain values), so the spec's layers share one configuration.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys refused, frozen, no inf or NaN."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True,
        allow_inf_nan=False,  # rate: .inf would pass gt=0 and crash the pacer
    )


class ManifestEdit(SpecModel):
    """One edit of a ``set`` strategy: ``{path: spec.template.spec.containers[name=hello].image,
    value: "ghcr.io/slogate/hello:{{ version }}"}``."""

    path: str
    value: str


class ManifestPatch(SpecModel):
    """How one file of the GitOps repository is changed to promote the candidate.

    Strategies: ``copy`` (the ``from`` file's content becomes this one's, names and immutable
    selectors kept with ``keepNames``), ``set`` (``edits`` on the ``document`` ``Kind/name``),
    ``kustomize-image`` (``image: {name, newTag}``), ``helm-values`` (``key`` set to ``value``).
    Values may use ``{{ app }}`` and ``{{ version }}``.
    """

    path: str = Field(description="File to patch, relative to the repository root.")
    strategy: Literal["copy", "set", "kustomize-image", "helm-values"]
    from_: str | None = Field(None, alias="from", description="copy: the candidate manifest.")
    keep_names: bool = True
    document: str | None = Field(None, description="set: the document, as Kind/name.")
    edits: list[ManifestEdit] = Field(default_factory=list)
    image: dict[str, str] | None = Field(None, description="kustomize-image: {name, newTag}.")
    key: str | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _fields_for_strategy(self) -> ManifestPatch:
        needed = {"copy": ("from_", "from"), "set": ("edits", "edits"),
                  "kustomize-image": ("image", "image"), "helm-values": ("key", "key")}
        attr, name = needed[self.strategy]
        if not getattr(self, attr):
            raise ValueError(f"strategy {self.strategy} needs {name}")
        if self.strategy == "helm-values" and self.value is None:
            raise ValueError("strategy helm-values needs value")
        return self


class TokenSecret(SpecModel):
    """The Kubernetes Secret holding the GitHub token (the seed's convention: ``ghtoken``, key
    ``token``). Example: ``tokenSecret: {name: ghtoken, key: token, namespace: slogate}``."""

    name: str = Field("ghtoken", min_length=1, max_length=253)
    key: str = Field("token", min_length=1)
    namespace: str | None = Field(None, description="Default: the pod's own namespace in a "
                                  "cluster, else 'default'.")
    kubeconfig: str | None = Field(None, description="Kubeconfig file; default $KUBECONFIG, "
                                   "~/.kube/config, or the in-cluster service account.")
    context: str | None = None


class PromotionSpec(SpecModel):
    """Where and how a PASS is promoted: a pull request that makes the candidate stable (and,
    with ``onFail: revert-pr``, a FAIL of the stable version reverted by one).

    Example::

        promotion:
          repository: my-org/gitops          # a fork; provider local: a path on disk
          upstream: acme/gitops              # optional: the pull request goes there
          onFail: revert-pr                  # a FAIL of the stable version: revert PR
          manifests:
            - {path: samples/deployments/baseline.yaml, strategy: copy,
               from: samples/deployments/candidate.yaml}
    """

    provider: Literal["github", "local"] = "github"
    repository: str = Field(description="owner/name on GitHub, or a repository path (local).")
    base_branch: str = Field("main", description="The branch the pull request goes to.")
    base_url: str | None = Field(None, description="GitHub Enterprise API URL.")
    app: str = Field("app", description="Application name, used in the branch and PR title.")
    version: str = Field(description="The candidate's version, used in branch, title, values.")
    manifests: list[ManifestPatch] = Field(min_length=1)
    labels: list[str] = Field(default_factory=lambda: ["slogate"])
    token_file: str | None = Field(None, description="File holding the GitHub token "
                                   "(default: the GITHUB_TOKEN environment variable).")
    token_secret: TokenSecret | None = Field(None, description="Read the GitHub token from "
                                             "this Kubernetes Secret instead.")
    auto: bool = Field(True, description="slogate run promotes by itself on PASS.")
    on_fail: Literal["none", "revert-pr"] = Field(
        "none", description="revert-pr: a FAIL of the version already stable on baseBranch opens "
        "a pull request restoring the manifests to what they were before it was promoted.")
    upstream: str | None = Field(
        None, pattern=r"^[^/\s]+/[^/\s]+$", description="owner/name: branch and commits go to "
        "the fork (repository), the pull request to this repository's baseBranch (github only).")

    @model_validator(mode="after")
    def _one_token_source(self) -> PromotionSpec:
        if self.token_file is not None and self.token_secret is not None:
            raise ValueError("set at most one of tokenFile, tokenSecret")
        return self

    @model_validator(mode="after")
    def _upstream_needs_github(self) -> PromotionSpec:
        if self.upstream is not None and self.provider != "github":
            raise ValueError(f"upstream is for provider github; a {self.provider} repository "
                             "has no forks")
        return self
