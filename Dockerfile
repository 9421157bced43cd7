# The bot as a container: `docker build -t daisybot .` (or podman). The base is a build
# argument so an offline builder can point it at a local copy of the same image:
# `--build-arg BASE=localhost/python:3.11-slim`.
ARG BASE=python:3.11-slim

# Stage 1: the project and its dependencies as wheels, so the image gets no build leftovers.
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 2: the runtime.
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_PATH=/data/bot.sqlite3 \
    METRICS_LISTEN=0.0.0.0:9100
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels daisysim-bot \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin daisybot \
    && mkdir -p /data \
    && chown daisybot:daisybot /data
# Non-root; the SQLite file (and its -wal/-shm companions) live on the volume.
USER daisybot
WORKDIR /data
VOLUME ["/data"]
# 8080: the webhook server (WEBHOOK_LISTEN=0.0.0.0:8080); 9100: /metrics, /healthz, /readyz.
EXPOSE 8080 9100
# Liveness only (/healthz): an upstream outage makes the bot unready (/readyz), and
# restarting it would not help.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
# SIGTERM is the graceful stop (README "Stopping"); give it `stop_grace_period` to finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["daisybot"]
CMD ["run"]
