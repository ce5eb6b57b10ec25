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
 * nothing in the file and accepts what the safetensors library accepts, no
 * more: a UTF-8 JSON object for a header, tensors whose [begin, end) byte
 * ranges tile the data with no gap, overlap or trailing byte (in any order),
 * and an optional __metadata__ of strings. Every length, offset, dtype and
 * shape is checked before a byte is copied. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define HEADER_MAX 100000000 /* the safetensors library's own limit */
#define ST_NAME_MAX (NN_NAME_MAX * 2) /* a name read back has fewer bytes */

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
        char *np = tg_mem_alloc(cap);
        if (!np) return -1;
        if (b->len) memcpy(np, b->p, b->len);
        tg_mem_free(b->p);
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
        if (!tg_error_pending()) tg_error_set("nn_safetensors_save: path, names or tensors missing");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!names[i] || !ts[i] || !names[i][0]) {
            if (!tg_error_pending())
                tg_error_set("nn_safetensors_save: entry %d has no name or no tensor", i);
            return -1;
        }
        if (tg_tensor_check_fresh("nn_safetensors_save", names[i], ts[i])) return -1;
        const char *fault = tg_nn_name_fault(names[i], ST_NAME_MAX);
        if (fault) {
            tg_error_set("nn_safetensors_save: name refused, %s (it could not be loaded back): "
                      "\"%s\"",
                      fault, names[i]);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) {
                tg_error_set("nn_safetensors_save: name \"%s\" appears twice", names[i]);
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
        int64_t bytes = t->size * (int64_t)tg_dtype_size(t->dtype);
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
        size_t es = tg_dtype_size(ts[i]->dtype), cnt = (size_t)ts[i]->size;
        void *le = tg_mem_alloc(cnt * es);
        if (!le) return -1;
        to_le(le, ts[i]->data, cnt, es);
        int rc = write_all(fd, le, cnt * es);
        tg_mem_free(le);
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

/* path for a message: cut in the middle when long, so that the reason after
 * it still fits the error buffer. */
static const char *shown(const char *path, char *out, size_t n) {
    size_t len = strlen(path);
    if (len < 160 || n < 170) return path;
    snprintf(out, n, "%.60s...%s", path, path + len - 96);
    return out;
}

/* The file a write to path lands on: path with its symlinks followed (also
 * a dangling one, whose target is created), so that saving through a link
 * replaces the target and the link stays. -1 on a loop or an overlong path. */
static int resolve_links(const char *path, char *out, size_t n) {
    errno = ENAMETOOLONG;
    if (snprintf(out, n, "%s", path) >= (int)n) return -1;
    for (int hop = 0; hop < 40; hop++) {
        struct stat st;
        char link[PATH_MAX];
        if (lstat(out, &st) || !S_ISLNK(st.st_mode)) return 0; /* ENOENT: a new file */
        ssize_t k = readlink(out, link, sizeof link - 1);
        if (k < 0) return 0;
        link[k] = '\0';
        if (link[0] == '/') {
            if ((size_t)k >= n) return errno = ENAMETOOLONG, -1;
            memcpy(out, link, (size_t)k + 1);
        } else { /* relative to the link's directory */
            char *slash = strrchr(out, '/');
            size_t keep = slash ? (size_t)(slash - out) + 1 : 0;
            if (keep + (size_t)k >= n) return errno = ENAMETOOLONG, -1;
            memmove(out + keep, link, (size_t)k + 1);
        }
    }
    errno = ELOOP;
    return -1;
}

/* Opens the temporary file beside target, TARGET.tapegrad-tmp, locked. The
 * name is fixed so that a save killed midway leaves at most one, which the
 * next save removes: a temporary that can be locked belongs to no save in
 * progress (a lock dies with its process). Concurrent saves to one target
 * wait for each other's lock, then find the name gone and start over. The
 * file is created afresh, so that a new checkpoint gets 0666 less the umask
 * as any new file does. -1 with errno on failure. */
static int lock(int fd) {
    /* a file system without locks (some network ones): saving still works,
     * only concurrent saves to one destination are not kept apart */
    return flock(fd, LOCK_EX) && errno != ENOLCK && errno != EOPNOTSUPP && errno != EINVAL ? -1 : 0;
}

static int open_temp(const char *tmp) {
    for (int tries = 0; tries < 100; tries++) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            if (!lock(fd)) return fd;
            close(fd);
            return -1;
        }
        if (errno != EEXIST) return -1;
        fd = open(tmp, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            if (errno == ENOENT) continue; /* renamed away meanwhile */
            return -1;
        }
        struct stat a, b;
        int rc = lock(fd);
        if (!rc && !fstat(fd, &a) && !lstat(tmp, &b) && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino && S_ISREG(a.st_mode))
            unlink(tmp); /* stale: left by a save that did not finish */
        close(fd);
        if (rc) return -1;
    }
    errno = EBUSY;
    return -1;
}

