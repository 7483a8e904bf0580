#!/usr/bin/env bash
# Builds a local stand-in for node:24-bookworm-slim, for machines that cannot pull from an image
# registry: a Debian 12 minbase root (debootstrap, from the apt mirror this machine uses) with
# ca-certificates, Node 24 in /usr/local/bin/node and npm in /usr/local/lib/node_modules/npm
# (the layout of the official node images), imported into podman.
#
#   usage: deploy/base-image/build.sh [IMAGE]     (default: localhost/sluice-base:bookworm-node24)
#
# Idempotent and cached: when IMAGE exists and was built from the same Node and npm versions it
# only says so (well under a second). Needs podman, runc and debootstrap: run as root, it installs
# the missing ones with apt-get (Debian packages podman, runc, debootstrap).
#
# Settings (environment):
#   SLUICE_BASE_NODE      Node 24 binary to copy in (default: the repo's node@24 dev dependency,
#                         node_modules/node/bin/node; it is a standalone binary)
#   SLUICE_BASE_NPM       npm package directory to copy in (default: the npm that `npm` runs)
#   SLUICE_BASE_MIRROR    Debian mirror (default: the first Debian URI in /etc/apt/sources.list*)
#   SLUICE_BASE_SUITE     Debian suite (default: bookworm)
#   SLUICE_BASE_REBUILD=1 rebuild even when the image is up to date
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${1:-localhost/sluice-base:bookworm-node24}"
suite="${SLUICE_BASE_SUITE:-bookworm}"
node_bin="${SLUICE_BASE_NODE:-$repo/node_modules/node/bin/node}"

note() { printf 'base-image: %s\n' "$*" >&2; }
fail() { printf 'base-image: error: %s\n' "$*" >&2; exit 1; }

# podman (with runc: crun cannot set rlimits in some sandboxes) and debootstrap, from Debian
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  [[ $EUID -eq 0 ]] || fail "missing ${missing[*]} (apt-get install -y ${missing[*]})"
  note "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q "${missing[@]}"; } >/var/tmp/sluice-base-apt.log 2>&1 ||
    { tail -n 20 /var/tmp/sluice-base-apt.log >&2; fail "apt-get install ${missing[*]} failed (log: /var/tmp/sluice-base-apt.log)"; }
fi
[[ -x $node_bin ]] || fail "no Node binary at $node_bin (run npm install, or set SLUICE_BASE_NODE)"
node_version="$("$node_bin" --version)"
[[ $node_version == v24.* ]] || fail "$node_bin is Node $node_version, not Node 24"

if [[ -n ${SLUICE_BASE_NPM:-} ]]; then
  npm_dir="$SLUICE_BASE_NPM"
else
  npm_cli="$(command -v npm)" || fail "npm not found (set SLUICE_BASE_NPM to an npm package directory)"
  npm_dir="$(cd "$(dirname "$(readlink -f "$npm_cli")")/.." && pwd)"
fi
[[ -f $npm_dir/bin/npm-cli.js ]] || fail "$npm_dir is not an npm package directory (no bin/npm-cli.js)"
npm_version="$("$node_bin" -p "require('$npm_dir/package.json').version")"

# The cache key: what went into the image. Same key, same image: nothing to do.
layout=3   # bump when what this script puts into the image changes
key="layout=$layout debian=$suite node=$node_version npm=$npm_version"
if [[ ${SLUICE_BASE_REBUILD:-} != 1 ]] && podman image exists "$image"; then
  have="$(podman image inspect --format '{{ index .Labels "org.sluice.base-key" }}' "$image" 2>/dev/null || true)"
  if [[ $have == "$key" ]]; then
    note "$image is up to date ($key)"
    exit 0
  fi
  note "$image was built from \"$have\"; rebuilding for \"$key\""
fi

[[ $EUID -eq 0 ]] || fail "debootstrap needs root"

mirror="${SLUICE_BASE_MIRROR:-}"
if [[ -z $mirror ]]; then
  # deb822 (URIs: ...) or one-line (deb URI suite ...) sources; the first Debian archive that is not the security one
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -nE 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' |
    grep -E '/debian/?$' | grep -v security | head -n 1 || true)"
fi
[[ -n $mirror ]] || fail "no Debian mirror found in /etc/apt/sources.list*; set SLUICE_BASE_MIRROR"

t0=$(date +%s)
work="$(mktemp -d /var/tmp/sluice-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
note "debootstrap $suite from $mirror (log: $work/debootstrap.log)"
if ! debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  fail "debootstrap failed"
fi

note "adding Node $node_version and npm $npm_version"
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
# A distribution's npm may carry a built-in npmrc (e.g. a cafile of the host): not in the official images.
rm -f "$root/usr/local/lib/node_modules/npm/npmrc"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
# Not in a minimal image: apt's downloads and lists, documentation, the debootstrap leftovers.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/debootstrap
# The image's resolver files are filled in by the container runtime.
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

# Sanity check inside the new root before importing it.
chroot "$root" /usr/local/bin/node -e 'if (!process.version.startsWith("v24.")) process.exit(1)' ||
  fail "Node does not run inside the new root"
chroot "$root" /usr/local/bin/npm --version >/dev/null || fail "npm does not run inside the new root"
# npm turns on Node's compile cache at its default path: the check left a root-owned /tmp/node-compile-cache,
# which no other user of the image can write. The image's temporary directories start empty.
find "$root/tmp" "$root/var/tmp" -mindepth 1 -delete

note "importing into podman as $image"
tar -C "$root" --numeric-owner -c . |
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=${node_version#v}" \
    --change "LABEL org.sluice.base-key=\"$key\"" \
    --change 'CMD ["node"]' \
    --message "sluice base image: Debian $suite minbase + Node $node_version" \
    - "$image" >/dev/null
podman image exists "$image" || fail "podman import did not create $image"
note "built $image ($key) in $(($(date +%s) - t0))s"
