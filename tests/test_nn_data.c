/* test_nn_data.c - IDX files, datasets and batches: good files load, broken
 * ones (written to a temporary directory) give an error naming the file and
 * the fault, and batches are shuffled by seed and normalised. */
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "check_main.h"

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tapegrad_nn_data_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes bytes to dir/name (gzip-compressed when gz); returns the path. */
static const char *write_file(const char *name, const void *bytes, size_t n, bool gz) {
    static char path[4][128];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    if (gz) {
        gzFile f = gzopen(p, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(gzwrite(f, bytes, (unsigned)n), (int)n);
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
        fclose(f);
    }
    return p;
}

/* 3 images of 2x2 and their labels. */
static const unsigned char images3[] = {0, 0, 8, 3,  0,   0,   0,  3,  0,  0,  0, 2, 0, 0,
                                        0, 2, 0, 51, 102, 255, 10, 20, 30, 40, 1, 2, 3, 4};
static const unsigned char labels3[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 2};

static void expect_error(const char *path, const char *fault) {
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_idx_load(path));
    const char *e = tapegrad_error();
    ck_assert_ptr_nonnull(e);
    ck_assert_msg(strstr(e, path) && strstr(e, fault), "error \"%s\" should name %s and say %s", e,
                  path, fault);
    tapegrad_error_clear();
}

START_TEST(test_idx_raw_and_gzip_load_alike) {
    make_dir();
    for (int gz = 0; gz < 2; gz++) {
        nn_idx *a = nn_idx_load(write_file(gz ? "a.gz" : "a", images3, sizeof images3, gz));
        ck_assert_ptr_nonnull(a);
        ck_assert_int_eq(a->ndim, 3);
        ck_assert_int_eq(a->dims[0], 3);
        ck_assert_int_eq(a->dims[1], 2);
        ck_assert_int_eq(a->size, 12);
        ck_assert_int_eq(a->data[3], 255);
        ck_assert_int_eq(a->data[11], 4);
        nn_idx_free(a);
    }
    remove_dir();
}
END_TEST

START_TEST(test_idx_bad_magic_rejected) {
    make_dir();
    unsigned char b[sizeof images3];
    memcpy(b, images3, sizeof b);
    b[0] = 0x1f; /* e.g. a text or other binary file */
    expect_error(write_file("magic", b, sizeof b, false),
                 "bad magic 1f 00 08 03: not an IDX file (it starts with 00 00)");
    remove_dir();
}
END_TEST

START_TEST(test_idx_unsupported_element_type_rejected) {
    make_dir();
    unsigned char b[sizeof images3];
    memcpy(b, images3, sizeof b);
    b[2] = 0x0d; /* float */
    expect_error(write_file("float", b, sizeof b, false), "element type 0x0d is not supported (only 0x08, unsigned byte)");
    remove_dir();
}
END_TEST

START_TEST(test_idx_truncated_data_rejected) {
    make_dir();
    expect_error(write_file("short", images3, sizeof images3 - 3, false),
                 "truncated: dimensions [3,2,2] need 12 data bytes, the file has 9");
    expect_error(write_file("short.gz", images3, sizeof images3 - 3, true), "truncated");
    remove_dir();
}
END_TEST

START_TEST(test_idx_truncated_header_rejected) {
    make_dir();
    expect_error(write_file("hdr", images3, 9, false),
                 "truncated in the header: 3 dimensions announced, 5 of 12 size bytes present");
    expect_error(write_file("tiny", images3, 2, false),
                 "truncated: 2 bytes, an IDX header needs at least 4");
    expect_error(write_file("empty", images3, 0, false),
                 "truncated: 0 bytes, an IDX header needs at least 4");
    remove_dir();
}
END_TEST

START_TEST(test_idx_extra_bytes_rejected) {
    make_dir();
    unsigned char b[sizeof images3 + 5] = {0};
    memcpy(b, images3, sizeof images3);
    expect_error(write_file("long", b, sizeof b, false), "5 bytes after the data: dimensions [3,2,2] do not match the file length");
    remove_dir();
}
END_TEST

