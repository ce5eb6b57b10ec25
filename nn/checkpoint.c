/* checkpoint.c - safetensors save and load.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"c1.weight":{"dtype":"F32","shape":[6,1,5,5],"data_offsets":[0,600]},...}
 * padded with spaces so the data starts 8-byte aligned, then the tensors'
 * raw little-endian bytes; offsets are relative to the data's start. This is
 * the format of the safetensors library, so torch's safetensors.torch.load_file
 * reads our checkpoints under the state_dict names.
 *
 * Saving writes a temporary file in the target's directory, fsyncs it and
 * renames it over the target: rename is atomic on POSIX file systems, so a
 * crash leaves the old checkpoint or the new one, never a mix. Loading trusts
 * nothing in the file: every length, offset, dtype and shape is checked
 * before a byte is copied. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../autograd/internal.h"

#define HEADER_MAX (100 << 20) /* the safetensors library's own limit */

static const char *st_dtype(dtype dt) {
    return dt == DTYPE_F32 ? "F32" : dt == DTYPE_F64 ? "F64" : "I64";
}

/* Host to little-endian bytes (a copy with swapped elements on big-endian). */
static void to_le(void *dst, const void *src, size_t n, size_t elem) {
    memcpy(dst, src, n * elem);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char *p = dst;
    for (size_t i = 0; i < n; i++, p += elem)
        for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
#else
    (void)elem;
#endif
}

/* -------------------------------------------------------------- saving */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_put(buf *b, const void *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *np = mem_alloc(cap);
        if (!np) return -1;
        if (b->len) memcpy(np, b->p, b->len);
        mem_free(b->p);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_printf(buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return n < 0 || n >= (int)sizeof tmp ? -1 : buf_put(b, tmp, (size_t)n);
}

static int buf_json_string(buf *b, const char *s) {
    int rc = buf_put(b, "\"", 1);
    for (; *s && !rc; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc = buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            rc = buf_printf(b, "\\u%04x", c);
        else
            rc = buf_put(b, s, 1);
    }
    return rc ? rc : buf_put(b, "\"", 1);
}

static int save_checks(const char *path, const char *const *names, tensor *const *ts, int n) {
    if (!path || (n > 0 && (!names || !ts)) || n < 0) {
        if (!error_pending()) error_set("nn_safetensors_save: path, names or tensors missing");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!names[i] || !ts[i] || !names[i][0]) {
            if (!error_pending())
                error_set("nn_safetensors_save: entry %d has no name or no tensor", i);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) {
                error_set("nn_safetensors_save: name \"%s\" appears twice", names[i]);
                return -1;
            }
    }
    return 0;
}

