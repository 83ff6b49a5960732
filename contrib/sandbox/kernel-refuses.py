#!/usr/bin/env python3
"""Runs a command as if the kernel had no Landlock or no seccomp filters, to see what
Stapler does there (the tests use it):

    contrib/sandbox/kernel-refuses.py landlock -- stapler --one-off -v /etc/haproxy/certs
    contrib/sandbox/kernel-refuses.py seccomp -- stapler ...
    contrib/sandbox/kernel-refuses.py landlock,seccomp -- stapler ...

It installs a seccomp filter of its own (PR_SET_NO_NEW_PRIVS first) and then executes the
command, which inherits the filter: landlock_create_ruleset fails with ENOSYS, as on a kernel
built without Landlock; seccomp(2) fails with ENOSYS and prctl(PR_SET_SECCOMP) with EINVAL, as
on a kernel without seccomp filters. Everything else is allowed. x86_64 only.
"""
import ctypes
import os
import struct
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
NR_PRCTL, NR_SECCOMP, NR_LANDLOCK_CREATE_RULESET = 157, 317, 444
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
ENOSYS, EINVAL = 38, 22
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
# BPF opcodes: load word from seccomp_data, jump if equal, return.
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
# seccomp_data: nr at 0, arch at 4, args[0] (low half, little endian) at 16.
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16


def filter_for(mechanisms):
    program = [(LD_ABS, 0, 0, OFFSET_ARCH), (JEQ, 1, 0, AUDIT_ARCH_X86_64), (RET, 0, 0, RET_ALLOW),
               (LD_ABS, 0, 0, OFFSET_NR)]
    if "landlock" in mechanisms:
        program += [(JEQ, 0, 1, NR_LANDLOCK_CREATE_RULESET), (RET, 0, 0, RET_ERRNO | ENOSYS)]
    if "seccomp" in mechanisms:
        program += [(JEQ, 0, 1, NR_SECCOMP), (RET, 0, 0, RET_ERRNO | ENOSYS),
                    (JEQ, 0, 3, NR_PRCTL), (LD_ABS, 0, 0, OFFSET_ARG0),
                    (JEQ, 0, 1, PR_SET_SECCOMP), (RET, 0, 0, RET_ERRNO | EINVAL)]
    program.append((RET, 0, 0, RET_ALLOW))
    return program


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: kernel-refuses.py landlock|seccomp|landlock,seccomp -- COMMAND ...")
    mechanisms = set(sys.argv[1].split(","))
    if not mechanisms <= {"landlock", "seccomp"}:
        sys.exit(f"kernel-refuses.py: unknown mechanism in {sys.argv[1]!r}")
    program = filter_for(mechanisms)
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    fprog_buffer = ctypes.create_string_buffer(fprog)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog_buffer), 0, 0) != 0:
        sys.exit(f"kernel-refuses.py: cannot install the filter: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[3], sys.argv[3:])


if __name__ == "__main__":
    main()
