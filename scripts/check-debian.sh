#!/usr/bin/env bash
# Runs the README's commands on another Debian release, in a root file system made with
# debootstrap from Debian's archive: the demo, then the bridge's and the engine's suites (and,
# with --all, every suite). It checks that the bridge builds and holds against that release's
# CPython (Debian 13: 3.13), with this machine's Swift toolchain bound in.
#
#   bash scripts/check-debian.sh 13          # Debian 13 (trixie): demo, bridge and engine suites
#   bash scripts/check-debian.sh 13 --all    # and every suite
#   bash scripts/check-debian.sh sid         # Debian unstable
#
# Needs root (debootstrap, pivot_root and mounts in a private mount namespace) and debootstrap (it is
# installed with apt-get when missing). The root is kept in $RLM_DEBIAN_ROOTS (default
# /var/tmp/rlm-debian-roots/RELEASE) and reused; the working tree (tracked and untracked files,
# not ignored ones) is copied to /src inside it, and built there in its own .build, which is kept.
# Measured on 2 cores: making the root about 1 minute; the first build of the demo about
# 3 minutes, the bridge's and engine's suites about 10 more.
set -euo pipefail
cd "$(dirname "$0")/.."

release=${1:-13}
all=no
if [ "${2:-}" = "--all" ]; then all=yes; fi
case "$release" in
12) suite=bookworm ;;
13) suite=trixie ;;
sid | unstable) suite=sid ;;
*) echo "check-debian.sh: unknown release '$release' (12, 13 or sid)" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then echo "check-debian.sh: run it as root (debootstrap and chroot need it)" >&2; exit 2; fi

roots=${RLM_DEBIAN_ROOTS:-/var/tmp/rlm-debian-roots}
root="$roots/$suite"
swift=$(command -v swift) || { echo "check-debian.sh: no swift on PATH" >&2; exit 2; }
toolchain=$(dirname "$(dirname "$(dirname "$(readlink -f "$swift")")")")  # /opt/swift from /opt/swift/usr/bin/swift
started=$(date +%s)
step() { echo "== check-debian $release: $* ($(( $(date +%s) - started )) s)" >&2; }

if ! command -v debootstrap >/dev/null; then
    step "installing debootstrap"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
if [ ! -x "$root/usr/bin/python3" ]; then
    step "making the root in $root"
    mkdir -p "$roots"
    rm -rf "$root"
    debootstrap --variant=minbase \
        --include=libpython3-dev,python3,pkg-config,libc6-dev,gcc,g++,binutils,git,libcurl4t64,libxml2,libncurses6,libsqlite3-0,zlib1g-dev,libedit2,tzdata,ca-certificates,libuuid1 \
        "$suite" "$root" http://deb.debian.org/debian >"$roots/$suite-debootstrap.log" 2>&1 ||
        { tail -20 "$roots/$suite-debootstrap.log" >&2; exit 1; }
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # The toolchain's swift-build and ld.lld link ICU 72, which later releases replaced: take
    # that one library from Debian 12.
    if [ "$suite" != bookworm ]; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n' \
            >"$root/etc/apt/sources.list.d/bookworm.sources"
        printf 'Package: *\nPin: release n=bookworm\nPin-Priority: 100\n' >"$root/etc/apt/preferences.d/bookworm"
    fi
fi

step "copying the working tree to $root/src"
# Its build folder stays, so a second run builds only what changed.
mkdir -p "$root/src"
find "$root/src" -mindepth 1 -maxdepth 1 ! -name .build -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
    [ -e "$file" ] && printf '%s\0' "$file"
done | tar --null -T - -cf - | tar -xf - -C "$root/src"
# The git configuration this machine reaches Swift packages with (url.*.insteadOf).
git config --system --get-regexp '^url\.' 2>/dev/null | while read -r key value; do
    printf '%s\t%s\n' "$key" "$value"
done >"$root/etc/rlm-git-urls"

inside=$(cat <<'INSIDE'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! ldconfig -p | grep -q libicuuc.so.72; then apt-get update -qq && apt-get install -y -qq libicu72 >/dev/null; fi
rm -f /etc/gitconfig
while IFS=$'\t' read -r key value; do git config --system --add "$key" "$value"; done </etc/rlm-git-urls
cd /src
echo "== inside: $(. /etc/os-release; echo "$PRETTY_NAME"), Python $(pkg-config --modversion python3-embed), $(swift --version 2>&1 | head -1)" >&2
bash scripts/demo.sh
swift build --build-tests
swift test --skip-build --filter 'PythonRuntimeTests|RLMTests'
if [ "$RLM_CHECK_ALL" = yes ]; then swift test --skip-build; fi
INSIDE
)

step "running the demo and the suites inside (log: $roots/$suite-run.log)"
set +e
RLM_CHECK_ALL=$all unshare --mount --propagation private bash -c '
    set -e
    root=$1 toolchain=$2
    # The root becomes the mount namespace'"'"'s own root (pivot_root, not chroot): the kernel
    # refuses new user namespaces to a chrooted process, and the worker processes need them.
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mkdir -p "$root$toolchain" "$root/opt/swift-packages" "$root/.rlm-host"
    mount --bind "$toolchain" "$root$toolchain"
    [ -d /opt/swift-packages ] && mount --bind /opt/swift-packages "$root/opt/swift-packages"
    cd "$root"
    pivot_root . .rlm-host
    shift 2
    exec chroot . /usr/bin/env -i HOME=/root CI="${CI:-}" RLM_CHECK_ALL="$RLM_CHECK_ALL" \
        PATH="$toolchain/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin" bash -c "umount -l /.rlm-host; $1"
' check-debian "$root" "$toolchain" "$inside" >"$roots/$suite-run.log" 2>&1
status=$?
set -e
grep -E "^== inside|Test run with|✘|error:|Executed .* tests" "$roots/$suite-run.log" | head -40 >&2 || true
step "finished with status $status"
exit "$status"
