#include "CSeccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

cseccomp_filter *cseccomp_new(int default_errno) {
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ERRNO((uint32_t)default_errno));
    // The kernel's own errno when loading fails (ENOSYS, EINVAL), not libseccomp's ECANCELED.
    if (filter != NULL) seccomp_attr_set(filter, SCMP_FLTATR_API_SYSRAWRC, 1);
    return (cseccomp_filter *)filter;
}

static int resolve(const char *name) {
    int number = seccomp_syscall_resolve_name(name);
    return number == __NR_SCMP_ERROR ? -EDOM : number;
}

int cseccomp_allow(cseccomp_filter *filter, const char *name) {
    int number = resolve(name);
    if (number < 0) return number;
    return seccomp_rule_add_array((scmp_filter_ctx)filter, SCMP_ACT_ALLOW, number, 0, NULL);
}

int cseccomp_allow_masked(cseccomp_filter *filter, const char *name, unsigned int argument,
                          uint64_t mask, uint64_t value) {
    int number = resolve(name);
    if (number < 0) return number;
    struct scmp_arg_cmp comparison = {.arg = argument, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value};
    return seccomp_rule_add_array((scmp_filter_ctx)filter, SCMP_ACT_ALLOW, number, 1, &comparison);
}

int cseccomp_fail(cseccomp_filter *filter, const char *name, int error) {
    int number = resolve(name);
    if (number < 0) return number;
    return seccomp_rule_add_array((scmp_filter_ctx)filter, SCMP_ACT_ERRNO((uint32_t)error), number, 0, NULL);
}

int cseccomp_load(cseccomp_filter *filter) {
    return seccomp_load((scmp_filter_ctx)filter);
}

void cseccomp_release(cseccomp_filter *filter) {
    seccomp_release((scmp_filter_ctx)filter);
}

long cseccomp_try_syscall(const char *name, long a0, long a1, long a2, long a3, long a4) {
    int number = resolve(name);
    if (number < 0) return number;
    long result = syscall(number, a0, a1, a2, a3, a4);
    return result < 0 ? -errno : result;
}

int cseccomp_try_fork(void) {
    long child = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (child < 0) return -errno;
    if (child == 0) _exit(0);
    int status;
    while (waitpid((pid_t)child, &status, 0) < 0 && errno == EINTR) {}
    return 0;
}
