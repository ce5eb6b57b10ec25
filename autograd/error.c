/* error.c - the first pending error message, kept per thread until cleared. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char error_buf[512];
static _Thread_local bool error_is_set;

void error_set(const char *fmt, ...) {
    if (error_is_set) return; /* the first error is the cause; keep it */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
    error_is_set = true;
}

bool error_pending(void) { return error_is_set; }

const char *tapegrad_error(void) { return error_is_set ? error_buf : NULL; }

void tapegrad_error_clear(void) {
    error_is_set = false;
    error_buf[0] = '\0';
}