int nn_safetensors_save(const char *path, const char *const *names, tensor *const *ts, int n) {
    if (save_checks(path, names, ts, n)) return -1;
    char target[PATH_MAX], tmp[PATH_MAX + 16], sp[192];
    const char *who = shown(path, sp, sizeof sp);
    if (resolve_links(path, target, sizeof target) ||
        snprintf(tmp, sizeof tmp, "%s.tapegrad-tmp", target) >= PATH_MAX) {
        tg_error_set("%s: cannot write the checkpoint (%s): %s", who, "following its symlinks",
                  strerror(errno));
        return -1;
    }
    buf h = {0};
    if (build_header(&h, names, ts, n)) {
        tg_mem_free(h.p);
        return -1; /* tg_mem_alloc has said "out of memory" */
    }
    int fd = open_temp(tmp);
    if (fd < 0) {
        tg_mem_free(h.p);
        tg_error_set("%s: cannot write the checkpoint (%s): %s", who,
                  "creating a temporary file beside it", strerror(errno));
        return -1;
    }
    /* an existing checkpoint keeps its permissions (a 0600 file stays 0600) */
    struct stat old;
    int rc = 0, err = 0;
    if (!stat(target, &old) && fchmod(fd, old.st_mode & 07777)) rc = -1, err = errno;
    if (!rc && (rc = write_body(fd, &h, ts, n))) err = errno;
    tg_mem_free(h.p);
    if (!rc && fsync(fd)) rc = -1, err = errno;
    if (!rc && rename(tmp, target)) rc = -1, err = errno;
    if (rc) unlink(tmp);
    close(fd); /* after the rename: the lock covers it */
    if (rc) {
        if (!tg_error_pending())
            tg_error_set("%s: cannot write the checkpoint (%s): %s", who,
                      "writing, syncing or renaming", strerror(err));
        return -1;
    }
    fsync_dir(target);
    return 0;
}

/* ------------------------------------------------------------- loading */

typedef struct entry {
    char name[ST_NAME_MAX];
    dtype dt;
    bool boolean; /* BOOL in the file (dt is then int64): 1 byte, 0 or 1 */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t begin, end;
    bool used;
} entry;

/* A strict parser for the header's JSON: the cursor p walks [p, end). The
 * header is what the reference reader (serde_json) accepts and no more, since
 * a file that loads here but not in torch, or the reverse, is a trap. */
typedef struct parser {
    const char *p, *end, *path, *start;
} parser;

static int perr(parser *ps, const char *what) {
    tg_error_set("%s: malformed safetensors header: %s at header byte %lld", ps->path, what,
              (long long)(ps->p - ps->start));
    return -1;
}

/* Length of the UTF-8 sequence at s (at most end - s bytes), 0 if there is
 * none: overlong forms, surrogates and code points past U+10FFFF are not
 * UTF-8 (RFC 3629's table of well-formed byte sequences). */
static int utf8_len(const unsigned char *s, const unsigned char *end) {
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    int n = c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
    if (!n || end - s < n) return 0;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    for (int i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
        if (s[i] < lo || s[i] > hi) return 0;
    return n;
}

const char *tg_nn_name_fault(const char *name, size_t max) {
    size_t len = strlen(name);
    const unsigned char *s = (const unsigned char *)name, *end = s + len;
    if (!len) return "empty";
    if (len >= max) {
        static _Thread_local char why[48];
        snprintf(why, sizeof why, "longer than %zu bytes", max - 1);
        return why;
    }
    for (int n; s < end; s += n)
        if (!(n = utf8_len(s, end))) return "not UTF-8";
    if (!strcmp(name, "__metadata__")) return "reserved for the format's metadata";
    return NULL;
}

static int check_utf8(parser *ps) {
    const unsigned char *s = (const unsigned char *)ps->start;
    const unsigned char *end = (const unsigned char *)ps->end;
    for (int n; s < end; s += n)
        if (!(n = utf8_len(s, end))) {
            ps->p = (const char *)s;
            return perr(ps, "bytes that are not UTF-8");
        }
    return 0;
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

/* The ',' between members of an object; JSON has none after the last. */
static int comma(parser *ps) {
    if (expect(ps, ',')) return -1;
    return peek(ps, '}') ? perr(ps, "trailing comma") : 0;
}

static int parse_hex4(parser *ps, unsigned *v) {
    if (ps->end - ps->p < 4) return perr(ps, "short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char h = ps->p[i];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0) return perr(ps, "bad \\u escape");
        *v = *v * 16 + (unsigned)d;
    }
    ps->p += 4;
    return 0;
}

/* The code point of a \u escape (the cursor past the 'u'); a UTF-16
 * surrogate pair is one code point, a lone surrogate is not JSON text. */
static int parse_u_escape(parser *ps, unsigned *cp) {
    unsigned lo;
    if (parse_hex4(ps, cp)) return -1;
    if (*cp >= 0xdc00 && *cp <= 0xdfff) return perr(ps, "lone surrogate in a \\u escape");
    if (*cp < 0xd800 || *cp > 0xdbff) return 0;
    if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
        return perr(ps, "lone surrogate in a \\u escape");
    ps->p += 2;
    if (parse_hex4(ps, &lo)) return -1;
    if (lo < 0xdc00 || lo > 0xdfff) return perr(ps, "lone surrogate in a \\u escape");
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return 0;
}

static int utf8_encode(unsigned cp, char *u) {
    if (cp < 0x80) return u[0] = (char)cp, 1;
    if (cp < 0x800) return u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 63));
        return u[2] = (char)(0x80 | (cp & 63)), 3;
    }
    u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 63));
    u[2] = (char)(0x80 | (cp >> 6 & 63)), u[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* A string, decoded, into out[len] (out NULL: the string is only checked).
 * A longer string is cut to len - 1 bytes and *cut set. A kept string may not
 * hold U+0000: as a C string "w\u0000x" would pass for "w". */
static int parse_string(parser *ps, char *out, size_t len, bool *cut) {
    if (expect(ps, '"')) return -1;
    size_t o = 0;
    if (cut) *cut = false;
    while (ps->p < ps->end && *ps->p != '"') {
        char u[4];
        int nu = 1;
        u[0] = *ps->p++;
        if ((unsigned char)u[0] < 0x20) return ps->p--, perr(ps, "control character in a string");
        if (u[0] == '\\') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            char e = ps->p < ps->end ? *ps->p++ : '\0';
            const char *k = e ? strchr(from, e) : NULL;
            unsigned cp;
            if (e == 'u') {
                if (parse_u_escape(ps, &cp)) return -1;
                if (!cp && out) return perr(ps, "\\u0000 in a name or field");
                nu = utf8_encode(cp, u);
            } else if (k) {
                u[0] = to[k - from];
            } else {
                return perr(ps, "bad escape in a string");
            }
        }
        if (!out) continue;
        if (o + (size_t)nu < len)
            memcpy(out + o, u, (size_t)nu), o += (size_t)nu;
        else if (cut)
            *cut = true;
    }
    if (ps->p >= ps->end) return perr(ps, "unterminated string");
    ps->p++;
    if (out) out[o] = '\0';
    return 0;
}

