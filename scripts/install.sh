#!/usr/bin/env bash
# Installs firewall-agent onto a root filesystem (the firewall image, or a directory for tests):
#   scripts/install.sh ROOT [BINARY]
# - the executable to ROOT/usr/local/bin/firewall-agent (default BINARY: build/firewall-agent)
# - the systemd units to ROOT/etc/systemd/system, enabled (the links systemctl enable would make)
# - the boot drop ruleset to ROOT/usr/lib/firewall-agent/disconnected.nft (fallback for the boot unit)
# - the state directory ROOT/var/lib/firewall-agent (0700) seeded with the drop ruleset
# - a default config ROOT/etc/firewall-agent/config.yaml, unless one exists (never overwritten)
# - the README to ROOT/usr/share/doc/firewall-agent/
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
root=${1:?usage: install.sh ROOT [BINARY]}
bin=${2:-$src/build/firewall-agent}
[[ -x $bin ]] || { echo "install.sh: $bin is not an executable; run npm run build:binary first" >&2; exit 2; }
mkdir -p "$root"
root="$(cd "$root" && pwd)"

install -D -m 0755 "$bin" "$root/usr/local/bin/firewall-agent"
for unit in firewall-agent.service firewall-agent-boot.service; do
  install -D -m 0644 "$src/systemd/$unit" "$root/etc/systemd/system/$unit"
done
install -D -m 0644 "$src/rules/disconnected.nft" "$root/usr/lib/firewall-agent/disconnected.nft"
install -d -m 0700 "$root/var/lib/firewall-agent"
[[ -e $root/var/lib/firewall-agent/disconnected.nft ]] ||
  install -m 0600 "$src/rules/disconnected.nft" "$root/var/lib/firewall-agent/disconnected.nft"
if [[ ! -e $root/etc/firewall-agent/config.yaml ]]; then
  install -D -m 0600 "$src/examples/config.yaml" "$root/etc/firewall-agent/config.yaml"
fi
install -D -m 0644 "$src/README.md" "$root/usr/share/doc/firewall-agent/README.md"

# What `systemctl enable` does, without needing a running systemd.
link() { mkdir -p "$root/etc/systemd/system/$1.wants" && ln -sfn "/etc/systemd/system/$2" "$root/etc/systemd/system/$1.wants/$2"; }
link multi-user.target firewall-agent.service
link network-pre.target firewall-agent-boot.service
link sysinit.target firewall-agent-boot.service
echo "installed firewall-agent into $root"
