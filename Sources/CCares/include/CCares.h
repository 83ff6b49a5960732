#ifndef STAPLER_CCARES_H
#define STAPLER_CCARES_H

// c-ares, the DNS resolver made for event loops. Swift imports <ares.h> as it is; this
// header only turns the macros Swift cannot see (negative or composite constants) into
// plain integer constants. The behaviour is in Swift (Sources/Reactor/DNS).

#include <ares.h>

static const ares_socket_t CCARES_SOCKET_BAD = ARES_SOCKET_BAD;
static const int CCARES_LIB_INIT_ALL = ARES_LIB_INIT_ALL;

#endif
