# The agent-events image: one image for every service (`agent-events consume NAME`), the
# tools (`topics`, `tail`, `dlq` ...) and the demo. Built from this checkout:
#   docker build -t agent-events .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent_runtime ./agent_runtime
COPY schemas ./schemas
COPY producers ./producers
COPY consumers ./consumers
COPY agent_events ./agent_events
RUN pip install '.[postgres]' \
    && useradd --system --uid 10001 --home-dir /data --create-home agent-events

USER agent-events
WORKDIR /data

# In a container the metrics endpoint must be reachable from Prometheus's container.
ENV AGENT_EVENTS_METRICS_HOST=0.0.0.0 \
    AGENT_EVENTS_METRICS_PORT=9400 \
    AGENT_EVENTS_LOG_FORMAT=json
EXPOSE 9400

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9400/healthz', timeout=2)"

ENTRYPOINT ["agent-events"]
CMD ["--help"]
