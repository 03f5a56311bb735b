# syntax=docker/dockerfile:1
# The slogate image: `slogate` for the nightly CronJob, and `ray start` for the Ray head and worker
# pods (KubeRay replaces the entrypoint there). One image for both, so the driver and the cluster
# run the same Python and Ray versions, which Ray Client requires.
#   docker build -t ghcr.io/slogate/slogate:0.1.0 .
FROM python:3.11-slim

# KubeRay's readiness and liveness probes run `wget ... | grep success` inside the Ray pods.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*

# = spec.rayVersion in deploy/k8s/base/raycluster.yaml
ARG RAY_VERSION=2.60.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY coordinator/ coordinator/
COPY workers/ workers/
COPY analysis/ analysis/
COPY promote/ promote/
COPY deploy/ deploy/
# Editable, unlike a plain `pip install .`: coordinator/ray_pool.py sends the folder above its own
# package as Ray's runtime_env working_dir. Installed from /app that folder is /app (this tree);
# installed into site-packages it would be site-packages, hundreds of MB uploaded every run.
# gcc only for the install: it builds the load engine's compiled pump (workers/_pump.pyx).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install -e . "ray[default]==${RAY_VERSION}" \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python -m compileall -q /app

# A numeric user, so that Kubernetes' runAsNonRoot can verify it (the manifests' runAsUser).
RUN groupadd --gid 10001 slogate \
    && useradd --uid 10001 --gid 10001 --create-home --shell /bin/bash slogate
USER 10001:10001

ENTRYPOINT ["slogate"]
CMD ["--help"]
