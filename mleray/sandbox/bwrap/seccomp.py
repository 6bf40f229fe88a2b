"""The seccomp filter bwrap installs before the agent runs (`bwrap --seccomp FD`), built in pure Python.

A classic-BPF program (no libseccomp, no C): syscalls an agent never needs and that reach the kernel's
attack surface or the host (ptrace, mount, new namespaces, keyrings, bpf, perf, io_uring, module and
kexec calls) fail with EPERM; clone() with a namespace flag fails too, clone3 reports ENOSYS (its flags
sit behind a pointer a filter cannot read, so glibc falls back to clone); ioctl TIOCSTI/TIOCLINUX (typing
into a terminal) fails, comparing only the low 32 bits of the command as the kernel does. Other
architectures' entry points (i386 `int 0x80`, x32) kill the process. Built for x86_64 only: elsewhere
`supported()` says why not and the sandbox records seccomp as not enforced.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_OFF_NR, _OFF_ARCH = 0, 4

# x86_64 numbers (asm/unistd_64.h)
NR: Dict[str, int] = dict(
    ioctl=16, clone=56, ptrace=101, syslog=103, uselib=134, pivot_root=155, chroot=161, acct=163, mount=165,
    umount2=166, swapon=167, swapoff=168, reboot=169, iopl=172, ioperm=173, init_module=175, delete_module=176,
    quotactl=179, lookup_dcookie=212, kexec_load=246, add_key=248, request_key=249, keyctl=250, unshare=272,
    perf_event_open=298, name_to_handle_at=303, open_by_handle_at=304, setns=308, process_vm_readv=310,
    process_vm_writev=311, finit_module=313, kexec_file_load=320, bpf=321, userfaultfd=323,
    io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_tree=428, move_mount=429, fsopen=430,
    fsconfig=431, fsmount=432, fspick=433, clone3=435, mount_setattr=442)

DENIED: Tuple[str, ...] = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "open_tree",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "keyctl", "add_key",
    "request_key", "bpf", "perf_event_open", "unshare", "setns", "userfaultfd", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at", "acct", "swapon",
    "swapoff", "reboot", "syslog", "quotactl", "lookup_dcookie", "uselib", "iopl", "ioperm", "io_uring_setup",
    "io_uring_enter", "io_uring_register")
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
SUMMARY = "ptrace, mount, unshare/setns/namespace clone, keyctl, bpf, perf_event_open, io_uring, TIOCSTI"


def supported() -> Optional[str]:
    """None when this machine can take the filter; else why not (one phrase)."""
    if platform.machine() not in ("x86_64", "amd64"):
        return f"the filter is built for x86_64 only (this machine is {platform.machine() or 'unknown'})"
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return "no /proc/self/status to check the kernel's seccomp support"
    if "Seccomp_filters:" not in status and "Seccomp:" not in status:
        return "the kernel has no seccomp filters (CONFIG_SECCOMP_FILTER)"
    return None


def program(denied: Sequence[str] = DENIED) -> bytes:
    """The filter as an array of struct sock_filter (8 bytes each), what `bwrap --seccomp` reads."""
    prog: List[List[Union[int, str]]] = []  # [code, jt, jf, k]; jt/jf may be labels

    def ins(code: int, k: int = 0, jt: Union[int, str] = 0, jf: Union[int, str] = 0) -> None:
        prog.append([code, jt, jf, k])

    ins(_LD_W_ABS, _OFF_ARCH)
    ins(_JEQ_K, AUDIT_ARCH_X86_64, 1, 0)
    ins(_RET_K, RET_KILL_PROCESS)
    ins(_LD_W_ABS, _OFF_NR)
    ins(_JGE_K, X32_SYSCALL_BIT, "kill", 0)
    for name in denied:
        ins(_JEQ_K, NR[name], "deny", 0)
    ins(_JEQ_K, NR["clone3"], "enosys", 0)
    ins(_JEQ_K, NR["clone"], "clone", 0)
    ins(_JEQ_K, NR["ioctl"], "ioctl", 0)
    ins(_RET_K, RET_ALLOW)
    labels = {"clone": len(prog)}
    ins(_LD_W_ABS, 16)  # low 32 bits of args[0] (little endian)
    ins(_JSET_K, CLONE_NS_FLAGS, "deny", "allow")
    labels["ioctl"] = len(prog)
    ins(_LD_W_ABS, 24)  # low 32 bits of args[1]: the kernel truncates the command to unsigned int
    ins(_JEQ_K, TIOCSTI, "deny", 0)
    ins(_JEQ_K, TIOCLINUX, "deny", "allow")
    for label, ret in (("kill", RET_KILL_PROCESS), ("deny", RET_ERRNO | errno.EPERM),
                       ("enosys", RET_ERRNO | errno.ENOSYS), ("allow", RET_ALLOW)):
        labels[label] = len(prog)
        ins(_RET_K, ret)
    out = bytearray()
    for pc, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - pc - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - pc - 1 if isinstance(jf, str) else jf
        assert isinstance(code, int) and isinstance(k, int) and 0 <= int(jt) < 256 and 0 <= int(jf) < 256
        out += struct.pack("<HBBI", code, int(jt), int(jf), k)
    return bytes(out)


def program_fd(prog: bytes) -> int:
    """A fresh inheritable memfd holding `prog`, read from offset 0. bwrap reads it to the end, so each
    sandbox needs its own; the caller closes it once bwrap has started."""
    fd = os.memfd_create("mleray-seccomp", 0)
    os.write(fd, prog)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd
