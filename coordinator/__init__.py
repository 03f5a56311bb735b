"""slogate's command line and orchestrator.

The coordinator reads an experiment spec, starts or joins Ray, schedules ``LoadWorker`` actors, merges
what they return as it arrives (:mod:`coordinator.supervisor`, no Ray; :mod:`coordinator.cluster` only
carries the messages), calls the analysis and writes the results. It is the only layer that turns exceptions
into exit codes (see :mod:`coordinator.cli`).

Exception tree (``coordinator.errors``), shared by every package::

    SlogateError                 anything slogate raises on purpose; carries a one-line message
    ├── SpecError                the experiment spec (or another user file) is wrong   -> exit 2
    ├── ResultsError             a results.json cannot be read or has the wrong schema -> exit 2
    ├── ClusterError             Ray could not be started/joined, actors not placed    -> exit 2
    ├── ExampleError             the bundled sample app could not be started           -> exit 2
    ├── PromotionError           the promotion cannot be prepared or done              -> exit 2
    ├── KubernetesError          the cluster refused an operation, or the candidate's
    │                            rollout failed (why, from its pods' status)           -> exit 2
    └── HistoryError             the run archive (a directory, git:REPO#BRANCH) cannot be
                                 read or written, or holds no run of that name         -> exit 2

Per-request failures are never exceptions: they are data (``error="timeout"``, ``"status:503"``).
"""
