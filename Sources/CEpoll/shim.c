#define _GNU_SOURCE // accept4, syncfs
#include <sys/socket.h>
#include <unistd.h>
#include "CEpoll.h"

int cepoll_accept4(int fd) {
    return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int cepoll_syncfs(int fd) {
    return syncfs(fd);
}
