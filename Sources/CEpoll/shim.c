#define _GNU_SOURCE // accept4, syncfs, pipe2, posix_spawn_file_actions_addclosefrom_np
#include <fcntl.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>
#include "CEpoll.h"

int cepoll_accept4(int fd) {
    return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int cepoll_syncfs(int fd) {
    return syncfs(fd);
}

int64_t cepoll_filesystem_type(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return -1;
    return (int64_t)info.f_type;
}

int cepoll_pipe2(int fds[2], int flags) {
    return pipe2(fds, flags);
}

int cepoll_pidfd_open(pid_t pid) {
    // Linux 5.3; the descriptor is close-on-exec by definition.
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int cepoll_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int cepoll_set_parent_death_signal(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0UL, 0UL, 0UL);
}

int cepoll_set_process_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}
