/* test_recompute.c - gradient checkpointing (tape_checkpoint): a segment
 * kept as one node and recomputed during backward gives the plain run's
 * gradients bit for bit (an MLP with a tied weight and a skip across
 * segments, dropout inside, LeNet-5's conv blocks, transformer blocks with
 * attention dropout, nested scopes), holds less memory, goes through
 * tensor_grad, create_graph, gradcheck and gradgradcheck, and fails cleanly:
 * bad arguments, a failing fn, fn failing or drawing differently when
 * recomputed, stale intermediates, allocation failures during backward. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"

/* a and b hold the same bytes: the same dtype, shape and bits. */
static void assert_bits(const tensor *a, const tensor *b, const char *what, int i) {
    if (!a && !b) return; /* a leaf the loss does not read, in both runs */
    ck_assert_msg(a && b, "%s %d: missing gradient", what, i);
    ck_assert_int_eq(a->dtype, b->dtype);
    ck_assert_msg(tensor_same_shape(a, b), "%s %d: shapes differ", what, i);
    size_t bytes = (size_t)a->size * (a->dtype == DTYPE_F32 ? 4 : 8);
    ck_assert_msg(memcmp(a->data, b->data, bytes) == 0, "%s %d: gradients differ in bits", what,
                  i);
}

/* Runs f plain and then checkpointed from zeroed gradients (prepare, when
 * given, first: it resets what the step draws from), and asserts that the
 * losses and the gradients of the n leaves agree bit for bit. */
typedef tensor *(*loss_fn)(void *ctx, bool ckpt);
static void assert_same_grads(loss_fn f, void (*prepare)(void *), void *ctx, tensor *const *leaves,
                              int n) {
    tensor *plain[64];
    double plain_loss = 0;
    ck_assert_int_le(n, 64);
    for (int run = 0; run < 2; run++) {
        tape_reset();
        for (int i = 0; i < n; i++) tensor_zero_grad(leaves[i]);
        if (prepare) prepare(ctx);
        tensor *loss = f(ctx, run == 1);
        ck_assert_msg(loss != NULL, "%s", tapegrad_error());
        ck_assert_msg(tensor_backward(loss) == 0, "%s", tapegrad_error());
        if (run == 0) {
            plain_loss = tensor_item(loss);
            for (int i = 0; i < n; i++) plain[i] = tensor_clone(leaves[i]->grad);
        } else {
            ck_assert_msg(tensor_item(loss) == plain_loss, "loss %.17g vs plain %.17g",
                          tensor_item(loss), plain_loss);
            for (int i = 0; i < n; i++) assert_bits(leaves[i]->grad, plain[i], "leaf", i);
        }
    }
    for (int i = 0; i < n; i++) tensor_free(plain[i]);
    tape_reset();
}

/* ------------------------------------------------------------------ MLP
 * h_{k+1} = tanh(h_k W_k^T + b_k) + h_k / 2 (h_k read twice inside the
 * segment), W_2 = W_0 (a weight tied across segments), and the loss
 * sum((h_L + h_2)^2) reads h_2 after the segments too: the gradients of
 * h_2 and W_0 are sums whose order the checkpointed run must keep. */
#define MLP_L 4
#define MLP_D 6
typedef struct seg_ctx {
    tensor *w, *b;
    double p;       /* dropout rate (0: none) */
    rng *g;
    int calls;
    tensor *kept;   /* an intermediate kept by the test of staleness */
} seg_ctx;

typedef struct mlp {
    seg_ctx seg[MLP_L];
    tensor *w[MLP_L], *b[MLP_L], *x;
    rng g, g_start;
    bool nested;
} mlp;

static tensor *mlp_seg(void *ctx, tensor *const *in, int n) {
    seg_ctx *c = ctx;
    ck_assert_int_eq(n, 1);
    c->calls++;
    tensor *h = tensor_tanh(tensor_linear(in[0], c->w, c->b));
    if (c->p > 0) h = tensor_dropout(h, c->p, true, c->g);
    return tensor_add(h, tensor_mul_scalar(in[0], 0.5));
}

/* Two layers as one segment, each of them a checkpoint (nesting). */
static tensor *mlp_pair(void *ctx, tensor *const *in, int n) {
    seg_ctx *c = ctx; /* two consecutive segments */
    ck_assert_int_eq(n, 1);
    tensor *h = tape_checkpoint(mlp_seg, &c[0], in, 1);
    return tape_checkpoint(mlp_seg, &c[1], &h, 1);
}

static tensor *mlp_loss(void *ctx, bool ckpt) {
    mlp *m = ctx;
    tensor *h = m->x, *h1 = NULL;
    for (int k = 0; k < MLP_L; k++) {
        if (ckpt && m->nested && k % 2 == 0) {
            h = tape_checkpoint(mlp_pair, &m->seg[k], &h, 1);
            k++;
        } else {
            h = ckpt ? tape_checkpoint(mlp_seg, &m->seg[k], &h, 1) : mlp_seg(&m->seg[k], &h, 1);
        }
        if (k == 1) h1 = h;
    }
    tensor *s = tensor_add(h, h1);
    return tensor_sum_all(tensor_mul(s, s));
}

static void mlp_prepare(void *ctx) {
    mlp *m = ctx;
    m->g = m->g_start;
}

static void mlp_init(mlp *m, dtype dt, double p) {
    memset(m, 0, sizeof *m);
    rng g;
    rng_seed(&g, 42, 7);
    for (int k = 0; k < MLP_L; k++) {
        m->w[k] = k == 2 ? m->w[0] : tensor_randn(&g, dt, SHAPE(MLP_D, MLP_D), 0, 0.6);
        m->b[k] = tensor_randn(&g, dt, SHAPE(MLP_D), 0, 0.3);
        if (k != 2) tensor_set_requires_grad(m->w[k], true);
        tensor_set_requires_grad(m->b[k], true);
        m->seg[k] = (seg_ctx){.w = m->w[k], .b = m->b[k], .p = p, .g = &m->g};
    }
    m->x = tensor_randn(&g, dt, SHAPE(5, MLP_D), 0, 1);
    tensor_set_requires_grad(m->x, true);
    rng_seed(&m->g_start, 9, 3);
    m->g = m->g_start;
}

