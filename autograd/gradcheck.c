/* gradcheck.c - the numerical gradient checker.
 *
 * The question it answers: does the tape's vector-Jacobian product agree with
 * the function the forward pass computes? For a function out = f(x_0..x_n-1)
 * and an upstream gradient u (1 for a scalar output, seeded random values
 * otherwise) the analytic side is the tape's backward, grad_i = J_i^T u. The
 * numeric side differentiates the scalar L(x) = <u, f(x)> by central
 * differences, (L(x + eps e_k) - L(x - eps e_k)) / 2 eps, for every element k
 * of every checked input, in float64. An element passes when
 * |analytic - numeric| <= atol + rtol |numeric|.
 *
 * Replay, not re-run: f is called once and its tape recorded. Perturbing one
 * element of leaf x_i can only change the nodes downstream of x_i, so for each
 * leaf the checker lists, once, the recorded nodes that depend on it (and that
 * the output depends on) and re-runs only their forward() in tape order.
 * forward() is pure and does not allocate (the contract of every op), so a
 * perturbation costs the downstream kernels and nothing else; after the last
 * perturbation of a leaf the leaf is restored and its nodes replayed once more,
 * which leaves the tape exactly as recorded. Values computed off the tape (in a
 * no-grad scope) stay fixed, as they do for backward. Only when the output is
 * not on the tape at all (f returned a leaf, or ran in a no-grad scope) does
 * the checker fall back to calling f again for every perturbation.
 *
 * Verdicts beyond pass/fail:
 *   - VACUOUS: an input whose analytic and numeric gradients are both within
 *     atol/2 of zero everywhere could not have failed any comparison; it proves
 *     nothing and counts as a failure.
 *   - kink: the one-sided differences of every element come free with its
 *     central difference; when a failing element's left and right slopes
 *     disagree by more than the error, the sample sits on a non-differentiable
 *     point (still a failure: fix the sample; no vjp is blamed for it).
 *   - jump: slopes that are absurd (beyond 1e6) or grow as the step shrinks
 *     are no kink: the function is discontinuous there (or its value off the
 *     tape differs from the replayed one), and a vjp may well be blamed.
 *   - determinism: backward runs twice; the two gradients must agree bit for bit.
 *   - localisation: on failure every tape node's vjp is checked at its own
 *     recorded inputs, and the first disagreeing node is named.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* rng streams: one per use, so that changing one use leaves the others' draws unchanged */
enum { STREAM_UPSTREAM = 1, STREAM_FAST = 2, STREAM_LOCALIZE = 3, STREAM_REPLAY = 4 };

gradcheck_options gradcheck_defaults(void) {
    return (gradcheck_options){.eps = 1e-6,
                               .atol = 1e-5,
                               .rtol = 1e-3,
                               .seed = 1234,
                               .fast = false,
                               .probes = 3,
                               .check_mask = 0,
                               .localize = true,
                               .replay = GRADCHECK_REPLAY_AUTO,
                               .stencil = GRADCHECK_CENTRAL};
}

/* ------------------------------------------------------------ checker state */
/* Comparison statistics of one input (elements, or probes in fast mode). */
typedef struct {
    bool failed;
    double max_abs, max_rel, worst_ratio, mag_a, mag_n;
    int64_t worst, n_fail, n_kink, n_jump; /* failing elements, those on a kink, on a jump */
    double worst_a, worst_n, worst_left, worst_right;
    bool worst_kink, worst_jump;
} err_stats;

/* A growing string on the heap: report messages are never cut. A failed
 * allocation leaves the error set and `failed` true. */
typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} strbuf;

typedef struct {
    const gradcheck_options *opt;
    gradcheck_fn fn;
    void *ctx;
    int n;
    tensor *leaf[GRADCHECK_MAX_INPUTS];     /* float64 copies (user-owned by the checker) */
    bool checked[GRADCHECK_MAX_INPUTS];
    tensor *analytic[GRADCHECK_MAX_INPUTS]; /* J_i^T u, copied out of the leaves' .grad */
    int64_t *plan[GRADCHECK_MAX_INPUTS];    /* positions of the nodes downstream of leaf i */
    int64_t plan_len[GRADCHECK_MAX_INPUTS];
    bool rerun_in[GRADCHECK_MAX_INPUTS];    /* input i: call fn for every perturbation */
    int64_t n_rec;                          /* nodes recorded by the first call of fn */
    unsigned char *live;                    /* live[j]: the output depends on node j */
    void **snap;                            /* per live node: copies of out, saved[0..3] */
    int64_t fn_calls;
    bool rerun_failed;                      /* a re-run of fn failed (noted once) */
    bool fatal;                             /* fn reset the tape: the recording is gone */
    arena_pos rerun_mark;                   /* where a re-run's memory starts */
    tape_header_pos rerun_headers;          /* and its tensor headers */
    tensor *out;                            /* the recorded output */
    tensor *u;                              /* upstream gradient, out's shape */
    tensor *recorded;                       /* out's values as recorded (replay check) */
    double L0;                              /* <u, out> at the unperturbed inputs */
    bool rerun;                             /* output not on the tape: every input re-runs fn */
    int64_t evals;
    err_stats st[GRADCHECK_MAX_INPUTS];     /* per input, of the last full check */
    strbuf loc;                             /* localisation's sentence */
    strbuf notes;                           /* per-input verdicts and notes */
    int64_t kinks_excused;                  /* localisation: node elements on a kink */
    gradcheck_report *rep;
} checker;

