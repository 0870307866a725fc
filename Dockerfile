# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY libs ./libs
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BCS_HTTP_HOST=0.0.0.0 \
    BCS_HTTP_PORT=4002 \
    BCS_PIPELINES_PATH=/app/pipelines.yaml
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bcs
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY pipelines.yaml /app/pipelines.yaml
USER bcs
EXPOSE 4002
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('BCS_HTTP_PORT', '4002')}/livez\", timeout=2); sys.exit(0)"]
STOPSIGNAL SIGTERM
CMD ["bcs"]
