# Tries, from inside a unit's sandbox (run as its ExecStartPre=), what the unit's restrictions
# should refuse, and a few things they must allow, and prints the outcome as one JSON line prefixed
# "sandbox-probe:" (an errno name, or "ok"). Run without any sandbox, the same probe shows that each
# check can succeed, so a refusal is the unit's doing.
#   python3 sandbox_probe.py OTHER_PID
import ctypes
import errno
import json
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def syscall(nr, *args):
    def call():
        if libc.syscall(nr, *args) < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    return call


def write(path, text):
    def call():
        with open(path, "w") as f:
            f.write(text)

    return call


def own_cgroup():
    return [l.split("::", 1)[1].strip() for l in open("/proc/self/cgroup") if l.startswith("0::")][0]


def mkdir_rmdir(path):
    def call():
        os.mkdir(path)
        os.rmdir(path)

    return call


other = int(sys.argv[1])
forward = open("/proc/sys/net/ipv4/ip_forward").read()
old_umask = os.umask(0o022)
os.umask(old_umask)
out = {
    "umask": oct(old_umask),
    # in @system-service: must work
    "getpriority": attempt(syscall(140, 0, 0)),  # getpriority(PRIO_PROCESS, self)
    "io_uring_setup": "ok" if libc.syscall(425, 1, ctypes.create_string_buffer(120)) >= 0 else errno.errorcode[ctypes.get_errno()],
    # @resources: taken away (the kernel itself allows a process to lower its own priority)
    "setpriority": attempt(syscall(141, 0, 0, 1)),  # setpriority(PRIO_PROCESS, self, 1)
    "sched_setaffinity": attempt(lambda: os.sched_setaffinity(0, os.sched_getaffinity(0))),
    # @privileged: taken away (setuid to the real uid needs no capability)
    "setuid": attempt(syscall(105, os.getuid())),
    # ProtectKernelTunables: writes the value it has
    "sysctl": attempt(write("/proc/sys/net/ipv4/ip_forward", forward)),
    # ProtectControlGroups
    "cgroup": attempt(mkdir_rmdir(f"/sys/fs/cgroup{own_cgroup()}/probe")),
    # ProtectProc=ptraceable: a process of another user, and PID 1 (root, all capabilities)
    "otherProcess": "visible" if str(other) in os.listdir("/proc") else "invisible",
    "pid1": "visible" if os.path.exists("/proc/1/status") else "invisible",
    "self": "visible" if str(os.getpid()) in os.listdir("/proc") else "invisible",
    # ProtectSystem=strict, the state directory
    "etc": attempt(write("/etc/fwa-probe", "x")),
    "stateDir": attempt(lambda: (write("/var/lib/firewall-agent/probe", "x")(), os.unlink("/var/lib/firewall-agent/probe"))),
}
print("sandbox-probe: " + json.dumps(out), flush=True)
