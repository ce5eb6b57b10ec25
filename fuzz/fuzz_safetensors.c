/* fuzz_safetensors.c - libFuzzer target for the checkpoint loader: the input
 * is a safetensors file, loaded into a small model whose state_dict is
 *   c1.weight F32 [2,1,2,2], c1.bias F32 [2], f1.weight F64 [2,3],
 *   bn.num_batches_tracked I64 []
 * (the dtypes the format maps, and a scalar). A rejected file must give an
 * error with a message and leave every tensor of the model byte for byte as
 * it was: a half-applied load is a bug. An accepted file must leave no error.
 *
 * TAPEGRAD_FUZZ_SEED=FILE makes the target save the model's own checkpoint
 * to FILE and exit: that is fuzz/corpus/safetensors/valid. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapegrad.h"

static char path[64];
static nn_model *model;

static void write_file(const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) abort();
}

static size_t state_bytes(const tensor *t) {
    return (size_t)t->size * (t->dtype == DTYPE_F32 ? 4 : 8);
}

static void cleanup(void) {
    unlink(path);
    nn_model_free(model);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    model = nn_model_new(DTYPE_F32, 7);
    if (!model) abort();
    rng *g = &model->rng;
    if (
        !nn_model_add_param(model, "c1.weight",
                            tensor_randn(g, DTYPE_F32, SHAPE(2, 1, 2, 2), 0, 1)) ||
        !nn_model_add_param(model, "c1.bias", tensor_randn(g, DTYPE_F32, SHAPE(2), 0, 1)) ||
        !nn_model_add_param(model, "f1.weight", tensor_randn(g, DTYPE_F64, SHAPE(2, 3), 0, 1)) ||
        !nn_model_add_buffer(model, "bn.num_batches_tracked", tensor_zeros(DTYPE_I64, 0, NULL)))
        abort();
    ((int64_t *)nn_model_find(model, "bn.num_batches_tracked")->data)[0] = 12;
    const char *seed = getenv("TAPEGRAD_FUZZ_SEED");
    if (seed) exit(nn_model_save(model, seed) ? 1 : 0);
    /* tmpfs when there is one: a disk-backed /tmp makes every run slower */
    snprintf(path, sizeof path, "/dev/shm/tapegrad_fuzz_st_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(path, sizeof path, "/tmp/tapegrad_fuzz_st_XXXXXX");
        fd = mkstemp(path);
    }
    if (fd < 0) abort();
    close(fd);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum { MAX_STATE = 8 };
    int n = nn_model_state_count(model);
    if (n > MAX_STATE) abort();
    unsigned char before[MAX_STATE][64];
    for (int i = 0; i < n; i++) {
        const char *name;
        tensor *t;
        if (nn_model_state_at(model, i, &name, &t) || state_bytes(t) > sizeof before[i]) abort();
        memcpy(before[i], t->data, state_bytes(t));
    }
    write_file(data, size);
    tapegrad_error_clear();
    if (nn_model_load(model, path)) {
        const char *e = tapegrad_error();
        if (!e || !e[0]) abort(); /* a failure without a message */
        for (int i = 0; i < n; i++) {
            const char *name;
            tensor *t;
            nn_model_state_at(model, i, &name, &t);
            if (memcmp(before[i], t->data, state_bytes(t))) abort(); /* a half-applied load */
        }
    } else if (tapegrad_error()) {
        abort(); /* success with an error pending */
    }
    tapegrad_error_clear();
    return 0;
}
