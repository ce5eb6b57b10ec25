/* internal.h - what the files of nn/ share with each other and nobody else. */
#ifndef TAPEGRAD_NN_INTERNAL_H
#define TAPEGRAD_NN_INTERNAL_H

#include "../autograd/internal.h"

/* NULL when a checkpoint can store name and read it back: non-empty, shorter
 * than max bytes, UTF-8 and not "__metadata__"; else why not ("empty",
 * "not UTF-8", ...). */
const char *nn_name_fault(const char *name, size_t max);

#endif