static void sb_add(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(strbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t need = b->len + (size_t)(n > 0 ? n : 0) + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;
        char *p = tg_mem_alloc(cap);
        if (!p) {
            b->failed = true;
            return;
        }
        if (b->len) memcpy(p, b->s, b->len);
        p[b->len] = '\0';
        tg_mem_free(b->s);
        b->s = p;
        b->cap = cap;
    }
    if (n <= 0) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
#define msg_add(c, ...) sb_add(&(c)->notes, __VA_ARGS__)

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* u: +-[0.5, 1.5), so that every output element weighs in and none vanishes. */
static void fill_upstream(double *u, int64_t n, rng *g) {
    for (int64_t i = 0; i < n; i++) {
        double m = 0.5 + rng_uniform(g);
        u[i] = (rng_next_u32(g) & 1) ? m : -m;
    }
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------- evaluation */
/* A re-run calls fn again at the leaves' current values without resetting
 * the tape: its nodes are appended after the recorded ones (which stay
 * intact for replay and localisation) and rerun_end() drops them and gives
 * their arena memory back. Returns the re-run's output, or NULL (noted once)
 * when fn fails or returns something of another shape. */
static tensor *rerun_begin(checker *c) {
    if (c->fatal) return NULL;
    const uint32_t epoch = tg_tape_epoch();
    c->fn_calls++;
    c->rerun_mark = tg_arena_tell();
    c->rerun_headers = tg_tape_header_tell();
    tensor *o = c->fn(c->leaf, c->n, c->ctx);
    if (tg_tape_epoch() != epoch) {
        /* the recorded nodes and their memory are gone: nothing may touch them */
        c->fatal = true;
        tapegrad_error_clear();
        tg_error_set("gradcheck: fn reset the tape when called again; fn may be called several"
                  " times and must not call tape_reset() or tape_release() (the checker resets"
                  " the tape before the first call)");
        return NULL;
    }
    if (o && o->dtype == DTYPE_F64 && tensor_same_shape(o, c->u)) return o;
    if (!c->rerun_failed) {
        const char *e = tapegrad_error();
        msg_add(c, " fn failed when called again at a perturbed point (%s): that evaluation"
                   " counts as NaN;",
                e ? e : "its output changed dtype or shape");
    }
    c->rerun_failed = true;
    tapegrad_error_clear();
    return NULL;
}

static void rerun_end(checker *c) {
    if (c->fatal) return;
    tg_tape_truncate(c->n_rec);
    tg_arena_seek(c->rerun_mark);
    tg_tape_header_seek(c->rerun_headers);
}

/* L = <u, f(x)> at the leaves' current values: replaying plan (the nodes
 * downstream of the perturbed leaf) or calling fn again. */
static double eval_loss(checker *c, int leaf) {
    if (c->fatal) return NAN;
    c->evals++;
    if (c->rerun_in[leaf]) {
        tensor *o = rerun_begin(c);
        double l = o ? dot(c->u->data, o->data, o->size) : NAN;
        rerun_end(c);
        return l;
    }
    const int64_t *p = c->plan[leaf];
    for (int64_t k = 0, m = c->plan_len[leaf]; k < m; k++) {
        tape_node *nd = tg_tape_node_at(p[k]);
        nd->op->forward(nd);
    }
    return dot(c->u->data, c->out->data, c->out->size);
}

/* A tensor produced by a node of the current tape, or NULL. */
static tape_node *producer(const tensor *t) {
    if (!t || !t->tape_owned || t->node < 0 || t->epoch != tg_tape_epoch()) return NULL;
    tape_node *p = tg_tape_node_at(t->node);
    return p && p->out == t ? p : NULL;
}

/* Marks (live[j] = 1) the nodes the output depends on. */
static void mark_live(const checker *c, unsigned char *live) {
    for (int64_t j = c->out->node; j >= 0; j--) {
        tape_node *nd = tg_tape_node_at(j);
        if (j != c->out->node && !live[j]) continue;
        live[j] = 1;
        for (int k = 0; k < nd->n_in; k++) {
            tape_node *p = producer(nd->in[k]);
            if (p) live[p->out->node] = 1;
        }
    }
}

/* The replay plan of every leaf: the live nodes with an input that is the
 * leaf or the output of a node already in the plan. A fresh mark value per
 * walk tags the plan's outputs, so stale marks of older walks never match. */
static int build_plans(checker *c) {
    static int32_t stamp;
    int64_t last = c->out->node;
    unsigned char *live = c->live = tg_mem_calloc((size_t)(last + 1));
    if (!live) return -1;
    mark_live(c, live);
    for (int i = 0; i < c->n; i++) {
        if (!c->checked[i]) continue;
        c->plan[i] = tg_mem_alloc((size_t)(last + 1) * sizeof(int64_t));
        if (!c->plan[i]) return -1;
        int32_t s = ++stamp;
        int64_t m = 0;
        for (int64_t j = 0; j <= last; j++) {
            tape_node *nd = tg_tape_node_at(j);
            if (!live[j]) continue;
            bool down = false;
            for (int k = 0; k < nd->n_in && !down; k++) {
                const tensor *t = nd->in[k];
                down = t && (t == c->leaf[i] || (t->tape_owned && t->mark == s));
            }
            if (down) {
                nd->out->mark = s;
                c->plan[i][m++] = j;
            }
        }
        c->plan_len[i] = m;
    }
    return 0;
}

/* ---------------------------------------------------------- comparison */

static void stats_init(err_stats *s) {
    memset(s, 0, sizeof *s);
    s->worst = -1;
    s->worst_ratio = -1;
}

static double nan_to_inf(double x) { return isnan(x) ? INFINITY : x; }

/* One-sided slopes (left, right) that disagree by at least the error being
 * explained mean a kink between x - eps and x + eps: at a kink with slopes s1,
 * s2 the central difference is their mean while the vjp returns one of them.
 * NaN slopes (unknown) are never a kink. */
static bool is_kink(double left, double right, double a, double n, const gradcheck_options *o) {
    const double gap = fabs(right - left);
    return gap >= fabs(a - n) && gap > o->atol + o->rtol * fmax(fabs(left), fabs(right));
}

/* Slopes beyond this are no kink of a function a sample would use: a value
 * that jumps by J between x - eps and x + eps gives a slope J / eps. */
#define JUMP_SLOPE 1e6

static bool is_jump(double left, double right) {
    return fmax(fabs(left), fabs(right)) > JUMP_SLOPE; /* NaN: neither */
}

/* The rule |a - n| <= atol + rtol |n|, written so that NaN fails. The worst
 * element is the one that violates it most (largest error / tolerance). A
 * failing element on a kink still fails, unless excuse_kinks (localisation,
 * where a node's own sample may hold ties the whole graph never crosses). */
static void stats_add(err_stats *s, int64_t k, double a, double n, double left, double right,
                      const gradcheck_options *o, bool excuse_kinks) {
    double d = fabs(a - n), tol = o->atol + o->rtol * fabs(n);
    bool fail = !(d <= tol), jump = fail && is_jump(left, right),
         kink = fail && !jump && is_kink(left, right, a, n, o);
    s->n_fail += fail;
    s->n_kink += kink;
    s->n_jump += jump;
    if (kink && excuse_kinks) return;
    s->failed |= fail;
    double rel = nan_to_inf(d / fmax(fabs(n), o->atol)), ratio = nan_to_inf(d / tol);
    s->max_abs = fmax(s->max_abs, nan_to_inf(d));
    s->max_rel = fmax(s->max_rel, rel);
    s->mag_a = fmax(s->mag_a, nan_to_inf(fabs(a)));
    s->mag_n = fmax(s->mag_n, nan_to_inf(fabs(n)));
    if (ratio > s->worst_ratio) {
        s->worst_ratio = ratio;
        s->worst = k;
        s->worst_a = a;
        s->worst_n = n;
        s->worst_left = left;
        s->worst_right = right;
        s->worst_kink = kink;
        s->worst_jump = jump;
    }
}

static void stats_to_report(const err_stats *s, double atol, gradcheck_input_report *ir) {
    ir->max_abs_err = s->max_abs;
    ir->max_rel_err = s->max_rel;
    ir->worst_index = s->worst;
    ir->worst_analytic = s->worst_a;
    ir->worst_numeric = s->worst_n;
    ir->vacuous = !s->failed && s->mag_a <= atol / 2 && s->mag_n <= atol / 2;
    ir->passed = !s->failed && !ir->vacuous;
}

/* ------------------------------------------------------------ full mode */
/* A kink's one-sided slopes stay bounded as the step shrinks (they average
 * the derivative over the step); a jump's grow like 1 / step. The worst
 * element's slopes again at eps / 4: growth beyond 2.5 times (4 for a jump
 * inside the smaller step) makes it a jump. */
static void recheck_kink(checker *c, int i, err_stats *s) {
    double *x = c->leaf[i]->data;
    const int64_t k = s->worst;
    const double x0 = x[k], h = c->opt->eps / 4, l0 = c->L0;
    x[k] = x0 + h;
    const double hp = x[k] - x0, lp = eval_loss(c, i);
    x[k] = x0 - h;
    const double hm = x0 - x[k], lm = eval_loss(c, i);
    x[k] = x0;
    const double m1 = fmax(fabs(s->worst_left), fabs(s->worst_right));
    const double m4 = fmax(fabs((l0 - lm) / hm), fabs((lp - l0) / hp));
    if (m4 > 2.5 * m1 + c->opt->atol + c->opt->rtol * fabs(s->worst_n)) {
        s->worst_kink = false;
        s->worst_jump = true;
        s->n_kink--;
        s->n_jump++;
    }
}

/* One central difference per element of leaf i; the perturbation actually
 * applied ((x+eps) - (x-eps) in floating point) is the denominator. The
 * five-point stencil adds the central difference D(2 eps) and extrapolates
 * (4 D(eps) - D(2 eps)) / 3 (Richardson): the eps^2 terms cancel. */
static void check_full(checker *c, int i, gradcheck_input_report *ir) {
    const double eps = c->opt->eps, l0 = c->L0;
    const bool five = c->opt->stencil == GRADCHECK_FIVE_POINT;
    double *x = c->leaf[i]->data;
    const double *a = c->analytic[i]->data;
    err_stats *s = &c->st[i];
    stats_init(s);
    for (int64_t k = 0; k < c->leaf[i]->size; k++) {
        const double x0 = x[k];
        x[k] = x0 + eps;
        const double hp = x[k] - x0, lp = eval_loss(c, i);
        x[k] = x0 - eps;
        const double hm = x0 - x[k], lm = eval_loss(c, i);
        double num = (lp - lm) / (hp + hm);
        if (five) {
            x[k] = x0 + 2 * eps;
            const double hp2 = x[k] - x0, lp2 = eval_loss(c, i);
            x[k] = x0 - 2 * eps;
            const double hm2 = x0 - x[k], lm2 = eval_loss(c, i);
            num = (4 * num - (lp2 - lm2) / (hp2 + hm2)) / 3;
        }
        x[k] = x0;
        stats_add(s, k, a[k], num, (l0 - lm) / hm, (lp - l0) / hp, c->opt, false);
    }
    if (s->worst_kink) recheck_kink(c, i, s);
    if (!c->rerun_in[i]) eval_loss(c, i); /* leaves the tape as recorded */
    stats_to_report(s, c->opt->atol, ir);
}

/* The failing input's worst element, and whether it sits on a kink. */
static void explain_input(checker *c, int i) {
    const err_stats *s = &c->st[i];
    msg_add(c, " input %d: %lld element%s failing", i, (long long)s->n_fail,
            s->n_fail == 1 ? "" : "s");
    if (s->n_kink) msg_add(c, " (%lld on a kink)", (long long)s->n_kink);
    if (s->n_jump) msg_add(c, " (%lld where the function jumps)", (long long)s->n_jump);
    if (s->worst < 0) {
        msg_add(c, ";");
        return;
    }
    msg_add(c, ", worst element %lld: analytic %.9g vs numeric %.9g", (long long)s->worst,
            s->worst_a, s->worst_n);
    if (s->worst_kink)
        msg_add(c, " (one-sided slopes %.6g left, %.6g right: the sample sits on a kink,"
                        " not necessarily a wrong vjp)",
                s->worst_left, s->worst_right);
    if (s->worst_jump)
        msg_add(c, " (one-sided slopes %.6g left, %.6g right: the function jumps"
                   " there: it is discontinuous, or a value it uses differs between the"
                   " recording and the replay, e.g. data edited in place)",
                s->worst_left, s->worst_right);
    msg_add(c, ";");
}

/* ------------------------------------------------------------ fast mode */
/* leaf->grad of every checked input after a backward from upstream u, zeroed first. */
static int backward_into_leaves(checker *c, const tensor *u) {
    for (int i = 0; i < c->n; i++)
        if (c->leaf[i]) tensor_zero_grad(c->leaf[i]);
    if (!c->out->requires_grad) return 0; /* nothing on the tape reaches it: all zero */
    return tensor_backward_with(c->out, u);
}

static double grad_dot(const tensor *leaf, const double *v) {
    return leaf->grad ? dot(leaf->grad->data, v, leaf->size) : 0.0;
}

/* Probe p compares <J_i^T u_p, v> with the central difference of <u_p, f>
 * along v, for every checked input i. Probe 0 uses the main u; the others
 * draw a new u (non-scalar outputs) and run backward once for all inputs. */
static int check_fast(checker *c, bool *fallback) {
    rng g;
    rng_seed(&g, c->opt->seed, STREAM_FAST);
    const double eps = c->opt->eps;
    int64_t maxn = 1;
    for (int i = 0; i < c->n; i++)
        if (c->checked[i] && c->leaf[i]->size > maxn) maxn = c->leaf[i]->size;
    double *v = tg_mem_alloc((size_t)maxn * sizeof *v), *x0 = tg_mem_alloc((size_t)maxn * sizeof *x0);
    tensor *u_main = c->u, *u_p = tensor_clone(c->u);
    err_stats *s = c->st;
    int rc = (!v || !x0 || !u_p) ? -1 : 0;
    for (int i = 0; i < c->n; i++) stats_init(&s[i]);
    for (int p = 0; p < c->opt->probes && rc == 0; p++) {
        /* a scalar output has u = 1 only: every probe reuses the analytic gradient */
        const bool new_u = p > 0 && u_p->size > 1;
        if (new_u) fill_upstream(u_p->data, u_p->size, &g);
        c->u = new_u ? u_p : u_main;
        if (new_u && backward_into_leaves(c, c->u)) {
            rc = -1;
            break;
        }
        for (int i = 0; i < c->n; i++) {
            if (!c->checked[i]) continue;
            double *x = c->leaf[i]->data;
            int64_t m = c->leaf[i]->size;
            /* v is a unit vector: the step along it is eps, as in the full
             * check, so a probe moves the graph no further than one element's
             * perturbation does and crosses no more kinks */
            double norm = 0;
            for (int64_t k = 0; k < m; k++) v[k] = rng_normal(&g), norm += v[k] * v[k];
            norm = sqrt(norm);
            for (int64_t k = 0; k < m; k++) v[k] /= norm;
            memcpy(x0, x, (size_t)m * sizeof *x);
            double a = new_u ? grad_dot(c->leaf[i], v) : dot(c->analytic[i]->data, v, m);
            double num = 0;
            for (int st = 1; st <= (c->opt->stencil == GRADCHECK_FIVE_POINT ? 2 : 1); st++) {
                for (int64_t k = 0; k < m; k++) x[k] = x0[k] + st * eps * v[k];
                double lp = eval_loss(c, i);
                for (int64_t k = 0; k < m; k++) x[k] = x0[k] - st * eps * v[k];
                double lm = eval_loss(c, i);
                double d = (lp - lm) / (2 * st * eps);
                num = st == 1 ? d : (4 * num - d) / 3; /* Richardson, as in the full check */
            }
            memcpy(x, x0, (size_t)m * sizeof *x);
            if (!c->rerun_in[i]) eval_loss(c, i);
            stats_add(&s[i], p, a, num, NAN, NAN, c->opt, false);
            if (c->analytic[i]) { /* vacuous needs the analytic gradient's size */
                const double *ga = new_u && c->leaf[i]->grad ? c->leaf[i]->grad->data
                                                             : c->analytic[i]->data;
                for (int64_t k = 0; k < m; k++) s[i].mag_a = fmax(s[i].mag_a, fabs(ga[k]));
            }
        }
    }
    c->u = u_main;
    for (int i = 0; i < c->n && rc == 0; i++) {
        if (!c->checked[i]) continue;
        gradcheck_input_report *ir = &c->rep->input[i];
        s[i].mag_n = 0; /* projections scale with |v|; zero-ness is judged on the analytic side */
        stats_to_report(&s[i], c->opt->atol, ir);
        ir->worst_index = -1; /* a probe has no element; the fallback finds one */
        fallback[i] = s[i].failed;
    }
    tensor_free(u_p);
    tg_mem_free(v);
    tg_mem_free(x0);
    return rc;
}

/* --------------------------------------------------------- localisation */
/* A private copy of a tensor's header and data in the arena, so a node can be
 * perturbed without touching the recorded tape. */
static tensor *arena_copy(const tensor *t) {
    if (!t) return NULL;
    tensor *r = tg_arena_alloc(sizeof *r);
    if (!r) return NULL;
    *r = *t;
    r->grad = NULL;
    size_t bytes = (size_t)t->size * tg_dtype_size(t->dtype);
    r->data = tg_arena_alloc(bytes);
    if (!r->data) return NULL;
    memcpy(r->data, t->data, bytes);
    return r;
}

/* Appends "conv2d [2,6,14,14] * [16,6,5,5]". */
static void describe_node(strbuf *b, const tape_node *nd) {
    sb_add(b, "%s", nd->op->name);
    for (int k = 0; k < nd->n_in; k++) {
        char sh[TENSOR_MAX_DIMS * 22 + 3];
        if (!nd->in[k]) continue;
        sb_add(b, "%s%s", k ? " * " : " ", tensor_shape_str(nd->in[k], sh, sizeof sh));
    }
}

typedef struct {
    tape_node n;           /* the clone: same op and params, private buffers */
    tensor *in[64];
    tensor *gin[64];
    tensor *u;
} node_clone;

static int clone_node(const tape_node *orig, node_clone *cl, rng *g) {
    if (orig->n_in > 64) return -1;
    cl->n = *orig;
    cl->n.in = cl->in;
    for (int k = 0; k < orig->n_in; k++) {
        cl->in[k] = arena_copy(orig->in[k]);
        if (orig->in[k] && !cl->in[k]) return -1;
    }
    for (int s = 0; s < NODE_MAX_SAVED; s++) {
        cl->n.saved[s] = arena_copy(orig->saved[s]);
        if (orig->saved[s] && !cl->n.saved[s]) return -1;
    }
    cl->n.out = arena_copy(orig->out);
    cl->u = tg_tensor_tape_new(DTYPE_F64, orig->out->ndim, orig->out->shape);
    if (!cl->n.out || !cl->u || orig->out->dtype != DTYPE_F64) return -1;
    fill_upstream(cl->u->data, cl->u->size, g);
    cl->n.out->grad = cl->u;
    for (int k = 0; k < orig->n_in; k++) {
        const tensor *t = orig->in[k];
        bool wants = t && t->dtype == DTYPE_F64 && t->requires_grad &&
                     !(orig->op->no_grad_inputs & (1u << k));
        cl->gin[k] = wants ? tg_tensor_tape_zeros(DTYPE_F64, t->ndim, t->shape) : NULL;
        if (wants && !cl->gin[k]) return -1;
    }
    cl->n.op->forward(&cl->n);
    tg_vjp_call(cl->n.op, &cl->n, cl->gin);
    return 0;
}

static double node_loss(checker *c, node_clone *cl) {
    c->evals++;
    cl->n.op->forward(&cl->n);
    return dot(cl->u->data, cl->n.out->data, cl->n.out->size);
}

/* Input k of the clone: probes along random v (cheap), or every element,
 * where failing elements on a kink of the node's own sample are excused. */
static void node_check_input(checker *c, node_clone *cl, int k, bool full, rng *g, err_stats *s) {
    const double eps = c->opt->eps;
    double *x = cl->in[k]->data;
    const double *ga = cl->gin[k]->data;
    int64_t m = cl->in[k]->size;
    stats_init(s);
    if (full) {
        const double l0 = node_loss(c, cl);
        for (int64_t e = 0; e < m; e++) {
            const double x0 = x[e];
            x[e] = x0 + eps;
            const double hp = x[e] - x0, lp = node_loss(c, cl);
            x[e] = x0 - eps;
            const double hm = x0 - x[e], lm = node_loss(c, cl);
            x[e] = x0;
            stats_add(s, e, ga[e], (lp - lm) / (hp + hm), (l0 - lm) / hm, (lp - l0) / hp, c->opt,
                      true);
        }
        return;
    }
    double *x0 = tg_arena_alloc((size_t)m * sizeof *x0), *v = tg_arena_alloc((size_t)m * sizeof *v);
    if (!x0 || !v) return;
    memcpy(x0, x, (size_t)m * sizeof *x);
    for (int p = 0; p < c->opt->probes; p++) {
        for (int64_t e = 0; e < m; e++) v[e] = rng_normal(g);
        for (int64_t e = 0; e < m; e++) x[e] = x0[e] + eps * v[e];
        double lp = node_loss(c, cl);
        for (int64_t e = 0; e < m; e++) x[e] = x0[e] - eps * v[e];
        double lm = node_loss(c, cl);
        memcpy(x, x0, (size_t)m * sizeof *x);
        stats_add(s, -1, dot(ga, v, m), (lp - lm) / (2 * eps), NAN, NAN, c->opt, false);
    }
}

/* Checks node j's vjp at its recorded inputs; on disagreement fills the
 * localisation fields and returns true. A probe failure is confirmed element
 * by element (which also finds the element); *full_done says whether every
 * element was checked. */
static bool node_is_bad(checker *c, int64_t j, bool full, rng *g, bool *full_done) {
    tape_node *nd = tg_tape_node_at(j);
    node_clone cl;
    *full_done = full;
    if (clone_node(nd, &cl, g)) return false;
    for (int k = 0; k < nd->n_in; k++) {
        if (!cl.gin[k]) continue;
        err_stats s;
        node_check_input(c, &cl, k, full, g, &s);
        if (!s.failed) continue;
        if (!full) {
            node_check_input(c, &cl, k, true, g, &s);
            *full_done = true;
        }
        c->kinks_excused += s.n_kink;
        if (!s.failed) continue;
        gradcheck_report *r = c->rep;
        r->localized = true;
        r->bad_node = (int)j;
        strbuf desc = {0};
        describe_node(&desc, nd);
        r->bad_node_desc = desc.s;
        sb_add(&c->loc,
               " localised: node %lld: %s: the vjp of input %d disagrees with central"
               " differences of its forward; worst element %lld: analytic %.9g vs numeric %.9g.",
               (long long)j, desc.s ? desc.s : "?", k, (long long)s.worst, s.worst_a, s.worst_n);
        return true;
    }
    return false;
}

/* The first node in tape order whose vjp disagrees with its own numerical
 * Jacobian: probes first (cheap), then every element of the nodes not yet
 * checked element by element when no probe fails. */
static void localize(checker *c) {
    rng g;
    rng_seed(&g, c->opt->seed, STREAM_LOCALIZE);
    int64_t last = c->out->node;
    unsigned char *live = tg_mem_calloc((size_t)(last + 1));
    if (!live) return;
    mark_live(c, live);
    /* live[j]: 1 = to check, 2 = every element already checked */
    for (int pass = 0; pass < 2 && !c->rep->localized; pass++) {
        for (int64_t j = 0; j <= last && !c->rep->localized; j++) {
            bool full_done = false;
            if (live[j] == 1 && !node_is_bad(c, j, pass == 1, &g, &full_done) && full_done)
                live[j] = 2;
        }
    }
    bool off_tape = false;
    for (int i = 0; i < c->n; i++) off_tape |= c->rep->input[i].off_tape;
    if (!c->rep->localized && off_tape)
        sb_add(&c->loc, " localisation: every node's vjp agrees with its own forward; the"
                        " disagreement comes from the dependence off the tape named below.");
    else if (!c->rep->localized)
        sb_add(&c->loc, " localisation: every node's vjp agrees with its own forward; the"
                        " disagreement comes from outside the tape (a forward that is not pure,"
                        " a value computed or edited off the tape, or a kink).");
    tg_mem_free(live);
}

/* ------------------------------------------------------------ the driver */
static int check_args(gradcheck_fn fn, tensor *const *inputs, int n, const gradcheck_options *o,
                      gradcheck_report *report) {
    if (!fn || !report || (n > 0 && !inputs)) {
        tg_error_set("gradcheck: %s is NULL", !fn ? "fn" : !report ? "report" : "inputs");
        return -1;
    }
    if (n < 0 || n > GRADCHECK_MAX_INPUTS) {
        tg_error_set("gradcheck: %d inputs (at most %d)", n, GRADCHECK_MAX_INPUTS);
        return -1;
    }
    if (!(o->eps > 0) || !(o->atol >= 0) || !(o->rtol >= 0) || (o->fast && o->probes < 1)) {
        tg_error_set("gradcheck: bad options: eps %g (> 0), atol %g and rtol %g (>= 0), probes %d"
                  " (>= 1 in fast mode)",
                  o->eps, o->atol, o->rtol, o->probes);
        return -1;
    }
    if ((unsigned)o->replay > GRADCHECK_REPLAY_NEVER || (unsigned)o->stencil > GRADCHECK_FIVE_POINT) {
        tg_error_set("gradcheck: bad options: replay %d (AUTO, ALWAYS or NEVER), stencil %d (CENTRAL"
                  " or FIVE_POINT)",
                  (int)o->replay, (int)o->stencil);
        return -1;
    }
    return 0;
}

/* Float64 copies of the inputs (or, in place, the float64 inputs
 * themselves); int64 inputs are passed through untouched. */
static int make_leaves(checker *c, tensor *const *inputs, bool in_place) {
    uint32_t mask = c->opt->check_mask ? c->opt->check_mask : UINT32_MAX;
    for (int i = 0; i < c->n; i++) {
        tensor *t = inputs[i];
        if (!t || t->dtype == DTYPE_I64) {
            c->leaf[i] = inputs[i];
            continue;
        }
        if (in_place && (t->dtype != DTYPE_F64 || t->tape_owned)) {
            tg_error_set("gradcheck: input %d is a %s%s tensor; a check in place needs user-owned"
                      " float64 leaves",
                      i, t->tape_owned ? "tape-owned " : "", tg_dtype_name(t->dtype));
            return -1;
        }
        c->leaf[i] = in_place ? t : tensor_to_dtype(t, DTYPE_F64);
        if (!c->leaf[i]) return -1;
        c->leaf[i]->name = t->name;
        c->checked[i] = (mask >> i) & 1;
        c->leaf[i]->requires_grad = c->checked[i];
    }
    return 0;
}

static void checker_free(checker *c, tensor *const *inputs) {
    for (int i = 0; i < c->n; i++) {
        if (c->leaf[i] != inputs[i]) tensor_free(c->leaf[i]);
        tensor_free(c->analytic[i]);
        tg_mem_free(c->plan[i]);
    }
    tg_mem_free(c->live);
    tensor_free(c->u);
    tensor_free(c->recorded);
    tg_mem_free(c->loc.s);
    tg_mem_free(c->notes.s);
    tape_reset(); /* no node may keep pointing at the freed leaves */
}

/* Backward from u into the checked leaves, twice: the analytic gradients, and
 * a bit-for-bit comparison that catches a non-deterministic vjp. */
static int analytic_gradients(checker *c) {
    if (backward_into_leaves(c, c->u)) return -1;
    for (int i = 0; i < c->n; i++) {
        if (!c->checked[i]) continue;
        c->analytic[i] = c->leaf[i]->grad ? tensor_clone(c->leaf[i]->grad)
                                          : tensor_zeros(DTYPE_F64, c->leaf[i]->ndim,
                                                         c->leaf[i]->shape);
        if (!c->analytic[i]) return -1;
    }
    if (backward_into_leaves(c, c->u)) return -1;
    for (int i = 0; i < c->n; i++) {
        if (!c->checked[i] || !c->leaf[i]->grad) continue;
        if (memcmp(c->leaf[i]->grad->data, c->analytic[i]->data,
                   (size_t)c->leaf[i]->size * sizeof(double)) != 0) {
            c->rep->passed = false;
            msg_add(c, " backward is not deterministic: the gradient of input %d differs"
                            " between two runs;", i);
        }
    }
    return 0;
}

static int record(checker *c) {
    tape_reset();
    c->out = c->fn(c->leaf, c->n, c->ctx);
    if (!c->out) {
        if (!tg_error_pending()) tg_error_set("gradcheck: fn returned NULL");
        return -1;
    }
    if (c->out->dtype != DTYPE_F64) {
        tg_error_set("gradcheck: fn returned a %s output from float64 inputs; the output must be"
                  " float64", tg_dtype_name(c->out->dtype));
        return -1;
    }
    c->u = tensor_new(DTYPE_F64, c->out->ndim, c->out->shape);
    if (!c->u) return -1;
    rng g;
    rng_seed(&g, c->opt->seed, STREAM_UPSTREAM);
    if (c->u->size == 1)
        ((double *)c->u->data)[0] = 1.0;
    else
        fill_upstream(c->u->data, c->u->size, &g);
    c->L0 = dot(c->u->data, c->out->data, c->out->size);
    c->rerun = producer(c->out) == NULL;
    c->recorded = tensor_clone(c->out);
    c->n_rec = tg_tape_node_count();
    c->fn_calls = 1;
    return c->recorded ? 0 : -1;
}

/* Replay is exact only when every forward is pure. After the last restore the
 * output must equal the recording bit for bit; when it does not, the first
 * node (tape order) whose forward gives a new output when run again on its
 * restored inputs is named. */
static void verify_replay(checker *c) {
    size_t bytes = (size_t)c->out->size * sizeof(double);
    if (memcmp(c->out->data, c->recorded->data, bytes) == 0) return;
    c->rep->passed = false;
    msg_add(c, " replay is not faithful: with the inputs restored the output differs from"
                    " the recording, so the numeric gradients cannot be trusted");
    for (int64_t j = 0; j <= c->out->node; j++) {
        tape_node *nd = tg_tape_node_at(j);
        tensor *before = tensor_clone(nd->out);
        if (!before) break;
        nd->op->forward(nd);
        bool same = memcmp(before->data, nd->out->data,
                           (size_t)before->size * tg_dtype_size(before->dtype)) == 0;
        tensor_free(before);
        if (!same) {
            msg_add(c, "; node %lld (", (long long)j);
            describe_node(&c->notes, nd);
            msg_add(c, ") gives a new output each time its forward runs: that forward is not"
                       " pure");
            break;
        }
        if (j == c->out->node)
            msg_add(c, "; every forward is pure, so a value on the tape was changed after it"
                       " was recorded (an op output edited in place?)%s",
                    c->opt->replay == GRADCHECK_REPLAY_ALWAYS
                        ? "; opt.replay = GRADCHECK_REPLAY_AUTO finds where"
                        : "");
    }
    msg_add(c, ";");
}

/* ------------------------------------------------- replay verification */
/* Replay and a re-run of fn compute the same kernels on the same values, so
 * they agree to the bit unless fn depends on something the tape does not
 * hold; the tolerance only absorbs rounding. NaN agrees with NaN. */
static bool close_enough(double a, double b) {
    if (a == b || (isnan(a) && isnan(b))) return true;
    return fabs(a - b) <= 1e-14 * (fabs(a) + fabs(b));
}

/* The first element where a and b differ: -1 when they agree, -2 when their
 * dtypes or shapes differ (or one is missing). */
static int64_t first_difference(const tensor *a, const tensor *b) {
    if (!a || !b) return a == b ? -1 : -2;
    if (a->dtype != b->dtype || !tensor_same_shape(a, b)) return -2;
    for (int64_t e = 0; e < a->size; e++)
        if (!close_enough(tensor_get(a, e), tensor_get(b, e))) return e;
    return -1;
}

/* The tensors a node's forward may write: its output and saved tensors. */
static tensor *node_slot(const tape_node *nd, int s) { return s == 0 ? nd->out : nd->saved[s - 1]; }
#define NODE_SLOTS (1 + NODE_MAX_SAVED)

/* Copies of every live node's output and saved tensors (arena), so that a
 * probe's replay is undone exactly: a replay recomputes, while a copy brings
 * back what was recorded even when fn edited it after the op ran. */
static int take_snapshot(checker *c) {
    const int64_t last = c->out->node;
    c->snap = tg_arena_alloc((size_t)(last + 1) * NODE_SLOTS * sizeof *c->snap);
    if (!c->snap) return -1;
    for (int64_t j = 0; j <= last; j++) {
        const tape_node *nd = tg_tape_node_at(j);
        for (int s = 0; s < NODE_SLOTS; s++) {
            const tensor *t = node_slot(nd, s);
            void **slot = &c->snap[j * NODE_SLOTS + s];
            *slot = NULL;
            if (!c->live[j] || !t) continue;
            size_t bytes = (size_t)t->size * tg_dtype_size(t->dtype);
            if (!(*slot = tg_arena_alloc(bytes))) return -1;
            memcpy(*slot, t->data, bytes);
        }
    }
    return 0;
}

static void restore_snapshot(checker *c, int i) {
    for (int64_t k = 0; k < c->plan_len[i]; k++) {
        const int64_t j = c->plan[i][k];
        const tape_node *nd = tg_tape_node_at(j);
        for (int s = 0; s < NODE_SLOTS; s++) {
            tensor *t = node_slot(nd, s);
            if (t && c->snap[j * NODE_SLOTS + s])
                memcpy(t->data, c->snap[j * NODE_SLOTS + s], (size_t)t->size * tg_dtype_size(t->dtype));
        }
    }
}

/* Runs a node's forward twice and reports whether both runs agree; the
 * node's output and saved tensors are left as they were. */
static bool forward_is_pure(tape_node *nd) {
    void *keep[NODE_SLOTS] = {0}, *first = NULL;
    size_t bytes[NODE_SLOTS] = {0};
    bool ok = true, pure = true;
    for (int s = 0; s < NODE_SLOTS && ok; s++) {
        const tensor *t = node_slot(nd, s);
        if (!t) continue;
        bytes[s] = (size_t)t->size * tg_dtype_size(t->dtype);
        ok = (keep[s] = tg_mem_alloc(bytes[s])) != NULL;
        if (ok) memcpy(keep[s], t->data, bytes[s]);
    }
    if (ok && (first = tg_mem_alloc(bytes[0]))) {
        nd->op->forward(nd);
        memcpy(first, nd->out->data, bytes[0]);
        nd->op->forward(nd);
        pure = memcmp(first, nd->out->data, bytes[0]) == 0;
    }
    for (int s = 0; s < NODE_SLOTS; s++) {
        if (keep[s]) memcpy(node_slot(nd, s)->data, keep[s], bytes[s]);
        tg_mem_free(keep[s]);
    }
    tg_mem_free(first);
    return pure;
}

typedef enum { DIV_NONE, DIV_GRAPH, DIV_INPUT, DIV_PARAM, DIV_SAVED, DIV_OUTPUT } div_kind;
typedef struct {
    div_kind kind;
    int64_t node;   /* recorded position */
    int k;          /* input or saved slot */
    int64_t elem;
    double rec, re; /* the element in the recorded (or replayed) node and in the re-run's */
} divergence;

static divergence diverged(div_kind kind, int64_t j, int k, int64_t e, const tensor *a,
                           const tensor *b) {
    divergence d = {kind, j, k, e, NAN, NAN};
    if (e >= 0) d.rec = tensor_get(a, e), d.re = tensor_get(b, e);
    return d;
}

/* Walks the recorded nodes the output depends on, in tape order, against the
 * re-run's nodes (recorded node j against node base + j) and returns the
 * first difference: where a value the tape does not hold enters. */
static divergence find_divergence(const checker *c, int64_t base) {
    const int64_t n_re = tg_tape_node_count() - base;
    for (int64_t j = 0; j < c->n_rec; j++) {
        if (c->live && (j > c->out->node || !c->live[j])) continue;
        if (j >= n_re) return diverged(DIV_GRAPH, j, 0, -1, NULL, NULL);
        const tape_node *a = tg_tape_node_at(j), *b = tg_tape_node_at(base + j);
        if (a->op != b->op || a->n_in != b->n_in) return diverged(DIV_GRAPH, j, 0, -1, NULL, NULL);
        for (int k = 0; k < a->n_in; k++) {
            int64_t e = first_difference(a->in[k], b->in[k]);
            if (e == -2) return diverged(DIV_GRAPH, j, k, -1, NULL, NULL);
            if (e >= 0) return diverged(DIV_INPUT, j, k, e, a->in[k], b->in[k]);
        }
        if (memcmp(a->ip, b->ip, sizeof a->ip) || memcmp(a->fp, b->fp, sizeof a->fp))
            return diverged(DIV_PARAM, j, 0, -1, NULL, NULL);
        for (int s = 0; s < NODE_MAX_SAVED; s++) {
            int64_t e = first_difference(a->saved[s], b->saved[s]);
            if (e != -1) return diverged(DIV_SAVED, j, s, e, a->saved[s], b->saved[s]);
        }
        int64_t e = first_difference(a->out, b->out);
        if (e != -1) return diverged(DIV_OUTPUT, j, 0, e, a->out, b->out);
    }
    return diverged(DIV_NONE, -1, 0, -1, NULL, NULL);
}

/* "node 3 (mul [4] * [4]), input 1: ..." - where the value enters and what
 * kind of value it is. */
static void describe_divergence(checker *c, const divergence *d) {
    if (d->kind == DIV_NONE) {
        msg_add(c, "no recorded node differs: the difference enters after the last node (fn"
                   " edited or replaced its output off the tape)");
        return;
    }
    tape_node *nd = tg_tape_node_at(d->node);
    msg_add(c, "node %lld (", (long long)d->node);
    describe_node(&c->notes, nd);
    msg_add(c, ")");
    const tensor *t = d->kind == DIV_INPUT ? nd->in[d->k] : NULL;
    switch (d->kind) {
    case DIV_GRAPH:
        msg_add(c, ": from there on the re-run records other ops or shapes: fn's control flow"
                   " depends on the input's values");
        return;
    case DIV_INPUT:
        msg_add(c, ", input %d", d->k);
        if (!t->tape_owned)
            msg_add(c, ", a tensor made off the tape (tensor_from_data, tensor_full,"
                       " tensor_clone, ...) from values that depend on the input");
        else if (!producer(t))
            msg_add(c, ", the output of an op that was not recorded (run in a no-grad scope or"
                       " on values detached from the inputs) that depends on the input");
        break;
    case DIV_PARAM:
        msg_add(c, ": a scalar or integer parameter of the op differs: a number read from the"
                   " input's values (tensor_item, tensor_get) was passed to the op");
        return;
    case DIV_SAVED:
        msg_add(c, ": a tensor the op saved differs (saved %d): a random mask or other state"
                   " drawn anew by each call of fn",
                d->k);
        break;
    case DIV_OUTPUT:
        if (forward_is_pure(nd))
            msg_add(c, ": its inputs and parameters agree but its output does not: fn changed"
                       " the op's output after the op computed it (data edited in place)");
        else
            msg_add(c, ": its forward gives a new output each time it runs: it is not pure");
        break;
    case DIV_NONE: break;
    }
    if (d->elem >= 0)
        msg_add(c, " (element %lld: %.9g on the tape vs %.9g in the re-run)", (long long)d->elem,
                d->rec, d->re);
}

/* fn called again at the recorded point must return the recording: if it
 * does not, differences of fn measure noise, and neither replay nor re-runs
 * can be verified. Its own verdict (a failure). */
static void check_deterministic(checker *c) {
    const int64_t base = tg_tape_node_count();
    tensor *o = rerun_begin(c);
    if (c->fatal) return;
    const int64_t e = o ? first_difference(c->recorded, o) : -1;
    if (e != -1) {
        gradcheck_report *r = c->rep;
        r->passed = false;
        r->fn_nondeterministic = true;
        msg_add(c, " fn is not deterministic: called again at the same inputs it returns a"
                   " different output");
        if (e >= 0)
            msg_add(c, " (element %lld: %.17g, then %.17g)", (long long)e,
                    tensor_get(c->recorded, e), tensor_get(o, e));
        divergence d = find_divergence(c, base);
        msg_add(c, "; the first difference is at ");
        describe_divergence(c, &d);
        msg_add(c, ". Differences of fn's values cannot check its gradient: draw its random"
                   " numbers from a generator seeded inside fn, or set opt.replay ="
                   " GRADCHECK_REPLAY_ALWAYS to check the tape as recorded;");
    }
    rerun_end(c);
}

/* Probes input i: along random unit directions v (signs alternating), the
 * output replayed at x + h v must equal the output of fn called at x + h v.
 * h = max(eps, 1e-3): both sides evaluate the same point, so kinks do not
 * matter, and a larger step shows a weak off-tape dependence more clearly.
 * On disagreement input i switches to re-runs and the report says where the
 * value the tape does not hold enters. */
static int verify_input(checker *c, int i, rng *g) {
    double *x = c->leaf[i]->data;
    const int64_t m = c->leaf[i]->size;
    const double h = fmax(c->opt->eps, 1e-3);
    double *x0 = tg_mem_alloc((size_t)m * sizeof *x0), *v = tg_mem_alloc((size_t)m * sizeof *v);
    if (!x0 || !v) {
        tg_mem_free(x0);
        tg_mem_free(v);
        return -1;
    }
    memcpy(x0, x, (size_t)m * sizeof *x);
    const int probes = c->opt->probes > 0 ? c->opt->probes : 1;
    for (int p = 0; p < probes && !c->rerun_in[i]; p++) {
        double norm = 0, sign = (p & 1) ? -1 : 1;
        for (int64_t k = 0; k < m; k++) v[k] = rng_normal(g), norm += v[k] * v[k];
        norm = sqrt(norm);
        for (int64_t k = 0; k < m; k++) x[k] = x0[k] + sign * h * v[k] / norm;
        for (int64_t k = 0; k < c->plan_len[i]; k++) {
            tape_node *nd = tg_tape_node_at(c->plan[i][k]);
            nd->op->forward(nd);
        }
        const int64_t base = tg_tape_node_count();
        tensor *o = rerun_begin(c);
        if (c->fatal) break;
        const int64_t e = o ? first_difference(c->out, o) : -1;
        if (e != -1) {
            gradcheck_input_report *ir = &c->rep->input[i];
            divergence d = find_divergence(c, base);
            c->rerun_in[i] = ir->off_tape = true;
            ir->off_tape_node = (int)d.node;
            msg_add(c, " input %d reaches the output off the tape: at a perturbed point (probe"
                       " %d) replaying the tape gives",
                    i, p);
            if (e >= 0)
                msg_add(c, " output element %lld = %.17g but calling fn gives %.17g",
                        (long long)e, tensor_get(c->out, e), tensor_get(o, e));
            else
                msg_add(c, " an output of another shape than calling fn");
            msg_add(c, "; the value the tape does not hold first enters at ");
            describe_divergence(c, &d);
            msg_add(c, "; input %d is checked by calling fn for every perturbation;", i);
        }
        rerun_end(c);
        memcpy(x, x0, (size_t)m * sizeof *x);
        restore_snapshot(c, i);
    }
    tg_mem_free(x0);
    tg_mem_free(v);
    return 0;
}

/* Decides, per checked input, replay or re-runs (opt.replay). */
static int choose_evaluation(checker *c) {
    const gradcheck_replay mode = c->opt->replay;
    for (int i = 0; i < c->n; i++) {
        c->rep->input[i].off_tape_node = -1;
        c->rerun_in[i] = c->checked[i] && (c->rerun || mode == GRADCHECK_REPLAY_NEVER);
    }
    if (mode != GRADCHECK_REPLAY_ALWAYS) check_deterministic(c);
    if (mode == GRADCHECK_REPLAY_AUTO && !c->rerun && !c->rep->fn_nondeterministic) {
        if (take_snapshot(c)) return -1;
        rng g;
        rng_seed(&g, c->opt->seed, STREAM_REPLAY);
        for (int i = 0; i < c->n; i++)
            if (c->checked[i] && verify_input(c, i, &g)) return -1;
    }
    if (c->fatal) return -1;
    for (int i = 0; i < c->n; i++) c->rep->input[i].rerun = c->rerun_in[i];
    return 0;
}

static int run_checks(checker *c) {
    gradcheck_report *r = c->rep;
    bool fallback[GRADCHECK_MAX_INPUTS] = {false}, any = false;
    for (int i = 0; i < c->n; i++) {
        r->input[i].checked = c->checked[i];
        r->input[i].worst_index = -1;
        fallback[i] = c->checked[i];
        any |= c->checked[i];
    }
    if (!any) {
        r->passed = false;
        msg_add(c, " nothing to check: no float input is selected.");
        return 0;
    }
    if (!c->rerun && build_plans(c)) return -1;
    if (choose_evaluation(c)) return -1;
    if (c->opt->fast && (check_fast(c, fallback) || c->fatal)) return -1;
    bool probes_failed = false;
    for (int i = 0; i < c->n; i++) {
        if (!fallback[i]) continue;
        if (c->opt->fast) {
            msg_add(c, "%s%d", probes_failed ? ", " : " fast-mode probe failed for input ", i);
            probes_failed = true;
        }
        check_full(c, i, &r->input[i]);
    }
    if (c->fatal) return -1;
    if (probes_failed) msg_add(c, " (full check follows);");
    bool value_failure = false, off_kink = false;
    for (int i = 0; i < c->n; i++) {
        gradcheck_input_report *ir = &r->input[i];
        if (!ir->checked) continue;
        r->max_abs_err = fmax(r->max_abs_err, ir->max_abs_err);
        r->max_rel_err = fmax(r->max_rel_err, ir->max_rel_err);
        if (ir->passed) continue;
        r->passed = false;
        if (ir->vacuous) {
            msg_add(c, " input %d is VACUOUS: analytic and numeric gradients are both ~0"
                       " everywhere, so the check proves nothing;", i);
        } else {
            value_failure = true;
            off_kink |= c->st[i].n_fail > c->st[i].n_kink;
            explain_input(c, i);
        }
    }
    bool replayed = false;
    for (int i = 0; i < c->n; i++) replayed |= c->checked[i] && !c->rerun_in[i];
    if (replayed) verify_replay(c);
    /* failures that are all kink crossings blame the sample, not a vjp */
    if (value_failure && !off_kink)
        msg_add(c, " every failing element sits on a kink: move the sample away from it"
                   " (another seed); no vjp is suspected.");
    else if (value_failure && c->opt->localize && !c->rerun)
        localize(c);
    return 0;
}

/* The message: verdict and settings, localisation, failing inputs, notes.
 * Returns -1 when memory ran out. */
static int assemble_message(checker *c) {
    gradcheck_report *r = c->rep;
    const gradcheck_options *o = c->opt;
    strbuf m = {0};
    sb_add(&m, "%s (seed %llu, eps %g, atol %g, rtol %g%s).", r->passed ? "passed" : "FAILED",
           (unsigned long long)o->seed, o->eps, o->atol, o->rtol, o->fast ? ", fast mode" : "");
    if (c->loc.s) sb_add(&m, "%s", c->loc.s);
    if (c->notes.s) sb_add(&m, "%s", c->notes.s);
    if (c->kinks_excused)
        sb_add(&m, " (localisation excused %lld node-level element%s on a kink of a node's own"
                   " sample.)",
               (long long)c->kinks_excused, c->kinks_excused == 1 ? "" : "s");
    r->message = m.s;
    return m.failed || c->loc.failed || c->notes.failed ? -1 : 0;
}

static int gradcheck_impl(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
                          const gradcheck_options *opt, gradcheck_report *report, bool in_place) {
    gradcheck_options defaults = gradcheck_defaults();
    const gradcheck_options *o = opt ? opt : &defaults;
    if (report) memset(report, 0, sizeof *report);
    if (check_args(fn, inputs, n, o, report)) return -1;
    double t0 = now_seconds();
    report->n_inputs = n;
    report->passed = true;
    report->bad_node = -1;
    checker c = {.opt = o, .fn = fn, .ctx = ctx, .n = n, .rep = report};
    int rc = make_leaves(&c, inputs, in_place) || record(&c) || analytic_gradients(&c) || run_checks(&c) ||
                     assemble_message(&c)
                 ? -1 : 0;
    report->evaluations = c.evals;
    report->fn_calls = c.fn_calls;
    checker_free(&c, inputs);
    if (rc) gradcheck_report_free(report);
    report->seconds = now_seconds() - t0;
    return rc;
}

int gradcheck(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
              const gradcheck_options *opt, gradcheck_report *report) {
    return gradcheck_impl(fn, ctx, inputs, n, opt, report, false);
}

int tg_gradcheck_in_place(gradcheck_fn fn, void *ctx, tensor *const *inputs, int n,
                       const gradcheck_options *opt, gradcheck_report *report) {
    return gradcheck_impl(fn, ctx, inputs, n, opt, report, true);
}

void gradcheck_report_free(gradcheck_report *r) {
    if (!r) return;
    tg_mem_free(r->message);
    tg_mem_free(r->bad_node_desc);
    r->message = r->bad_node_desc = NULL;
}

void gradcheck_report_print(FILE *f, const gradcheck_report *r) {
    if (!f || !r) return;
    fprintf(f, "gradcheck %s: max abs err %.3g, max rel err %.3g, %lld evaluations, %.3f s\n",
            r->passed ? "PASSED" : "FAILED", r->max_abs_err, r->max_rel_err,
            (long long)r->evaluations, r->seconds);
    for (int i = 0; i < r->n_inputs && i < GRADCHECK_MAX_INPUTS; i++) {
        const gradcheck_input_report *ir = &r->input[i];
        if (!ir->checked) {
            fprintf(f, "  input %d: not checked\n", i);
            continue;
        }
        fprintf(f, "  input %d: %s  max abs %.3g  max rel %.3g", i,
                ir->vacuous ? "VACUOUS" : ir->passed ? "ok" : "FAILED", ir->max_abs_err,
                ir->max_rel_err);
        if (ir->worst_index >= 0)
            fprintf(f, "  worst [%lld] analytic %.9g numeric %.9g", (long long)ir->worst_index,
                    ir->worst_analytic, ir->worst_numeric);
        fputc('\n', f);
    }
    if (r->localized) fprintf(f, "  first wrong node: %d: %s\n", r->bad_node, r->bad_node_desc);
    if (r->message) fprintf(f, "  %s\n", r->message);
}
