"""slogate's command line and orchestrator.

The coordinator reads an experiment spec, starts or joins Ray, schedules ``LoadWorker`` actors,
merges what they return as it arrives (:mod:`coordinator.supervisor`, no Ray;
:mod:`coordinator.ray_pool` only carries the messages), calls the analysis and writes the results.
It is the only layer that turns exceptions into exit codes (see :mod:`coordinator.cli`).

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
    ├── Interrupted              Ctrl-C or SIGTERM while Ray or the workers start      -> 130
    └── prometheus.MetricsError  a metrics store unreachable, refusing a credential or a
                                 query before the load (after it: the run is INVALID) -> exit 2
    analysis.errors.ResultsError a results.json cannot be read or has the wrong schema -> exit 2
    promote.errors.PromotionError  the promotion cannot be prepared or done            -> exit 2
    deploy.errors.KubernetesError  the cluster refused an operation, or the candidate's
                                 rollout failed (why, from its pods' status)           -> exit 2

Per-request failures are never exceptions: they are data (``error="timeout"``, ``"status:503"``).

Modules:

- :mod:`coordinator.cli`: the ``slogate`` command line, the one place exceptions become exit codes;
- :mod:`coordinator.spec`: the experiment spec, validated once into frozen pydantic models (its
  ``promotion:`` part is :mod:`promote.spec`);
  :mod:`coordinator.units` parses its quantities and :mod:`coordinator.spec_check` finds likely
  mistakes in a valid one (``slogate check``, pure);
- :mod:`coordinator.grpc_spec`: the spec's gRPC part (an endpoint's ``call``, the ``grpc`` block;
  pure); :mod:`coordinator.grpc_schema` resolves its schema (protoc, protoset, reflection) and
  serializes each call's request, the one importer of protobuf;
- :mod:`coordinator.split`: an experiment split into exact per-worker plans (pure);
  request data for them: :mod:`coordinator.placeholders` (the ``{{ column }}`` grammar, pure),
  :mod:`coordinator.data_files` (a data file read once), :mod:`coordinator.request_data` (one
  request rendered per row);
- :mod:`coordinator.max_rate`: ``--find-max-rate``, the search for the highest passing rate;
- :mod:`coordinator.run`: one experiment from spec to results (plan, load, merge, judge);
- :mod:`coordinator.ray_pool`: the Ray pool, the one module that imports ray;
  :mod:`coordinator.reaper` kills what an embedded Ray left behind a dead process;
- :mod:`coordinator.supervisor`: one distributed run's supervision without Ray (loss, silence,
  replacement, gaps, the streaming merge); :mod:`coordinator.wire` packs a worker's snapshot;
- :mod:`coordinator.progress`: the live progress line;
- :mod:`coordinator.metrics_spec`: the spec's ``metrics:`` block (providers, custom metrics);
  :mod:`coordinator.custom_metrics` reads them (the check before the load, the readings after
  it) through :mod:`coordinator.prometheus`, the Prometheus HTTP API adapter (aiohttp);
  :mod:`coordinator.run_metrics`: the latency bucket counters workers export to Ray's metrics
  (pure);
- :mod:`coordinator.dark_launch`: the spec's ``target.kubernetes`` around a run (on :mod:`deploy`);
- :mod:`coordinator.promote_wiring`: the promotion's wiring: provider, token, what to print (on
  :mod:`promote`);
- :mod:`coordinator.pr_evidence`: the check and the comment left on a promotion's pull request
  (on :mod:`promote.evidence`);
- :mod:`coordinator.verify_wiring`: ``slogate verify``: merge, GitOps sync, the run against the
  stable Service, the revert on a FAIL (on :mod:`promote.verify` and :mod:`deploy.sync_wait`);
- :mod:`coordinator.notify_spec`, :mod:`coordinator.notify`: the ``notify`` block and the webhooks
  it tells (Slack-compatible, generic JSON; bounded retries, secrets never shown);
- :mod:`coordinator.gate` (pure) and :mod:`coordinator.gate_server`: ``slogate gate-serve``, the
  newest verdict for Flagger's webhook and Argo Rollouts' web metric;
- :mod:`coordinator.archive`: run archives (a directory, a git branch, local or on GitHub);
- :mod:`coordinator.demo`, :mod:`coordinator.sample_app`: ``slogate demo`` on the bundled app;
  :mod:`coordinator.sample_prometheus` a Prometheus for ``slogate demo --prometheus`` and tests;
- :mod:`coordinator.errors`: the coordinator's own errors and :data:`~coordinator.errors.EXPECTED`
  (the tree above).
"""