static const char *digits(const char *p, const char *end) {
    while (p < end && *p >= '0' && *p <= '9') p++;
    return p;
}

/* A JSON integer >= 0: no sign, no leading zero, no fraction or exponent
 * (which the reference reader refuses for a size). */
static int parse_int(parser *ps, int64_t *v) {
    ws(ps);
    const char *s = ps->p, *e = digits(s, ps->end);
    if (e == s) return perr(ps, "expected a non-negative integer");
    if (*s == '0' && e - s > 1) return perr(ps, "leading zero in a number");
    int64_t x = 0;
    for (; ps->p < e; ps->p++) {
        if (x > (INT64_MAX - 9) / 10) return perr(ps, "integer too large");
        x = x * 10 + (*ps->p - '0');
    }
    if (e < ps->end && (*e == '.' || *e == 'e' || *e == 'E'))
        return perr(ps, "expected an integer, found a fraction or exponent");
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

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, JSON's number grammar. */
static int skip_number(parser *ps) {
    const char *p = ps->p, *end = ps->end, *d;
    if (p < end && *p == '-') p++;
    d = p < end && *p == '0' ? p + 1 : digits(p, end);
    if (d == p) return ps->p = p, perr(ps, "unexpected character");
    p = d;
    if (p < end && *p == '.') {
        if ((d = digits(p + 1, end)) == p + 1) return ps->p = d, perr(ps, "bad number");
        p = d;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p += p + 1 < end && (p[1] == '+' || p[1] == '-') ? 2 : 1;
        if ((d = digits(p, end)) == p) return ps->p = d, perr(ps, "bad number");
        p = d;
    }
    ps->p = p;
    return 0;
}

/* Any JSON value (for fields other than dtype, shape and data_offsets, which
 * the reference reader ignores), checked and skipped; depth-limited. */
static int skip_value(parser *ps, int depth) {
    if (depth > 32) return perr(ps, "nesting too deep");
    ws(ps);
    if (ps->p >= ps->end) return perr(ps, "expected a value");
    char c = *ps->p;
    if (c == '"') return parse_string(ps, NULL, 0, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        ps->p++;
        if (peek(ps, close)) return ps->p++, 0;
        for (;;) {
            if (c == '{' && (parse_string(ps, NULL, 0, NULL) || expect(ps, ':'))) return -1;
            if (skip_value(ps, depth + 1)) return -1;
            if (peek(ps, close)) return ps->p++, 0;
            if (expect(ps, ',')) return -1;
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, words[i], n)) return ps->p += n, 0;
    }
    return skip_number(ps);
}

/* __metadata__ maps strings to strings: the only form the format allows. */
static int parse_metadata(parser *ps) {
    if (!peek(ps, '{')) return perr(ps, "__metadata__ is not an object");
    ps->p++;
    if (peek(ps, '}')) return ps->p++, 0;
    for (;;) {
        if (parse_string(ps, NULL, 0, NULL) || expect(ps, ':')) return -1;
        if (!peek(ps, '"')) return perr(ps, "a __metadata__ value is not a string");
        if (parse_string(ps, NULL, 0, NULL)) return -1;
        if (peek(ps, '}')) return ps->p++, 0;
        if (expect(ps, ',')) return -1;
    }
}

/* Bytes per element in the file. */
static int64_t entry_esize(const entry *e) {
    return e->boolean ? 1 : (int64_t)tg_dtype_size(e->dt);
}

