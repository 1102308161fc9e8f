#!/usr/bin/env bash
# Installs, on first use, what the tests need from Debian's packages: the real nft, iproute2 for the
# lab's namespaces and veths, ping for ICMP checks, util-linux's unshare for scratch namespaces,
# systemd-analyze/systemd-notify for the unit tests, python3 for a notify-socket stand-in, dnsmasq as
# the real resolver behind the DNS proxy (dnsmasq-base: the binary without a system service).
# (Go >= 1.26, which builds the test control plane, comes with the machine.)
set -euo pipefail

need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v sysctl >/dev/null 2>&1 || need+=(procps)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)

if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test-deps: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "test-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# promtool (checks a real scrape of /metrics), from Debian's prometheus package: only the binary is
# extracted into the cache, the server is never installed or started.
PROMTOOL_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/firewall-agent/promtool"
if [[ ! -x $PROMTOOL_DIR/promtool ]]; then
  echo "test-deps: fetching promtool (Debian package prometheus)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && chmod 0777 . && apt-get download -qq prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq prometheus; })
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p "$PROMTOOL_DIR"
  install -m 0755 "$tmp/x/usr/bin/promtool" "$PROMTOOL_DIR/promtool"
  rm -rf "$tmp"
fi
