# syntax=docker/dockerfile:1
# One image for every aidpost component: `docker run IMAGE serve --component NAME`.
#   docker build --build-arg AIDPOST_GIT_COMMIT=$(git rev-parse HEAD) -t aidpost .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build: the locked dependencies and aidpost itself into /app/.venv, nothing else.
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra postgres --extra redis --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev --extra postgres --extra redis --no-editable

# Run: the virtual environment on a clean base, as an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime
ARG AIDPOST_GIT_COMMIT=unknown
ARG AIDPOST_BUILD_TIME=unknown
LABEL org.opencontainers.image.title="aidpost" \
      org.opencontainers.image.description="Emergency help for mass events" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${AIDPOST_GIT_COMMIT}" \
      org.opencontainers.image.created="${AIDPOST_BUILD_TIME}"
RUN groupadd --system --gid 10001 aidpost \
    && useradd --system --uid 10001 --gid aidpost --no-create-home \
       --home-dir /var/lib/aidpost --shell /usr/sbin/nologin aidpost \
    && install -d -o aidpost -g aidpost -m 0700 /var/lib/aidpost
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AIDPOST_HOST=0.0.0.0 \
    AIDPOST_PORT=8000 \
    AIDPOST_DATA_DIR=/var/lib/aidpost \
    AIDPOST_GIT_COMMIT=${AIDPOST_GIT_COMMIT} \
    AIDPOST_BUILD_TIME=${AIDPOST_BUILD_TIME}
USER 10001:10001
WORKDIR /var/lib/aidpost
VOLUME ["/var/lib/aidpost"]
EXPOSE 8000
# Ready means every dependency answers and the database is at the latest migration.
HEALTHCHECK --interval=10s --timeout=4s --start-period=60s --retries=3 \
    CMD ["aidpost", "healthcheck"]
# Logs are JSON lines on stdout; SIGTERM drains connections for up to 20 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["aidpost"]
CMD ["serve"]