static int build_header(buf *h, const char *const *names, tensor *const *ts, int n) {
    int64_t off = 0;
    int rc = buf_put(h, "{", 1);
    for (int i = 0; i < n && !rc; i++) {
        const tensor *t = ts[i];
        int64_t bytes = t->size * (int64_t)dtype_size(t->dtype);
        rc |= buf_put(h, i ? "," : "", i ? 1 : 0);
        rc |= buf_json_string(h, names[i]);
        rc |= buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            rc |= buf_printf(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        rc |= buf_printf(h, "],\"data_offsets\":[%lld,%lld]}", (long long)off,
                         (long long)(off + bytes));
        off += bytes;
    }
    rc |= buf_put(h, "}", 1);
    while (!rc && (8 + h->len) % 8) rc = buf_put(h, " ", 1);
    return rc;
}

static int write_all(int fd, const void *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_body(int fd, const buf *h, tensor *const *ts, int n) {
    unsigned char len[8];
    uint64_t hl = h->len;
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(hl >> (8 * i));
    if (write_all(fd, len, 8) || write_all(fd, h->p, h->len)) return -1;
    for (int i = 0; i < n; i++) {
        size_t es = dtype_size(ts[i]->dtype), cnt = (size_t)ts[i]->size;
        void *le = mem_alloc(cnt * es);
        if (!le) return -1;
        to_le(le, ts[i]->data, cnt, es);
        int rc = write_all(fd, le, cnt * es);
        mem_free(le);
        if (rc) return -1;
    }
    return 0;
}

/* The directory entry of the rename must reach the disk too. */
static void fsync_dir(const char *path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int nn_safetensors_save(const char *path, const char *const *names, tensor *const *ts, int n) {
    if (save_checks(path, names, ts, n)) return -1;
    buf h = {0};
    if (build_header(&h, names, ts, n)) {
        mem_free(h.p);
        return -1; /* mem_alloc has said "out of memory" */
    }
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        mem_free(h.p);
        error_set("checkpoint path too long (%zu characters, at most %d): %.60s...", strlen(path),
                  PATH_MAX - 12, path);
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mem_free(h.p);
        error_set("%s: cannot write the checkpoint (%s): %s", path,
                  "creating a temporary file beside it", strerror(errno));
        return -1;
    }
    fchmod(fd, 0644);
    int rc = write_body(fd, &h, ts, n);
    int err = errno;
    mem_free(h.p);
    if (!rc && fsync(fd)) rc = -1, err = errno;
    if (close(fd) && !rc) rc = -1, err = errno;
    if (!rc && rename(tmp, path)) rc = -1, err = errno;
    if (rc) {
        unlink(tmp);
        if (!error_pending())
            error_set("%s: cannot write the checkpoint (%s): %s", path,
                      "writing, syncing or renaming", strerror(err));
        return -1;
    }
    fsync_dir(path);
    return 0;
}

/* ------------------------------------------------------------- loading */

typedef struct entry {
    char name[NN_NAME_MAX * 2];
    dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t begin, end;
    bool used;
} entry;

/* A parser for the header's subset of JSON: the cursor p walks [p, end). */
typedef struct parser {
    const char *p, *end, *path, *start;
} parser;

static int perr(parser *ps, const char *what) {
    error_set("%s: malformed safetensors header: %s at header byte %lld", ps->path, what,
              (long long)(ps->p - ps->start));
    return -1;
}

static void ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int expect(parser *ps, char c) {
    ws(ps);
    if (ps->p >= ps->end || *ps->p != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return perr(ps, what);
    }
    ps->p++;
    return 0;
}

static bool peek(parser *ps, char c) {
    ws(ps);
    return ps->p < ps->end && *ps->p == c;
}

/* A string into out (truncated to len - 1); \uXXXX above 0x7f becomes '?'. */
static int parse_string(parser *ps, char *out, size_t len) {
    if (expect(ps, '"')) return -1;
    size_t o = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        char c = *ps->p++;
        if ((unsigned char)c < 0x20) return perr(ps, "control character in a string");
        if (c == '\\') {
            if (ps->p >= ps->end) break;
            char e = *ps->p++;
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *k = strchr(from, e);
            if (e == 'u') {
                if (ps->end - ps->p < 4) return perr(ps, "short \\u escape");
                char hex[5] = {ps->p[0], ps->p[1], ps->p[2], ps->p[3], 0}, *q;
                long v = strtol(hex, &q, 16);
                if (*q) return perr(ps, "bad \\u escape");
                ps->p += 4;
                c = v < 0x80 ? (char)v : '?';
            } else if (e && k) {
                c = to[k - from];
            } else {
                return perr(ps, "bad escape in a string");
            }
        }
        if (o + 1 < len) out[o++] = c;
    }
    if (ps->p >= ps->end) return perr(ps, "unterminated string");
    ps->p++;
    out[o] = '\0';
    return 0;
}

static int parse_int(parser *ps, int64_t *v) {
    ws(ps);
    const char *s = ps->p;
    int64_t x = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        if (x > (INT64_MAX - 9) / 10) return perr(ps, "integer too large");
        x = x * 10 + (*ps->p++ - '0');
    }
    if (ps->p == s) return perr(ps, "expected a non-negative integer");
    *v = x;
    return 0;
}

/* [i, j, ...] with at most max values; *n gets the count. */
static int parse_int_array(parser *ps, int64_t *v, int max, int *n) {
    *n = 0;
    if (expect(ps, '[')) return -1;
    if (peek(ps, ']')) return ps->p++, 0;
    for (;;) {
        int64_t x;
        if (*n >= max) return perr(ps, "too many values in an array");
        if (parse_int(ps, &x)) return -1;
        v[(*n)++] = x;
        if (peek(ps, ']')) return ps->p++, 0;
        if (expect(ps, ',')) return -1;
    }
}

