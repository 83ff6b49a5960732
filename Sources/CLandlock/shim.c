#define _GNU_SOURCE
#include "CLandlock.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// The kernel's structures at their newest size; the kernel accepts a larger structure from an
// older caller's point of view as long as the fields it does not know are zero.
struct clandlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct clandlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct clandlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

enum { CLANDLOCK_RULE_PATH_BENEATH = 1, CLANDLOCK_RULE_NET_PORT = 2 };
enum { CLANDLOCK_CREATE_RULESET_VERSION = 1 << 0 };

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

int clandlock_abi_version(void) {
    return (int)syscall(SYS_landlock_create_ruleset, (void *)0, (size_t)0, CLANDLOCK_CREATE_RULESET_VERSION);
}

int clandlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped) {
    struct clandlock_ruleset_attr attr = {
        .handled_access_fs = handled_fs, .handled_access_net = handled_net, .scoped = scoped};
    // Older kernels refuse a structure larger than theirs unless the extra fields are zero;
    // the smallest size that carries every non-zero field works everywhere.
    size_t size = sizeof(attr.handled_access_fs);
    if (handled_net != 0) size = 2 * sizeof(uint64_t);
    if (scoped != 0) size = sizeof(attr);
    return (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0U);
}

int clandlock_add_path_rule(int ruleset_fd, int parent_fd, uint64_t allowed) {
    struct clandlock_path_beneath_attr attr = {.allowed_access = allowed, .parent_fd = parent_fd};
    return (int)syscall(SYS_landlock_add_rule, ruleset_fd, CLANDLOCK_RULE_PATH_BENEATH, &attr, 0U);
}

int clandlock_add_port_rule(int ruleset_fd, uint64_t port, uint64_t allowed) {
    struct clandlock_net_port_attr attr = {.allowed_access = allowed, .port = port};
    return (int)syscall(SYS_landlock_add_rule, ruleset_fd, CLANDLOCK_RULE_NET_PORT, &attr, 0U);
}

int clandlock_restrict_self(int ruleset_fd) {
    return (int)syscall(SYS_landlock_restrict_self, ruleset_fd, 0U);
}

int clandlock_open_path(const char *path) {
    return open(path, O_PATH | O_CLOEXEC);
}

int clandlock_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}
