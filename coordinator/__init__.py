"""slogate's command line and orchestrator.

The coordinator reads an experiment spec, starts or joins Ray, schedules ``LoadWorker`` actors, merges
what they return as it arrives (:mod:`coordinator.supervisor`, no Ray; :mod:`coordinator.ray_pool` only
carries the messages), calls the analysis and writes the results. It is the only layer that turns exceptions
into exit codes (see :mod:`coordinator.cli`).

Errors: each package owns the errors it raises, so none imports one from a package above it.
There is no common root class: its only natural home would be the lowest layer, ``workers``,
which raises none (a failed request is data there), so a root in it would be a ground floor in
name only. :data:`coordinator.errors.EXPECTED` gathers them for the CLI, the one place that maps
them to exit codes (:func:`coordinator.errors.exit_code`), as httpx maps foreign errors at its
boundary::

    coordinator.errors.CoordinatorError  the coordinator's own
    ├── SpecError                the experiment spec (or another user file) is wrong   -> exit 2
    ├── ClusterError             Ray could not be started/joined, actors not placed    -> exit 2
    ├── ExampleError             the bundled sample app could not be started           -> exit 2
    ├── HistoryError             the run archive (a directory, git:REPO#BRANCH) cannot be
    │                            read or written, or holds no run of that name         -> exit 2
    └── Interrupted              Ctrl-C or SIGTERM while Ray or the workers start      -> 130
    analysis.errors.ResultsError a results.json cannot be read or has the wrong schema -> exit 2
    promote.errors.PromotionError  the promotion cannot be prepared or done            -> exit 2
    deploy.errors.KubernetesError  the cluster refused an operation, or the candidate's
                                 rollout failed (why, from its pods' status)           -> exit 2

Modules: ``cli`` (the command line), ``run`` (one run end to end), ``spec`` (the experiment
spec; its ``promotion:`` part is :mod:`promote.spec`), ``spec_check``, ``units``, ``errors``,
``promote_wiring`` (the provider, token and printing of a promotion), ``archive`` (run history),
``supervisor``, ``progress``, ``wire``, ``reaper``, ``demo``, ``sample_app``.

Per-request failures are never exceptions: they are data (``error="timeout"``, ``"status:503"``).
"""
