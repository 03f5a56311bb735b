"""GitOps promotion: patch the stable manifest, commit on a branch, open or update a pull request.

- ``patch``: pure manifest edits (copy, set, kustomize image, helm value) that keep comments;
- ``flow``: re-judge the run, plan the changes, branch, commit and pull request (idempotent);
- ``provider``: the ``Provider`` protocol; ``github`` (PyGithub, the only module importing it)
  and ``local_git`` (a repository on disk) implement it;
- ``service``: the promotion service (aiohttp) that alone holds the GitHub token.
"""
