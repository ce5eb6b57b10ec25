/* math.c - the math family of ops (being filled in). */
#include "elementwise.h"

const op_def ops_math[1];
const int ops_math_count = 0;
