/* test_nn_data.c - IDX files, datasets and batches: good files load, broken
 * ones (written to a temporary directory) give an error naming the file and
 * the fault, and batches are shuffled by seed and normalised. */
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/* Bytes that are no gzip member after the stream: before, zlib's gzread
 * skipped them and the file loaded (a raw file a byte too long is refused).
 * Two members one after the other (gzip a b > c) are one file and load. */
START_TEST(test_idx_gzip_junk_after_stream_rejected) {
    make_dir();
    const char *p = write_file("junk.gz", images3, sizeof images3, true);
    FILE *f = fopen(p, "ab");
    ck_assert_ptr_nonnull(f);
    fputs("JUNK", f);
    fclose(f);
    expect_error(p, "4 bytes of junk after the end of the gzip stream");

    /* the header and the first half in one member, the rest in a second */
    unsigned char z[512];
    size_t n = 0;
    const char *h1 = write_file("m1.gz", images3, 20, true);
    f = fopen(h1, "rb");
    n += fread(z, 1, sizeof z, f);
    fclose(f);
    const char *h2 = write_file("m2.gz", images3 + 20, sizeof images3 - 20, true);
    f = fopen(h2, "rb");
    n += fread(z + n, 1, sizeof z - n, f);
    fclose(f);
    nn_idx *a = nn_idx_load(write_file("members.gz", z, n, false));
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->size, 12);
    ck_assert_int_eq(a->data[11], 4);
    nn_idx_free(a);
    remove_dir();
}
END_TEST

/* A gzip bomb: a header claiming 4 bytes, then 64 MiB of zeros (64 KiB
 * compressed) and a broken checksum. The reader stops one byte past the
 * claim and says so; inflating the whole stream (as before, to count the
 * surplus) would reach the checksum and report "incorrect data check". */
START_TEST(test_idx_gzip_bomb_inflated_only_past_the_claim) {
    make_dir();
    z_stream zs = {0};
    ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    static unsigned char out[1 << 20], zeros[1 << 20];
    const unsigned char head[] = {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4};
    zs.next_out = out;
    zs.avail_out = sizeof out;
    zs.next_in = (unsigned char *)head;
    zs.avail_in = sizeof head;
    ck_assert_int_eq(deflate(&zs, Z_NO_FLUSH), Z_OK);
    for (int i = 0; i < 64; i++) {
        zs.next_in = zeros;
        zs.avail_in = sizeof zeros;
        ck_assert_int_eq(deflate(&zs, i == 63 ? Z_FINISH : Z_NO_FLUSH), i == 63 ? Z_STREAM_END : Z_OK);
    }
    size_t n = sizeof out - zs.avail_out;
    deflateEnd(&zs);
    ck_assert_uint_lt(n, 1 << 17);
    out[n - 8] ^= 0xff; /* the CRC-32 of the trailer */
    expect_error(write_file("bomb.gz", out, n, false),
                 "the gzip data go on past the 4 bytes dimensions [4] need");
    remove_dir();
}
END_TEST

/* Before: open() of a FIFO (also through nn_dataset_load_dir's probe)
 * waited for a writer forever; the Check timeout fails this test then. */
START_TEST(test_idx_fifo_or_directory_fails_at_once) {
    make_dir();
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/train-images-idx3-ubyte", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    char labels[128];
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte", dir);
    ck_assert_int_eq(mkfifo(labels, 0600), 0);
    expect_error(fifo, ": not a regular file (a directory, FIFO, socket or device)");
    expect_error(dir, ": not a regular file (a directory, FIFO, socket or device)");
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_dataset_load_dir(dir, "train"));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "not a regular file"));
    tapegrad_error_clear();
    remove_dir();
}
END_TEST

/* A message longer than the error buffer (512 bytes) keeps its start and
 * its end, where the reason is: before, a 3,000-byte path left no room for
 * ": cannot open: ..." and the reason was lost. */
