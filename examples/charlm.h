/* charlm.h - what the byte-level language-model examples (charlstm, chargpt)
 * share (beyond example.h's clock and options): the corpus, the random windows
 * and the validation. Each
 * function names the program (prog) in its messages. Header-only (static):
 * every examples/NAME.c is a program of its own. */
#ifndef TAPEGRAD_EXAMPLES_CHARLM_H
#define TAPEGRAD_EXAMPLES_CHARLM_H

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "example.h"

static int charlm_by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir whose names have no '.', in strcmp order,
 * concatenated into *buf (at least 10 windows of ctx + 2 bytes). 0, or -1
 * with a message on stderr. */
static int charlm_read_corpus(const char *prog, const char *dir, int ctx, unsigned char **buf,
                              int64_t *len) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s: %s (Debian's fortunes package provides the corpus)\n", prog, dir,
                strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = -1;
    unsigned char *data = NULL;
    size_t size = 0;
    while ((e = readdir(d))) {
        if (strchr(e->d_name, '.')) continue; /* also . and .. */
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) goto oom;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) goto oom;
        n++;
    }
    qsort(names, n, sizeof *names, charlm_by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue; /* follows links, as the peer */
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
            goto done;
        }
        unsigned char *nd = realloc(data, size + (size_t)st.st_size + 1);
        if (!nd) {
            fclose(f);
            goto oom;
        }
        data = nd;
        size_t got = fread(data + size, 1, (size_t)st.st_size, f);
        fclose(f);
        size += got;
    }
    if (size < 10 * ((size_t)ctx + 2)) {
        fprintf(stderr, "%s: %s holds %zu bytes of text; too little for windows of %d\n", prog, dir,
                size, ctx);
        goto done;
    }
    *buf = data;
    *len = (int64_t)size;
    data = NULL;
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "%s: out of memory reading %s\n", prog, dir);
done:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(data);
    closedir(d);
    return rc;
}

/* B random windows of ctx bytes (each start uniform over those with a next
 * byte for every position): x [B, ctx] the bytes, y [B * ctx] the bytes
 * after them. */
static void charlm_draw(const unsigned char *text, int64_t len, int ctx, rng *g, tensor *x,
                        tensor *y) {
    int64_t B = x->shape[0];
    int64_t *xs = x->data, *ys = y->data;
    for (int64_t b = 0; b < B; b++) {
        int64_t at = (int64_t)rng_below(g, (uint64_t)(len - ctx - 1));
        for (int t = 0; t < ctx; t++) {
            xs[b * ctx + t] = text[at + t];
            ys[b * ctx + t] = text[at + t + 1];
        }
    }
}

/* The peer's validation: 50 batches of 16 held-out windows of ctx bytes
 * (whatever --batch is) from a generator seeded 12345, without recording;
 * the mean of their losses, loss(model, x, y) being a batch's mean
 * cross-entropy. NAN when a loss fails. */
static double charlm_validate(const unsigned char *text, int64_t len, int ctx,
                              tensor *(*loss)(const void *model, tensor *x, tensor *y),
                              const void *model) {
    enum { VAL_BATCHES = 50, VAL_BATCH = 16 };
    tensor *x = tensor_zeros(DTYPE_I64, SHAPE(VAL_BATCH, ctx));
    tensor *y = tensor_zeros(DTYPE_I64, SHAPE(VAL_BATCH * ctx));
    if (!x || !y) {
        tensor_free(x);
        return NAN;
    }
    rng g;
    rng_seed(&g, 12345, 0);
    double sum = 0;
    tape_no_grad_begin();
    for (int i = 0; i < VAL_BATCHES; i++) {
        charlm_draw(text, len, ctx, &g, x, y);
        tensor *l = loss(model, x, y);
        double v = l ? tensor_item(l) : NAN;
        tape_reset();
        if (!l) {
            sum = NAN;
            break;
        }
        sum += v;
    }
    tape_no_grad_end();
    tensor_free(x);
    tensor_free(y);
    return sum / VAL_BATCHES;
}

#endif
