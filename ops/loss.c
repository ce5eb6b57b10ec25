/* loss.c - the loss family of ops (being filled in). */
#include "elementwise.h"

const op_def ops_loss[1];
const int ops_loss_count = 0;
