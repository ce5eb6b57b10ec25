/* idx.c - IDX files (the MNIST family's format), datasets and batches.
 *
 * IDX: two zero bytes, an element-type byte (0x08 = unsigned byte), the
 * number of dimensions, then each dimension as a big-endian uint32, then the
 * elements row-major, in a raw file or a gzip one (zlib's inflate). The
 * header's claims are checked against the bytes actually present, so a
 * truncated download or a wrong file gives an error naming the file and the
 * fault, never a crash. Images stay bytes; a batch converts its own. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../autograd/internal.h"

#define IDX_MAX_BYTES ((int64_t)1 << 33) /* 8 GiB: no MNIST-family file is near */

void nn_idx_free(nn_idx *a) {
    if (!a) return;
    tg_mem_free(a->data);
    tg_mem_free(a);
}

/* A file read raw or through inflate, decided by its first bytes (gzip
 * starts 1f 8b, IDX with 00 00). zlib's gzread is not used: it skips junk
 * after the last gzip member in silence and decompresses only on its own
 * terms, while here every byte of the file is accounted for and nothing is
 * inflated past what the header claims (+1 byte to see that there is more). */
#define SRC_BUF (1 << 16)
typedef struct src {
    int fd;
    bool gz, eof;     /* eof: the file has no more bytes to give */
    bool cut;         /* gzip: the file ended inside a stream */
    bool done;        /* gzip: the last member ended with the file */
    bool junk;        /* gzip: bytes that are no gzip member follow the last one */
    int64_t file_len; /* from fstat */
    z_stream z;
    const char *zmsg; /* gzip: zlib's reason for a corrupt stream */
    unsigned char buf[SRC_BUF];
    unsigned char *next; /* raw: unread bytes in buf */
    size_t avail;
} src;

/* More file bytes into buf (what is left of them moved to its start). */
static int src_fill(src *s, unsigned char **next, size_t *avail) {
    if (s->eof) return 0;
    memmove(s->buf, *next, *avail);
    *next = s->buf;
    ssize_t r;
    do r = read(s->fd, s->buf + *avail, SRC_BUF - *avail);
    while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    if (r == 0) s->eof = true;
    *avail += (size_t)r;
    return 0;
}

/* Up to len bytes of content into out; fewer only at the end. -1 on a read
 * error (errno) or a corrupt stream (s->zmsg). */
static int64_t src_read(src *s, void *out, int64_t len) {
    unsigned char *o = out;
    int64_t got = 0;
    if (!s->gz) {
        while (got < len) {
            if (!s->avail) {
                if (s->eof) break;
                if (src_fill(s, &s->next, &s->avail)) return -1;
                continue;
            }
            size_t n = s->avail < (size_t)(len - got) ? s->avail : (size_t)(len - got);
            memcpy(o + got, s->next, n);
            s->next += n, s->avail -= n, got += (int64_t)n;
        }
        return got;
    }
    while (got < len && !s->done && !s->junk) {
        size_t avail = s->z.avail_in;
        unsigned char *next = s->z.next_in;
        if (!avail && !s->eof) {
            if (src_fill(s, &next, &avail)) return -1;
            s->z.next_in = next, s->z.avail_in = (uInt)avail;
            continue;
        }
        int64_t want = len - got > (1 << 30) ? (1 << 30) : len - got;
        s->z.next_out = o + got;
        s->z.avail_out = (uInt)want;
        int rc = inflate(&s->z, Z_NO_FLUSH);
        got += want - (int64_t)s->z.avail_out;
        if (rc == Z_STREAM_END) {
            /* another gzip member may follow (gzip a b > c); anything else is junk */
            if (!s->z.avail_in && !s->eof) {
                avail = 0, next = s->z.next_in;
                if (src_fill(s, &next, &avail)) return -1;
                s->z.next_in = next, s->z.avail_in = (uInt)avail;
            }
            if (!s->z.avail_in) s->done = true;
            else if (s->z.next_in[0] != 0x1f) s->junk = true; /* src_junk counts it */
            else inflateReset(&s->z);
        } else if (rc == Z_BUF_ERROR && !s->z.avail_in && s->eof) {
            s->cut = true; /* the file ended inside the stream */
            break;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            s->zmsg = s->z.msg ? s->z.msg : "corrupt gzip data";
            return -1;
        }
    }
    return got;
}

