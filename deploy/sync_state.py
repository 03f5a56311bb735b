"""Whether the cluster runs the promoted version: the stable Deployment as a GitOps controller
(Argo CD, Flux) leaves it once it has applied the merged manifest and the rollout is over.

Pure: it takes the Deployment as the API returns it (JSON) and what the merged manifest wants.

Invariants: synced means all of: every container the merged manifest names runs the image it
names in the Deployment's pod template (or, without a manifest to compare with, some container's
image tag is the version); the controller observed the template's generation
(``observedGeneration >= generation``); every wanted replica is updated and available and no old
one is left (:func:`deploy.manifests.rollout_progress`). A template of another version is
"waiting", never an error: the controller may not have synced yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import YAMLError

from analysis.safe_yaml import bounded_yaml
from deploy.manifests import rollout_progress


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncState:
    """How far the cluster is: ``synced``, a one-line ``summary``, and ``failed`` when the
    rollout cannot finish (its progress deadline passed)."""

    synced: bool
    summary: str
    failed: str | None = None


def wanted_images(text: str, deployment: str) -> dict[str, str] | None:
    """Return container name -> image of the Deployment ``deployment`` in the manifest ``text``
    (the merged file), or None when the file has no such Deployment (a kustomization, Helm
    values) or is not YAML."""
    try:
        docs = list(bounded_yaml().load_all(text))
    except YAMLError:
        return None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Deployment" and \
                (doc.get("metadata") or {}).get("name") == deployment:
            return _images(doc)
    return None


def _images(deployment: Mapping[str, Any]) -> dict[str, str]:
    template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {str(c.get("name")): str(c.get("image")) for c in template.get("containers") or []
            if isinstance(c, dict)}


def _tag(image: str) -> str:
    """Return the tag of ``image`` (``registry:5000/app:2.0@sha256:…`` -> ``2.0``), or ''."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def template_mismatch(deployment: Mapping[str, Any], *, images: Mapping[str, str] | None,
                      version: str) -> str | None:
    """Return why the Deployment's pod template does not carry the promoted version (in
    words), or None when it does."""
    running = _images(deployment)
    if images is None:
        if any(_tag(image) == version for image in running.values()):
            return None
        return (f"the template runs {', '.join(sorted(running.values())) or 'no container'}, "
                f"no image tagged {version}")
    wrong = [f"{name} runs {running.get(name, 'nothing')}, not {image}"
             for name, image in sorted(images.items()) if running.get(name) != image]
    return "; ".join(wrong) or None


def sync_state(deployment: Mapping[str, Any] | None, *, images: Mapping[str, str] | None,
               version: str) -> SyncState:
    """Return whether ``deployment`` (None: not found) runs ``version`` everywhere."""
    if deployment is None:
        return SyncState(synced=False, summary="the deployment does not exist (yet)")
    mismatch = template_mismatch(deployment, images=images, version=version)
    if mismatch is not None:
        return SyncState(synced=False, summary=f"not synced yet: {mismatch}")
    progress = rollout_progress(deployment)
    return SyncState(synced=progress.ready, summary=f"{version} in the template; "
                     f"{progress.summary}", failed=progress.failed)
