#!/usr/bin/env bash
# Release artifacts from build/firewall-agent (npm run build:binary; built first if missing):
#   build/package/firewall-agent_VERSION_ARCH.deb               Debian package (dpkg-deb --build)
#   build/package/firewall-agent-VERSION-linux-ARCH.tar.gz      the executable with install.sh, units, rules
#   build/package/*.sha256                                     `sha256sum -c` files for both
# The .deb installs what scripts/install.sh installs, at the places a package uses:
#   /usr/local/bin/firewall-agent                 the executable (the units' ExecStart, as install.sh)
#   /lib/systemd/system/firewall-agent{,-boot}.service   the units (neither enabled nor started)
#   /usr/lib/firewall-agent/disconnected.nft      the boot unit's fallback drop ruleset
#   /usr/share/firewall-agent/vrf.conf.in         the VRF drop-in template (README "In a VRF")
#   /etc/firewall-agent/config.yaml               the default config, a conffile (0600)
#   /usr/share/doc/firewall-agent/README.md       the units' Documentation=
# Maintainer scripts: daemon-reload after install and removal, stop on removal; nothing is enabled
# or started. Depends: nftables, iproute2 and the C/C++ runtime the Node.js executable links.
# The tarball unpacks to firewall-agent-VERSION-linux-ARCH/ with the repository's layout
# (build/firewall-agent, scripts/install.sh, systemd/, rules/, examples/config.yaml, README.md),
# so `sudo ./scripts/install.sh /` works from it; the bundle's source map is in build/ too.
# Environment: DEB_MAINTAINER overrides the Maintainer field; SOURCE_DATE_EPOCH the file times.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022 # the package's directories are 0755 whatever the caller's umask

[[ -x build/firewall-agent ]] || bash scripts/build-binary.sh >/dev/null
for tool in dpkg-deb sha256sum tar gzip; do
  command -v "$tool" >/dev/null || { echo "package: $tool not found (dpkg-deb: Debian's dpkg)" >&2; exit 1; }
done

version=$(node -p 'require("./package.json").version')
case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) echo "package: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
maintainer=${DEB_MAINTAINER:-firewall-agent developers <firewall-agent@example.invalid>}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y build/firewall-agent)}

out=build/package
deb=firewall-agent_${version}_${arch}.deb
tarball=firewall-agent-${version}-linux-${arch}.tar.gz
mkdir -p "$out"
# One packaging run at a time; every output appears whole (written aside, then renamed).
exec 9>"$out/.lock"
flock 9
work=$(mktemp -d "$out/.work-XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the .deb ---
root=$work/deb
install -D -m 0755 build/firewall-agent "$root/usr/local/bin/firewall-agent"
for unit in firewall-agent.service firewall-agent-boot.service; do
  install -D -m 0644 "systemd/$unit" "$root/lib/systemd/system/$unit"
done
install -D -m 0644 rules/disconnected.nft "$root/usr/lib/firewall-agent/disconnected.nft"
install -D -m 0644 systemd/vrf.conf.in "$root/usr/share/firewall-agent/vrf.conf.in"
install -D -m 0600 examples/config.yaml "$root/etc/firewall-agent/config.yaml"
install -D -m 0644 README.md "$root/usr/share/doc/firewall-agent/README.md"

install -d -m 0755 "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: firewall-agent
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6 (>= 2.28), libgcc-s1, libstdc++6 (>= 5), nftables, iproute2
Section: net
Priority: optional
Description: nftables firewall agent for metal-stack clusters
 Compiles ClusterwideNetworkPolicies, Services and the Firewall into one
 atomic nftables ruleset and keeps the kernel in step with the clusters.
 One self-contained executable (Node.js single executable application) with
 two systemd units: firewall-agent-boot.service loads a drop ruleset before
 the network comes up, firewall-agent.service is the daemon. Neither is
 enabled or started by the package.
EOF
echo /etc/firewall-agent/config.yaml >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
# Let systemd see the new or changed units; nothing is enabled, started or restarted.
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
# On removal (not on upgrade) stop the daemon; stopping leaves the ruleset in the kernel as it is.
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl stop firewall-agent.service || true
fi
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
# gzip: seconds instead of a minute for xz (39 MB instead of 27 MB), and every dpkg reads it.
dpkg-deb --root-owner-group -Zgzip -z6 --build "$root" "$work/$deb" >/dev/null &
deb_pid=$!

# --- the tarball ---
name=firewall-agent-${version}-linux-${arch}
tree=$work/tar/$name
install -D -m 0755 build/firewall-agent "$tree/build/firewall-agent"
[[ ! -e build/firewall-agent.js.map ]] || install -m 0644 build/firewall-agent.js.map "$tree/build/firewall-agent.js.map"
install -D -m 0755 scripts/install.sh "$tree/scripts/install.sh"
for f in firewall-agent.service firewall-agent-boot.service vrf.conf.in; do
  install -D -m 0644 "systemd/$f" "$tree/systemd/$f"
done
install -D -m 0644 rules/disconnected.nft "$tree/rules/disconnected.nft"
install -D -m 0644 examples/config.yaml "$tree/examples/config.yaml"
install -D -m 0644 README.md "$tree/README.md"
tar -C "$work/tar" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" |
  gzip -6 -n >"$work/$tarball"

wait "$deb_pid"
for f in "$deb" "$tarball"; do
  (cd "$work" && sha256sum "$f" >"$f.sha256")
  mv -f "$work/$f" "$out/$f"
  mv -f "$work/$f.sha256" "$out/$f.sha256"
done
for f in "$deb" "$tarball"; do echo "$out/$f"; done
