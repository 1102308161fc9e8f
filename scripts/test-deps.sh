#!/usr/bin/env bash
# Installs, on first use, what the tests need from Debian's packages: the real nft, iproute2 for the
# lab's namespaces and veths, ping for ICMP checks, util-linux's unshare for scratch namespaces.
set -euo pipefail

need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v sysctl >/dev/null 2>&1 || need+=(procps)

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
