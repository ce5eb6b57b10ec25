/* layer.c - the layer family of ops (being filled in). */
#include "elementwise.h"

const op_def ops_layer[1];
const int ops_layer_count = 0;