/* Any JSON value (for __metadata__ and unknown fields), depth-limited. */
static int skip_value(parser *ps, int depth) {
    char tmp[8];
    if (depth > 32) return perr(ps, "nesting too deep");
    ws(ps);
    if (ps->p >= ps->end) return perr(ps, "expected a value");
    char c = *ps->p;
    if (c == '"') return parse_string(ps, tmp, sizeof tmp);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        ps->p++;
        if (peek(ps, close)) return ps->p++, 0;
        for (;;) {
            if (c == '{' && (parse_string(ps, tmp, sizeof tmp) || expect(ps, ':'))) return -1;
            if (skip_value(ps, depth + 1)) return -1;
            if (peek(ps, close)) return ps->p++, 0;
            if (expect(ps, ',')) return -1;
        }
    }
    const char *s = ps->p;
    while (ps->p < ps->end && strchr("+-.0123456789eEtruefalsn", *ps->p)) ps->p++;
    return ps->p == s ? perr(ps, "unexpected character") : 0;
}

static int parse_dtype(parser *ps, entry *e) {
    char s[16];
    if (parse_string(ps, s, sizeof s)) return -1;
    if (!strcmp(s, "F32"))
        e->dt = DTYPE_F32;
    else if (!strcmp(s, "F64"))
        e->dt = DTYPE_F64;
    else if (!strcmp(s, "I64"))
        e->dt = DTYPE_I64;
    else {
        error_set("%s: tensor \"%s\" has dtype %s; supported are F32, F64 and I64", ps->path,
                  e->name, s);
        return -1;
    }
    return 0;
}

/* {"dtype": .., "shape": [..], "data_offsets": [b, e]} in any order. */
static int parse_entry(parser *ps, entry *e) {
    bool have_dt = false, have_shape = false, have_off = false;
    if (expect(ps, '{')) return -1;
    while (!peek(ps, '}')) {
        char key[32];
        if (parse_string(ps, key, sizeof key) || expect(ps, ':')) return -1;
        int rc, n;
        if (!strcmp(key, "dtype")) {
            rc = parse_dtype(ps, e), have_dt = true;
        } else if (!strcmp(key, "shape")) {
            rc = parse_int_array(ps, e->shape, TENSOR_MAX_DIMS, &e->ndim), have_shape = true;
        } else if (!strcmp(key, "data_offsets")) {
            int64_t o[2];
            rc = parse_int_array(ps, o, 2, &n), have_off = true;
            if (!rc && n != 2) return perr(ps, "data_offsets needs two values");
            e->begin = o[0], e->end = o[1];
        } else {
            rc = skip_value(ps, 1);
        }
        if (rc) return -1;
        if (!peek(ps, '}') && expect(ps, ',')) return -1;
    }
    ps->p++;
    if (!have_dt || !have_shape || !have_off) {
        error_set("%s: incomplete header entry (needs dtype, shape and data_offsets): "
                  "\"%s\" has no %s",
                  ps->path, e->name,
                  !have_dt      ? "dtype"
                  : !have_shape ? "shape"
                                : "data_offsets");
        return -1;
    }
    return 0;
}

static int parse_header(parser *ps, entry **out, int *n_out) {
    int n = 0, cap = 0;
    entry *es = NULL;
    if (expect(ps, '{')) return -1;
    while (!peek(ps, '}')) {
        if (n == cap) {
            int c = cap ? cap * 2 : 32;
            entry *ne = mem_calloc((size_t)c * sizeof *ne);
            if (!ne) goto fail;
            if (n) memcpy(ne, es, (size_t)n * sizeof *ne);
            mem_free(es);
            es = ne, cap = c;
        }
        entry *e = &es[n];
        if (parse_string(ps, e->name, sizeof e->name) || expect(ps, ':')) goto fail;
        if (!strcmp(e->name, "__metadata__")) {
            if (skip_value(ps, 1)) goto fail;
        } else {
            if (parse_entry(ps, e)) goto fail;
            n++;
        }
        if (!peek(ps, '}') && expect(ps, ',')) goto fail;
    }
    ps->p++;
    ws(ps);
    if (ps->p != ps->end) {
        perr(ps, "text after the closing brace");
        goto fail;
    }
    *out = es;
    *n_out = n;
    return 0;
fail:
    mem_free(es);
    return -1;
}

