# syntax=docker/dockerfile:1
# The provider image: `incluster-ipam run` as user 65532 on a slim Python base.
#
#   docker build -t ghcr.io/incluster-ipam/incluster-ipam:v0.1.0 .
#
# Stage 1 builds the wheel and installs it into /opt/venv with exactly the dependencies pinned in
# requirements/image.lock (versions and sha256 hashes, hack/lock/update.sh; binary wheels only: no compiler
# needed, none shipped). Stage 2 is the same base image plus that venv: no pip, no setuptools, no build
# tools, no package caches. Python 3.11 on Debian bookworm is also what tests/integration/packaging/
# test_image.py installs the wheel into, with the same pip commands.
#
# PYTHON_IMAGE may name any Python 3.11 base with `python` and pip on PATH: the end-to-end tests build this
# file with buildah on a base made from Debian's packages (hack/image/build.sh), since nothing is pulled there.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/image.lock ./requirements/
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --require-hashes --only-binary=:all: --no-deps \
        -r requirements/image.lock \
 && python -m pip --python /opt/venv/bin/python install --no-deps --no-index /wheels/*.whl \
 && python -m pip --python /opt/venv/bin/python check \
 && /opt/venv/bin/python -m compileall -q /opt/venv \
 && /opt/venv/bin/incluster-ipam --version

FROM ${PYTHON_IMAGE}
# The final stage gets no build tooling: drop the base image's pip and setuptools too (where the official
# images keep them, and where Debian's packages do).
RUN rm -rf /usr/local/lib/python3*/site-packages/pip* /usr/local/lib/python3*/site-packages/setuptools* \
        /usr/local/lib/python3*/ensurepip /usr/local/bin/pip* /root/.cache \
        /usr/lib/python3/dist-packages/pip* /usr/lib/python3/dist-packages/setuptools* /usr/bin/pip*
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["incluster-ipam", "run"]
