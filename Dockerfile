# sweepq's own image: the controller, the dashboard, Flower and CPU workers (docker-compose.yml).
# GPU boxes use workers/Dockerfile.gpu (same package on a CUDA runtime image).
#
#   docker build -t sweepq .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root user: Celery warns (rightly) when a worker that runs user commands is root,
# and the named volume for logs/locks is created owned by this uid.
ARG SWEEPQ_UID=10001
RUN groupadd --gid "${SWEEPQ_UID}" sweepq \
    && useradd --uid "${SWEEPQ_UID}" --gid sweepq --create-home --shell /usr/sbin/nologin sweepq \
    && mkdir -p /var/lib/sweepq/logs /var/lib/sweepq/gpu-locks /work \
    && chown -R sweepq:sweepq /var/lib/sweepq /work

WORKDIR /opt/sweepq
# metadata first, then the package: only these paths are needed to install sweepq
COPY pyproject.toml README.md ./
COPY sweepq ./sweepq
RUN pip install . && rm -rf /opt/sweepq/build

USER sweepq
WORKDIR /work
EXPOSE 8080 5555
# the compose file chooses the command per service; alone, the image is a worker
CMD ["celery", "-A", "sweepq.worker", "worker", "-Q", "sweepq", "--disable-prefetch", "-E"]
