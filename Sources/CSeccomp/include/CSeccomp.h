#ifndef STAPLER_CSECCOMP_H
#define STAPLER_CSECCOMP_H

// A system-call allow-list through Debian's libseccomp. SCMP_ACT_ERRNO is a macro with an
// argument and the rule calls are variadic, neither of which Swift can use; these wrappers
// take plain values. Every function returns 0 or a negative errno, as libseccomp does.

#include <stdint.h>

typedef struct cseccomp_filter cseccomp_filter;

/// A filter for the native architecture whose default answer is `default_errno`.
cseccomp_filter *cseccomp_new(int default_errno);

/// Allows the system call named `name` ("openat"). -EDOM: no such call on this architecture.
int cseccomp_allow(cseccomp_filter *filter, const char *name);

/// Allows `name` only when argument `argument` masked with `mask` equals `value`.
int cseccomp_allow_masked(cseccomp_filter *filter, const char *name, unsigned int argument,
                          uint64_t mask, uint64_t value);

/// Answers `name` with `error` instead of the default (ENOSYS for a call glibc falls back from).
int cseccomp_fail(cseccomp_filter *filter, const char *name, int error);

/// Installs the filter on the calling thread; it cannot be removed.
int cseccomp_load(cseccomp_filter *filter);

void cseccomp_release(cseccomp_filter *filter);

/// Calls the system call named `name` with these arguments (for `stapler sandbox-check`,
/// which tries forbidden calls with harmless arguments): the result, or a negative errno;
/// -EDOM when there is no such call on this architecture.
long cseccomp_try_syscall(const char *name, long a0, long a1, long a2, long a3, long a4);

/// Tries to start a process (clone without CLONE_THREAD, as fork does): 0 when one started
/// (it exits at once and is reaped), or a negative errno.
int cseccomp_try_fork(void);

#endif
