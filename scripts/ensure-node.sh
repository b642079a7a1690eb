#!/usr/bin/env bash
# Prints the directory of the `node` that builds, tests and runs Tributary: the machine's own when
# it is Node 22 or newer, else Node $NODE_VERSION unpacked under .tools/ from the npm registry
# package node-<os>-<arch> (the Node binary inside an npm package: no download at install time
# beyond the registry every install already uses). Idempotent; the Makefile puts the directory
# first on PATH.
set -euo pipefail

NODE_VERSION="${NODE_VERSION:-24.22.3}"
NODE_MAJOR_MIN=22
root="$(cd "$(dirname "$0")/.." && pwd)"

major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$major" -ge "$NODE_MAJOR_MIN" ]; then
  dirname "$(command -v node)"
  exit 0
fi

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "ensure-node: no npm package of Node for $(uname -s); install Node >= $NODE_MAJOR_MIN" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "ensure-node: no npm package of Node for $(uname -m); install Node >= $NODE_MAJOR_MIN" >&2; exit 1 ;;
esac

dir="$root/.tools/node-$NODE_VERSION"
if [ ! -x "$dir/bin/node" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "ensure-node: node $(node -v 2>/dev/null || echo none) is older than $NODE_MAJOR_MIN; fetching node-$os-$arch@$NODE_VERSION" >&2
  (cd "$tmp" && npm pack --silent "node-$os-$arch@$NODE_VERSION" >/dev/null)
  mkdir -p "$tmp/unpacked" "$dir/bin"
  tar xzf "$tmp"/node-"$os"-"$arch"-"$NODE_VERSION".tgz -C "$tmp/unpacked" package/bin/node
  mv "$tmp/unpacked/package/bin/node" "$dir/bin/node.partial"
  mv "$dir/bin/node.partial" "$dir/bin/node"
fi
"$dir/bin/node" -v >/dev/null
echo "$dir/bin"
