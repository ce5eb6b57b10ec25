/* conv.c - the conv family of ops (being filled in). */
#include "elementwise.h"

const op_def ops_conv[1];
const int ops_conv_count = 0;