static void mlp_free(mlp *m) {
    for (int k = 0; k < MLP_L; k++) {
        if (k != 2) tensor_free(m->w[k]);
        tensor_free(m->b[k]);
    }
    tensor_free(m->x);
}

/* the distinct leaves: x, W_0, W_1, W_3, b_0..b_3 */
static int mlp_leaves(mlp *m, tensor **l) {
    int n = 0;
    l[n++] = m->x;
    for (int k = 0; k < MLP_L; k++) {
        if (k != 2) l[n++] = m->w[k];
        l[n++] = m->b[k];
    }
    return n;
}

START_TEST(test_checkpoint_mlp_gradients_bit_identical) {
    for (int dt = 0; dt < 2; dt++) {
        mlp m;
        mlp_init(&m, dt ? DTYPE_F64 : DTYPE_F32, 0);
        tensor *l[16];
        int n = mlp_leaves(&m, l);
        assert_same_grads(mlp_loss, NULL, &m, l, n);
        /* one node per segment, each segment run twice: once forward, once
         * recomputed */
        ck_assert_int_eq(m.seg[1].calls, 3);
        mlp_free(&m);
    }
}
END_TEST

START_TEST(test_checkpoint_records_one_node_and_drops_the_segment) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tape_reset();
    tensor *h = mlp_seg(&m.seg[0], &m.x, 1);
    ck_assert_ptr_nonnull(h);
    const int64_t plain_nodes = tape_size();
    tape_reset();
    tensor *y = tape_checkpoint(mlp_seg, &m.seg[0], &m.x, 1);
    ck_assert_msg(y != NULL, "%s", tapegrad_error());
    ck_assert_int_eq(plain_nodes, 4); /* linear, tanh, mul_scalar, add */
    ck_assert_int_eq(tape_size(), 1);
    ck_assert(y->requires_grad);
    /* the values are the plain call's */
    tensor *kept = tensor_clone(y);
    tape_reset();
    tensor *p = mlp_seg(&m.seg[0], &m.x, 1);
    assert_bits(kept, p, "value", 0);
    tensor_free(kept);
    /* the output's gradient buffer is given back after backward */
    tape_reset();
    y = tape_checkpoint(mlp_seg, &m.seg[0], &m.x, 1);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_ptr_null(y->grad);
    ck_assert_ptr_nonnull(m.x->grad);
    tape_reset();
    mlp_free(&m);
}
END_TEST

START_TEST(test_checkpoint_nested_bit_identical) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    m.nested = true;
    tensor *l[16];
    int n = mlp_leaves(&m, l);
    assert_same_grads(mlp_loss, NULL, &m, l, n);
    mlp_free(&m);
}
END_TEST

START_TEST(test_checkpoint_dropout_same_mask_and_generator) {
    for (int nested = 0; nested < 2; nested++) {
        mlp m;
        mlp_init(&m, DTYPE_F32, 0.4);
        m.nested = nested;
        tensor *l[16];
        int n = mlp_leaves(&m, l);
        /* plain: the generator's state after the step */
        tape_reset();
        tensor *loss = mlp_loss(&m, false);
        ck_assert_int_eq(tensor_backward(loss), 0);
        const rng after_plain = m.g;
        ck_assert(after_plain.state != m.g_start.state);
        assert_same_grads(mlp_loss, mlp_prepare, &m, l, n);
        /* the recomputations put the generator back: the next draws are
         * the plain run's */
        ck_assert(m.g.state == after_plain.state && m.g.inc == after_plain.inc);
        mlp_free(&m);
    }
}
END_TEST

/* A generator seeded inside fn, on fn's stack, is fn's own business: the
 * same draws each call, nothing to rewind. */
static tensor *seg_local_rng(void *ctx, tensor *const *in, int n) {
    (void)ctx, (void)n;
    rng local;
    rng_seed(&local, 5, 1);
    return tensor_dropout(tensor_tanh(in[0]), 0.5, true, &local);
}
static tensor *local_rng_loss(void *ctx, bool ckpt) {
    tensor *x = ctx;
    tensor *y = ckpt ? tape_checkpoint(seg_local_rng, NULL, &x, 1) : seg_local_rng(NULL, &x, 1);
    return tensor_sum_all(tensor_mul(y, y));
}
START_TEST(test_checkpoint_generator_local_to_fn) {
    rng g;
    rng_seed(&g, 3, 3);
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(4, 8), 0, 1);
    tensor_set_requires_grad(x, true);
    assert_same_grads(local_rng_loss, NULL, x, &x, 1);
    tensor_free(x);
}
END_TEST

/* -------------------------------------------------------------- LeNet-5
 * Each conv block, conv -> relu -> max_pool 2, as one checkpoint; the
 * plain graph is nn_lenet5_loss's own (asserted). */
typedef struct lenet_ctx {
    nn_lenet5 *net;
    tensor *x, *labels;
} lenet_ctx;

static tensor *conv_block(void *ctx, tensor *const *in, int n) {
    (void)n;
    const nn_conv2d *c = ctx;
    nn_pool2d pool = nn_pool2d_make(2, 0, 0);
    return nn_max_pool2d_forward(&pool, tensor_relu(nn_conv2d_forward(c, in[0])));
}

static tensor *lenet_loss(void *ctx, bool ckpt) {
    lenet_ctx *l = ctx;
    nn_lenet5 *net = l->net;
    tensor *h = l->x;
    h = ckpt ? tape_checkpoint(conv_block, &net->c1, &h, 1) : conv_block(&net->c1, &h, 1);
    h = ckpt ? tape_checkpoint(conv_block, &net->c2, &h, 1) : conv_block(&net->c2, &h, 1);
    h = tensor_flatten(h, 1, -1);
    h = tensor_relu(nn_linear_forward(&net->f1, h));
    h = tensor_relu(nn_linear_forward(&net->f2, h));
    h = nn_linear_forward(&net->f3, h);
    return tensor_cross_entropy(h, l->labels, NULL, 0, REDUCTION_MEAN);
}

