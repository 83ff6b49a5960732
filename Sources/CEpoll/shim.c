// Everything in CEpoll is declared inline in the header; SwiftPM needs one source file.
#include "CEpoll.h"
