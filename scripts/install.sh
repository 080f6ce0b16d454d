#!/usr/bin/env bash
# Builds `rlm` in release, strips it and puts it on PATH: PREFIX/bin/rlm (PREFIX defaults to
# ~/.local; `sudo bash scripts/install.sh /usr/local` for every user). `rlm` carries its own
# confined worker, so every --isolation level works from this one file; `rlm doctor` then says
# what the machine has for each.
#
#   bash scripts/install.sh [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-$HOME/.local}"
bash scripts/require-python.sh
swift build -c release --product rlm
mkdir -p "$prefix/bin"
binary="$(swift build -c release --show-bin-path)/rlm"
install -m 0755 "$binary" "$prefix/bin/rlm.new"
strip --strip-unneeded "$prefix/bin/rlm.new"
mv -f "$prefix/bin/rlm.new" "$prefix/bin/rlm"
echo "installed $prefix/bin/rlm ($(du -h "$prefix/bin/rlm" | cut -f1), stripped)" >&2
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: $prefix/bin is not on PATH; add it: export PATH=\"$prefix/bin:\$PATH\"" >&2 ;;
esac
"$prefix/bin/rlm" doctor
