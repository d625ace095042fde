# syntax=docker/dockerfile:1
# The API gateway sidecar. Build: docker build -t gateway-sidecar .
# Config and secrets are not baked in: the image carries only the shipped
# config/gateway.yaml, which reads every credential from the environment
# (docs/contract.md §5). Mount your own at /etc/gateway/gateway.yaml, or point
# GATEWAY_CONFIG elsewhere, and pass credentials from a secret store.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---- build: install the package and its dependencies into a venv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/gateway
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/gateway/bin/pip install --no-cache-dir . \
    && /opt/gateway/bin/python -m compileall -q /opt/gateway/lib

# ---- runtime: the venv on a slim base, as a non-root user ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="gateway-sidecar" \
      org.opencontainers.image.description="API gateway sidecar: routing, upstream auth, Redis quotas, one problem+json error schema" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
COPY --from=build /opt/gateway /opt/gateway
COPY config/gateway.yaml /etc/gateway/gateway.yaml
# The proxy stays on loopback (the config's `listen`, 127.0.0.1:8080): only the app
# sharing the pod's network reaches it. Only the ops listener (/healthz, /readyz,
# /metrics: no upstream access) is on the pod IP. Exposing the proxy takes a
# non-loopback `listen` AND callers.tokens (or allow_unauthenticated_callers: true).
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_CONFIG=/etc/gateway/gateway.yaml \
    GATEWAY_OPS_LISTEN=0.0.0.0:9090 \
    GATEWAY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9090
# The gateway drains on SIGTERM: /readyz fails at once, calls in flight get
# shutdown_grace (20 s by default) to finish, then it exits 0.
STOPSIGNAL SIGTERM
# The slim image has no curl: `gateway healthcheck` GETs /healthz with urllib
# (on GATEWAY_OPS_LISTEN when set, else GATEWAY_LISTEN, else 127.0.0.1:8080).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["gateway", "healthcheck"]
ENTRYPOINT ["gateway"]
CMD ["run"]
