#ifndef STAPLER_CLANDLOCK_H
#define STAPLER_CLANDLOCK_H

// Landlock's three system calls and PR_SET_NO_NEW_PRIVS: syscall() is variadic, which Swift
// cannot call, and Debian 12's <linux/landlock.h> predates the network rules (ABI 4), device
// ioctls (ABI 5) and scopes (ABI 6) that current kernels have. The constants are the kernel's
// UAPI values, under our own names so that a newer system header cannot clash with them.

#include <stdint.h>

// Filesystem access rights, and the ABI that introduced each group.
static const uint64_t CLANDLOCK_ACCESS_FS_EXECUTE = 1ULL << 0;
static const uint64_t CLANDLOCK_ACCESS_FS_WRITE_FILE = 1ULL << 1;
static const uint64_t CLANDLOCK_ACCESS_FS_READ_FILE = 1ULL << 2;
static const uint64_t CLANDLOCK_ACCESS_FS_READ_DIR = 1ULL << 3;
static const uint64_t CLANDLOCK_ACCESS_FS_REMOVE_DIR = 1ULL << 4;
static const uint64_t CLANDLOCK_ACCESS_FS_REMOVE_FILE = 1ULL << 5;
static const uint64_t CLANDLOCK_ACCESS_FS_MAKE_CHAR = 1ULL << 6;
static const uint64_t CLANDLOCK_ACCESS_FS_MAKE_DIR = 1ULL << 7;
static const uint64_t CLANDLOCK_ACCESS_FS_MAKE_REG = 1ULL << 8;
static const uint64_t CLANDLOCK_ACCESS_FS_MAKE_SOCK = 1ULL << 9;
static const uint64_t CLANDLOCK_ACCESS_FS_MAKE_FIFO = 1ULL << 10;
static const uint64_t CLANDLOCK_ACCESS_FS_MAKE_BLOCK = 1ULL << 11;
static const uint64_t CLANDLOCK_ACCESS_FS_MAKE_SYM = 1ULL << 12;
static const uint64_t CLANDLOCK_ACCESS_FS_REFER = 1ULL << 13;      // ABI 2
static const uint64_t CLANDLOCK_ACCESS_FS_TRUNCATE = 1ULL << 14;   // ABI 3
static const uint64_t CLANDLOCK_ACCESS_FS_IOCTL_DEV = 1ULL << 15;  // ABI 5

// Network access rights (ABI 4).
static const uint64_t CLANDLOCK_ACCESS_NET_BIND_TCP = 1ULL << 0;
static const uint64_t CLANDLOCK_ACCESS_NET_CONNECT_TCP = 1ULL << 1;

// Scopes (ABI 6): abstract unix sockets and signals of processes outside the domain.
static const uint64_t CLANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1ULL << 0;
static const uint64_t CLANDLOCK_SCOPE_SIGNAL = 1ULL << 1;

/// The kernel's Landlock ABI version (1 or more), or -1 with errno set (ENOSYS: not built
/// in; EOPNOTSUPP: built in but disabled at boot).
int clandlock_abi_version(void);

/// A new ruleset handling these rights; a file descriptor, or -1 with errno set. Rights the
/// kernel does not know must be left out by the caller (EINVAL otherwise).
int clandlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped);

/// Allows `allowed` beneath the file or directory open as `parent_fd` (an O_PATH descriptor).
int clandlock_add_path_rule(int ruleset_fd, int parent_fd, uint64_t allowed);

/// Allows `allowed` (bind and/or connect) for one TCP port.
int clandlock_add_port_rule(int ruleset_fd, uint64_t port, uint64_t allowed);

/// Confines the calling thread (the only one) with the ruleset, on top of any earlier one.
int clandlock_restrict_self(int ruleset_fd);

/// An O_PATH descriptor of `path` (symbolic links followed) for a rule, or -1 with errno.
int clandlock_open_path(const char *path);

/// prctl(PR_SET_NO_NEW_PRIVS, 1): required before an unprivileged process may confine itself,
/// and it keeps a set-uid program started later from gaining privileges.
int clandlock_set_no_new_privs(void);

#endif
