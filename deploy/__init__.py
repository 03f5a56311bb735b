"""Dark launch of the candidate on Kubernetes, and the manifests that run slogate in a cluster.

- :mod:`deploy.kube`: the Kubernetes adapter, the one module that imports kubernetes_asyncio.
  Server-side apply (field manager ``slogate``), the rollout wait that fails fast on pod states
  that waiting will not cure, deletion of what was applied, reading a Secret; every API error
  becomes one :class:`~deploy.errors.KubernetesError` line (:mod:`deploy.errors`, owned
  here; the CLI maps it to exit 2).
- :mod:`deploy.manifests`: pure helpers on plain values: the kinds it applies (``ResourceKind``),
  loading and checking the candidate's manifest files, choosing the Service and port to load,
  reading a Deployment's and its pods' status into one-line answers. No client, no I/O beyond
  reading the manifest files.
- :mod:`deploy.launch`: the synchronous facade the coordinator calls (``launch``, ``cleanup``,
  ``read_kubernetes_secret``), one ``asyncio.run`` per call; :mod:`coordinator.dark_launch` maps
  the spec's ``target.kubernetes`` onto it.
- :mod:`deploy.sync_state` (pure) and :mod:`deploy.sync_wait`: whether the stable Deployment runs
  the promoted version as a GitOps controller leaves it (template, observed generation,
  rollout), and the wait for it (``slogate verify``).
- ``deploy/controllers/``: Argo Rollouts, Flagger, Argo CD and Flux examples that gate on
  slogate's verdict (validated offline by tests/deploy/test_controller_examples.py).
- ``deploy/k8s/``: kustomize manifests (not Python) for a nightly in-cluster run: CronJob,
  RayCluster, PVC, ServiceAccount with a least-privilege Role, and the experiment with the
  candidate it dark-launches in a ConfigMap. See deploy/k8s/README.md.

Invariants: kubernetes_asyncio is imported in deploy/kube.py only; a Secret's value never reaches
a log line, a message or a results file; a failure here exits 2 (KubernetesError).
"""
