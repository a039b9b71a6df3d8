# syntax=docker/dockerfile:1
# flame-cache: Arrow Flight object cache (9090) + HTTP mirror (9091).

# ---- build stage: turn the project and all its dependencies into wheels ----
FROM python:3.11-slim AS build
WORKDIR /src
# The whole (filtered, see .dockerignore) context, so the build backend finds
# whatever pyproject.toml references (README, license, ...).
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime stage ----
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# /wheels holds exactly flame-cache plus its dependency closure, so installing
# every wheel offline is the same as installing flame-cache. The bind mount
# keeps the wheels out of the image layers.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl

RUN groupadd --gid 1000 flame \
 && useradd --uid 1000 --gid flame --create-home --shell /usr/sbin/nologin flame \
 && mkdir -p /var/lib/flame/cache /etc/flame \
 && chown -R flame:flame /var/lib/flame
# Must come after the chown: a fresh named volume copies this directory's
# ownership, so the non-root user can write to it.
VOLUME ["/var/lib/flame/cache"]

USER flame
WORKDIR /home/flame
EXPOSE 9090 9091

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9091/readyz', timeout=2)"]

# flame-cache handles SIGTERM itself (docker stop): it finishes in-flight
# requests, then exits.
# No config is baked in: mount one at /etc/flame/flame-cluster.yaml.
ENTRYPOINT ["flame-cache"]
CMD ["--config", "/etc/flame/flame-cluster.yaml"]
