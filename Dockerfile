# syntax=docker/dockerfile:1
#
# scaler image, layered like Jib: base → dependencies → application.
#
#   layer                         rebuilt when
#   python base + user            the base tag changes
#   /opt/venv (dependencies)      pyproject.toml's dependency list changes
#   /opt/venv/.../scaler          any file under scaler/ changes   (a few hundred KiB)
#
# A code change therefore re-runs one small stage and ships one small layer; nodes
# that already pulled the previous image fetch only that layer.
#
# Build (Docker/BuildKit or buildah/podman):
#   docker build -t scaler:0.1.0 .
# Behind a TLS-intercepting proxy, hand pip the proxy's CA as a build secret so it
# never lands in a layer:
#   buildah build --secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt ...
# Pin the base by digest in production (PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# deps: the runtime dependencies in /opt/venv, from pyproject.toml alone.
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml ./
# /opt/build holds pip and the build backend; /opt/venv is created without pip so the
# runtime image carries no installer. `pip --python` installs into /opt/venv from outside.
# Bytecode is compiled once here with unchecked hashes: the container's root filesystem
# is read-only, so Python could never cache it at run time, and unchecked-hash .pyc stay
# valid whatever mtimes the layer copy gives the sources. kubernetes/aio (the asyncio
# twin of the client, unused by the daemon) stays source-only: its bytecode would add
# about 27 MiB. scipy's and numpy's bundled test suites are dropped: about 25 MiB of
# source, 50 MiB once compiled, none of it imported at run time.
RUN --mount=type=secret,id=pipca \
    set -eu; \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi; \
    python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["project"]["dependencies"]))' > /tmp/requirements.txt; \
    python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["build-system"]["requires"]))' > /tmp/build-requirements.txt; \
    python3 -m venv /opt/build; \
    /opt/build/bin/pip install --no-cache-dir -r /tmp/build-requirements.txt; \
    python3 -m venv --without-pip /opt/venv; \
    /opt/build/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-compile -r /tmp/requirements.txt; \
    site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
    find "$site/scipy" "$site/numpy" -type d -name tests -prune -exec rm -rf {} +; \
    /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash -x '/kubernetes/aio/' "$site"; \
    rm -f /tmp/requirements.txt /tmp/build-requirements.txt

# ---------------------------------------------------------------------------------------
# app: build the scaler wheel and stage only its files, as they will sit in /opt/venv.
FROM deps AS app
COPY README.md ./
COPY scaler/ ./scaler/
# --root /staging writes the package, its dist-info and the `scaler` console script under
# /staging/opt/venv; the script's shebang still names /opt/venv/bin/python.
RUN set -eu; \
    /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --no-index -w /tmp/dist .; \
    /opt/build/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-deps --no-index \
        --no-compile --no-warn-script-location --root /staging /tmp/dist/scaler-*.whl; \
    /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash \
        -s /staging -p / /staging/opt/venv

# ---------------------------------------------------------------------------------------
# runtime: the base, the dependency layer, the application layer. No pip, no compilers.
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="scaler" \
      org.opencontainers.image.description="Metrics-driven autoscaler: Prometheus demand, Knative KPA decisions, the scale subresource as actuator" \
      org.opencontainers.image.licenses="Apache-2.0"
# A passwd entry for the fixed non-root uid, so libraries that look up the user or $HOME
# (the kubernetes client looks for ~/.kube/config) find one. 65532 matches the
# Deployment's runAsUser.
RUN groupadd --gid 65532 scaler \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin scaler
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /staging/opt/venv /opt/venv
USER 65532:65532
# The daemon's defaults: 9464 /metrics, 8081 /healthz and /readyz (deploy/ sets 9090 and
# 8080 explicitly). The activator listens on 8080 and 9090 (admin) by default.
EXPOSE 9464 8081
ENTRYPOINT ["scaler"]
CMD ["run", "--policy", "/etc/scaler/policies"]
