"""sync_state: when the stable Deployment runs the promoted version, as a GitOps controller
leaves it (template, observed generation, rollout), from the API's JSON alone."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.sync_state import sync_state, wanted_images

MERGED = """\
apiVersion: v1
kind: Service
metadata: {name: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  template:
    spec:
      containers:
      - {name: hello, image: "ghcr.io/acme/hello:2.0"}
      - {name: proxy, image: "envoy:1.30"}
"""


def deployment(*images: str, generation: int = 2, observed: int = 2, updated: int = 3,
               available: int = 3, replicas: int = 3) -> dict[str, Any]:
    """Return a 3-replica Deployment as the API answers it, running ``images`` (hello, proxy)."""
    names = ["hello", "proxy"]
    return {"metadata": {"name": "hello", "generation": generation},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": names[i], "image": image} for i, image in enumerate(images)]}}},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "availableReplicas": available, "replicas": replicas}}


IMAGES = {"hello": "ghcr.io/acme/hello:2.0", "proxy": "envoy:1.30"}


@pytest.mark.parametrize("dep, images, synced, summary", [
    pytest.param(deployment("ghcr.io/acme/hello:2.0", "envoy:1.30"), IMAGES, True,
                 "2.0 in the template; 3/3 updated, 3/3 available", id="synced"),
    pytest.param(deployment("ghcr.io/acme/hello:1.0", "envoy:1.30"), IMAGES, False,
                 "not synced yet: hello runs ghcr.io/acme/hello:1.0, not ghcr.io/acme/hello:2.0",
                 id="old-template"),
    pytest.param(deployment("ghcr.io/acme/hello:2.0", "envoy:1.30", generation=3, observed=2),
                 IMAGES, False, "2.0 in the template; spec change not yet observed (3/3 "
                 "updated, 3/3 available)", id="generation-not-observed"),
    pytest.param(deployment("ghcr.io/acme/hello:2.0", "envoy:1.30", updated=1, available=2,
                            replicas=4), IMAGES, False, "2.0 in the template; 1/3 updated, "
                 "2/3 available, 3 old pending termination", id="rolling"),
    pytest.param(deployment("ghcr.io/acme/hello:2.0@sha256:abc", "envoy:1.30"), None, True,
                 "2.0 in the template; 3/3 updated, 3/3 available", id="tag-before-digest"),
    pytest.param(deployment("registry:5000/hello:1.0", "envoy:2.0x"), None, False,
                 "not synced yet: the template runs envoy:2.0x, registry:5000/hello:1.0, no "
                 "image tagged 2.0", id="no-tag-of-the-version"),
    pytest.param(None, IMAGES, False, "the deployment does not exist (yet)", id="absent"),
])
def test_sync_state(dep: dict[str, Any] | None, images: dict[str, str] | None, synced: bool,
                    summary: str) -> None:
    """Synced only when the template carries the version, its generation is observed and every
    replica is updated and available with no old one left."""
    state = sync_state(dep, images=images, version="2.0")
    assert (state.synced, state.summary) == (synced, summary)


@pytest.mark.parametrize("text, name, expected", [
    pytest.param(MERGED, "hello", IMAGES, id="deployment-among-documents"),
    pytest.param(MERGED, "other", None, id="no-such-deployment"),
    pytest.param("images:\n- {name: hello, newTag: '2.0'}\n", "hello", None, id="kustomization"),
    pytest.param("a: [unclosed\n", "hello", None, id="not-yaml"),
])
def test_wanted_images(text: str, name: str, expected: dict[str, str] | None) -> None:
    """The merged manifest's images for the Deployment, or None where the file holds none."""
    assert wanted_images(text, name) == expected