static int cmp_begin(const void *a, const void *b) {
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    return x->begin < y->begin   ? -1
           : x->begin > y->begin ? 1
                                 : (x->end > y->end) - (x->end < y->end);
}

/* Every entry's byte range is its shape's size, inside the data, and no two
 * ranges overlap; names are unique. */
static int check_entries(const char *path, entry *es, int n, int64_t data_len) {
    for (int i = 0; i < n; i++) {
        entry *e = &es[i];
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] > 0 && numel > INT64_MAX / 16 / e->shape[d]) {
                error_set("%s: tensor \"%s\": shape too large", path, e->name);
                return -1;
            }
            numel *= e->shape[d];
        }
        if (e->begin > e->end || e->end > data_len) {
            error_set("%s: tensor \"%s\": data_offsets [%lld, %lld] outside the %lld data bytes",
                      path, e->name, (long long)e->begin, (long long)e->end, (long long)data_len);
            return -1;
        }
        if (e->end - e->begin != numel * (int64_t)dtype_size(e->dt)) {
            error_set("%s: tensor \"%s\": data_offsets span %lld bytes but shape and dtype need "
                      "%lld",
                      path, e->name, (long long)(e->end - e->begin),
                      (long long)(numel * (int64_t)dtype_size(e->dt)));
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(es[j].name, e->name)) {
                error_set("%s: tensor \"%s\" appears twice", path, e->name);
                return -1;
            }
    }
    entry **by = mem_alloc((size_t)(n ? n : 1) * sizeof *by);
    if (!by) return -1;
    for (int i = 0; i < n; i++) by[i] = &es[i];
    qsort(by, (size_t)n, sizeof *by, cmp_begin);
    int rc = 0;
    for (int i = 1; i < n && !rc; i++)
        if (by[i]->begin < by[i - 1]->end) {
            error_set("%s: tensors \"%s\" and \"%s\" overlap in the data", path, by[i - 1]->name,
                      by[i]->name);
            rc = -1;
        }
    mem_free(by);
    return rc;
}

/* The whole file into memory; NULL with an error naming the path. */
static unsigned char *read_file(const char *path, int64_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        error_set("%s: not a regular file", path);
        return NULL;
    }
    unsigned char *p = mem_alloc((size_t)st.st_size + 1);
    if (p && fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        error_set("%s: read error: %s", path, strerror(errno ? errno : EIO));
        mem_free(p);
        p = NULL;
    }
    fclose(f);
    *len = st.st_size;
    return p;
}

