"""GitOps promotion: patch the stable manifest, commit on a branch, open or update a pull request.

Modules:

- :mod:`promote.spec`: the ``promotion:`` block of the experiment spec (pydantic, with the spec's
  base model), so promotion reads its block without the coordinator;
- :mod:`promote.patch`: pure manifest edits (copy, set, kustomize image, helm value) that keep
  comments;
- :mod:`promote.flow`: re-judge the run, plan the changes, branch, commit and pull request
  (idempotent); what it did is a ``PromotionOutcome``;
- :mod:`promote.names`: the grammar of every name that reaches a GitHub API URL;
- :mod:`promote.provider`: the ``Provider`` protocol; :mod:`promote.github` (PyGithub, the only
  module importing it) and :mod:`promote.local_git` (a repository on disk) implement it;
- :mod:`promote.evidence`: the check (run or commit status) and the comment on the pull request
  (pure; :mod:`promote.github` puts them there);
- :mod:`promote.verify`: waiting for the promotion pull request's merge, and the texts the
  verification leaves (the merged pull request's comment, both runs in a revert's body);
- :mod:`promote.service`: the promotion service (aiohttp) that alone holds the GitHub token;
- :mod:`promote.errors`: :class:`~promote.errors.PromotionError`, the one error promotion raises
  (the CLI maps it to exit 2, the service to an HTTP status).

A saved run is re-judged from its typed view (:attr:`analysis.results.Results.saved`), once per
promotion (:func:`promote.flow.decide` takes a verdict already re-judged). Nothing here imports
the coordinator.
"""
