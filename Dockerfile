# whisper-service image: API node (`serve`), worker (`worker`) or both (`serve`, the default).
#   CPU (default):  docker build -t whisper-service .
#   CUDA worker:    docker build -t whisper-service:cuda --build-arg VARIANT=cuda .
#   + diarization:  add --build-arg EXTRAS=diarize (torch CPU wheel, about 1.6 GB more; CUDA torch on VARIANT=cuda)
# CTranslate2's wheels bring their CUDA kernels; the CUDA base image brings cuBLAS and cuDNN 9.
ARG VARIANT=cpu

FROM python:3.11-slim-bookworm AS base-cpu
ENV TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS base-cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
ENV TORCH_INDEX=https://download.pytorch.org/whl/cu126

FROM base-${VARIANT}
ARG EXTRAS=""
RUN useradd --system --create-home --uid 10001 whisper
WORKDIR /srv/whisper-service
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY crawlers ./crawlers
COPY migrations ./migrations
RUN python3 -m venv /opt/venv \
 && if [ -n "$EXTRAS" ]; then /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX" "torch>=2.4,<3"; fi \
 && /opt/venv/bin/pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" \
 && mkdir -p /data && chown whisper:whisper /data
ENV PATH=/opt/venv/bin:$PATH \
    WHISPER_DATA_DIR=/data \
    WHISPER_HOST=0.0.0.0 \
    WHISPER_LOG_FORMAT=json \
    HOME=/home/whisper
USER whisper
VOLUME /data
EXPOSE 8000
# API nodes: ready when the database answers at the current schema. Worker containers override this with
# `whisper-service check --model base` (see docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s \
  CMD python3 -c "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/ready').status != 200)"
ENTRYPOINT ["whisper-service"]
CMD ["serve"]
