# One image for every lab service: `lab serve <name>`, `lab worker`, `lab demo`.
# docker-compose.yml builds it once and runs it with a different command per service;
# healthchecks live there, not here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    LAB_STATE_DIR=/var/lib/lab

RUN groupadd --system --gid 10001 lab \
 && useradd --system --uid 10001 --gid lab --create-home --home-dir /home/lab lab \
 && install -d -o lab -g lab -m 0750 /var/lib/lab

WORKDIR /app

# The project metadata first: the pinned dependencies get a layer of their own, rebuilt
# only when pyproject.toml or constraints.txt change, not on every code edit.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the whole context (filtered by .dockerignore), so packages added later
# (rate_limiter/, idempotency/, scheduler/, benchmarks/) come along with no edit here.
COPY . .
RUN pip install --no-cache-dir -c constraints.txt . \
 && rm -rf build ./*.egg-info

USER lab

EXPOSE 8000

ENTRYPOINT ["lab"]
CMD ["--help"]
