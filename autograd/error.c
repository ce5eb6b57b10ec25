/* error.c - the first pending error message, kept per thread until cleared. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define ERROR_MAX 512
static _Thread_local char error_buf[ERROR_MAX];
static _Thread_local bool error_is_set;
static _Thread_local uint64_t error_calls;

/* A message longer than the buffer (a long path in it) keeps its start and
 * its end, where the reason is, with " ... " in place of the middle: cutting
 * the end would lose the reason. */
void tg_error_set(const char *fmt, ...) {
    error_calls++;            /* counted even when the message is not kept */
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

bool tg_error_pending(void) { return error_is_set; }

uint64_t tg_error_count(void) { return error_calls; }

void tg_error_prefix(const char *fmt, ...) {
    if (!error_is_set) return;
    char head[256], old[sizeof error_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, error_buf, sizeof old);
    size_t h = strlen(head) < sizeof error_buf - 1 ? strlen(head) : sizeof error_buf - 1;
    memcpy(error_buf, head, h);
    size_t room = sizeof error_buf - 1 - h, o = strlen(old) < room ? strlen(old) : room;
    memcpy(error_buf + h, old, o);
    error_buf[h + o] = '\0';
}

const char *tapegrad_error(void) { return error_is_set ? error_buf : NULL; }

void tapegrad_error_clear(void) {
    error_is_set = false;
    error_buf[0] = '\0';
}
