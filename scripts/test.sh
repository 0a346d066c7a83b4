#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, start the services it uses,
# then run lint, type checks and the whole test suite (SQLite and PostgreSQL, browser included).
# The project and its dev extra go into a virtual environment of its own, .venv in the checkout
# (created with `python3 -m venv` when absent, reused after), so the run sees exactly what the
# pyproject.toml declares and nothing else this machine happens to have installed.
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
command -v systemd-analyze >/dev/null || need_apt+=(systemd)  # checks packaging/vms.service
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

VENV="${VMS_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the virtual environment $VENV"
  if ! python3 -m venv "$VENV"; then
    # Debian's python3 has no ensurepip without python3-venv (and python3.X-venv)
    rm -rf "$VENV"
    pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv "python$pyver-venv" \
      >/dev/null
    python3 -m venv "$VENV"
  fi
fi
# from here on python3, pip, ruff, mypy and pytest (and every child process) are the venv's
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
unset PYTHONHOME PYTHONPATH

# reinstall only when pyproject.toml changed since the last install into this venv (the install
# is editable: source changes need none)
stamp="$VENV/.vms-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing the project and its dev extra into $VENV"
  python3 -m pip install -q --disable-pip-version-check --upgrade pip
  python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" >"$stamp"
fi

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
# Three workers (pytest-xdist): most tests wait on real cameras and real time, not on the CPU, so
# three at once fit a 2-core machine (the whole run: ~11 min on two, ~9 on three);
# VMS_TEST_WORKERS=N chooses, 0 runs them in this process.
# --maxschedchunk=1: tests are handed out one at a time in the order tests/conftest.py sorts them
# (marked slow first), so the long ones start at once on different workers and none starts last.
# --durations=25: the slowest tests are named at the end of every run.
python3 -m pytest -q -p no:cacheprovider --durations=25 -n "${VMS_TEST_WORKERS:-3}" \
  --maxschedchunk=1 "$@"
