/* fuzz_idx.c - libFuzzer target for the IDX reader (nn_idx_load), raw and
 * gzip. The first input byte picks how the rest reaches the reader:
 *   0, 1  the bytes as they are (a raw file)
 *   2     gzip-compressed
 *   3     gzip-compressed, then cut short by 1 to 64 bytes (from the second
 *         byte), as a broken download would be
 *   4     gzip-compressed, then 1 to 16 bytes of junk that is no gzip member
 *         (the second byte says how many, 'J' repeated): never loads
 * The reader takes a path, so the file goes to one temporary file reused for
 * every input and removed at exit. The target knows the format and holds the reader to it both
 * ways: a file that follows the format loads with exactly its header's
 * dimensions and bytes, anything else fails with a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "tapegrad.h"

#define IDX_MAX_BYTES ((int64_t)1 << 33) /* nn/idx.c's limit on the header's claim */

static char path[64];

static void write_file(const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) abort();
}

/* One gzip member of p in memory (windowBits 16 + 15 asks deflate for the
 * gzip wrapper). The caller frees *out. */
static size_t gzip(const uint8_t *p, size_t n, uint8_t **out) {
    z_stream s = {0};
    if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&s, n);
    *out = malloc(cap ? cap : 1);
    if (!*out) abort();
    s.next_in = (Bytef *)p;
    s.avail_in = (uInt)n;
    s.next_out = *out;
    s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END) abort();
    size_t len = s.total_out;
    deflateEnd(&s);
    return len;
}

/* What the format says of these bytes: 1 and the header in *want when they
 * are a well-formed IDX file the reader supports, else 0. The dimensions'
 * product is checked against the limit step by step, as the reader does, so
 * [huge, huge, 0] counts as a claim beyond the limit. */
static int idx_expect(const uint8_t *p, size_t n, nn_idx *want) {
    if (n < 4 || p[0] || p[1] || p[2] != 0x08 || p[3] < 1 || p[3] > 4) return 0;
    want->ndim = p[3];
    if (n < 4 + 4 * (size_t)want->ndim) return 0;
    want->size = 1;
    for (int i = 0; i < want->ndim; i++) {
        const uint8_t *d = p + 4 + 4 * i;
        want->dims[i] = (int64_t)d[0] << 24 | (int64_t)d[1] << 16 | (int64_t)d[2] << 8 | d[3];
        if (want->dims[i] > 0 && want->size > IDX_MAX_BYTES / want->dims[i]) return 0;
        want->size *= want->dims[i];
    }
    return (size_t)want->size == n - 4 - 4 * (size_t)want->ndim;
}

static void remove_file(void) { unlink(path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* tmpfs when there is one: a disk-backed /tmp makes every run 3x slower */
    snprintf(path, sizeof path, "/dev/shm/tapegrad_fuzz_idx_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(path, sizeof path, "/tmp/tapegrad_fuzz_idx_XXXXXX");
        fd = mkstemp(path);
    }
    if (fd < 0) abort();
    close(fd);
    atexit(remove_file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int mode = data[0] % 5;
    const uint8_t *body = data + 1;
    size_t n = size - 1, cut = 0, junk = 0;
    if (mode == 3 || mode == 4) {
        if (n == 0) return 0;
        if (mode == 3) cut = 1 + body[0] % 64;
        else junk = 1 + body[0] % 16;
        body++, n--;
    }
    uint8_t *gz = NULL;
    if (mode >= 2) {
        size_t len = gzip(body, n, &gz);
        if (cut > len) cut = len;
        uint8_t *grown = junk ? realloc(gz, len + junk) : gz;
        if (!grown) abort();
        gz = grown;
        memset(gz + len, 'J', junk);
        write_file(gz, len - cut + junk);
    } else {
        write_file(body, n);
    }
    free(gz);

    tapegrad_error_clear();
    nn_idx want;
    /* A raw file that starts like gzip is read as gzip: no claim about it. */
    bool raw_gzip = mode < 2 && n >= 2 && body[0] == 0x1f && body[1] == 0x8b;
    int valid = idx_expect(body, n, &want);
    nn_idx *a = nn_idx_load(path);
    if (!a) {
        const char *e = tapegrad_error();
        if (!e || !e[0]) abort(); /* a failure without a message */
        if (valid && mode < 3 && !raw_gzip) abort(); /* a good file refused */
    } else {
        if (tapegrad_error()) abort(); /* success with an error pending */
        if (mode == 3) abort(); /* a cut gzip stream accepted */
        if (mode == 4) abort(); /* junk after the gzip stream accepted */
        if (a->ndim < 1 || a->ndim > 4 || !a->data) abort();
        int64_t s = 1;
        for (int i = 0; i < a->ndim; i++) s *= a->dims[i];
        if (s != a->size) abort();
        if (!raw_gzip) {
            if (!valid || a->ndim != want.ndim || a->size != want.size) abort();
            for (int i = 0; i < a->ndim; i++)
                if (a->dims[i] != want.dims[i]) abort();
            if (memcmp(a->data, body + 4 + 4 * a->ndim, (size_t)a->size)) abort();
        }
    }
    nn_idx_free(a);
    tapegrad_error_clear();
    return 0;
}
