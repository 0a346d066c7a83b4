#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, start the services it uses,
# then run lint, type checks and the whole test suite (SQLite and PostgreSQL, browser included).
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
command -v mosquitto >/dev/null || need_apt+=(mosquitto)
command -v ip >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

log "installing the project and its test dependencies"
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'

log "starting PostgreSQL and Mosquitto when they are down"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi

log "ruff"
python3 -m ruff check .
log "mypy"
python3 -m mypy
log "pytest"
# Two workers (pytest-xdist): most tests wait on real cameras and real time, not on the CPU, so
# two at once halve the run on a 2-core machine; VMS_TEST_WORKERS=0 runs them in this process.
python3 -m pytest -q -p no:cacheprovider -n "${VMS_TEST_WORKERS:-2}" "$@"