static int parse_dtype(parser *ps, entry *e) {
    char s[16];
    if (parse_string(ps, s, sizeof s, NULL)) return -1;
    if (!strcmp(s, "F32"))
        e->dt = DTYPE_F32;
    else if (!strcmp(s, "F64"))
        e->dt = DTYPE_F64;
    else if (!strcmp(s, "I64"))
        e->dt = DTYPE_I64;
    else if (!strcmp(s, "BOOL")) /* PyTorch's torch.bool: masks (a causal mask buffer) */
        e->dt = DTYPE_I64, e->boolean = true;
    else {
        tg_error_set("%s: tensor \"%s\" has dtype %s; supported are F32, F64, I64 and BOOL",
                  ps->path, e->name, s);
        return -1;
    }
    return 0;
}

/* {"dtype": .., "shape": [..], "data_offsets": [b, e]} in any order, each
 * once; other fields are skipped. */
static int parse_entry(parser *ps, entry *e) {
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    bool have[3] = {false, false, false};
    if (!peek(ps, '{')) return perr(ps, "a tensor's entry is not an object");
    ps->p++;
    while (!peek(ps, '}')) {
        char key[32];
        int rc, n, f = 0;
        const char *at = ps->p;
        if (parse_string(ps, key, sizeof key, NULL)) return -1;
        while (f < 3 && strcmp(key, fields[f])) f++;
        if (f < 3 && have[f]) {
            char what[48];
            snprintf(what, sizeof what, "field \"%s\" given twice", fields[f]);
            return ps->p = at, perr(ps, what);
        }
        if (expect(ps, ':')) return -1;
        if (f < 3) have[f] = true;
        if (f == 0) {
            rc = parse_dtype(ps, e);
        } else if (f == 1) {
            rc = parse_int_array(ps, e->shape, TENSOR_MAX_DIMS, &e->ndim);
        } else if (f == 2) {
            int64_t o[2];
            rc = parse_int_array(ps, o, 2, &n);
            if (!rc && n != 2) return perr(ps, "data_offsets needs two values");
            e->begin = o[0], e->end = o[1];
        } else {
            rc = skip_value(ps, 1);
        }
        if (rc || (!peek(ps, '}') && comma(ps))) return -1;
    }
    ps->p++;
    if (!have[0] || !have[1] || !have[2]) {
        tg_error_set("%s: incomplete header entry (needs dtype, shape and data_offsets): "
                  "\"%s\" has no %s",
                  ps->path, e->name, fields[!have[0] ? 0 : !have[1] ? 1 : 2]);
        return -1;
    }
    return 0;
}

static int parse_header(parser *ps, entry **out, int *n_out) {
    int n = 0, cap = 0;
    bool have_meta = false;
    entry *es = NULL;
    if (check_utf8(ps)) return -1;
    if (!peek(ps, '{')) return perr(ps, "the header is not a JSON object");
    ps->p++;
    while (!peek(ps, '}')) {
        if (n == cap) {
            int c = cap ? cap * 2 : 32;
            entry *ne = tg_mem_calloc((size_t)c * sizeof *ne);
            if (!ne) goto fail;
            if (n) memcpy(ne, es, (size_t)n * sizeof *ne);
            tg_mem_free(es);
            es = ne, cap = c;
        }
        entry *e = &es[n];
        bool cut;
        const char *at = ps->p;
        if (parse_string(ps, e->name, sizeof e->name, &cut)) goto fail;
        if (cut || (have_meta && !strcmp(e->name, "__metadata__"))) {
            char what[48];
            snprintf(what, sizeof what, cut ? "tensor name over %d bytes" : "__metadata__ given twice",
                     (int)sizeof e->name - 1);
            ps->p = at;
            perr(ps, what);
            goto fail;
        }
        if (expect(ps, ':')) goto fail;
        if (!strcmp(e->name, "__metadata__")) {
            have_meta = true;
            if (parse_metadata(ps)) goto fail;
        } else {
            if (parse_entry(ps, e)) goto fail;
            n++;
        }
        if (!peek(ps, '}') && comma(ps)) goto fail;
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
    tg_mem_free(es);
    return -1;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const entry *const *)a)->name, (*(const entry *const *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    return x->begin < y->begin   ? -1
           : x->begin > y->begin ? 1
                                 : (x->end > y->end) - (x->end < y->end);
}

/* by[0..n) sorted by offset must tile the data_len bytes exactly: the format
 * indexes every data byte, so each range begins where the one before ends,
 * the first at 0 and the last at the end. Tensors may appear in the data in
 * any order (by is sorted), and a zero-size one takes no room. */
static int check_tiling(const char *path, entry *const *by, int n, int64_t data_len) {
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const entry *e = by[i], *prev = i ? by[i - 1] : NULL;
        if (e->begin < at) {
            tg_error_set("%s: tensors \"%s\" and \"%s\" overlap in the data (data_offsets [%lld, "
                      "%lld] and [%lld, %lld])",
                      path, prev->name, e->name, (long long)prev->begin, (long long)prev->end,
                      (long long)e->begin, (long long)e->end);
            return -1;
        }
        if (e->begin > at && !prev) {
            tg_error_set("%s: data bytes [0, %lld) belong to no tensor: a gap before \"%s\", the "
                      "first",
                      path, (long long)e->begin, e->name);
            return -1;
        }
        if (e->begin > at) {
            tg_error_set("%s: data bytes [%lld, %lld) belong to no tensor: a gap between \"%s\" and "
                      "\"%s\"",
                      path, (long long)at, (long long)e->begin, prev->name, e->name);
            return -1;
        }
        at = e->end;
    }
    if (at < data_len && n) {
        tg_error_set("%s: data bytes [%lld, %lld) belong to no tensor: extra bytes after \"%s\", the "
                  "last",
                  path, (long long)at, (long long)data_len, by[n - 1]->name);
        return -1;
    }
    if (at < data_len) {
        tg_error_set("%s: data bytes [0, %lld) belong to no tensor: the header lists none", path,
                  (long long)data_len);
        return -1;
    }
    return 0;
}