/* A gzip file cut in the middle of its compressed stream. */
START_TEST(test_idx_cut_gzip_stream_rejected) {
    make_dir();
    unsigned char big[16 + 4096];
    memcpy(big, (unsigned char[]){0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 64, 0, 0, 0, 64}, 16);
    for (int i = 0; i < 4096; i++) big[16 + i] = (unsigned char)(i * 7919 % 251);
    const char *p = write_file("cut.gz", big, sizeof big, true);
    FILE *f = fopen(p, "rb");
    unsigned char z[8192];
    size_t n = fread(z, 1, sizeof z, f);
    fclose(f);
    expect_error(write_file("cut.gz", z, n / 2, false), "cut.gz");
    remove_dir();
}
END_TEST

/* A gzip file whose data is whole but whose trailer (CRC and length) is cut:
 * zlib reads it without complaint, the reader must not. */
START_TEST(test_idx_gzip_without_trailer_rejected) {
    make_dir();
    const char *p = write_file("trailer.gz", labels3, sizeof labels3, true);
    FILE *f = fopen(p, "rb");
    unsigned char z[256];
    size_t n = fread(z, 1, sizeof z, f);
    fclose(f);
    for (size_t cut = 1; cut <= 8; cut++)
        expect_error(write_file("trailer.gz", z, n - cut, false),
                     "the gzip stream is cut short: its end and checksum are missing");
    remove_dir();
}
END_TEST

/* A 14-byte file whose header claims 4 GiB of data: the reader's memory
 * follows the bytes present, so with an address-space limit of 1 GiB above
 * the current use the fault is still "truncated", not "out of memory". Runs
 * in a child so the limit stays there; not under ASan, whose shadow memory
 * needs terabytes of address space. */
START_TEST(test_idx_huge_claim_costs_only_the_bytes_present) {
#if defined(__SANITIZE_ADDRESS__)
    return;
#endif
    make_dir();
    const unsigned char claim[] = {0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0, 7, 9};
    const char *p = write_file("claim", claim, sizeof claim, false);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1) _exit(2);
        fclose(f);
        rlim_t vm = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
        struct rlimit lim = {vm + (1ul << 30), vm + (1ul << 30)};
        if (setrlimit(RLIMIT_AS, &lim)) _exit(2);
        nn_idx *a = nn_idx_load(p);
        const char *e = tapegrad_error();
        _exit(!a && e && strstr(e, "truncated: dimensions [65536,65536] need 4294967296 data bytes, "
                                   "the file has 2") ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    remove_dir();
}
END_TEST

START_TEST(test_idx_missing_file_named) {
    expect_error("/nonexistent/tapegrad/train-images-idx3-ubyte.gz", ": cannot open: No such file or directory");
}
END_TEST

START_TEST(test_dataset_count_mismatch_rejected) {
    make_dir();
    const char *img = write_file("img", images3, sizeof images3, false);
    unsigned char lb[] = {0, 0, 8, 1, 0, 0, 0, 2, 7, 0};
    const char *lbl = write_file("lbl", lb, sizeof lb, false);
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_dataset_load(img, lbl));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "image and label counts differ: "));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "img has 3 images, "));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "lbl has 2 labels"));
    tapegrad_error_clear();
    /* labels given as images: wrong rank */
    ck_assert_ptr_null(nn_dataset_load(lbl, lbl));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), ": images need 3 dimensions [N, rows, cols]"));
    tapegrad_error_clear();
    remove_dir();
}
END_TEST

START_TEST(test_dataset_dir_missing_files_named) {
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_dataset_load_dir("/nonexistent/data", "train"));
    const char *e = tapegrad_error();
    ck_assert_ptr_nonnull(strstr(e, "/nonexistent/data/train-images-idx3-ubyte.gz"));
    ck_assert_ptr_nonnull(
        strstr(e, ": no such file (nor without .gz); give the IDX directory with --data DIR"));
    tapegrad_error_clear();
}
END_TEST

