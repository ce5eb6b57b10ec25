/* error.c - the first pending error message, kept per thread until cleared. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define ERROR_MAX 512
static _Thread_local char error_buf[ERROR_MAX];
static _Thread_local bool error_is_set;

/* A message longer than the buffer (a long path in it) keeps its start and
 * its end, where the reason is, with " ... " in place of the middle: cutting
 * the end would lose the reason. */
void error_set(const char *fmt, ...) {
    if (error_is_set) return; /* the first error is the cause; keep it */
    va_list ap;
    va_start(ap, fmt);
    char whole[8192];
    int len = vsnprintf(whole, sizeof whole, fmt, ap);
    va_end(ap);
    error_is_set = true;
    if (len < 0) {
        snprintf(error_buf, sizeof error_buf, "(unformattable message: %s)", fmt);
        return;
    }
    if ((size_t)len >= sizeof whole) len = (int)sizeof whole - 1; /* past 8 KB: cut at the end */
    if ((size_t)len < sizeof error_buf) {
        memcpy(error_buf, whole, (size_t)len + 1);
        return;
    }
    const size_t head = 160, gap = 5, tail = sizeof error_buf - 1 - head - gap;
    memcpy(error_buf, whole, head);
    memcpy(error_buf + head, " ... ", gap);
    memcpy(error_buf + head + gap, whole + len - tail, tail + 1);
}

bool error_pending(void) { return error_is_set; }

const char *tapegrad_error(void) { return error_is_set ? error_buf : NULL; }

void tapegrad_error_clear(void) {
    error_is_set = false;
    error_buf[0] = '\0';
}
