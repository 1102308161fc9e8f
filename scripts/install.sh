#!/usr/bin/env bash
# Installs firewall-agent onto a root filesystem (the firewall image, or a directory for tests):
#   scripts/install.sh [--vrf NAME | --no-vrf] ROOT [BINARY]
# - the executable to ROOT/usr/local/bin/firewall-agent (default BINARY: build/firewall-agent)
# - the systemd units to ROOT/etc/systemd/system, enabled (the links systemctl enable would make)
# - the boot drop ruleset to ROOT/usr/lib/firewall-agent/disconnected.nft (fallback for the boot unit)
# - the state directory ROOT/var/lib/firewall-agent (0700) seeded with the drop ruleset
# - a default config ROOT/etc/firewall-agent/config.yaml, unless one exists (never overwritten)
# - the README to ROOT/usr/share/doc/firewall-agent/
# - with --vrf NAME: the drop-in ROOT/etc/systemd/system/firewall-agent.service.d/vrf.conf
#   (systemd/vrf.conf.in) that starts the agent inside VRF NAME with `ip vrf exec`. Without
#   --vrf an existing drop-in is kept (a reinstall or rollback does not leave the VRF);
#   --no-vrf removes it.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
usage="usage: install.sh [--vrf NAME | --no-vrf] ROOT [BINARY]"
vrf='' with_vrf=0 no_vrf=0
while (($#)); do
  case $1 in
    --vrf) (($# >= 2)) || { echo "$usage" >&2; exit 2; }; vrf=$2; with_vrf=1; shift 2 ;;
    --vrf=*) vrf=${1#--vrf=}; with_vrf=1; shift ;;
    --no-vrf) no_vrf=1; shift ;;
    --help | -h) echo "$usage"; exit 0 ;;
    --) shift; break ;;
    -*) echo "install.sh: unknown option $1; $usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
root=${1:?$usage}
bin=${2:-$src/build/firewall-agent}
if ((with_vrf)); then
  # An interface name as the agent checks it (src/daemon/config.ts), not starting with "-" or "."
  # (ip would take it for an option); "default" is ip's name for no VRF at all.
  if [[ ! $vrf =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$ || $vrf == default ]]; then
    echo "install.sh: --vrf '$vrf' is not the name of a VRF device (letters, digits, _ . -, at most 15)" >&2
    exit 2
  fi
  ((!no_vrf)) || { echo "install.sh: --vrf and --no-vrf exclude each other" >&2; exit 2; }
fi
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

dropin_dir=$root/etc/systemd/system/firewall-agent.service.d
dropin=$dropin_dir/vrf.conf
if ((with_vrf)); then
  install -d -m 0755 "$dropin_dir"
  sed "s/@VRF@/$vrf/g" "$src/systemd/vrf.conf.in" >"$dropin.tmp"
  chmod 0644 "$dropin.tmp"
  mv -f "$dropin.tmp" "$dropin"
  echo "firewall-agent starts in VRF $vrf ($dropin)"
  if [[ $root == / ]] && command -v ip >/dev/null && ! ip -d link show dev "$vrf" 2>/dev/null | grep -q ' vrf table '; then
    echo "install.sh: warning: this machine has no VRF device $vrf (yet); the agent will not start until it does" >&2
  fi
elif ((no_vrf)); then
  rm -f "$dropin"
  rmdir "$dropin_dir" 2>/dev/null || true
elif [[ -e $dropin ]]; then
  echo "keeping $dropin (starts the agent in a VRF; --no-vrf removes it)"
fi

# What `systemctl enable` does, without needing a running systemd.
link() { mkdir -p "$root/etc/systemd/system/$1.wants" && ln -sfn "/etc/systemd/system/$2" "$root/etc/systemd/system/$1.wants/$2"; }
link multi-user.target firewall-agent.service
link network-pre.target firewall-agent-boot.service
link sysinit.target firewall-agent-boot.service
echo "installed firewall-agent into $root"