static int check_fits(const char *path, const entry *e, const tensor *t) {
    char a[96];
    tensor view = {.ndim = e->ndim};
    for (int d = 0; d < e->ndim; d++) view.shape[d] = e->shape[d];
    if (!tensor_same_shape(&view, t)) {
        char b[96];
        error_set("%s: tensor \"%s\" has shape %s in the file but %s in the model", path, e->name,
                  tensor_shape_str(&view, a, sizeof a), tensor_shape_str(t, b, sizeof b));
        return -1;
    }
    if ((e->dt == DTYPE_I64) != (t->dtype == DTYPE_I64)) {
        error_set("%s: tensor \"%s\" is %s in the file but %s in the model", path, e->name,
                  dtype_name(e->dt), dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

static void copy_into(const entry *e, const unsigned char *data, tensor *t) {
    size_t es = dtype_size(e->dt), n = (size_t)t->size;
    if (e->dt == t->dtype) {
        to_le(t->data, data + e->begin, n, es); /* the swap is its own inverse */
        return;
    }
    for (size_t i = 0; i < n; i++) { /* float32 <-> float64 */
        double v;
        if (e->dt == DTYPE_F32) {
            float f;
            to_le(&f, data + e->begin + 4 * i, 1, 4);
            v = f;
        } else {
            to_le(&v, data + e->begin + 8 * i, 1, 8);
        }
        tensor_set(t, (int64_t)i, v);
    }
}

/* All names, shapes and dtypes are checked before any tensor is written, so
 * a rejected file leaves the model as it was. */
static int match_and_copy(const char *path, entry *es, int n_es, const unsigned char *data,
                          const char *const *names, tensor *const *ts, int n) {
    entry **match = mem_alloc((size_t)(n ? n : 1) * sizeof *match);
    if (!match) return -1;
    for (int i = 0; i < n; i++) {
        entry *e = NULL;
        for (int j = 0; j < n_es && !e; j++)
            if (!strcmp(es[j].name, names[i])) e = &es[j];
        if (!e) error_set("%s: tensor \"%s\" is missing from the file", path, names[i]);
        if (!e || check_fits(path, e, ts[i])) {
            mem_free(match);
            return -1;
        }
        e->used = true;
        match[i] = e;
    }
    for (int j = 0; j < n_es; j++)
        if (!es[j].used) {
            error_set("%s: the file has tensor \"%s\", which the model does not", path, es[j].name);
            mem_free(match);
            return -1;
        }
    for (int i = 0; i < n; i++) copy_into(match[i], data, ts[i]);
    mem_free(match);
    return 0;
}

int nn_safetensors_load(const char *path, const char *const *names, tensor *const *ts, int n) {
    if (!path || n < 0 || (n > 0 && (!names || !ts))) {
        error_set("nn_safetensors_load: path, names or tensors missing");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!names[i] || !ts[i]) {
            error_set("nn_safetensors_load: entry %d has no name or no tensor", i);
            return -1;
        }
    int64_t len;
    unsigned char *file = read_file(path, &len);
    if (!file) return -1;
    int rc = -1, n_es = 0;
    entry *es = NULL;
    uint64_t hl = 0;
    for (int i = 0; i < 8 && len >= 8; i++) hl |= (uint64_t)file[i] << (8 * i);
    if (len < 8) {
        error_set("%s: truncated: %lld bytes, a safetensors file starts with an 8-byte header "
                  "length",
                  path, (long long)len);
    } else if (hl > HEADER_MAX || (int64_t)hl > len - 8) {
        error_set("%s: header length %llu does not fit the file's %lld bytes (truncated or not "
                  "safetensors)",
                  path, (unsigned long long)hl, (long long)len);
    } else {
        const char *h = (const char *)file + 8;
        parser ps = {h, h + hl, path, h};
        if (!parse_header(&ps, &es, &n_es) &&
            !check_entries(path, es, n_es, len - 8 - (int64_t)hl) &&
            !match_and_copy(path, es, n_es, file + 8 + hl, names, ts, n))
            rc = 0;
    }
    mem_free(es);
    mem_free(file);
    return rc;
}

/* ------------------------------------------------------------ models */

static int model_lists(const nn_model *m, const char ***names, tensor ***ts) {
    int n = nn_model_state_count(m);
    *names = mem_alloc((size_t)(n ? n : 1) * sizeof **names);
    *ts = mem_alloc((size_t)(n ? n : 1) * sizeof **ts);
    if (!*names || !*ts) return -1;
    for (int i = 0; i < n; i++) nn_model_state_at(m, i, &(*names)[i], &(*ts)[i]);
    return n;
}

int nn_model_save(const nn_model *m, const char *path) {
    if (!m) {
        error_set("%s: model is NULL", "nn_model_save");
        return -1;
    }
    const char **names = NULL;
    tensor **ts = NULL;
    int n = model_lists(m, &names, &ts);
    int rc = n < 0 ? -1 : nn_safetensors_save(path, names, ts, n);
    mem_free(names);
    mem_free(ts);
    return rc;
}

int nn_model_load(nn_model *m, const char *path) {
    if (!m) {
        error_set("%s: model is NULL", "nn_model_load");
        return -1;
    }
    const char **names = NULL;
    tensor **ts = NULL;
    int n = model_lists(m, &names, &ts);
    int rc = n < 0 ? -1 : nn_safetensors_load(path, names, ts, n);
    mem_free(names);
    mem_free(ts);
    return rc;
}
