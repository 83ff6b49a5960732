#include "CCares.h"
