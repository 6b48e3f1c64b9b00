# CPU image by default; `--build-arg BASE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04` for a CUDA worker image
# (CTranslate2's wheels bring their CUDA kernels; the base image brings cuDNN/cuBLAS).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip && \
      rm -rf /var/lib/apt/lists/*; fi
WORKDIR /srv/whisper-service
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY crawlers ./crawlers
COPY migrations ./migrations
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .
ENV PATH=/opt/venv/bin:$PATH \
    WHISPER_DATA_DIR=/data \
    WHISPER_HOST=0.0.0.0
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health')"
ENTRYPOINT ["whisper-service"]
CMD ["serve"]
