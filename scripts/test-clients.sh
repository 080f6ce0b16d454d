#!/usr/bin/env bash
# Drives `rlm serve` and `rlm mcp` with clients nobody here wrote: the official `openai` and `mcp`
# Python packages, installed into a throwaway venv. Starts a PostgreSQL server from Debian's
# package on a loopback port (installing it when it can, as root) so that two `rlm serve`
# processes can share a PostgreSQL store; without PostgreSQL that one test is skipped, and says so.
#
#   bash scripts/test-clients.sh [PATH/TO/rlm]      (default: .build/debug/rlm)
set -euo pipefail
cd "$(dirname "$0")/.."
rlm="$(realpath "${1:-.build/debug/rlm}")"
[ -x "$rlm" ] || { echo "test-clients: $rlm does not exist: run swift build first" >&2; exit 1; }

work="$(mktemp -d /tmp/rlm-clients.XXXXXX)"
chmod 755 "$work"
cleanup() {
    if [ -n "${pg_ctl:-}" ] && [ -f "$work/pg/postmaster.pid" ]; then
        as_pg "$pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Debian's python3 needs python3-venv for `-m venv`.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    else
        echo "test-clients: python3 cannot make a venv: sudo apt-get install -y python3-venv" >&2
        exit 1
    fi
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "openai==1.109.1" "mcp==1.26.0"

# PostgreSQL, on a loopback port, with a password.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$bin" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "test-clients: installing postgresql for the shared-store test…" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 || true
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
fi
if [ -n "$bin" ]; then
    pg_ctl="$bin/pg_ctl"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    password="rlm-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    mkdir -p "$work/pg" && printf '%s\n' "$password" > "$work/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$work/pg" "$work/pwfile"
    as_pg "$bin/initdb" -D "$work/pg" -U rlm --pwfile="$work/pwfile" --auth=scram-sha-256 >/dev/null
    as_pg "$pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $work/pg -c fsync=off" start >/dev/null
    export PGPASSWORD="$password"
    export RLM_TEST_POSTGRES_URL="postgres://rlm@127.0.0.1:$port/postgres?sslmode=disable"
else
    echo "test-clients: no PostgreSQL here; the shared PostgreSQL store test is skipped" >&2
fi

"$work/venv/bin/python" scripts/serve/clients_test.py "$rlm"
