# Flowbot: python -m bot on port 3000. Set MONGODB_URI (a replica set), the Slack settings
# and FLOWBOT_SECRET_KEY in the environment; see README.md, Deployment.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000 \
    FLOWBOT_DATA_DIR=/data

RUN groupadd --system flowbot && useradd --system --gid flowbot --home-dir /app flowbot

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY flows ./flows
COPY handlers ./handlers
COPY adapters ./adapters
COPY storage ./storage
COPY cards ./cards
COPY emulator ./emulator
RUN pip install . \
    && mkdir -p /data && chown flowbot:flowbot /data

USER flowbot
EXPOSE 3000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${PORT}/healthz', timeout=4)"
CMD ["python", "-m", "bot"]