/* Every entry's byte range is forwards, inside the data and its shape's
 * size; names are unique; the ranges tile the data. */
static int check_entries(const char *path, entry *es, int n, int64_t data_len) {
    for (int i = 0; i < n; i++) {
        entry *e = &es[i];
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] > 0 && numel > INT64_MAX / 16 / e->shape[d]) {
                tg_error_set("%s: tensor \"%s\": shape too large", path, e->name);
                return -1;
            }
            numel *= e->shape[d];
        }
        if (e->begin > e->end) {
            tg_error_set("%s: tensor \"%s\": data_offsets [%lld, %lld] are reversed (the end comes "
                      "before the begin)",
                      path, e->name, (long long)e->begin, (long long)e->end);
            return -1;
        }
        if (e->end > data_len) {
            tg_error_set("%s: tensor \"%s\": data_offsets [%lld, %lld] outside the %lld data bytes",
                      path, e->name, (long long)e->begin, (long long)e->end, (long long)data_len);
            return -1;
        }
        if (e->end - e->begin != numel * entry_esize(e)) {
            tg_error_set("%s: tensor \"%s\": data_offsets span %lld bytes but shape and dtype need "
                      "%lld",
                      path, e->name, (long long)(e->end - e->begin),
                      (long long)(numel * entry_esize(e)));
            return -1;
        }
    }
    /* sorting, not comparing all pairs: a hostile header may list a million
     * names */
    entry **by = tg_mem_alloc((size_t)(n ? n : 1) * sizeof *by);
    if (!by) return -1;
    for (int i = 0; i < n; i++) by[i] = &es[i];
    qsort(by, (size_t)n, sizeof *by, cmp_name);
    int rc = 0;
    for (int i = 1; i < n && !rc; i++)
        if (!strcmp(by[i]->name, by[i - 1]->name)) {
            tg_error_set("%s: tensor \"%s\" appears twice", path, by[i]->name);
            rc = -1;
        }
    if (!rc) {
        qsort(by, (size_t)n, sizeof *by, cmp_begin);
        rc = check_tiling(path, by, n, data_len);
    }
    tg_mem_free(by);
    return rc;
}

/* The whole file into memory; NULL with an error naming it (as who). Opened
 * without blocking: a FIFO or a device would wait for a writer forever, and
 * only a regular file is read. */
static unsigned char *read_file(const char *path, const char *who, int64_t *len) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        tg_error_set("%s: cannot open: %s", who, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        tg_error_set("%s: not a regular file (a directory, FIFO, socket or device)", who);
        return NULL;
    }
    unsigned char *p = tg_mem_alloc((size_t)st.st_size + 1);
    for (off_t got = 0; p && got < st.st_size;) {
        ssize_t r = read(fd, p + got, (size_t)(st.st_size - got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            tg_error_set("%s: read error: %s", who, r ? strerror(errno) : "the file shrank");
            tg_mem_free(p);
            p = NULL;
            break;
        }
        got += r;
    }
    close(fd);
    *len = st.st_size;
    return p;
}

/* A BOOL loads into any dtype (a mask buffer may be int64 or float), as 0
 * and 1; safetensors stores it as one byte, and a byte other than 0 or 1 is
 * no bool (a file from elsewhere, or corrupt). */