START_TEST(test_checkpoint_lenet5_blocks_bit_identical) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 11);
    ck_assert_ptr_nonnull(net);
    rng g;
    rng_seed(&g, 8, 1);
    lenet_ctx l = {net, tensor_randn(&g, DTYPE_F32, SHAPE(3, 1, 28, 28), 0, 1),
                   tensor_from_doubles(DTYPE_I64, SHAPE(3), (double[]){4, 0, 7})};
    tensor_set_requires_grad(l.x, true);
    /* the graph is LeNet-5's */
    tape_reset();
    double model = tensor_item(nn_lenet5_loss(net, l.x, l.labels));
    tape_reset();
    ck_assert(tensor_item(lenet_loss(&l, false)) == model);
    tensor *leaves[NN_LENET5_NPARAMS + 1];
    int n = 0;
    for (int i = 0; i < net->model->n_params; i++) leaves[n++] = net->model->params[i];
    leaves[n++] = l.x;
    assert_same_grads(lenet_loss, NULL, &l, leaves, n);
    tensor_free(l.x);
    tensor_free(l.labels);
    nn_lenet5_free(net);
}
END_TEST

/* ---------------------------------------------------------- transformer
 * Two pre-LN blocks with attention dropout in train mode, each a
 * checkpoint: the model's generator is rewound for the recomputation. */
typedef struct gpt_ctx {
    nn_model *m;
    nn_transformer_block blk[2];
    tensor *x;
    rng start;
} gpt_ctx;

static tensor *block_seg(void *ctx, tensor *const *in, int n) {
    (void)n;
    return nn_transformer_block_forward(ctx, in[0], NULL);
}

static tensor *gpt_loss(void *ctx, bool ckpt) {
    gpt_ctx *c = ctx;
    tensor *h = c->x;
    for (int b = 0; b < 2; b++)
        h = ckpt ? tape_checkpoint(block_seg, &c->blk[b], &h, 1) : block_seg(&c->blk[b], &h, 1);
    return tensor_mean_all(tensor_mul(h, h));
}

static void gpt_prepare(void *ctx) {
    gpt_ctx *c = ctx;
    c->m->rng = c->start;
}

START_TEST(test_checkpoint_transformer_blocks_bit_identical) {
    gpt_ctx c;
    c.m = nn_model_new(DTYPE_F32, 21);
    ck_assert_ptr_nonnull(c.m);
    ck_assert_int_eq(nn_transformer_block_init(&c.blk[0], c.m, "h.0", 16, 2, true, 0.25), 0);
    ck_assert_int_eq(nn_transformer_block_init(&c.blk[1], c.m, "h.1", 16, 2, true, 0.25), 0);
    rng g;
    rng_seed(&g, 4, 4);
    c.x = tensor_randn(&g, DTYPE_F32, SHAPE(2, 5, 16), 0, 1);
    tensor_set_requires_grad(c.x, true);
    c.start = c.m->rng;
    tensor *leaves[64];
    int n = 0;
    for (int i = 0; i < c.m->n_params; i++) leaves[n++] = c.m->params[i];
    leaves[n++] = c.x;
    /* plain run's generator after the step */
    tape_reset();
    ck_assert_int_eq(tensor_backward(gpt_loss(&c, false)), 0);
    rng after = c.m->rng;
    ck_assert(after.state != c.start.state); /* the dropout drew */
    assert_same_grads(gpt_loss, gpt_prepare, &c, leaves, n);
    ck_assert(c.m->rng.state == after.state);
    tensor_free(c.x);
    nn_model_free(c.m);
}
END_TEST

/* --------------------------------------------------------- backward twice */
START_TEST(test_checkpoint_backward_twice_accumulates_as_plain) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tensor *l[16];
    int n = mlp_leaves(&m, l);
    tensor *plain[16];
    for (int run = 0; run < 2; run++) {
        tape_reset();
        for (int i = 0; i < n; i++) tensor_zero_grad(l[i]);
        tensor *loss = mlp_loss(&m, run == 1);
        ck_assert_int_eq(tensor_backward(loss), 0);
        ck_assert_msg(tensor_backward(loss) == 0, "%s", tapegrad_error());
        for (int i = 0; i < n; i++) {
            if (run == 0) plain[i] = tensor_clone(l[i]->grad);
            else assert_bits(l[i]->grad, plain[i], "twice", i);
        }
    }
    for (int i = 0; i < n; i++) tensor_free(plain[i]);
    tape_reset();
    mlp_free(&m);
}
END_TEST

/* ---------------------------------------------------- tensor_grad */
START_TEST(test_checkpoint_tensor_grad_matches_and_leaves_grad_alone) {
    mlp m;
    mlp_init(&m, DTYPE_F64, 0);
    tensor *wrt[2] = {m.x, m.w[0]}, *plain[2], *ck[2];
    tape_reset();
    ck_assert_int_eq(tensor_grad(mlp_loss(&m, false), NULL, wrt, 2, false, plain), 0);
    tensor *p0 = tensor_clone(plain[0]), *p1 = tensor_clone(plain[1]);
    tape_reset();
    ck_assert_msg(tensor_grad(mlp_loss(&m, true), NULL, wrt, 2, false, ck) == 0, "%s",
                  tapegrad_error());
    assert_bits(ck[0], p0, "tensor_grad", 0);
    assert_bits(ck[1], p1, "tensor_grad", 1);
    ck_assert_ptr_null(m.x->grad);
    ck_assert_ptr_null(m.w[0]->grad);
    ck_assert_ptr_null(m.b[1]->grad);
    /* create_graph: the same gradient, itself differentiable (the segment is
     * recomputed on the tape); the Hessian-vector products agree too */
    tape_reset();
    ck_assert_msg(tensor_grad(mlp_loss(&m, true), NULL, wrt, 2, true, ck) == 0, "%s",
                  tapegrad_error());
    ck_assert(ck[0]->requires_grad);
    for (int64_t i = 0; i < p0->size; i++) ck_assert_close(tensor_get(ck[0], i), tensor_get(p0, i), 1e-12);
    for (int64_t i = 0; i < p1->size; i++) ck_assert_close(tensor_get(ck[1], i), tensor_get(p1, i), 1e-12);
    rng g;
    rng_seed(&g, 77, 1);
    tensor *v[2] = {tensor_randn(&g, DTYPE_F64, SHAPE(5, MLP_D), 0, 1),
                    tensor_randn(&g, DTYPE_F64, SHAPE(MLP_D, MLP_D), 0, 1)};
    tensor *hp[2], *hc[2];
    tape_reset();
    ck_assert_int_eq(tensor_hvp(mlp_loss(&m, false), wrt, 2, v, hp), 0);
    tensor *h0 = tensor_clone(hp[0]), *h1 = tensor_clone(hp[1]);
    tape_reset();
    ck_assert_msg(tensor_hvp(mlp_loss(&m, true), wrt, 2, v, hc) == 0, "%s", tapegrad_error());
    for (int64_t i = 0; i < h0->size; i++) ck_assert_close(tensor_get(hc[0], i), tensor_get(h0, i), 1e-10);
    for (int64_t i = 0; i < h1->size; i++) ck_assert_close(tensor_get(hc[1], i), tensor_get(h1, i), 1e-10);
    tape_reset();
    tensor_free(p0), tensor_free(p1), tensor_free(h0), tensor_free(h1);
    tensor_free(v[0]), tensor_free(v[1]);
    mlp_free(&m);
}
END_TEST

