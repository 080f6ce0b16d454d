#!/usr/bin/env bash
# Makes sure the embedded interpreter can be built against: Debian's libpython3-dev and
# pkg-config's python3-embed. Installs them with apt-get when it can (as root), otherwise says
# exactly what to run.
set -euo pipefail

if pkg-config --exists python3-embed 2>/dev/null; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "swift-rlm: installing libpython3-dev and pkg-config (needed to embed Python)…" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq libpython3-dev pkg-config >&2
    pkg-config --exists python3-embed && exit 0
fi
cat >&2 <<'MSG'
swift-rlm needs the CPython development files, found through pkg-config as python3-embed.
On Debian or Ubuntu run:   sudo apt-get install -y libpython3-dev pkg-config
then run this command again.
MSG
exit 1
