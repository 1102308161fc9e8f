# What `ip vrf exec NAME` does (iproute2 ip/ipvrf.c, vrf_switch), with a device that is not a VRF:
# this kernel has no VRF support, and `ip vrf exec` refuses a name that is not a VRF device before
# it does anything else. Run inside the unit's sandbox (as an ExecStartPre=), it shows whether the
# sandbox lets ip do its part: load the same BPF_PROG_TYPE_CGROUP_SOCK program (sets bound_dev_if
# of every new socket), create <own cgroup>/vrf/NAME, attach the program to it as
# BPF_CGROUP_INET_SOCK_CREATE and move a process into it. Prints one JSON line, prefixed "vrf-probe:".
#   python3 vrf_probe.py DEVICE
import ctypes
import json
import os
import socket
import struct
import sys

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_SOCK = 9
BPF_CGROUP_INET_SOCK_CREATE = 2
SO_BINDTODEVICE = 25

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def prog_load(ifindex):
    # ipvrf.c prog_load(): r6 = r1; r3 = ifindex; r2 = offsetof(bound_dev_if);
    # *(u32 *)(r1 + offsetof(bound_dev_if)) = r3; r0 = 1; exit
    prog = insn(0xBF, 6, 1) + insn(0xB7, 3, imm=ifindex) + insn(0xB7, 2, imm=0) + insn(0x63, 1, 3) + insn(0xB7, 0, imm=1) + insn(0x95)
    insns = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("<IIQQIIQI", BPF_PROG_TYPE_CGROUP_SOCK, len(prog) // 8, ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0, 0)
    return bpf(BPF_PROG_LOAD, attr)


def main():
    device = sys.argv[1]
    out = {}
    try:
        ifindex = socket.if_nametoindex(device)
        out["step"] = "load"
        prog = prog_load(ifindex)
        out["step"] = "cgroup"
        own = [l.split("::", 1)[1].strip() for l in open("/proc/self/cgroup") if l.startswith("0::")][0]
        path = f"/sys/fs/cgroup{own}/vrf/{device}"
        os.makedirs(path, exist_ok=True)
        out["step"] = "attach"
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        bpf(BPF_PROG_ATTACH, struct.pack("<IIII", fd, prog, BPF_CGROUP_INET_SOCK_CREATE, 0))
        out["step"] = "move"
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            with open(f"{path}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            bound = s.getsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, 16).rstrip(b"\0").decode()
            os.write(w, bound.encode())
            os._exit(0)
        os.close(w)
        bound = os.read(r, 64).decode()
        os.waitpid(pid, 0)
        out.update(ok=True, step="done", cgroup=f"{own}/vrf/{device}", boundTo=bound)
    except OSError as e:
        out.update(ok=False, error=e.strerror, errno=e.errno)
    print("vrf-probe: " + json.dumps(out), flush=True)


main()