/* Bytes of the file after the end of the gzip data (junk), 0 when none. */
static int64_t src_junk(const src *s) {
    if (!s->junk) return 0;
    int64_t pos = lseek(s->fd, 0, SEEK_CUR);
    return (int64_t)s->z.avail_in + (pos >= 0 ? s->file_len - pos : 0);
}

static const char *src_msg(const src *s) { return s->zmsg ? s->zmsg : strerror(errno); }

/* For a truncated compressed file, say so: the byte counts alone would
 * suggest a short but valid header. */
static const char *src_note(const src *s) { return s->cut ? " (the gzip stream is cut short)" : ""; }

static int idx_header(src *f, const char *path, nn_idx *a) {
    unsigned char h[4];
    int64_t got = src_read(f, h, 4);
    if (got < 0) {
        tg_error_set("%s: read error: %s", path, src_msg(f));
        return -1;
    }
    if (got < 4) {
        tg_error_set("%s: truncated: %lld bytes, an IDX header needs at least 4%s", path,
                  (long long)got, src_note(f));
        return -1;
    }
    if (h[0] || h[1]) {
        tg_error_set("%s: bad magic %02x %02x %02x %02x: not an IDX file (it starts with 00 00)", path,
                  h[0], h[1], h[2], h[3]);
        return -1;
    }
    if (h[2] != 0x08) {
        tg_error_set("%s: element type 0x%02x is not supported (only 0x08, unsigned byte)", path,
                  h[2]);
        return -1;
    }
    if (h[3] < 1 || h[3] > 4) {
        tg_error_set("%s: %d dimensions (1 to 4 supported)", path, h[3]);
        return -1;
    }
    a->ndim = h[3];
    unsigned char d[16];
    got = src_read(f, d, 4 * a->ndim);
    if (got != 4 * a->ndim) {
        tg_error_set("%s: truncated in the header: %d dimensions announced, %lld of %d size bytes "
                  "present%s",
                  path, a->ndim, (long long)(got < 0 ? 0 : got), 4 * a->ndim, src_note(f));
        return -1;
    }
    a->size = 1;
    for (int i = 0; i < a->ndim; i++) {
        a->dims[i] = (int64_t)d[4 * i] << 24 | (int64_t)d[4 * i + 1] << 16 |
                     (int64_t)d[4 * i + 2] << 8 | (int64_t)d[4 * i + 3];
        if (i64_mul_overflows(a->size, a->dims[i], &a->size) || a->size > IDX_MAX_BYTES) {
            tg_error_set("%s: dimensions claim more than %lld bytes of data", path,
                      (long long)IDX_MAX_BYTES);
            return -1;
        }
    }
    return 0;
}

/* The data into a->data, in a buffer that doubles as bytes arrive (from
 * 1 MiB up to the header's claim): a short file that claims gigabytes costs
 * what it holds, not what it claims, and gives "truncated", not "out of
 * memory". Returns the bytes read, -1 on a read error, -2 out of memory. */
static int64_t read_data(src *f, nn_idx *a) {
    int64_t cap = a->size < (1 << 20) ? a->size : (1 << 20), got = 0;
    a->data = tg_mem_alloc((size_t)cap);
    if (!a->data) return -2;
    for (;;) {
        int64_t r = src_read(f, a->data + got, cap - got);
        if (r < 0) return -1;
        got += r;
        if (got < cap || cap == a->size) return got;
        int64_t grown = a->size / 2 < cap ? a->size : 2 * cap;
        uint8_t *p = tg_mem_alloc((size_t)grown);
        if (!p) return -2;
        memcpy(p, a->data, (size_t)got);
        tg_mem_free(a->data);
        a->data = p, cap = grown;
    }
}

static void idx_dims_str(const nn_idx *a, char *buf, size_t len) {
    tensor t = {.ndim = a->ndim};
    for (int i = 0; i < a->ndim; i++) t.shape[i] = a->dims[i];
    tensor_shape_str(&t, buf, len);
}

/* zlib's memory comes from tg_mem_alloc too (the ceiling, the failure hook). */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
    (void)opaque;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)items, (size_t)size, &bytes)) return Z_NULL;
    return tg_mem_alloc(bytes);
}
static void z_free(voidpf opaque, voidpf p) {
    (void)opaque;
    tg_mem_free(p);
}

/* Opens path without blocking (a FIFO or a device would wait for a writer
 * forever) and only when it is a regular file; tells gzip from raw. */
