#!/bin/sh
# Sets up a fresh Debian machine (with npm, or with Deno 2.9) and runs one job:
#   ./bootstrap.sh demo   build a demo jail, jail a throw-away user, show it working, clean up
#   ./bootstrap.sh test   the whole test suite (ends with "N passed, N failed")
#   ./bootstrap.sh deps   only install what is missing
# Must run as root: the tools chroot, create users and install setuid trampolines.
set -eu
cd "$(dirname "$0")"

job=${1:-}
case "$job" in demo|test|deps) ;; *) echo "usage: $0 demo|test|deps" >&2; exit 2;; esac
[ "$(id -u)" = 0 ] || { echo "$0: must run as root" >&2; exit 1; }

# Debian packages the tools and tests use: a C compiler for the trampoline,
# setcap, sshd/ssh/sftp/scp/rsync for the end-to-end tests, binutils (readelf)
# and procmail for the tests that compare against them.
packages="gcc libc6-dev libcap2-bin openssh-server openssh-client openssh-sftp-server rsync sshpass binutils procmail git perl python3 strace vim nano wget curl bind9-host netcat-openbsd cpio bzip2 less procps bsdutils"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Deno 2.9.x: the one on PATH if it is 2.9, else the npm package pinned in
# .toolchain/package.json. (Not ./node_modules: `deno task` would take a
# node_modules/.bin/deno for a JavaScript bin script.)
if command -v deno >/dev/null 2>&1 && deno --version 2>/dev/null | grep -q '^deno 2\.9\.'; then
  deno=$(command -v deno)
else
  [ -x .toolchain/node_modules/.bin/deno ] ||
    npm ci --prefix .toolchain --no-audit --no-fund --loglevel=error
  deno=$PWD/.toolchain/node_modules/deno/deno
  export PATH="$PWD/.toolchain/node_modules/.bin:$PATH"
fi
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 RUST_BACKTRACE=0

case "$job" in
  deps) echo "ready: $("$deno" --version | head -n 1)";;
  demo) exec "$deno" task demo;;
  test) exec "$deno" task test;;
esac