/* ------------------------------------------------------------- checker
 * fn for gradcheck: inputs x, W, b; the segment reads W and b through ctx
 * (captured), x as its input. ctx outlives the calls: static. */
static seg_ctx gc_seg;
static const op_def *gc_op; /* a custom op inside the segment, or NULL */
static tensor *gc_inner(void *ctx, tensor *const *in, int n) {
    (void)n;
    seg_ctx *c = ctx;
    tensor *h = tensor_tanh(tensor_linear(in[0], c->w, c->b));
    if (gc_op) h = tensor_apply(gc_op, &h, 1, NULL);
    return tensor_mul(h, in[0]);
}
static tensor *gc_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    gc_seg.w = in[1];
    gc_seg.b = in[2];
    tensor *y = tape_checkpoint(gc_inner, &gc_seg, in, 1);
    return tensor_sum_all(tensor_mul(y, y));
}

/* cube: y = x^3, dy = 3 x^2 g; the broken one forgets the 3 */
static void cube_fwd(tensor *const *in, int n, const double *p, tensor *out) {
    (void)n, (void)p;
    for (int64_t i = 0; i < out->size; i++) tensor_set(out, i, pow(tensor_get(in[0], i), 3));
}
static void cube_vjp_wrong(tensor *const *in, int n, const double *p, const tensor *out,
                           const tensor *g, tensor *const *gin) {
    (void)n, (void)p, (void)out;
    for (int64_t i = 0; i < g->size; i++) {
        double x = tensor_get(in[0], i);
        tensor_set(gin[0], i, tensor_get(gin[0], i) + x * x * tensor_get(g, i));
    }
}
static int cube_sample(int k, rng *g, op_case *c) {
    if (k >= 1) return 1;
    c->n_inputs = 1;
    c->inputs[0] = tensor_rand(g, DTYPE_F64, SHAPE(3), -1, 1);
    snprintf(c->name, sizeof c->name, "x[3]");
    return 0;
}