static int src_open(src *s, const char *path) {
    s->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (s->fd < 0) {
        tg_error_set("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(s->fd, &st) || !S_ISREG(st.st_mode)) {
        tg_error_set("%s: not a regular file (a directory, FIFO, socket or device)", path);
        return -1;
    }
    s->file_len = st.st_size;
    s->next = s->buf;
    if (src_fill(s, &s->next, &s->avail)) {
        tg_error_set("%s: read error: %s", path, strerror(errno));
        return -1;
    }
    if (s->avail >= 2 && s->buf[0] == 0x1f && s->buf[1] == 0x8b) {
        s->gz = true;
        s->z.next_in = s->buf;
        s->z.avail_in = (uInt)s->avail;
        s->z.zalloc = z_alloc;
        s->z.zfree = z_free;
        int rc = inflateInit2(&s->z, 15 + 16); /* 16: the gzip wrapper, CRC checked */
        if (rc != Z_OK) {
            s->gz = false;
            /* out of memory has said so in tg_mem_alloc */
            if (!tg_error_pending()) tg_error_set("%s: read error: %s", path, zError(rc));
            return -1;
        }
    }
    return 0;
}

static void src_close(src *s) {
    if (s->gz) inflateEnd(&s->z);
    if (s->fd >= 0) close(s->fd);
    tg_mem_free(s);
}

nn_idx *nn_idx_load(const char *path) {
    if (!path) {
        tg_error_set("nn_idx_load: path is NULL");
        return NULL;
    }
    src *f = tg_mem_calloc(sizeof *f);
    if (!f) return NULL;
    nn_idx *a = NULL;
    if (src_open(f, path)) goto fail;
    a = tg_mem_calloc(sizeof *a);
    if (!a || idx_header(f, path, a)) goto fail;
    int64_t got = read_data(f, a);
    if (got == -2) goto fail; /* tg_mem_alloc has said "out of memory" */
    if (got < 0) {
        tg_error_set("%s: read error: %s", path, src_msg(f));
        goto fail;
    }
    char dims[96];
    idx_dims_str(a, dims, sizeof dims);
    if (got < a->size) {
        tg_error_set("%s: truncated: dimensions %s need %lld data bytes, the file has %lld%s", path,
                  dims, (long long)a->size, (long long)got, src_note(f));
        goto fail;
    }
    /* One byte more than the header claims is enough to refuse the file: a
     * gzip bomb is inflated no further than that. */
    unsigned char extra;
    int64_t r = src_read(f, &extra, 1);
    if (r < 0) {
        tg_error_set("%s: read error: %s", path, src_msg(f));
        goto fail;
    }
    if (r && !f->gz) {
        int64_t more = 1 + (int64_t)f->avail + (f->file_len - lseek(f->fd, 0, SEEK_CUR));
        tg_error_set("%s: %lld bytes after the data: dimensions %s do not match the file length", path,
                  (long long)more, dims);
        goto fail;
    }
    if (r) {
        tg_error_set("%s: the gzip data go on past the %lld bytes dimensions %s need", path,
                  (long long)a->size, dims);
        goto fail;
    }
    int64_t junk = src_junk(f);
    if (junk) {
        tg_error_set("%s: %lld bytes of junk after the end of the gzip stream", path, (long long)junk);
        goto fail;
    }
    /* A stream cut inside its trailer holds all the data, unchecked by the CRC. */
    if (f->cut) {
        tg_error_set("%s: the gzip stream is cut short: its end and checksum are missing", path);
        goto fail;
    }
    src_close(f);
    return a;
fail:
    src_close(f);
    nn_idx_free(a);
    return NULL;
}

/* ------------------------------------------------------------ datasets */

void nn_dataset_free(nn_dataset *d) {
    if (!d) return;
    nn_idx_free(d->img_file);
    nn_idx_free(d->lbl_file);
    tg_mem_free(d);
}

nn_dataset *nn_dataset_load(const char *images_path, const char *labels_path) {
    if (!images_path || !labels_path) {
        tg_error_set("nn_dataset_load: a path is NULL");
        return NULL;
    }
    nn_dataset *d = tg_mem_calloc(sizeof *d);
    if (!d) return NULL;
    d->img_file = nn_idx_load(images_path);
    if (!d->img_file) goto fail;
    d->lbl_file = nn_idx_load(labels_path);
    if (!d->lbl_file) goto fail;
    const nn_idx *im = d->img_file, *lb = d->lbl_file;
    if (im->ndim != 3) {
        tg_error_set("%s: images need 3 dimensions [N, rows, cols], the file has %d", images_path,
                  im->ndim);
        goto fail;
    }
    if (lb->ndim != 1) {
        tg_error_set("%s: labels need 1 dimension [N], the file has %d", labels_path, lb->ndim);
        goto fail;
    }
    if (im->dims[0] != lb->dims[0]) {
        tg_error_set("image and label counts differ: %s has %lld images, %s has %lld labels",
                  images_path, (long long)im->dims[0], labels_path, (long long)lb->dims[0]);
        goto fail;
    }
    d->n = im->dims[0];
    d->rows = im->dims[1];
    d->cols = im->dims[2];
    d->images = im->data;
    d->labels = lb->data;
    for (int64_t i = 0; i < d->n; i++)
        if (d->labels[i] >= d->n_classes) d->n_classes = d->labels[i] + 1;
    return d;
fail:
    nn_dataset_free(d);
    return NULL;
}

/* Tries DIR/split-kind-idxK-ubyte.gz, then the same without .gz, then the
 * original MNIST site's spelling with a dot (train-images.idx3-ubyte). */
static int find_file(const char *dir, const char *split, const char *kind, int k, char *out,
                     size_t len) {
    static const char *const pat[] = {"%s/%s-%s-idx%d-ubyte.gz", "%s/%s-%s-idx%d-ubyte",
                                      "%s/%s-%s.idx%d-ubyte.gz", "%s/%s-%s.idx%d-ubyte"};
    for (size_t i = 0; i < sizeof pat / sizeof pat[0]; i++) {
        snprintf(out, len, pat[i], dir, split, kind, k);
        /* stat, not open: opening a FIFO would block; nn_idx_load refuses
         * what is not a regular file */
        struct stat st;
        if (!stat(out, &st)) return 0;
    }
    snprintf(out, len, pat[0], dir, split, kind, k);
    tg_error_set("%s: no such file (nor without .gz); give the IDX directory with --data DIR", out);
    return -1;
}

nn_dataset *nn_dataset_load_dir(const char *dir, const char *split) {
    char img[PATH_MAX], lbl[PATH_MAX];
    if (!dir) dir = NN_DATA_DIR_DEFAULT;
    if (!split) split = "train";
    if (find_file(dir, split, "images", 3, img, sizeof img) ||
        find_file(dir, split, "labels", 1, lbl, sizeof lbl))
        return NULL;
    return nn_dataset_load(img, lbl);
}

void nn_dataset_truncate(nn_dataset *d, int64_t n) {
    if (d && n >= 0 && n < d->n) d->n = n;
}

/* ------------------------------------------------------------- batches */

struct nn_loader {
    const nn_dataset *d;
    int64_t batch, pos;     /* pos counts this shard's images taken this epoch */
    int shard, shards;      /* positions shard, shard + shards, ... of the order */
    bool shuffle;
    rng g;
    int64_t *order;
    dtype dt;
    float lut32[256]; /* pixel byte -> normalised value */
    double lut64[256];
};

/* The float32 table repeats PyTorch's float32 arithmetic ((b / 255) - mean)
 * / std step by step, so both see the same input values. */
void nn_loader_set_normalize(nn_loader *l, double mean, double std) {
    if (!l) return;
    for (int b = 0; b < 256; b++) {
        float x = (float)b / 255.0f;
        l->lut32[b] = (x - (float)mean) / (float)std;
        l->lut64[b] = ((double)b / 255.0 - mean) / std;
    }
}

void nn_loader_set_dtype(nn_loader *l, dtype dt) {
    if (l && (dt == DTYPE_F32 || dt == DTYPE_F64)) l->dt = dt;
}

void nn_loader_rewind(nn_loader *l) {
    if (!l) return;
    l->pos = 0;
    if (!l->shuffle) return;
    for (int64_t i = l->d->n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)rng_below(&l->g, (uint64_t)i + 1);
        int64_t t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
}

nn_loader *nn_loader_new(const nn_dataset *d, int64_t batch, bool shuffle, uint64_t seed) {
    if (!d) {
        if (!tg_error_pending()) tg_error_set("nn_loader_new: dataset is NULL");
        return NULL;
    }
    if (batch <= 0) {
        tg_error_set("nn_loader_new: batch size must be positive, got %lld", (long long)batch);
        return NULL;
    }
    /* a dataset is a public struct a caller may fill: its sizes are checked
     * before a batch multiplies them */
    int64_t px, all;
    if (d->n < 0 || d->rows < 0 || d->cols < 0 || i64_mul_overflows(d->rows, d->cols, &px) ||
        i64_mul_overflows(px, d->n, &all) || all > INT64_MAX / 64) {
        tg_error_set("nn_loader_new: dataset sizes n %lld, rows %lld, cols %lld are negative or "
                  "too large",
                  (long long)d->n, (long long)d->rows, (long long)d->cols);
        return NULL;
    }
    nn_loader *l = tg_mem_calloc(sizeof *l);
    if (!l) return NULL;
    l->order = tg_mem_alloc((size_t)(d->n > 0 ? d->n : 1) * sizeof *l->order);
    if (!l->order) {
        tg_mem_free(l);
        return NULL;
    }
    for (int64_t i = 0; i < d->n; i++) l->order[i] = i;
    l->d = d;
    l->batch = batch;
    l->shuffle = shuffle;
    l->dt = DTYPE_F32;
    l->shards = 1;
    rng_seed(&l->g, seed, 0x64617461); /* stream "data" */
    nn_loader_set_normalize(l, NN_FASHION_MEAN, NN_FASHION_STD);
    nn_loader_rewind(l);
    return l;
}

void nn_loader_free(nn_loader *l) {
    if (!l) return;
    tg_mem_free(l->order);
    tg_mem_free(l);
}

/* A shard holds floor(n / shards) images, the same count on every shard, so
 * every rank runs the same number of steps per epoch (a rank with one step
 * more would wait forever in a collective); the last n mod shards positions
 * of the epoch's order are left out. */
static int64_t shard_len(const nn_loader *l) {
    return l->d->n / l->shards;
}

int nn_loader_set_shard(nn_loader *l, int shard, int shards) {
    if (!l) {
        tg_error_set("nn_loader_set_shard: loader is NULL");
        return -1;
    }
    if (shards < 1 || shard < 0 || shard >= shards) {
        tg_error_set("nn_loader_set_shard: shard %d of %d is out of range (0 <= shard < shards)", shard,
                  shards);
        return -1;
    }
    if (l->d->n < shards) {
        tg_error_set("nn_loader_set_shard: %lld images cannot fill %d shards", (long long)l->d->n,
                  shards);
        return -1;
    }
    l->shard = shard;
    l->shards = shards;
    l->pos = 0;
    return 0;
}

int64_t nn_loader_batches(const nn_loader *l) {
    /* shard length / batch rounded up, without len + batch - 1 (overflows for a huge batch) */
    if (!l) return 0;
    int64_t n = shard_len(l);
    return n / l->batch + (n % l->batch != 0);
}

int nn_loader_next(nn_loader *l, tensor **x, tensor **y) {
    if (!l || !x || !y) {
        tg_error_set("nn_loader_next: loader or output pointer is NULL");
        return -1;
    }
    int64_t len = shard_len(l);
    if (l->pos >= len) return 0;
    int64_t b = len - l->pos < l->batch ? len - l->pos : l->batch;
    int64_t px = l->d->rows * l->d->cols;
    *x = tg_tensor_tape_new(l->dt, SHAPE(b, 1, l->d->rows, l->d->cols));
    *y = tg_tensor_tape_new(DTYPE_I64, SHAPE(b));
    if (!*x || !*y) return -1;
    int64_t *lab = (*y)->data;
    for (int64_t i = 0; i < b; i++) {
        int64_t k = l->order[l->shard + (l->pos + i) * l->shards];
        const uint8_t *src = l->d->images + k * px;
        lab[i] = l->d->labels[k];
        if (l->dt == DTYPE_F32) {
            float *dst = (float *)(*x)->data + i * px;
            for (int64_t j = 0; j < px; j++) dst[j] = l->lut32[src[j]];
        } else {
            double *dst = (double *)(*x)->data + i * px;
            for (int64_t j = 0; j < px; j++) dst[j] = l->lut64[src[j]];
        }
    }
    l->pos += b;
    return 1;
}

/* For checkpoints (nn/checkpoint.c, declared in nn/internal.h). */
void tg_nn_loader_state(nn_loader *l, int64_t *n, int64_t **order, rng **g, int64_t **pos) {
    *n = l->d->n;
    *order = l->order;
    *g = &l->g;
    *pos = &l->pos;
}
