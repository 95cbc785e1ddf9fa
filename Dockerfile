# lindyn images. Targets:
#   cpu (default): API, migrations and CPU workers on python:3.11-slim (NumPy)
#   gpu: GPU workers on the CUDA runtime image with CuPy (the `gpu` extra); the driver comes from the host
#        (docker-compose.yml reserves an NVIDIA device for it)
# Build: docker build -t lindyn:cpu .   docker build --target gpu -t lindyn:gpu .

FROM scratch AS source
COPY pyproject.toml README.md* alembic.ini /src/
COPY dynamics /src/dynamics
COPY core /src/core
COPY models /src/models
COPY migrations /src/migrations
COPY workers /src/workers
COPY service /src/service
COPY lindyn /src/lindyn

FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04 AS gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH LINDYN_DATA_DIR=/data
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
WORKDIR /app
COPY --from=source /src /app
RUN pip install ".[server,gpu]" \
    && useradd --create-home --uid 10001 lindyn && mkdir -p /data && chown lindyn /data
USER lindyn
CMD ["lindyn", "worker", "--queues", "gpu", "--concurrency", "1"]

FROM python:3.11-slim AS cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LINDYN_DATA_DIR=/data
WORKDIR /app
COPY --from=source /src /app
RUN pip install ".[server]" \
    && useradd --create-home --uid 10001 lindyn && mkdir -p /data && chown lindyn /data
USER lindyn
EXPOSE 8000
CMD ["lindyn", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