START_TEST(test_checkpoint_gradcheck_passes_and_catches_a_wrong_vjp_inside) {
    rng g;
    rng_seed(&g, 31, 2);
    tensor *in[3] = {tensor_randn(&g, DTYPE_F64, SHAPE(3, 4), 0, 1),
                     tensor_randn(&g, DTYPE_F64, SHAPE(4, 4), 0, 0.5),
                     tensor_randn(&g, DTYPE_F64, SHAPE(4), 0, 0.5)};
    gradcheck_report r;
    gc_op = NULL;
    ck_assert_int_eq(gradcheck(gc_fn, NULL, in, 3, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < 3; i++) ck_assert_msg(!r.input[i].off_tape, "input %d off tape", i);
    gradcheck_report_free(&r);
    /* every perturbation by calling fn again */
    gradcheck_options o = gradcheck_defaults();
    o.replay = GRADCHECK_REPLAY_NEVER;
    ck_assert_int_eq(gradcheck(gc_fn, NULL, in, 3, &o, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    /* second order through the checkpoint */
    ck_assert_int_eq(gradgradcheck(gc_fn, NULL, in, 3, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    /* a wrong vjp inside the segment fails the check, and the localisation
     * names the checkpoint that holds it */
    gc_op = op_register(&(op_spec){.name = "cube_wrong", .arity = 1, .forward = cube_fwd,
                                    .vjp = cube_vjp_wrong, .sample = cube_sample,
                                    .signature = "cube(x)", .formula_forward = "y = x^3",
                                    .formula_gradient = "dx = 3 x^2 g", .notes = ""});
    ck_assert_msg(gc_op != NULL, "%s", tapegrad_error());
    ck_assert_int_eq(gradcheck(gc_fn, NULL, in, 3, NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert(r.localized);
    ck_assert_msg(strncmp(r.bad_node_desc, "checkpoint", 10) == 0, "%s", r.bad_node_desc);
    gradcheck_report_free(&r);
    gc_op = NULL;
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
}
END_TEST

/* -------------------------------------------------------------- memory */
START_TEST(test_checkpoint_lowers_peak_tape_bytes) {
    rng g;
    rng_seed(&g, 1, 1);
    enum { L = 8, D = 64 };
    tensor *w[L], *b[L], *x = tensor_randn(&g, DTYPE_F32, SHAPE(32, D), 0, 1);
    seg_ctx c[L];
    for (int k = 0; k < L; k++) {
        w[k] = tensor_randn(&g, DTYPE_F32, SHAPE(D, D), 0, 0.1);
        b[k] = tensor_zeros(DTYPE_F32, SHAPE(D));
        tensor_set_requires_grad(w[k], true);
        tensor_set_requires_grad(b[k], true);
        c[k] = (seg_ctx){.w = w[k], .b = b[k]};
    }
    int64_t peak[2];
    for (int run = 0; run < 2; run++) {
        tape_reset();
        tensor *h = x;
        for (int k = 0; k < L; k++)
            h = run ? tape_checkpoint(mlp_seg, &c[k], &h, 1) : mlp_seg(&c[k], &h, 1);
        ck_assert_int_eq(tensor_backward(tensor_sum_all(h)), 0);
        peak[run] = tapegrad_tape_peak_bytes();
    }
    /* plain: 5 tensors of [32, 64] and their gradients per layer; the chain
     * of checkpoints: one output per layer, two gradients and one
     * recomputed layer at a time */
    ck_assert_msg(peak[1] * 10 < peak[0] * 4, "peak %lld checkpointed vs %lld plain",
                  (long long)peak[1], (long long)peak[0]);
    tape_reset();
    ck_assert_int_eq(tapegrad_tape_peak_bytes(), 0);
    for (int k = 0; k < L; k++) tensor_free(w[k]), tensor_free(b[k]);
    tensor_free(x);
}
END_TEST

/* --------------------------------------------------------- interplay */
START_TEST(test_checkpoint_in_no_grad_scope_is_a_plain_call) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tape_reset();
    tape_no_grad_begin();
    tensor *y = tape_checkpoint(mlp_seg, &m.seg[0], &m.x, 1);
    tape_no_grad_end();
    ck_assert_ptr_nonnull(y);
    ck_assert(!y->requires_grad);
    ck_assert_int_eq(tape_size(), 0);
    ck_assert_int_eq(m.seg[0].calls, 1);
    /* a segment whose result needs no gradient is a plain call too */
    tensor *c = tensor_ones(DTYPE_F32, SHAPE(2, MLP_D));
    seg_ctx k = {.w = tensor_ones(DTYPE_F32, SHAPE(MLP_D, MLP_D))};
    y = tape_checkpoint(mlp_seg, &k, &c, 1);
    ck_assert_ptr_nonnull(y);
    ck_assert(!y->requires_grad);
    ck_assert_int_eq(tape_size(), 0);
    ck_assert_close(tensor_get(y, 0), tanh(6.0) + 0.5, 1e-6);
    tensor_free(c);
    tensor_free(k.w);
    tape_reset();
    mlp_free(&m);
}
END_TEST

START_TEST(test_checkpoint_bad_arguments) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tape_reset();
    ck_assert_fails_with(tape_checkpoint(NULL, NULL, &m.x, 1),
                         "tape_checkpoint: fn is NULL; give the function that computes the segment");
    ck_assert_fails_with(tape_checkpoint(mlp_seg, &m.seg[0], &m.x, -1),
                         "tape_checkpoint: n = -1 inputs; give 0 or more");
    ck_assert_fails_with(tape_checkpoint(mlp_seg, &m.seg[0], NULL, 2),
                         "tape_checkpoint: inputs is NULL with n = 2; give an array of n tensors");
    tensor *in[2] = {m.x, NULL};
    ck_assert_fails_with(tape_checkpoint(mlp_seg, &m.seg[0], in, 2), "tape_checkpoint: input 1 is NULL");
    /* a NULL input while an error is pending propagates it */
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_relu(NULL));
    ck_assert_ptr_null(tape_checkpoint(mlp_seg, &m.seg[0], in + 1, 1));
    ck_assert_error_is("relu: input 0 is NULL");
    /* a stale input */
    tensor *old = tensor_relu(m.x);
    tape_reset();
    ck_assert_fails(tape_checkpoint(mlp_seg, &m.seg[0], &old, 1),
                    "tape_checkpoint: input 0 [5,6] is stale");
    ck_assert_int_eq(m.seg[0].calls, 0);
    ck_assert_int_eq(tape_size(), 0);
    mlp_free(&m);
}
END_TEST

static tensor *seg_fails(void *ctx, tensor *const *in, int n) {
    (void)n;
    seg_ctx *c = ctx;
    /* the first call (or, with p = 1, every call after the first) fails */
    bool fail = c->p == 1 ? ++c->calls > 1 : ++c->calls == 1;
    tensor *h = tensor_tanh(in[0]);
    return fail ? tensor_reshape(h, SHAPE(7)) : h;
}
static tensor *seg_returns_input(void *ctx, tensor *const *in, int n) {
    (void)ctx, (void)n;
    tensor_tanh(in[0]);
    return in[0];
}
static tensor *seg_null_quietly(void *ctx, tensor *const *in, int n) {
    (void)ctx, (void)n, (void)in;
    return NULL;
}
static tensor *seg_keeps(void *ctx, tensor *const *in, int n) {
    (void)n;
    seg_ctx *c = ctx;
    c->kept = tensor_tanh(in[0]);
    return tensor_mul(c->kept, c->kept);
}
static tensor *seg_resets(void *ctx, tensor *const *in, int n) {
    (void)ctx, (void)n;
    tensor *h = tensor_tanh(in[0]);
    tape_reset();
    return h;
}

START_TEST(test_checkpoint_fn_failure_leaves_the_tape_as_it_was) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tape_reset();
    tensor *before = tensor_relu(m.x);
    const int64_t nodes = tape_size();
    seg_ctx c = {0};
    ck_assert_fails_with(tape_checkpoint(seg_fails, &c, &before, 1),
                         "tape_checkpoint: fn failed: reshape: cannot view [5,6] (30 elements) as [7]");
    ck_assert_int_eq(tape_size(), nodes);
    ck_assert_fails_with(tape_checkpoint(seg_null_quietly, &c, &before, 1),
                         "tape_checkpoint: fn failed: fn returned NULL without an error");
    ck_assert_fails(tape_checkpoint(seg_returns_input, &c, &before, 1),
                    "a tensor it did not compute");
    ck_assert_int_eq(tape_size(), nodes);
    /* the tape goes on: a checkpoint and backward after the failures */
    tensor *y = tape_checkpoint(mlp_seg, &m.seg[0], &before, 1);
    ck_assert_msg(y != NULL, "%s", tapegrad_error());
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_ptr_nonnull(m.x->grad);
    /* fn resetting the tape is refused; the step is gone with it */
    tape_reset();
    ck_assert_fails(tape_checkpoint(seg_resets, &c, &m.x, 1), "fn called tape_reset()");
    ck_assert_int_eq(tape_size(), 0);
    tape_reset();
    mlp_free(&m);
}
END_TEST

START_TEST(test_checkpoint_intermediates_are_stale_after_the_call) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tape_reset();
    seg_ctx c = {0};
    tensor *y = tape_checkpoint(seg_keeps, &c, &m.x, 1);
    ck_assert_ptr_nonnull(y);
    ck_assert_fails(tensor_add(c.kept, y), "add: input 0 [5,6] is stale");
    /* and after a backward's recomputation, its own intermediates */
    tensor *first = c.kept;
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_ptr_ne(c.kept, NULL);
    ck_assert_fails(tensor_relu(c.kept), "is stale");
    ck_assert_fails(tensor_relu(first), "is stale");
    tape_reset();
    mlp_free(&m);
}
END_TEST

/* fn draws from a generator of its own choice: another one the second time */
typedef struct two_rngs {
    rng a, b;
    int calls;
} two_rngs;
static tensor *seg_switches_rng(void *ctx, tensor *const *in, int n) {
    (void)n;
    two_rngs *t = ctx;
    rng *g = t->calls++ == 0 ? &t->a : &t->b;
    return tensor_dropout(tensor_tanh(in[0]), 0.5, true, g);
}

START_TEST(test_checkpoint_errors_while_recomputing) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    /* fn fails when run again */
    tape_reset();
    seg_ctx c = {.p = 1};
    tensor *y = tape_checkpoint(seg_fails, &c, &m.x, 1);
    ck_assert_ptr_nonnull(y);
    tensor *loss = tensor_sum_all(tensor_mul_scalar(y, 2));
    ck_assert_int_eq(tensor_backward(loss), -1);
    ck_assert_error_is("tensor_backward: the vjp of checkpoint (tape position 0) failed: recomputing"
                       " the segment: fn failed: reshape: cannot view [5,6] (30 elements) as"
                       " [7]");
    ck_assert_int_eq(tape_size(), 3);
    /* the tape is intact: the checkpoint's own mistake aside, the tape goes on */
    c.calls = 0;
    c.p = 0; /* fails only its first call, which is over */
    tape_reset();
    /* draws from another generator when recomputed */
    two_rngs t;
    rng_seed(&t.a, 1, 1);
    rng_seed(&t.b, 2, 2);
    t.calls = 0;
    y = tape_checkpoint(seg_switches_rng, &t, &m.x, 1);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "drew random numbers differently"));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "the vjp of checkpoint"));
    tapegrad_error_clear();
    /* create_graph through it reports the same, naming the checkpoint */
    tensor *gx;
    t.calls = 0;
    tape_reset();
    y = tape_checkpoint(seg_switches_rng, &t, &m.x, 1);
    ck_assert_int_eq(tensor_grad(tensor_sum_all(y), NULL, &m.x, 1, true, &gx), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "checkpoint: recomputing the segment"));
    tapegrad_error_clear();
    tape_reset();
    mlp_free(&m);
}
END_TEST


