# flame-cache: Arrow Flight object cache (9090) + HTTP mirror (9091).
#
# BASE_IMAGE is any image with Python 3.10+ and its venv module: the default
# python:3.11-slim, or a Debian with python3 and python3-venv (the container
# test builds one with mmdebstrap, as no image registry is reachable there).
# Build with `--format docker` under podman/buildah: the OCI format has no
# HEALTHCHECK.
ARG BASE_IMAGE=python:3.11-slim

# ---- build stage: the app and its dependencies in a virtual environment ----
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/flame-cache/venv
# Dependencies first, from the project's metadata alone, so that a change to
# the code does not download them again.
COPY pyproject.toml /deps/
RUN mkdir /deps/flame_cache && touch /deps/flame_cache/__init__.py /deps/README.md \
 && /opt/flame-cache/venv/bin/pip install /deps \
 && /opt/flame-cache/venv/bin/pip uninstall -y flame-cache \
 && rm -rf /deps
COPY pyproject.toml README.md /src/
COPY flame_cache /src/flame_cache
RUN /opt/flame-cache/venv/bin/pip install --no-deps /src \
 && /opt/flame-cache/venv/bin/flame-cache --version

# ---- runtime stage ----
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/flame-cache/venv/bin:$PATH \
    FLAME_HOME=/usr/local/flame
# Same base in both stages, so the venv's python3 link points at the same interpreter.
COPY --from=build /opt/flame-cache/venv /opt/flame-cache/venv

# Upstream's paths (SPEC 11): Flame's Helm chart runs
#   /usr/local/flame/bin/flame-object-cache --config /usr/local/flame/conf/flame-cluster.yaml
# with FLAME_HOME=/usr/local/flame, a config mounted into conf/ and an
# emptyDir at logs/ (we log to stderr; the folder is only there to be mounted).
RUN groupadd --gid 1000 flame \
 && useradd --uid 1000 --gid flame --create-home --shell /usr/sbin/nologin flame \
 && mkdir -p /usr/local/flame/bin /usr/local/flame/conf /usr/local/flame/logs /var/lib/flame/cache /etc/flame \
 && ln -s /opt/flame-cache/venv/bin/flame-cache /usr/local/flame/bin/flame-object-cache \
 && chown flame:flame /usr/local/flame/logs \
 && chown -R flame:flame /var/lib/flame
# After the chown: a fresh named volume copies this folder's ownership, so the
# non-root user can write to it.
VOLUME ["/var/lib/flame/cache"]

USER flame
WORKDIR /home/flame
EXPOSE 9090 9091

# /readyz of the HTTP mirror at its default address; FLAME_CACHE_HEALTH_URL
# names another (a config that moves cache.http.endpoint).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('FLAME_CACHE_HEALTH_URL', 'http://127.0.0.1:9091/readyz'), timeout=4)"]

# flame-cache handles SIGTERM itself (docker/podman stop, Kubernetes): it
# finishes in-flight requests for cache.shutdown_timeout (25 s), then exits 0.
STOPSIGNAL SIGTERM
# No config is baked in: mount one at /etc/flame/flame-cluster.yaml.
ENTRYPOINT ["flame-cache"]
CMD ["--config", "/etc/flame/flame-cluster.yaml"]
