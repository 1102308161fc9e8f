#!/usr/bin/env bash
# A throwaway systemd (the host's own /lib/systemd/systemd) as PID 1 of a container, to run the
# packaged units for real where the test machine's PID 1 is not systemd:
#   container.sh start DIR     boots it, prints the host PID of its PID 1
#   container.sh exec DIR CMD  runs CMD inside (all of its namespaces, its root)
#   container.sh stop DIR      kills it and removes its cgroup
# Namespaces: pid, mount, network, uts, ipc, cgroup (a sub-cgroup of the host's cgroup2 tree).
# The root is an overlay over the host's / with a tmpfs upper layer, so installing, writing /etc or
# /var/lib inside never reaches the host; /proc, /sys, /sys/fs/cgroup (cgroup2), /run and /tmp are
# the container's own, /dev is the host's, DIR/share is /run/host inside. No unit of the host
# starts: every *.wants/ and *.requires/ link, every generator and /etc/fstab are removed from the
# overlay before boot (journald alone is kept, so `journalctl -u` works, also for systemd's own
# messages), and systemd starts multi-user.target in container mode (container=…), where it leaves
# kernel tunables alone. The network namespace starts with lo up and nothing else.
# Needs root, util-linux (unshare, nsenter, pivot_root, findmnt), overlayfs and a cgroup2 mount.
set -euo pipefail

cmd=${1:?usage: container.sh start|exec|stop DIR ...}
dir=${2:?usage: container.sh start|exec|stop DIR ...}
shift 2
dir=$(cd "$dir" && pwd)

host_cgroup2() { findmnt -n -t cgroup2 -o TARGET | head -n 1; }
cgroup() { echo "$(host_cgroup2)/fwa-container-$(basename "$dir")"; }
pid1() { cat "$dir/pid1"; }

case $cmd in
  start)
    [[ -n $(host_cgroup2) ]] || { echo "container.sh: no cgroup2 hierarchy mounted" >&2; exit 3; }
    cg=$(cgroup)
    mkdir -p "$cg" "$dir/root" "$dir/layers"
    rm -f "$dir/pid1"
    # The launcher moves itself into the sub-cgroup first: unshare --cgroup makes that the root.
    setsid bash -c 'echo $$ >"$1/cgroup.procs" && exec unshare --pid --fork --mount --net --uts --ipc --cgroup --propagation private bash "$2" stage2 "$3"' \
      _ "$cg" "$0" "$dir" </dev/null >"$dir/console.log" 2>&1 &
    launcher=$!
    # The launcher's only child is the container's PID 1 (first the stage2 shell, then systemd).
    for _ in $(seq 1 200); do
      child=$(cat "/proc/$launcher/task/$launcher/children" 2>/dev/null || true)
      [[ -n ${child// /} ]] && break
      sleep 0.05
    done
    [[ -n ${child// /} ]] || { echo "container.sh: the container did not start" >&2; cat "$dir/console.log" >&2; exit 1; }
    echo "${child// /}" >"$dir/pid1"
    for _ in $(seq 1 300); do
      state=$(nsenter -t "$(pid1)" -a systemctl is-system-running 2>/dev/null || true)
      [[ $state == running || $state == degraded ]] && break
      kill -0 "$(pid1)" 2>/dev/null || { echo "container.sh: systemd exited" >&2; cat "$dir/console.log" >&2; exit 1; }
      sleep 0.1
    done
    [[ $state == running || $state == degraded ]] ||
      { echo "container.sh: systemd is ${state:-not answering}" >&2; cat "$dir/console.log" >&2; exit 1; }
    pid1
    ;;

  stage2)
    root=$dir/root
    mount -t tmpfs -o mode=0755 tmpfs "$dir/layers"
    mkdir "$dir/layers/upper" "$dir/layers/work"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/layers/upper,workdir=$dir/layers/work" "$root"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=0755 tmpfs "$root/run"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    mkdir -p "$dir/share" "$root/run/host"
    mount --bind "$dir/share" "$root/run/host"
    ip link set lo up
    # No unit of the host: only what the tests install is started (plus journald).
    rm -rf "$root"/etc/systemd/system/* "$root"/run/systemd "$root"/etc/systemd/system-generators \
      "$root"/lib/systemd/system-generators "$root"/usr/lib/systemd/system-generators
    : >"$root/etc/fstab"
    find "$root/lib/systemd/system" "$root/usr/lib/systemd/system" -maxdepth 1 \( -name '*.wants' -o -name '*.requires' \) \
      -exec rm -rf {} + 2>/dev/null || true
    mkdir -p "$root/etc/systemd/system/sockets.target.wants" "$root/etc/systemd/system/sysinit.target.wants"
    ln -s /lib/systemd/system/systemd-journald.socket "$root/etc/systemd/system/sockets.target.wants/"
    ln -s /lib/systemd/system/systemd-journald.service "$root/etc/systemd/system/sysinit.target.wants/"
    mkdir -p "$root/oldroot"
    cd "$root"
    pivot_root . oldroot
    umount -l /oldroot
    rmdir /oldroot
    exec env -i container=fwa-test PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      /lib/systemd/systemd --system --unit=multi-user.target --log-target=journal --show-status=no
    ;;

  exec)
    exec nsenter -t "$(pid1)" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ;;

  stop)
    if [[ -s $dir/pid1 ]] && kill -0 "$(pid1)" 2>/dev/null; then
      kill -KILL "$(pid1)"
      for _ in $(seq 1 100); do kill -0 "$(pid1)" 2>/dev/null || break; sleep 0.05; done
    fi
    cg=$(cgroup)
    if [[ -d $cg ]]; then
      for _ in $(seq 1 100); do
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [[ -d $cg ]] || break
        sleep 0.05
      done
    fi
    [[ ! -d $cg ]] || { echo "container.sh: cannot remove $cg" >&2; exit 1; }
    ;;

  *) echo "container.sh: unknown command $cmd" >&2; exit 2 ;;
esac
