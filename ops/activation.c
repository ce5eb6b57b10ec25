/* activation.c - the activation family of ops (being filled in). */
#include "elementwise.h"

const op_def ops_activation[1];
const int ops_activation_count = 0;
