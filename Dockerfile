# CitizenHub production image: one image for web (gunicorn), Celery worker and beat.
# See docker-compose.yml for how the services run it.

# --- build: compile the wheels (psycopg2 builds against libpq), keep compilers out of the image
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir --upgrade pip \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

# --- assets: GOV.UK Frontend, HTMX and Chart.js exactly as package-lock.json pins them. The
# postinstall script writes govuk-frontend.citizenhub.min.css (font/image URLs relative).
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# --- runtime
FROM python:3.11-slim
# PYTHONPATH: the source tree comes first, because settings find templates/ and staticfiles/
# next to it (BASE_DIR) and the installed wheel carries only the Python modules.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin citizenhub

# Equivalent of `pip install .`, from the wheels built above (dependencies pinned in pyproject).
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels citizenhub && rm -rf /wheels

WORKDIR /app
# Code stays owned by root and read-only to the app; only var/ (uploads) is writable.
COPY . .
# settings.STATICFILES_DIRS point into node_modules; collectstatic copies (and hashes) them.
COPY --from=assets /src/node_modules /app/node_modules
RUN SECRET_KEY=collectstatic-at-build-time-only DEBUG=0 \
        python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var/media \
    && chown -R citizenhub:citizenhub /app/var

USER citizenhub
EXPOSE 8000
CMD ["gunicorn", "citizenhub.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", \
     "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-", "--no-control-socket"]
