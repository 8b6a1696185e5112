FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY core core
COPY plumbing plumbing
COPY runtime runtime
COPY agents agents
COPY producers producers
COPY sinks sinks
COPY reports reports
COPY dashboard dashboard
COPY watchkeeper watchkeeper
RUN pip install --no-cache-dir . && mkdir -p /data
ENV WK_CONFIG=/app/watchkeeper.yaml
WORKDIR /data
CMD ["watchkeeper", "--help"]
