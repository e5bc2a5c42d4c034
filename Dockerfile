# Two images. `runtime` (the default target): every role of the platform, Airflow (api-server, scheduler,
# Celery workers, the GPU pool's workers) and the BentoML model service; the Kubernetes manifests in deploy/k8s
# pick the command. `serving`: the model service alone (requirements-serving.txt: no Airflow, dbt, Great
# Expectations, torch or training stack), which deploy/k8s/model-service.yaml runs. Nothing secret is baked in:
# Vault (AppRole ids), PostgreSQL and Redis come from the environment at run time. tests/unit/test_container.py
# checks this file's rules with a parser; tests/container builds both images and runs them (`make image`).
# `make image` builds from a bookworm made with debootstrap (no registry needed); with a registry, e.g.
#   docker build --target runtime -t flightops-platform:dev .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# --- uv: the installer of both builds ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS uv
ARG UV_VERSION=0.13.9
# A build behind a TLS-intercepting proxy passes its CA bundle as the secret `ca` (`make image` does): mounted
# for the steps that download, in no layer.
ENV CA_BUNDLE=/run/secrets/ca
RUN --mount=type=secret,id=ca \
    python3 -m venv /opt/uv \
 && if [ -s "$CA_BUNDLE" ]; then export PIP_CERT="$CA_BUNDLE"; fi \
 && /opt/uv/bin/pip install --no-cache-dir uv==${UV_VERSION}
WORKDIR /opt/platform
COPY pyproject.toml ./
# The `platform` command, importing the code at /opt/platform where the final stages put it: an editable install
# in compat mode (a .pth naming the folder), made before any code is copied: a code change rebuilds no venv.
RUN mkdir -p pipelines serving && touch pipelines/__init__.py serving/__init__.py

# --- build: both virtualenvs of the full image from the lock files --------------------------------
FROM uv AS build
# torch is pinned to its CPU build (2.13.0+cpu); the GPU pool's image swaps this index for a CUDA one.
# `make image` mounts the folder make setup finds the wheel in at /wheels and passes TORCH_FIND_LINKS=/wheels.
ARG TORCH_FIND_LINKS=https://download.pytorch.org/whl/cpu/torch/
COPY requirements.txt requirements-drift.txt requirements-data.txt ./
RUN --mount=type=secret,id=ca \
    if [ -s "$CA_BUNDLE" ]; then export SSL_CERT_FILE="$CA_BUNDLE"; fi \
 && python3 -m venv .venv \
 && /opt/uv/bin/uv pip install --no-cache --compile-bytecode --python .venv/bin/python \
      --find-links ${TORCH_FIND_LINKS} -r requirements.txt \
 && /opt/uv/bin/uv pip install --no-cache --no-deps --require-hashes --python .venv/bin/python -r requirements-data.txt \
 && /opt/uv/bin/uv pip install --no-cache --no-deps --python .venv/bin/python --config-settings editable_mode=compat -e .
# alibi-detect needs numpy < 2: drift detection has its own virtualenv (DESIGN.md)
RUN --mount=type=secret,id=ca \
    if [ -s "$CA_BUNDLE" ]; then export SSL_CERT_FILE="$CA_BUNDLE"; fi \
 && python3 -m venv .venv-drift \
 && /opt/uv/bin/uv pip install --no-cache --python .venv-drift/bin/python --find-links ${TORCH_FIND_LINKS} \
      -r requirements-drift.txt

# --- serving-build: the model service's virtualenv alone ------------------------------------------
FROM uv AS serving-build
COPY requirements-serving.txt ./
RUN --mount=type=secret,id=ca \
    if [ -s "$CA_BUNDLE" ]; then export SSL_CERT_FILE="$CA_BUNDLE"; fi \
 && python3 -m venv .venv \
 && /opt/uv/bin/uv pip install --no-cache --compile-bytecode --python .venv/bin/python -r requirements-serving.txt \
 && /opt/uv/bin/uv pip install --no-cache --no-deps --python .venv/bin/python --config-settings editable_mode=compat -e .

# --- system: what both images run on: XGBoost's OpenMP and the platform's user -----------------------
FROM ${PYTHON_IMAGE} AS system
RUN (dpkg -s libgomp1 >/dev/null 2>&1 || (apt-get update \
      && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*)) \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin platform \
 && mkdir -p /var/lib/platform \
 && chown platform /var/lib/platform
WORKDIR /opt/platform

# --- serving: the model service, as a non-root user -----------------------------------------------
FROM system AS serving
COPY --from=serving-build /opt/platform/.venv /opt/platform/.venv
COPY pipelines ./pipelines
COPY serving ./serving
COPY dbt/seeds ./dbt/seeds
COPY expectations ./expectations
COPY feature_repo ./feature_repo
COPY usecases ./usecases
COPY bentofile.yaml pyproject.toml ./
ENV PATH=/opt/platform/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PLATFORM_DATA_ROOT=/var/lib/platform \
    PLATFORM_HEALTH_URL=http://127.0.0.1:3000/readyz
USER 10001
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['PLATFORM_HEALTH_URL'], timeout=4)"]
ENTRYPOINT ["bentoml", "serve", "serving.service:ModelService"]
CMD ["--host", "0.0.0.0", "--port", "3000"]

# --- runtime: the virtualenvs and the code, as a non-root user -----------------------------------
FROM system AS runtime
COPY --from=build /opt/platform/.venv /opt/platform/.venv
COPY --from=build /opt/platform/.venv-drift /opt/platform/.venv-drift
COPY pipelines ./pipelines
COPY serving ./serving
COPY dags ./dags
COPY plugins ./plugins
COPY dbt ./dbt
COPY expectations ./expectations
COPY feature_repo ./feature_repo
COPY usecases ./usecases
COPY bentofile.yaml pyproject.toml ./
ENV PATH=/opt/platform/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PLATFORM_DATA_ROOT=/var/lib/platform \
    PLATFORM_DRIFT_PYTHON=/opt/platform/.venv-drift/bin/python \
    AIRFLOW_HOME=/var/lib/platform/airflow \
    PLATFORM_HEALTH_URL=http://127.0.0.1:3000/readyz
USER 10001
EXPOSE 3000 8080
# The model service's readiness by default; an Airflow api-server sets PLATFORM_HEALTH_URL to
# http://127.0.0.1:8080/api/v2/monitor/health. Celery workers are probed by Kubernetes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['PLATFORM_HEALTH_URL'], timeout=4)"]
ENTRYPOINT ["platform"]
CMD ["--help"]
