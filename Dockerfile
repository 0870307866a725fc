# syntax=docker/dockerfile:1
# Both stages use one base, patch release pinned: the build stage's virtual environment runs on
# the final stage's interpreter at the same path.
FROM python:3.11.17-slim-bookworm AS build
# The uv the Makefile pins (tests/unit/test_deploy_files.py checks they agree).
ARG UV_VERSION=0.13.8
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/bcs
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# The dependencies from the lock alone, before any source: editing the code or the README
# reuses this layer.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-cache --no-editable --no-install-project
COPY README.md ./
COPY services ./services
COPY libs ./libs
RUN uv sync --locked --no-cache --no-editable

FROM python:3.11.17-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/bcs/bin:$PATH \
    BCS_HTTP_HOST=0.0.0.0 \
    BCS_HTTP_PORT=4002 \
    BCS_PIPELINES_PATH=/app/pipelines.yaml
RUN groupadd --system --gid 10001 bcs \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin bcs
WORKDIR /app
COPY --from=build /opt/bcs /opt/bcs
COPY pipelines.yaml /app/pipelines.yaml
# Numeric, so that a cluster's runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 4002
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('BCS_HTTP_PORT', '4002')}/livez\", timeout=2); sys.exit(0)"]
STOPSIGNAL SIGTERM
CMD ["bcs"]