/* ------------------------------------------------ fn misbehaving */
static tensor *seg_nests_forever(void *ctx, tensor *const *in, int n) {
    int *depth = ctx;
    if (++*depth > 100) return tensor_tanh(in[0]);
    return tape_checkpoint(seg_nests_forever, ctx, in, n);
}
/* the second call gives another shape */
static tensor *seg_changes_shape(void *ctx, tensor *const *in, int n) {
    (void)n;
    seg_ctx *c = ctx;
    tensor *h = tensor_tanh(in[0]);
    return c->calls++ == 0 ? h : tensor_sum(h, (int[]){0}, 1, false);
}
/* the second call reads another parameter */
static tensor *seg_changes_param(void *ctx, tensor *const *in, int n) {
    (void)n;
    seg_ctx *c = ctx;
    tensor *w = c->calls++ == 0 ? c->w : c->b;
    return tensor_linear(in[0], w, NULL);
}
/* draws from 17 generators */
static tensor *seg_many_rngs(void *ctx, tensor *const *in, int n) {
    (void)n;
    rng *g = ctx;
    tensor *h = in[0];
    for (int k = 0; k < 17; k++) h = tensor_dropout(h, 0.1, true, &g[k]);
    return h;
}
static tensor *seg_returns_kept(void *ctx, tensor *const *in, int n) {
    (void)in, (void)n;
    seg_ctx *c = ctx;
    return c->kept;
}

START_TEST(test_checkpoint_fn_misbehaving) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tape_reset();
    int depth = 0;
    ck_assert_fails(tape_checkpoint(seg_nests_forever, &depth, &m.x, 1),
                    "tape_checkpoint: checkpoints nested deeper than 64");
    ck_assert_int_eq(tape_size(), 0);
    /* another shape when recomputed */
    seg_ctx c = {0};
    tensor *y = tape_checkpoint(seg_changes_shape, &c, &m.x, 1);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), -1);
    ck_assert_error_is("tensor_backward: the vjp of checkpoint (tape position 0) failed: recomputing"
                       " the segment: fn gave float32 [6], the first run float32 [5,6]: fn must"
                       " compute the same graph from the same values each call");
    /* another parameter when recomputed */
    tape_reset();
    tensor *w2 = tensor_ones(DTYPE_F32, SHAPE(MLP_D, MLP_D));
    tensor_set_requires_grad(w2, true);
    c = (seg_ctx){.w = m.w[0], .b = w2};
    y = tape_checkpoint(seg_changes_param, &c, &m.x, 1);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), -1);
    ck_assert_error_is("tensor_backward: the vjp of checkpoint (tape position 0) failed: recomputing"
                       " the segment: linear reads [6,6], which requires grad and was not read by"
                       " the first run: fn must compute the same graph each call");
    tensor_free(w2);
    /* the checker's replay of a segment that fails when run again */
    tape_reset();
    c = (seg_ctx){.p = 1};
    y = tape_checkpoint(seg_fails, &c, &m.x, 1);
    ck_assert_ptr_nonnull(y);
    tape_node *nd = tg_tape_node_at(y->node);
    ck_assert_ptr_nonnull(nd);
    nd->op->forward(nd);
    ck_assert(isnan(tensor_get(y, 0)));
    ck_assert_ptr_nonnull(tapegrad_error());
    tapegrad_error_clear();
    c = (seg_ctx){.p = 1};
    y = tape_checkpoint(seg_changes_shape, &c, &m.x, 1);
    nd = tg_tape_node_at(y->node);
    nd->op->forward(nd);
    ck_assert(isnan(tensor_get(y, 0)));
    ck_assert_error_is("checkpoint: running the segment again: fn gave float32 [6], the first run"
                       " float32 [5,6]: fn must compute the same graph from the same values each"
                       " call");
    /* too many generators */
    rng g[17];
    for (int k = 0; k < 17; k++) rng_seed(&g[k], (uint64_t)k, 1);
    ck_assert_fails_with(tape_checkpoint(seg_many_rngs, g, &m.x, 1),
                         "tape_checkpoint: the segment draws from more than 16 generators");
    /* a stale result */
    c = (seg_ctx){.kept = tensor_relu(m.x)};
    tape_reset();
    ck_assert_fails_with(tape_checkpoint(seg_returns_kept, &c, &m.x, 1),
                         "tape_checkpoint: fn returned a stale tensor [5,6]");
    ck_assert_int_eq(tape_size(), 0);
    tape_reset();
    mlp_free(&m);
}
END_TEST


