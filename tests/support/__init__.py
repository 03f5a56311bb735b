"""What the tests share: the GitHub and Kubernetes emulators, local servers, run documents, helpers."""
