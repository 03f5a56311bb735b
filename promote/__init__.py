"""GitOps promotion: patch the stable manifest, commit on a branch, open or update a pull request.

Not built yet (tracked as the promotion issue); nothing here is called by the coordinator.
"""
