/// The system calls the confined daemon may make.
///
/// MEASURED, not guessed: the end-to-end tests were run under `strace -f -ff` with the
/// unconfined daemon (`contrib/sandbox/measure-syscalls.sh` repeats it: Pipeline, HAProxy,
/// Metrics, IssuerFetch, NamedResponders, StapleDirectory, ProcessControl, Events,
/// JournalLogging, HTTPSResponder, Time, Hardening and HAProxyLive tests, plus the
/// `contrib/run.sh` demonstration), and every call any stapler process made after its
/// execve is in `measured`. `reasoned` adds what those runs did not reach but the daemon's
/// code or its libraries can call on a path the tests do not take; each line says which.
/// What is in neither fails with EPERM, among them execve, execveat, ptrace, mount, umount2,
/// kexec_load, kexec_file_load, bpf, init_module, finit_module and delete_module
/// (`forbidden`, asserted absent by the tests). clone is allowed for threads only and clone3
/// answers ENOSYS (`SeccompFilter`).
enum SystemCallAllowList {
    static let measured: [String] = [
        // Memory, threads' bookkeeping, the Swift runtime and glibc at start.
        "brk", "mmap", "munmap", "mprotect", "futex", "rseq", "set_robust_list", "set_tid_address",
        "arch_prctl", "prlimit64", "sched_getaffinity", "sigaltstack", "getrandom", "uname", "sysinfo",
        "getpid", "gettid", "getcwd",
        // Files: certificates, staples (temporary file, rename, fsync, syncfs), the log, the
        // pid file, the metrics socket file; fstatfs: whether inotify sees every change of a
        // directory (periodic rescans).
        "fstatfs", "openat", "close", "read", "write", "pread64", "lseek", "newfstatat", "readlink", "access",
        "getdents64", "rename", "unlink", "link", "mkdir", "chmod", "fchmod", "umask", "fsync", "syncfs",
        "fcntl", "ioctl", "dup2", "pipe2",
        // The loop: epoll, timers, signals, inotify.
        "epoll_create1", "epoll_ctl", "epoll_wait", "poll", "timerfd_create", "timerfd_settime",
        "signalfd4", "rt_sigaction", "rt_sigprocmask", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
        // Sockets: responders, DNS, HAProxy, metrics, sd_notify.
        "socket", "socketpair", "connect", "bind", "listen", "accept4", "shutdown", "getsockname", "getpeername",
        "getsockopt", "setsockopt", "sendto", "recvfrom",
        // -D: start-up only, before confinement, kept for the daemonised process's later use.
        "setsid", "chdir", "kill",
        "exit_group",
    ]

    static let reasoned: [String] = [
        // A thread's end (curl's resolver thread, used with a proxy or an IDN host).
        "exit", "madvise", "sched_yield", "clock_nanosleep", "nanosleep",
        // vDSO fallbacks: clock reads become system calls where the vDSO is unavailable.
        "clock_gettime", "clock_getres", "gettimeofday", "time",
        // Other spellings glibc picks by version or architecture for the same operations.
        "fstat", "stat", "lstat", "statx", "readlinkat", "faccessat", "faccessat2", "renameat", "renameat2",
        "unlinkat", "linkat", "mkdirat", "fchmodat", "open", "dup", "dup3", "pipe", "epoll_pwait",
        "epoll_pwait2", "ppoll", "select", "pselect6", "fdatasync", "ftruncate", "pwrite64", "readv", "writev",
        "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "getdents", "close_range", "mremap", "getrlimit",
        "setrlimit", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "tgkill", "getrusage",
        // The signal handlers of the Swift runtime and of sanitizers return through this.
        "rt_sigreturn", "rt_sigtimedwait", "restart_syscall",
        // Syslog (--syslog) reconnects to /dev/log; reaping a child started before confinement.
        "wait4", "waitid", "pidfd_open", "pidfd_send_signal",
        // The sandbox's own network layer after the first scan, laid by this same process.
        "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    ]

    static var allowed: [String] { measured + reasoned }

    /// Never allowed, whatever the lists above say (the tests assert it).
    static let forbidden: [String] = [
        "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
        "pivot_root", "chroot", "kexec_load", "kexec_file_load", "bpf", "init_module", "finit_module",
        "delete_module", "fork", "vfork", "clone3", "setuid", "setgid", "setns", "unshare", "seccomp",
        "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "reboot", "swapon", "swapoff",
    ]
}
