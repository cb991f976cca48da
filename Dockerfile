# One image for every hpo service in docker-compose.yml: init, worker, dashboard.
#
# Build arguments (docker-compose.yml passes them from the environment or .env):
#   PYTHON_IMAGE     the base: any Debian-like image with Python 3.11's python and pip on PATH
#   TORCH_INDEX_URL  where torch==2.13.0's CPU build comes from (a mirror of PyTorch's CPU index)
#   HPO_CODE_VERSION the commit the image is built from, recorded on every trial
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# CPU-only torch first, from PyTorch's CPU index: the default index would pull a multi-GB CUDA
# build. Its own layer, so editing the project does not re-download it.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX_URL}

# Every other dependency, pinned (requirements.lock, made by `make lock` from the tested venv),
# in a layer of its own before the source is copied: editing the code or the README reuses it.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# The project itself, without dependencies (all above); pip check proves none is missing.
# (pyproject pins torch==2.13.0, which the +cpu build above satisfies.)
COPY pyproject.toml README.md ./
COPY metrics ./metrics
COPY models ./models
COPY hpo ./hpo
RUN pip install --no-deps . && pip check

# Study files live in the image; docker-compose.yml also mounts ./studies over them read-only.
COPY studies ./studies

# Non-root. /data/artifacts belongs to this user, so a fresh named volume mounted there inherits
# that ownership and the workers can write their sample PNGs into it. /app/runs is where the
# embedded default storage would go (`hpo run` without HPO_STORAGE).
RUN useradd --create-home --uid 10001 --user-group hpo \
    && mkdir -p /data/artifacts /app/runs \
    && chown -R hpo:hpo /data /app/runs
USER hpo

# The image has no git: the commit it was built from is passed in, and every trial records it.
ARG HPO_CODE_VERSION=""
ENV HPO_CODE_VERSION=${HPO_CODE_VERSION} \
    HPO_ARTIFACTS=/data/artifacts \
    HPO_TORCH_THREADS=1 \
    OMP_NUM_THREADS=1

CMD ["hpo", "--help"]