/* ------------------------------------------------------- several outputs
 * The segment gives a = tanh(x W^T + b) and c = a * x (a read inside too);
 * the loss reads both, a also through a product with x outside. */
static int seg_two(void *ctx, tensor *const *in, int n, tensor **out, int m) {
    seg_ctx *c = ctx;
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(m, 2);
    c->calls++;
    out[0] = tensor_tanh(tensor_linear(in[0], c->w, c->b));
    if (c->p > 0) out[0] = tensor_dropout(out[0], c->p, true, c->g);
    out[1] = tensor_mul(out[0], in[0]);
    return out[1] ? 0 : -1;
}
static tensor *two_loss(void *ctx, bool ckpt) {
    mlp *m = ctx;
    tensor *o[2];
    if (ckpt) ck_assert_msg(tape_checkpoint_multi(seg_two, &m->seg[0], &m->x, 1, o, 2) == 0, "%s",
                            tapegrad_error());
    else seg_two(&m->seg[0], &m->x, 1, o, 2);
    tensor *h = ckpt ? tape_checkpoint(mlp_seg, &m->seg[1], &o[1], 1) : mlp_seg(&m->seg[1], &o[1], 1);
    tensor *s = tensor_add(tensor_sum_all(tensor_mul(h, h)),
                           tensor_sum_all(tensor_mul(o[0], tensor_mul_scalar(m->x, 0.3))));
    return tensor_add(s, tensor_sum_all(o[1]));
}

START_TEST(test_checkpoint_multi_outputs_bit_identical) {
    for (int drop = 0; drop < 2; drop++) {
        mlp m;
        mlp_init(&m, DTYPE_F32, drop ? 0.3 : 0);
        tensor *l[16];
        int n = mlp_leaves(&m, l);
        assert_same_grads(two_loss, mlp_prepare, &m, l, n);
        /* the outputs have the segment's shapes, on the tape */
        tape_reset();
        tensor *o[2];
        ck_assert_int_eq(tape_checkpoint_multi(seg_two, &m.seg[0], &m.x, 1, o, 2), 0);
        ck_assert(tensor_same_shape(o[0], m.x) && tensor_same_shape(o[1], m.x));
        ck_assert(o[0]->requires_grad && o[1]->requires_grad);
        mlp_free(&m);
    }
    tape_reset();
}
END_TEST

static tensor *gc_two_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    gc_seg.w = in[1];
    gc_seg.b = in[2];
    gc_seg.p = 0;
    tensor *o[2];
    if (tape_checkpoint_multi(seg_two, &gc_seg, in, 1, o, 2)) return NULL;
    return tensor_add(tensor_sum_all(tensor_mul(o[1], o[1])), tensor_sum_all(tensor_exp(o[0])));
}

