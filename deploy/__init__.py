"""Dark launch of the candidate on Kubernetes and the manifests that run slogate in a cluster.

Not built yet (tracked as the Kubernetes issue); nothing here is called by the coordinator.
"""
