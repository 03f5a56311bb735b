"""GitOps promotion: patch the stable manifest, commit on a branch, open or update a pull request.

- ``patch``: pure manifest edits (copy, set, kustomize image, helm value) that keep comments;
- ``flow``: re-judge the run, plan the changes, branch, commit and pull request (idempotent);
- ``provider``: the ``Provider`` protocol; ``github`` (PyGithub, the only module importing it)
  and ``local_git`` (a repository on disk) implement it;
- ``service``: the promotion service (aiohttp) that alone holds the GitHub token;
- ``spec``: the ``promotion:`` block of the experiment spec (pydantic, with the spec's base
  model), so promotion reads its block without the coordinator; ``names``: the grammar of every
  name that reaches a URL;
- ``errors``: :class:`~promote.errors.PromotionError`, the one error promotion raises (the CLI
  maps it to exit 2, the service to an HTTP status).

A saved run is re-judged from its typed view (:attr:`analysis.results.Results.saved`), once per
promotion (:func:`promote.flow.decide` takes a verdict already re-judged). Nothing here imports
the coordinator.
"""