START_TEST(test_checkpoint_multi_gradcheck_and_second_order) {
    rng g;
    rng_seed(&g, 32, 2);
    tensor *in[3] = {tensor_randn(&g, DTYPE_F64, SHAPE(3, 4), 0, 1),
                     tensor_randn(&g, DTYPE_F64, SHAPE(4, 4), 0, 0.5),
                     tensor_randn(&g, DTYPE_F64, SHAPE(4), 0, 0.5)};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(gc_two_fn, NULL, in, 3, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    ck_assert_int_eq(gradgradcheck(gc_two_fn, NULL, in, 3, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
}
END_TEST

static int seg_two_same(void *ctx, tensor *const *in, int n, tensor **out, int m) {
    (void)ctx, (void)n, (void)m;
    out[0] = out[1] = tensor_tanh(in[0]);
    return 0;
}
static int seg_two_int(void *ctx, tensor *const *in, int n, tensor **out, int m) {
    (void)ctx, (void)n, (void)m;
    out[0] = tensor_tanh(in[0]);
    out[1] = tensor_argmax(out[0], 1, false);
    return 0;
}
static int seg_two_hole(void *ctx, tensor *const *in, int n, tensor **out, int m) {
    (void)ctx, (void)n, (void)m;
    out[0] = tensor_tanh(in[0]);
    return 0;
}
static int seg_two_fails(void *ctx, tensor *const *in, int n, tensor **out, int m) {
    (void)ctx, (void)n, (void)m;
    out[0] = tensor_reshape(in[0], SHAPE(7));
    return -1;
}

START_TEST(test_checkpoint_multi_bad_arguments) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0);
    tape_reset();
    tensor *o[2] = {m.x, m.x};
    ck_assert_int_eq(tape_checkpoint_multi(NULL, NULL, &m.x, 1, o, 2), -1);
    ck_assert_error_is("tape_checkpoint_multi: fn is NULL; give the function that computes the"
                       " segment");
    ck_assert_int_eq(tape_checkpoint_multi(seg_two, &m.seg[0], &m.x, 1, NULL, 2), -1);
    ck_assert_error_is("tape_checkpoint_multi: outputs NULL with m = 2; give an array of m tensor"
                       " pointers, m in 1..64");
    ck_assert_int_eq(tape_checkpoint_multi(seg_two, &m.seg[0], &m.x, 1, o, 0), -1);
    ck_assert_error_is("tape_checkpoint_multi: outputs given with m = 0; give an array of m tensor"
                       " pointers, m in 1..64");
    ck_assert_int_eq(tape_checkpoint_multi(seg_two_same, NULL, &m.x, 1, o, 2), -1);
    ck_assert_error_is("tape_checkpoint_multi: outputs 0 and 1 are the same tensor "
                       "[5,6]; each output must be a tensor of its own");
    ck_assert_ptr_null(o[0]);
    ck_assert_int_eq(tape_checkpoint_multi(seg_two_int, NULL, &m.x, 1, o, 2), -1);
    ck_assert_error_is("tape_checkpoint_multi: output 1: fn returned a int64 tensor [5]; the outputs"
                       " must share one float dtype (output 0 is float32)");
    ck_assert_int_eq(tape_checkpoint_multi(seg_two_hole, NULL, &m.x, 1, o, 2), -1);
    ck_assert_error_is("tape_checkpoint_multi: fn failed: fn returned 0 but left output 1 NULL");
    ck_assert_int_eq(tape_checkpoint_multi(seg_two_fails, NULL, &m.x, 1, o, 2), -1);
    ck_assert_error_is("tape_checkpoint_multi: fn failed: reshape: cannot view [5,6] (30 elements)"
                       " as [7]");
    ck_assert_int_eq(tape_size(), 0);
    /* in a no-grad scope, a plain call */
    tape_no_grad_begin();
    ck_assert_int_eq(tape_checkpoint_multi(seg_two, &m.seg[0], &m.x, 1, o, 2), 0);
    tape_no_grad_end();
    ck_assert(!o[0]->requires_grad && !o[1]->requires_grad);
    ck_assert_int_eq(tape_size(), 0);
    tape_reset();
    mlp_free(&m);
}
END_TEST


/* A training loop through checkpoints allocates nothing once warm: the
 * gradient blocks are kept for the next steps, the segments' tapes freed. */
START_TEST(test_checkpoint_memory_flat_over_steps) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0.2);
    m.nested = true;
    tensor *l[16];
    int n = mlp_leaves(&m, l);
    int64_t warm = 0;
    for (int i = 0; i < 600; i++) {
        tape_reset();
        if (i == 100) warm = tapegrad_allocated_bytes();
        for (int k = 0; k < n; k++) tensor_zero_grad(l[k]);
        ck_assert_int_eq(tensor_backward(mlp_loss(&m, true)), 0);
    }
    tape_reset();
    const int64_t after = tapegrad_allocated_bytes();
    ck_assert_msg(after == warm, "allocated bytes changed from %lld to %lld over 500 steps",
                  (long long)warm, (long long)after);
    tape_release();
    mlp_free(&m);
}
END_TEST

/* Every allocation of a backward through checkpoints made to fail in turn:
 * an error each time, never a crash (ASan and LeakSanitizer watch). */
START_TEST(test_checkpoint_allocation_failures_during_backward) {
    mlp m;
    mlp_init(&m, DTYPE_F32, 0.3);
    m.nested = true;
    int failures = 0;
    for (int64_t k = 0; k < 400; k++) {
        tape_reset();
        tensor *loss = mlp_loss(&m, true);
        ck_assert_ptr_nonnull(loss);
        tg_mem_fail_after(k);
        int rc = tensor_backward(loss);
        tg_mem_fail_after(-1);
        if (rc == 0) break;
        ck_assert_msg(tapegrad_error() != NULL, "backward failed without a message");
        ck_assert_msg(strstr(tapegrad_error(), "out of memory"), "%s", tapegrad_error());
        tapegrad_error_clear();
        failures++;
    }
    ck_assert_int_gt(failures, 5);
    tape_reset();
    mlp_free(&m);
}
END_TEST

static Suite *recompute_suite(void) {
    Suite *s = suite_create("recompute");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_checkpoint_mlp_gradients_bit_identical);
    tcase_add_test(tc, test_checkpoint_records_one_node_and_drops_the_segment);
    tcase_add_test(tc, test_checkpoint_nested_bit_identical);
    tcase_add_test(tc, test_checkpoint_dropout_same_mask_and_generator);
    tcase_add_test(tc, test_checkpoint_generator_local_to_fn);
    tcase_add_test(tc, test_checkpoint_lenet5_blocks_bit_identical);
    tcase_add_test(tc, test_checkpoint_transformer_blocks_bit_identical);
    tcase_add_test(tc, test_checkpoint_backward_twice_accumulates_as_plain);
    tcase_add_test(tc, test_checkpoint_tensor_grad_matches_and_leaves_grad_alone);
    tcase_add_test(tc, test_checkpoint_gradcheck_passes_and_catches_a_wrong_vjp_inside);
    tcase_add_test(tc, test_checkpoint_lowers_peak_tape_bytes);
    tcase_add_test(tc, test_checkpoint_in_no_grad_scope_is_a_plain_call);
    tcase_add_test(tc, test_checkpoint_bad_arguments);
    tcase_add_test(tc, test_checkpoint_fn_failure_leaves_the_tape_as_it_was);
    tcase_add_test(tc, test_checkpoint_intermediates_are_stale_after_the_call);
    tcase_add_test(tc, test_checkpoint_errors_while_recomputing);
    tcase_add_test(tc, test_checkpoint_fn_misbehaving);
    tcase_add_test(tc, test_checkpoint_multi_outputs_bit_identical);
    tcase_add_test(tc, test_checkpoint_multi_gradcheck_and_second_order);
    tcase_add_test(tc, test_checkpoint_multi_bad_arguments);
    tcase_add_test(tc, test_checkpoint_memory_flat_over_steps);
    tcase_add_test(tc, test_checkpoint_allocation_failures_during_backward);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(recompute_suite)