static int check_fits(const char *path, const entry *e, const tensor *t, const unsigned char *data) {
    char a[96];
    tensor view = {.ndim = e->ndim};
    for (int d = 0; d < e->ndim; d++) view.shape[d] = e->shape[d];
    if (!tensor_same_shape(&view, t)) {
        char b[96];
        tg_error_set("%s: tensor \"%s\" has shape %s in the file but %s in the model", path, e->name,
                  tensor_shape_str(&view, a, sizeof a), tensor_shape_str(t, b, sizeof b));
        return -1;
    }
    if (e->boolean) {
        for (int64_t i = 0; i < e->end - e->begin; i++)
            if (data[e->begin + i] > 1) {
                tg_error_set("%s: tensor \"%s\" is BOOL but element %lld is the byte %d (a BOOL "
                             "byte is 0 or 1)",
                             path, e->name, (long long)i, data[e->begin + i]);
                return -1;
            }
        return 0;
    }
    if ((e->dt == DTYPE_I64) != (t->dtype == DTYPE_I64)) {
        tg_error_set("%s: tensor \"%s\" is %s in the file but %s in the model", path, e->name,
                  tg_dtype_name(e->dt), tg_dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

static void copy_into(const entry *e, const unsigned char *data, tensor *t) {
    size_t es = tg_dtype_size(e->dt), n = (size_t)t->size;
    if (e->boolean) { /* 0 or 1 (check_fits), exact in every dtype */
        for (size_t i = 0; i < n; i++) tensor_set(t, (int64_t)i, data[e->begin + (int64_t)i]);
        return;
    }
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

/* A tied tensor (one tensor under the names of a and b) is saved under each
 * name; loading takes it only when both copies hold the same values in the
 * tensor's dtype, since no copy is more right than the other. 1 (with an
 * error) when they differ or memory runs out, else 0. */
static int tied_differ(const char *path, const entry *a, const entry *b,
                       const unsigned char *data, const tensor *t) {
    tensor *x = tensor_new(t->dtype, t->ndim, t->shape), *y = tensor_new(t->dtype, t->ndim, t->shape);
    int rc = 1;
    if (x && y) {
        copy_into(a, data, x);
        copy_into(b, data, y);
        rc = memcmp(x->data, y->data, (size_t)t->size * tg_dtype_size(t->dtype)) != 0;
        if (rc)
            tg_error_set("%s: \"%s\" and \"%s\" name one tied tensor in the model but hold different "
                      "values in the file",
                      path, a->name, b->name);
    }
    tensor_free(x);
    tensor_free(y);
    return rc;
}

/* All names, shapes and dtypes are checked before any tensor is written, so
 * a rejected file leaves the model as it was. */
static int match_and_copy(const char *path, entry *es, int n_es, const unsigned char *data,
                          const char *const *names, tensor *const *ts, int n) {
    entry **match = tg_mem_alloc((size_t)(n ? n : 1) * sizeof *match);
    if (!match) return -1;
    for (int i = 0; i < n; i++) {
        entry *e = NULL;
        for (int j = 0; j < n_es && !e; j++)
            if (!strcmp(es[j].name, names[i])) e = &es[j];
        if (!e) tg_error_set("%s: tensor \"%s\" is missing from the file", path, names[i]);
        if (!e || check_fits(path, e, ts[i], data)) {
            tg_mem_free(match);
            return -1;
        }
        e->used = true;
        match[i] = e;
    }
    for (int j = 0; j < n_es; j++)
        if (!es[j].used) {
            tg_error_set("%s: the file has tensor \"%s\", which the model does not", path, es[j].name);
            tg_mem_free(match);
            return -1;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (ts[j] == ts[i] && tied_differ(path, match[j], match[i], data, ts[i])) {
                tg_mem_free(match);
                return -1;
            }
    for (int i = 0; i < n; i++) copy_into(match[i], data, ts[i]);
    tg_mem_free(match);
    return 0;
}

int nn_safetensors_load(const char *path, const char *const *names, tensor *const *ts, int n) {
    if (!path || n < 0 || (n > 0 && (!names || !ts))) {
        tg_error_set("nn_safetensors_load: path, names or tensors missing");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!names[i] || !ts[i]) {
            tg_error_set("nn_safetensors_load: entry %d has no name or no tensor", i);
            return -1;
        }
    int64_t len;
    char sp[192];
    const char *real = path;
    path = shown(path, sp, sizeof sp); /* for messages */
    unsigned char *file = read_file(real, path, &len);
    if (!file) return -1;
    int rc = -1, n_es = 0;
    entry *es = NULL;
    uint64_t hl = 0;
    for (int i = 0; i < 8 && len >= 8; i++) hl |= (uint64_t)file[i] << (8 * i);
    if (len < 8) {
        tg_error_set("%s: truncated: %lld bytes, a safetensors file starts with an 8-byte header "
                  "length",
                  path, (long long)len);
    } else if (hl > HEADER_MAX) {
        tg_error_set("%s: header length %llu is over the format's limit of %d bytes", path,
                  (unsigned long long)hl, HEADER_MAX);
    } else if ((int64_t)hl > len - 8) {
        tg_error_set("%s: header length %llu does not fit the file's %lld bytes (truncated or not "
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
    tg_mem_free(es);
    tg_mem_free(file);
    return rc;
}

/* ------------------------------------------------------------ models */

static int model_lists(const nn_model *m, const char ***names, tensor ***ts) {
    int n = nn_model_state_count(m);
    *names = tg_mem_alloc((size_t)(n ? n : 1) * sizeof **names);
    *ts = tg_mem_alloc((size_t)(n ? n : 1) * sizeof **ts);
    if (!*names || !*ts) return -1;
    for (int i = 0; i < n; i++) nn_model_state_at(m, i, &(*names)[i], &(*ts)[i]);
    return n;
}

int nn_model_save(const nn_model *m, const char *path) {
    if (!m) {
        tg_error_set("%s: model is NULL", "nn_model_save");
        return -1;
    }
    const char **names = NULL;
    tensor **ts = NULL;
    int n = model_lists(m, &names, &ts);
    int rc = n < 0 ? -1 : nn_safetensors_save(path, names, ts, n);
    tg_mem_free(names);
    tg_mem_free(ts);
    return rc;
}

int nn_model_load(nn_model *m, const char *path) {
    if (!m) {
        tg_error_set("%s: model is NULL", "nn_model_load");
        return -1;
    }
    const char **names = NULL;
    tensor **ts = NULL;
    int n = model_lists(m, &names, &ts);
    int rc = n < 0 ? -1 : nn_safetensors_load(path, names, ts, n);
    tg_mem_free(names);
    tg_mem_free(ts);
    return rc;
}

/* ------------------------------------------------------ state lists */

int tg_nn_state_put(nn_state *s, const char *prefix, const char *name, tensor *t, bool own) {
    if (!t) return -1;
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *nm = tg_mem_alloc(len);
    if (s->n == s->cap) {
        int c = s->cap ? s->cap * 2 : 32;
        char **nn = tg_mem_alloc((size_t)c * sizeof *nn);
        tensor **nt = tg_mem_alloc((size_t)c * sizeof *nt);
        bool *no = tg_mem_alloc((size_t)c * sizeof *no);
        if (!nn || !nt || !no || !nm) {
            tg_mem_free(nn), tg_mem_free(nt), tg_mem_free(no), tg_mem_free(nm);
            if (own) tensor_free(t);
            return -1;
        }
        if (s->n) {
            memcpy(nn, s->names, (size_t)s->n * sizeof *nn);
            memcpy(nt, s->ts, (size_t)s->n * sizeof *nt);
            memcpy(no, s->own, (size_t)s->n * sizeof *no);
        }
        tg_mem_free(s->names), tg_mem_free(s->ts), tg_mem_free(s->own);
        s->names = nn, s->ts = nt, s->own = no, s->cap = c;
    }
    if (!nm) {
        if (own) tensor_free(t);
        return -1;
    }
    snprintf(nm, len, "%s%s", prefix, name);
    s->names[s->n] = nm;
    s->ts[s->n] = t;
    s->own[s->n++] = own;
    return 0;
}

int tg_nn_state_put_i64(nn_state *s, const char *prefix, const char *name, int64_t v) {
    return tg_nn_state_put(s, prefix, name, tensor_from_data(DTYPE_I64, 0, NULL, &v), true);
}

int tg_nn_state_put_f64(nn_state *s, const char *prefix, const char *name, double v) {
    return tg_nn_state_put(s, prefix, name, tensor_from_data(DTYPE_F64, 0, NULL, &v), true);
}

tensor *tg_nn_state_find(const nn_state *s, const char *prefix, const char *name) {
    size_t lp = strlen(prefix);
    for (int i = 0; i < s->n; i++)
        if (!strncmp(s->names[i], prefix, lp) && !strcmp(s->names[i] + lp, name)) return s->ts[i];
    return NULL;
}

void tg_nn_state_free(nn_state *s) {
    for (int i = 0; i < s->n; i++) {
        tg_mem_free(s->names[i]);
        if (s->own[i]) tensor_free(s->ts[i]);
    }
    tg_mem_free(s->names), tg_mem_free(s->ts), tg_mem_free(s->own);
    *s = (nn_state){0};
}

/* got: want's names, each with a new tensor of the same dtype and shape to
 * load into (a tensor want lists twice, tied, gets one), so that a file is
 * read and checked whole before anything is written. */
static int state_blank(const nn_state *want, nn_state *got) {
    for (int i = 0; i < want->n; i++) {
        int j = 0;
        while (j < i && want->ts[j] != want->ts[i]) j++;
        const tensor *w = want->ts[i];
        tensor *t = j < i ? got->ts[j] : tensor_new(w->dtype, w->ndim, w->shape);
        if (tg_nn_state_put(got, "", want->names[i], t, j == i)) return -1;
    }
    return 0;
}

static int state_save(const char *path, const nn_state *s) {
    return nn_safetensors_save(path, (const char *const *)s->names, s->ts, s->n);
}

int optim_save(const optim *o, const char *path) {
    if (!o) {
        tg_error_set("%s: optimiser is NULL", "optim_save");
        return -1;
    }
    nn_state s = {0};
    int rc = tg_optim_state_export(o, &s, "") ? -1 : state_save(path, &s);
    tg_nn_state_free(&s);
    return rc;
}

int optim_load(optim *o, const char *path) {
    if (!o) {
        tg_error_set("%s: optimiser is NULL", "optim_load");
        return -1;
    }
    nn_state want = {0}, got = {0};
    int rc = -1;
    if (!tg_optim_state_export(o, &want, "") && !state_blank(&want, &got) &&
        !nn_safetensors_load(path, (const char *const *)got.names, got.ts, got.n) &&
        !tg_optim_state_import(o, &got, "", path, false))
        rc = tg_optim_state_import(o, &got, "", path, true);
    tg_nn_state_free(&want);
    tg_nn_state_free(&got);
    return rc;
}

/* ------------------------------------------------- training checkpoints */

/* A generator as int64 [2]: state and increment, bit for bit. */
static int rng_put(nn_state *s, const char *name, const rng *g) {
    int64_t v[2] = {(int64_t)g->state, (int64_t)g->inc};
    return tg_nn_state_put(s, "", name, tensor_from_data(DTYPE_I64, 1, (int64_t[]){2}, v), true);
}

/* PCG32 needs an odd increment; anything else was not written by rng_put. */
static int rng_check(const char *path, const nn_state *got, const char *name) {
    const int64_t *v = tg_nn_state_find(got, "", name)->data;
    if (!(v[1] & 1)) {
        tg_error_set("%s: \"%s\" is not a generator's state (its increment is even)", path, name);
        return -1;
    }
    return 0;
}

static void rng_get(const nn_state *got, const char *name, rng *g) {
    const int64_t *v = tg_nn_state_find(got, "", name)->data;
    g->state = (uint64_t)v[0];
    g->inc = (uint64_t)v[1];
}

static int loader_export(const nn_loader *l, nn_state *s) {
    int64_t n, *order, *pos;
    rng *g;
    tg_nn_loader_state((nn_loader *)l, &n, &order, &g, &pos); /* only read */
    int rc = tg_nn_state_put(s, "", "loader.order", tensor_from_data(DTYPE_I64, 1, &n, order), true);
    rc = rc ? rc : rng_put(s, "loader.rng", g);
    return rc ? rc : tg_nn_state_put_i64(s, "", "loader.pos", *pos);
}

/* The order must be a permutation of the loader's n images and the position
 * in [0, n]: the loader indexes its images with both. */
static int loader_import(nn_loader *l, const nn_state *got, const char *path, bool commit) {
    int64_t n, *order, *pos;
    rng *g;
    tg_nn_loader_state(l, &n, &order, &g, &pos);
    const int64_t *o = tg_nn_state_find(got, "", "loader.order")->data;
    int64_t p = ((const int64_t *)tg_nn_state_find(got, "", "loader.pos")->data)[0];
    if (rng_check(path, got, "loader.rng")) return -1;
    bool *seen = tg_mem_calloc((size_t)(n ? n : 1));
    if (!seen) return -1;
    bool ok = p >= 0 && p <= n;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = o[i] >= 0 && o[i] < n && !seen[o[i]];
        if (ok) seen[o[i]] = true;
    }
    tg_mem_free(seen);
    if (!ok) {
        tg_error_set("%s: the loader state does not fit this loader: its order is not a permutation "
                  "of the %lld images or its position %lld is past them",
                  path, (long long)n, (long long)p);
        return -1;
    }
    if (commit) {
        memcpy(order, o, (size_t)n * sizeof *order);
        rng_get(got, "loader.rng", g);
        *pos = p;
    }
    return 0;
}

/* Everything a run needs to continue as if it had not stopped: the model's
 * state_dict under "model.", the model's generator (dropout), the optimiser
 * under "optim." and the loader's permutation, generator and position. */
static int train_export(const nn_model *m, const optim *o, const nn_loader *l, nn_state *s) {
    int rc = 0;
    for (int i = 0; i < nn_model_state_count(m) && !rc; i++) {
        const char *name;
        tensor *t;
        nn_model_state_at(m, i, &name, &t);
        rc = tg_nn_state_put(s, "model.", name, t, false);
    }
    rc = rc ? rc : rng_put(s, "rng.model", &m->rng);
    if (o && !rc) rc = tg_optim_state_export(o, s, "optim.");
    if (l && !rc) rc = loader_export(l, s);
    return rc;
}

int nn_checkpoint_save(const char *path, const nn_model *m, const optim *o, const nn_loader *l) {
    if (!m) {
        tg_error_set("%s: model is NULL", "nn_checkpoint_save");
        return -1;
    }
    nn_state s = {0};
    int rc = train_export(m, o, l, &s) ? -1 : state_save(path, &s);
    tg_nn_state_free(&s);
    return rc;
}

int nn_checkpoint_load(const char *path, nn_model *m, optim *o, nn_loader *l) {
    if (!m) {
        tg_error_set("%s: model is NULL", "nn_checkpoint_load");
        return -1;
    }
    nn_state want = {0}, got = {0};
    int rc = -1;
    if (!train_export(m, o, l, &want) && !state_blank(&want, &got) &&
        !nn_safetensors_load(path, (const char *const *)got.names, got.ts, got.n) &&
        !rng_check(path, &got, "rng.model") &&
        !(o && tg_optim_state_import(o, &got, "optim.", path, false)) &&
        !(l && loader_import(l, &got, path, false))) {
        /* all checked: now write, the model's tensors first */
        int n_model = nn_model_state_count(m);
        for (int i = 0; i < n_model; i++)
            memcpy(want.ts[i]->data, got.ts[i]->data,
                   (size_t)want.ts[i]->size * tg_dtype_size(want.ts[i]->dtype));
        rng_get(&got, "rng.model", &m->rng);
        if (o) tg_optim_state_import(o, &got, "optim.", path, true);
        if (l) loader_import(l, &got, path, true);
        rc = 0;
    }
    tg_nn_state_free(&want);
    tg_nn_state_free(&got);
    return rc;
}