START_TEST(test_long_message_keeps_its_reason) {
    char p[3100];
    int k = snprintf(p, sizeof p, "/nonexistent/");
    while (k < 3000) k += snprintf(p + k, sizeof p - (size_t)k, "dir%04d/", k);
    snprintf(p + k, sizeof p - (size_t)k, "train-images-idx3-ubyte");
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_idx_load(p));
    const char *e = tapegrad_error();
    ck_assert_uint_eq(strlen(e), 511);
    ck_assert_int_eq(strncmp(e, "/nonexistent/dir0013/", 21), 0);
    ck_assert_ptr_nonnull(strstr(e, " ... "));
    const char *end = "/train-images-idx3-ubyte: cannot open: No such file or directory";
    ck_assert_str_eq(e + strlen(e) - strlen(end), end);
    tapegrad_error_clear();
}
END_TEST

/* Every allocation of a gzip load (the reader, zlib's state and window
 * through tg_mem_alloc, the data) can fail: NULL and "out of memory", no leak
 * (LeakSanitizer in check-asan), and the load succeeds once none fails. */
void tg_mem_fail_after(int64_t n); /* internal test hook (autograd/memory.c) */
START_TEST(test_idx_gzip_load_survives_each_allocation_failing) {
    make_dir();
    const char *p = write_file("oom.gz", images3, sizeof images3, true);
    nn_idx *a = NULL;
    int k = 0;
    for (; k < 64 && !a; k++) {
        tapegrad_error_clear();
        tg_mem_fail_after(k);
        a = nn_idx_load(p);
        tg_mem_fail_after(-1);
        if (!a)
            ck_assert_msg(strstr(tapegrad_error(), "out of memory: allocation of "),
                          "allocation %d: %s", k, tapegrad_error());
    }
    ck_assert_ptr_nonnull(a);
    ck_assert_int_ge(k, 4); /* reader, zlib state, window, data, nn_idx at least */
    ck_assert_int_eq(a->data[11], 4);
    nn_idx_free(a);
    tapegrad_error_clear();
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

/* A batch larger than the data is one batch: n + batch - 1 overflowed int64
 * for batch INT64_MAX (undefined; -1 batches in practice). A dataset filled
 * by hand whose sizes overflow is refused by the loader. */
START_TEST(test_loader_huge_batch_and_sizes) {
    uint8_t px[12] = {0}, lab[3] = {0};
    nn_dataset d = {.n = 3, .rows = 2, .cols = 2, .n_classes = 1, .images = px, .labels = lab};
    tapegrad_error_clear();
    nn_loader *l = nn_loader_new(&d, INT64_MAX, false, 0);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(nn_loader_batches(l), 1);
    tensor *x, *y;
    ck_assert_int_eq(nn_loader_next(l, &x, &y), 1);
    ck_assert_int_eq(x->shape[0], 3);
    ck_assert_int_eq(nn_loader_next(l, &x, &y), 0);
    nn_loader_free(l);
    tape_reset();
    nn_dataset bad = d;
    bad.rows = bad.cols = (int64_t)1 << 32;
    ck_assert_ptr_null(nn_loader_new(&bad, 2, false, 0));
    ck_assert_error_is("nn_loader_new: dataset sizes n 3, rows 4294967296, cols 4294967296 are "
                       "negative or too large");
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
    tcase_add_test(tc, test_idx_gzip_junk_after_stream_rejected);
    tcase_add_test(tc, test_idx_gzip_bomb_inflated_only_past_the_claim);
    tcase_add_test(tc, test_idx_fifo_or_directory_fails_at_once);
    tcase_add_test(tc, test_idx_missing_file_named);
    tcase_add_test(tc, test_long_message_keeps_its_reason);
    tcase_add_test(tc, test_idx_gzip_load_survives_each_allocation_failing);
    tcase_add_test(tc, test_dataset_count_mismatch_rejected);
    tcase_add_test(tc, test_dataset_dir_missing_files_named);
    tcase_add_test(tc, test_loader_normalises_and_batches);
    tcase_add_test(tc, test_loader_huge_batch_and_sizes);
    tcase_add_test(tc, test_loader_shuffle_seeded_permutation);
    tcase_add_test(tc, test_loader_shards_disjoint);
    tcase_add_test(tc, test_fashion_mnist_loads);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_data_suite)
