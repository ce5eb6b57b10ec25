/* norm.c - the norm family of ops (being filled in). */
#include "elementwise.h"

const op_def ops_norm[1];
const int ops_norm_count = 0;
