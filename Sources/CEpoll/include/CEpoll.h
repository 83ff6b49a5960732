#ifndef STAPLER_CEPOLL_H
#define STAPLER_CEPOLL_H

// Linux event primitives that Swift's Glibc module does not bring in.
// Only declarations and constants live here; the behaviour is in Swift.

#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>

// glibc declares these flags as enum members with same-named macros, which Swift imports
// as distinct enum types; plain integer constants keep the Swift side simple.
static const uint32_t CEPOLL_IN = EPOLLIN;
static const uint32_t CEPOLL_OUT = EPOLLOUT;
static const uint32_t CEPOLL_ERR = EPOLLERR;
static const uint32_t CEPOLL_HUP = EPOLLHUP;
static const uint32_t CEPOLL_RDHUP = EPOLLRDHUP;
static const int CEPOLL_CLOEXEC = EPOLL_CLOEXEC;
static const int CEPOLL_CTL_ADD = EPOLL_CTL_ADD;
static const int CEPOLL_CTL_MOD = EPOLL_CTL_MOD;
static const int CEPOLL_CTL_DEL = EPOLL_CTL_DEL;

static const int CEPOLL_TFD_NONBLOCK = TFD_NONBLOCK;
static const int CEPOLL_TFD_CLOEXEC = TFD_CLOEXEC;
static const int CEPOLL_TFD_TIMER_ABSTIME = TFD_TIMER_ABSTIME;
static const int CEPOLL_TFD_TIMER_CANCEL_ON_SET = TFD_TIMER_CANCEL_ON_SET;

static const int CEPOLL_SFD_NONBLOCK = SFD_NONBLOCK;
static const int CEPOLL_SFD_CLOEXEC = SFD_CLOEXEC;

// A non-blocking, close-on-exec stream socket. Also a plain constant because c-ares's header
// includes <sys/socket.h> too, and in a whole-module build the enum's cases are then found
// only by files that import CCares.
static const int CEPOLL_SOCK_STREAM_NONBLOCK_CLOEXEC = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;

static const int CEPOLL_IN_NONBLOCK = IN_NONBLOCK;
static const int CEPOLL_IN_CLOEXEC = IN_CLOEXEC;

// epoll_event is packed on x86_64; building and reading it in C keeps Swift away from the
// layout question entirely.
static inline struct epoll_event cepoll_event_make(uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return ev;
}
static inline uint32_t cepoll_event_events(const struct epoll_event *ev) { return ev->events; }
static inline uint64_t cepoll_event_data(const struct epoll_event *ev) { return ev->data.u64; }

// accept4 is a GNU extension the Glibc module does not export: accept a connection already
// non-blocking and close-on-exec, in one call and without a window for a fork to leak it.
int cepoll_accept4(int fd);

// syncfs is a GNU extension too: one call makes every file written on a file system
// durable, where an fsync per file would cost a disk cache flush each.
int cepoll_syncfs(int fd);

// The Glibc module does not export <sys/vfs.h>: the file system type (statfs.f_type, a
// magic number of linux/magic.h) of the file system holding fd, or -1 with errno.
int64_t cepoll_filesystem_type(int fd);

// Child processes (Reactor/Process): pipe2 is a GNU extension; pidfd_open has no glibc
// wrapper before 2.36 and syscall() is variadic; closefrom in a spawn is a GNU extension
// (glibc 2.34) that closes every descriptor the child would otherwise inherit.
int cepoll_pipe2(int fds[2], int flags);
int cepoll_pidfd_open(pid_t pid);
int cepoll_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

// A helper process forked before the daemon confines itself (the --on-update launcher):
// prctl is variadic. The death signal reaches it when its parent dies; the name is what ps
// and /proc/PID/comm show (at most 15 bytes).
int cepoll_set_parent_death_signal(int signal);
int cepoll_set_process_name(const char *name);

#endif
