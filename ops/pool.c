/* pool.c - the pool family of ops (being filled in). */
#include "elementwise.h"

const op_def ops_pool[1];
const int ops_pool_count = 0;