/* Pixel b becomes (b / 255 - mean) / std; with mean 0, std 1 that is b / 255. */
START_TEST(test_loader_normalises_and_batches) {
    make_dir();
    write_file("train-images-idx3-ubyte", images3, sizeof images3, false);
    write_file("train-labels-idx1-ubyte.gz", labels3, sizeof labels3, true);
    nn_dataset *d = nn_dataset_load_dir(dir, "train");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->n_classes, 8);
    nn_loader *l = nn_loader_new(d, 2, false, 1);
    ck_assert_int_eq(nn_loader_batches(l), 2);
    tensor *x, *y;
    ck_assert_int_eq(nn_loader_next(l, &x, &y), 1);
    ck_assert_int_eq(x->ndim, 4);
    ck_assert_int_eq(x->shape[0], 2);
    ck_assert_int_eq(x->shape[1], 1);
    ck_assert_int_eq(x->dtype, DTYPE_F32);
    ck_assert_close(tensor_get(x, 1), (51 / 255.0 - 0.2860) / 0.3530, 1e-6);
    ck_assert_tensor(y, ((double[]){7, 0}), 0);
    ck_assert_int_eq(nn_loader_next(l, &x, &y), 1);
    ck_assert_int_eq(x->shape[0], 1); /* the last batch is smaller */
    ck_assert_tensor(y, ((double[]){2}), 0);
    ck_assert_int_eq(nn_loader_next(l, &x, &y), 0);
    nn_loader_set_normalize(l, 0, 1);
    nn_loader_set_dtype(l, DTYPE_F64);
    nn_loader_rewind(l);
    ck_assert_int_eq(nn_loader_next(l, &x, &y), 1);
    ck_assert_int_eq(x->dtype, DTYPE_F64);
    ck_assert_close(tensor_get(x, 2), 102 / 255.0, 1e-15);
    tape_reset();
    nn_loader_free(l);
    nn_dataset_free(d);
    remove_dir();
}
END_TEST

/* The same seed gives the same order; every epoch is a permutation. */
START_TEST(test_loader_shuffle_seeded_permutation) {
    make_dir();
    unsigned char img[16 + 100], lbl[8 + 100];
    memcpy(img, (unsigned char[]){0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0, 1}, 16);
    memcpy(lbl, (unsigned char[]){0, 0, 8, 1, 0, 0, 0, 100}, 8);
    for (int i = 0; i < 100; i++) img[16 + i] = lbl[8 + i] = (unsigned char)i;
    nn_dataset *d = nn_dataset_load(write_file("i", img, sizeof img, false),
                                    write_file("l", lbl, sizeof lbl, false));
    ck_assert_ptr_nonnull(d);
    int64_t order[3][100];
    for (int run = 0; run < 3; run++) {
        nn_loader *l = nn_loader_new(d, 100, true, run < 2 ? 42 : 43);
        tensor *x, *y;
        ck_assert_int_eq(nn_loader_next(l, &x, &y), 1);
        memcpy(order[run], y->data, sizeof order[run]);
        int seen[100] = {0};
        for (int i = 0; i < 100; i++) seen[order[run][i]]++;
        for (int i = 0; i < 100; i++) ck_assert_int_eq(seen[i], 1);
        nn_loader_free(l);
        tape_reset();
    }
    ck_assert_mem_eq(order[0], order[1], sizeof order[0]);
    ck_assert(memcmp(order[0], order[2], sizeof order[0]) != 0);
    nn_dataset_free(d);
    remove_dir();
}
END_TEST

/* Shards 0..2 of one seeded order: each 33 images, disjoint, in 4 batches
 * of <= 10; 100 mod 3 = 1 position is left out, so 99 distinct images. */
