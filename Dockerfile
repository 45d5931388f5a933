# sweepq's own image: the controller, the dashboard, Flower and CPU workers (docker-compose.yml).
# GPU boxes use workers/Dockerfile.gpu (same package on a CUDA runtime image).
#
#   docker build -t sweepq .
#   docker build --build-arg BASE_IMAGE=registry.internal/python:3.12-slim -t sweepq .
#
# BASE_IMAGE: any image with Python >= 3.10 and pip on PATH (and useradd); a mirror of the
# official one, or a locally built base where no registry can be reached
# (scripts/compose_smoke.sh builds one from Debian's archive).
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root user: Celery warns (rightly) when a worker that runs user commands is root,
# and the named volume for logs/locks is created owned by this uid. /var/lib/sweepq stays empty
# in the image (sweepq creates logs/ and gpu-locks/ itself): scaled workers that first mount a
# fresh volume together would otherwise race copying its subdirectories in ("file exists").
ARG SWEEPQ_UID=10001
RUN groupadd --gid "${SWEEPQ_UID}" sweepq \
    && useradd --uid "${SWEEPQ_UID}" --gid sweepq --create-home --shell /usr/sbin/nologin sweepq \
    && mkdir -p /var/lib/sweepq /work \
    && chown sweepq:sweepq /var/lib/sweepq /work

WORKDIR /opt/sweepq
# metadata first, then the package: only these paths are needed to install sweepq
COPY pyproject.toml README.md ./
COPY sweepq ./sweepq
# pip's download cache lives in a BuildKit cache mount, not in the image: a rebuild after a code
# change reinstalls from it instead of downloading scikit-learn, scipy and numpy again
RUN --mount=type=cache,target=/root/.cache/pip pip install . && rm -rf /opt/sweepq/build

USER sweepq
WORKDIR /work
EXPOSE 8080 5555
# the compose file chooses the command per service; alone, the image is a worker
CMD ["celery", "-A", "sweepq.worker", "worker", "-Q", "sweepq", "--disable-prefetch", "-E", "--without-gossip", "--without-mingle"]