START_TEST(test_loader_shards_disjoint) {
    make_dir();
    unsigned char img[16 + 100], lbl[8 + 100];
    memcpy(img, (unsigned char[]){0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0, 1}, 16);
    memcpy(lbl, (unsigned char[]){0, 0, 8, 1, 0, 0, 0, 100}, 8);
    for (int i = 0; i < 100; i++) img[16 + i] = lbl[8 + i] = (unsigned char)i;
    nn_dataset *d = nn_dataset_load(write_file("i", img, sizeof img, false),
                                    write_file("l", lbl, sizeof lbl, false));
    ck_assert_ptr_nonnull(d);
    int64_t whole[100];
    nn_loader *w = nn_loader_new(d, 100, true, 7);
    tensor *x, *y;
    ck_assert_int_eq(nn_loader_next(w, &x, &y), 1);
    memcpy(whole, y->data, sizeof whole);
    nn_loader_free(w);
    tape_reset();
    int seen[100] = {0};
    for (int s = 0; s < 3; s++) {
        nn_loader *l = nn_loader_new(d, 10, true, 7);
        ck_assert_int_eq(nn_loader_set_shard(l, s, 3), 0);
        ck_assert_int_eq(nn_loader_batches(l), 4);
        int64_t k = 0;
        int r;
        while ((r = nn_loader_next(l, &x, &y)) == 1) {
            for (int64_t i = 0; i < y->shape[0]; i++, k++) {
                int64_t v = ((int64_t *)y->data)[i];
                ck_assert_int_eq(v, whole[s + 3 * k]); /* the whole order's strided share */
                seen[v]++;
            }
            tape_reset();
        }
        ck_assert_int_eq(r, 0);
        ck_assert_int_eq(k, 33);
        nn_loader_free(l);
    }
    int distinct = 0;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_le(seen[i], 1);
        distinct += seen[i];
    }
    ck_assert_int_eq(distinct, 99);
    ck_assert_int_eq(seen[whole[99]], 0);
    nn_loader *l = nn_loader_new(d, 10, true, 7);
    ck_assert_int_eq(nn_loader_set_shard(l, 3, 3), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "nn_loader_set_shard: shard 3 of 3 is out of range"));
    tapegrad_error_clear();
    ck_assert_int_eq(nn_loader_set_shard(l, 0, 101), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "nn_loader_set_shard: 100 images cannot fill 101 shards"));
    tapegrad_error_clear();
    ck_assert_int_eq(nn_loader_set_shard(NULL, 0, 1), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "nn_loader_set_shard: loader is NULL"));
    tapegrad_error_clear();
    nn_loader_free(l);
    nn_dataset_free(d);
    remove_dir();
}
END_TEST

/* Debian's dataset-fashion-mnist: 60,000 + 10,000 images of 28x28 in 10
 * classes; the first training image is an ankle boot (class 9). */
START_TEST(test_fashion_mnist_loads) {
    if (access(NN_DATA_DIR_DEFAULT "/train-images-idx3-ubyte.gz", R_OK)) return;
    nn_dataset *tr = nn_dataset_load_dir(NULL, "train");
    nn_dataset *te = nn_dataset_load_dir(NN_DATA_DIR_DEFAULT, "t10k");
    ck_assert_ptr_nonnull(tr);
    ck_assert_ptr_nonnull(te);
    ck_assert_int_eq(tr->n, 60000);
    ck_assert_int_eq(te->n, 10000);
    ck_assert_int_eq(tr->rows, 28);
    ck_assert_int_eq(tr->cols, 28);
    ck_assert_int_eq(tr->n_classes, 10);
    ck_assert_int_eq(tr->labels[0], 9);
    nn_dataset_truncate(tr, 2000);
    ck_assert_int_eq(tr->n, 2000);
    nn_dataset_free(tr);
    nn_dataset_free(te);
}
END_TEST

Suite *nn_data_suite(void) {
    Suite *s = suite_create("nn_data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_idx_raw_and_gzip_load_alike);
    tcase_add_test(tc, test_idx_bad_magic_rejected);
    tcase_add_test(tc, test_idx_unsupported_element_type_rejected);
    tcase_add_test(tc, test_idx_truncated_data_rejected);
    tcase_add_test(tc, test_idx_truncated_header_rejected);
    tcase_add_test(tc, test_idx_extra_bytes_rejected);
    tcase_add_test(tc, test_idx_cut_gzip_stream_rejected);
    tcase_add_test(tc, test_idx_gzip_without_trailer_rejected);
    tcase_add_test(tc, test_idx_huge_claim_costs_only_the_bytes_present);
    tcase_add_test(tc, test_idx_missing_file_named);
    tcase_add_test(tc, test_dataset_count_mismatch_rejected);
    tcase_add_test(tc, test_dataset_dir_missing_files_named);
    tcase_add_test(tc, test_loader_normalises_and_batches);
    tcase_add_test(tc, test_loader_shuffle_seeded_permutation);
    tcase_add_test(tc, test_loader_shards_disjoint);
    tcase_add_test(tc, test_fashion_mnist_loads);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_data_suite)
