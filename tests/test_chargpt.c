/* test_chargpt.c - the GPT of examples/chargpt checked whole: the float64
 * check of every parameter through the whole graph (token and position
 * embeddings, two causal pre-LN blocks, the final LayerNorm, the head tied to
 * the token embedding, the mean cross-entropy of the next byte) on a batch of
 * 2 windows, and its localisation of a deliberately broken attention vjp;
 * gradient flow to every parameter; the tied weight's gradient as the sum of
 * its two uses; a checkpoint under the peer's (chargpt_torch.py) names; the
 * example itself on a small text, its output and its refusals.
 *
 * The model is built here as the example builds it (the example uses the
 * public header only and has no library part to share); the checkpoint test
 * loads the example's file strictly into this model, so the two cannot drift
 * apart in names or shapes. Windows of 8 bytes keep the check quick (the
 * position embedding keeps its 64 rows; the model does not depend on T
 * otherwise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../autograd/internal.h"
#include "check_main.h"

enum { VOCAB = 256, CTX = 64, LAYERS = 2, W = 8 /* window of the checks */ };

typedef struct gpt {
    nn_model *m;
    nn_embedding tok;
    nn_pos_embedding pos;
    nn_transformer_block blocks[LAYERS];
    nn_layernorm ln;
    tensor *head;
    int64_t d;
    tensor *targets;        /* the next bytes [B, T] of the checks' batch */
} gpt;

/* The example's GPT at width d (128 in the example) with `heads` heads; the
 * head is tok.weight itself (tied) or a copy of it registered under the same
 * name (untied). */
static void gpt_init(gpt *g, dtype dt, int64_t d, int64_t heads, bool tied, uint64_t seed) {
    g->d = d;
    g->m = nn_model_new(dt, seed);
    ck_assert_ptr_nonnull(g->m);
    ck_assert_int_eq(nn_embedding_init(&g->tok, g->m, "tok", VOCAB, d), 0);
    ck_assert_int_eq(nn_pos_embedding_init(&g->pos, g->m, "pos", CTX, d, false), 0);
    for (int b = 0; b < LAYERS; b++) {
        char name[NN_NAME_MAX];
        snprintf(name, sizeof name, "blocks.%d", b);
        ck_assert_int_eq(nn_transformer_block_init(&g->blocks[b], g->m, name, d, heads, true, 0), 0);
        tensor *mask = tensor_zeros(DTYPE_I64, SHAPE(CTX, CTX));
        for (int i = 0; i < CTX; i++)
            for (int j = 0; j <= i; j++) ((int64_t *)mask->data)[i * CTX + j] = 1;
        snprintf(name, sizeof name, "blocks.%d.mask", b);
        ck_assert_ptr_nonnull(nn_model_add_buffer(g->m, name, mask));
    }
    ck_assert_int_eq(nn_layernorm_init(&g->ln, g->m, "ln", 1, (int64_t[]){d}), 0);
    g->head = nn_model_add_param(g->m, "head.weight", tied ? g->tok.weight : tensor_clone(g->tok.weight));
    ck_assert_ptr_nonnull(g->head);
}

/* Every parameter drawn anew, uniform in [-0.6, 0.6]: LayerNorm's ones and
 * zeros would hide a wrong gradient of its weight or bias. */
static void randomise(gpt *g, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 4);
    int n;
    tensor *const *p = nn_model_parameters(g->m, &n);
    for (int i = 0; i < n; i++) nn_init_uniform(p[i], &r, -0.6, 0.6);
}

/* batch[0]: bytes int64 [B, T]; the next bytes [B, T] in g->targets (the
 * model, 29 names and 2 masks, and x already make gradcheck_model's 32
 * tensors). L = mean over B x T of -log softmax(ln(blocks(tok[x] + pos)) head^T)[y] */
static tensor *gpt_loss(tensor *const *batch, int n, void *ctx) {
    (void)n;
    const gpt *g = ctx;
    tensor *x = nn_pos_embedding_forward(&g->pos, nn_embedding_forward(&g->tok, batch[0]));
    for (int b = 0; b < LAYERS; b++) x = nn_transformer_block_forward(&g->blocks[b], x, NULL);
    tensor *logits = tensor_linear(nn_layernorm_forward(&g->ln, x), g->head, NULL);
    return tensor_cross_entropy(tensor_reshape(logits, SHAPE(-1, VOCAB)),
                                tensor_reshape(g->targets, SHAPE(-1)), NULL, 0, REDUCTION_MEAN);
}

/* Two windows of W bytes of English and the bytes after them. */
static void windows(tensor **batch) {
    static const char text[] = "Q: Why did the chicken cross the road?\nA: To get to the other side.";
    int64_t at[2] = {3, 41};
    batch[0] = tensor_zeros(DTYPE_I64, SHAPE(2, W));
    batch[1] = tensor_zeros(DTYPE_I64, SHAPE(2, W));
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < W; t++) {
            ((int64_t *)batch[0]->data)[b * W + t] = (unsigned char)text[at[b] + t];
            ((int64_t *)batch[1]->data)[b * W + t] = (unsigned char)text[at[b] + t + 1];
        }
}

/* The peer's state_dict names, parameters in registration order here. */
static const char *const peer_params[] = {
    "tok.weight", "pos.weight",
    "blocks.0.ln1.weight", "blocks.0.ln1.bias", "blocks.0.ln2.weight", "blocks.0.ln2.bias",
    "blocks.0.qkv.weight", "blocks.0.qkv.bias", "blocks.0.proj.weight", "blocks.0.proj.bias",
    "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.out.weight", "blocks.0.out.bias",
    "blocks.1.ln1.weight", "blocks.1.ln1.bias", "blocks.1.ln2.weight", "blocks.1.ln2.bias",
    "blocks.1.qkv.weight", "blocks.1.qkv.bias", "blocks.1.proj.weight", "blocks.1.proj.bias",
    "blocks.1.fc.weight", "blocks.1.fc.bias", "blocks.1.out.weight", "blocks.1.out.bias",
    "ln.weight", "ln.bias", "head.weight"};
enum { N_NAMES = 29 };

/* The example's size: 437,760 distinct parameters (the peer's count, head
 * not counted twice) under the peer's 29 parameter names and 2 mask buffers. */
START_TEST(test_gpt_names_and_size) {
    gpt g;
    gpt_init(&g, DTYPE_F32, 128, 4, true, 1);
    ck_assert_int_eq(g.m->n_params, N_NAMES);
    for (int i = 0; i < N_NAMES; i++) ck_assert_str_eq(g.m->param_names[i], peer_params[i]);
    ck_assert_int_eq(g.m->n_buffers, 2);
    ck_assert_str_eq(g.m->buffer_names[0], "blocks.0.mask");
    ck_assert_str_eq(g.m->buffer_names[1], "blocks.1.mask");
    /* 256*128 + 64*128 + 2 * (4*128 + 3*128*129 + 128*129 + 512*129 + 128*513) + 2*128 */
    ck_assert_int_eq(nn_model_numel(g.m), 437760);
    int n;
    nn_model_parameters(g.m, &n);
    ck_assert_int_eq(n, N_NAMES - 1);
    nn_model_free(g.m);
}
END_TEST

/* The whole float32 GPT at width 16 (4 heads of 4), checked in float64
 * element by element: every parameter (the tied one under both names, each
 * with the gradient of both uses) passes and none is vacuous; the model is
 * restored bit for bit. */
START_TEST(test_gpt_whole_graph_gradcheck) {
    gpt g;
    gpt_init(&g, DTYPE_F32, 16, 4, true, 2);
    randomise(&g, 3);
    tensor *batch[2];
    windows(batch);
    g.targets = batch[1];
    tensor *before[N_NAMES];
    for (int i = 0; i < N_NAMES; i++) before[i] = tensor_clone(g.m->params[i]);
    gradcheck_report r;
    ck_assert_msg(gradcheck_model(g.m, gpt_loss, &g, batch, 1, NULL, &r) == 0, "%s", tapegrad_error());
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < N_NAMES; i++)
        ck_assert_msg(r.input[i].checked && r.input[i].passed && !r.input[i].vacuous, "%s: %s",
                      g.m->param_names[i], r.message);
    gradcheck_report_free(&r);
    for (int i = 0; i < N_NAMES; i++) {
        ck_assert_int_eq(g.m->params[i]->dtype, DTYPE_F32);
        ck_assert_msg(memcmp(g.m->params[i]->data, before[i]->data,
                             (size_t)before[i]->size * sizeof(float)) == 0,
                      "%s changed", g.m->param_names[i]);
        tensor_free(before[i]);
    }
    ck_assert_ptr_eq(g.head, g.tok.weight);
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(g.m);
    tape_release();
}
END_TEST

/* The example's own size (width 128, 4 heads, 437,760 parameters) in fast
 * mode: every parameter by random projections of its gradient. */
START_TEST(test_gpt_full_size_fast_gradcheck) {
    gpt g;
    gpt_init(&g, DTYPE_F32, 128, 4, true, 4);
    tensor *batch[2];
    windows(batch);
    g.targets = batch[1];
    gradcheck_options o = gradcheck_defaults();
    o.fast = true;
    gradcheck_report r;
    ck_assert_int_eq(gradcheck_model(g.m, gpt_loss, &g, batch, 1, &o, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < N_NAMES; i++)
        ck_assert_msg(r.input[i].checked && r.input[i].passed && !r.input[i].vacuous, "%s: %s",
                      g.m->param_names[i], r.message);
    gradcheck_report_free(&r);
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(g.m);
    tape_release();
}
END_TEST

/* A deliberately broken attention vjp (gradients 1.001 times too large) in
 * every block: the check fails and names the first attention node, that of
 * blocks.0; the parameters after the last attention node pass, those before
 * the first fail. */
static op_def bad_sdpa;
static void (*real_sdpa_vjp)(tape_node *, tensor *const *);
static void sdpa_vjp_1001(tape_node *n, tensor *const *gin) {
    tensor *scratch[4] = {NULL};
    for (int j = 0; j < n->op->arity; j++)
        if (gin[j]) scratch[j] = tg_tensor_tape_zeros(gin[j]->dtype, gin[j]->ndim, gin[j]->shape);
    real_sdpa_vjp(n, scratch);
    for (int j = 0; j < n->op->arity; j++)
        for (int64_t e = 0; scratch[j] && e < scratch[j]->size; e++)
            tensor_set(gin[j], e, tensor_get(gin[j], e) + 1.001 * tensor_get(scratch[j], e));
}
static int64_t sdpa_node;
static tensor *broken_gpt_loss(tensor *const *batch, int n, void *ctx) {
    tensor *loss = gpt_loss(batch, n, ctx);
    for (int64_t j = 0; loss && j < tg_tape_node_count(); j++)
        if (strcmp(tg_tape_node_at(j)->op->name, "sdpa_heads") == 0) {
            tg_tape_node_at(j)->op = &bad_sdpa;
            if (sdpa_node < 0) sdpa_node = j; /* the first of the recording */
        }
    return loss;
}

static int param_index(const nn_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->param_names[i], name) == 0) return i;
    ck_abort_msg("no parameter %s", name);
    return -1;
}

START_TEST(test_gpt_broken_attention_vjp_localised) {
    real_sdpa_vjp = op_find("sdpa_heads")->vjp; /* the blocks' self-attention */
    bad_sdpa = *op_find("sdpa_heads");
    bad_sdpa.vjp = sdpa_vjp_1001;
    gpt g;
    gpt_init(&g, DTYPE_F64, 16, 4, true, 5);
    randomise(&g, 6);
    tensor *batch[2];
    windows(batch);
    g.targets = batch[1];
    gradcheck_options o = gradcheck_defaults();
    tg_op_tight_tolerances(&bad_sdpa, &o.atol, &o.rtol);
    gradcheck_report r;
    sdpa_node = -1;
    ck_assert_int_eq(gradcheck_model(g.m, broken_gpt_loss, &g, batch, 1, &o, &r), 0);
    ck_assert_int_gt(sdpa_node, 0);
    ck_assert_msg(!r.passed, "a broken attention vjp passed: %s", r.message);
    ck_assert_msg(r.localized && r.bad_node == sdpa_node, "%s", r.message);
    ck_assert_str_eq(r.bad_node_desc, "sdpa_heads [2,8,48]");
    static const char *wrong[] = {"pos.weight", "blocks.0.ln1.weight", "blocks.0.qkv.weight",
                                  "blocks.1.qkv.bias"};
    static const char *right[] = {"blocks.1.proj.weight", "blocks.1.fc.weight", "blocks.1.out.bias",
                                  "ln.weight"};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(!r.input[param_index(g.m, wrong[i])].passed, "%s passed", wrong[i]);
        ck_assert_msg(r.input[param_index(g.m, right[i])].passed, "%s failed", right[i]);
    }
    gradcheck_report_free(&r);
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(g.m);
    tape_release();
}
END_TEST

/* One backward of the example's float32 GPT at its own size: every
 * parameter gets a finite, non-zero gradient of its own shape. */
START_TEST(test_gpt_gradient_flow) {
    gpt g;
    gpt_init(&g, DTYPE_F32, 128, 4, true, 7);
    tensor *batch[2];
    windows(batch);
    g.targets = batch[1];
    ck_assert_int_eq(tensor_backward(gpt_loss(batch, 1, &g)), 0);
    nn_gradflow r;
    ck_assert_int_eq(nn_gradflow_model(g.m, 1e-12, 1e12, &r), 0);
    ck_assert_int_ge(r.n, N_NAMES - 1);
    for (int i = 0; i < r.n; i++) {
        const nn_gradflow_entry *e = &r.entries[i];
        ck_assert_msg(e->has_grad && e->shape_ok && e->finite && !e->all_zero, "%s", e->name);
    }
    nn_gradflow_free(&r);
    tape_reset();
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(g.m);
}
END_TEST

/* The tied weight's gradient is the sum of its two uses: the same model with
 * the head a separate copy gives tok.weight and head.weight gradients that
 * add up to the tied model's one (float64, the example's size). */
START_TEST(test_gpt_tied_gradient_is_sum_of_uses) {
    gpt tied, untied;
    gpt_init(&tied, DTYPE_F64, 128, 4, true, 8);
    gpt_init(&untied, DTYPE_F64, 128, 4, false, 8);
    tensor *batch[2];
    windows(batch);
    tied.targets = untied.targets = batch[1];
    ck_assert_int_eq(tensor_backward(gpt_loss(batch, 1, &tied)), 0);
    tape_reset();
    ck_assert_int_eq(tensor_backward(gpt_loss(batch, 1, &untied)), 0);
    tape_reset();
    const tensor *gt = tied.tok.weight->grad, *ge = untied.tok.weight->grad, *gh = untied.head->grad;
    double emb_norm = 0, head_norm = 0;
    for (int64_t e = 0; e < gt->size; e++) {
        ck_assert_close(tensor_get(gt, e), tensor_get(ge, e) + tensor_get(gh, e), 1e-13);
        emb_norm += fabs(tensor_get(ge, e));
        head_norm += fabs(tensor_get(gh, e));
    }
    ck_assert(emb_norm > 0 && head_norm > 0); /* both uses contribute */
    tensor_free(batch[0]), tensor_free(batch[1]);
    nn_model_free(tied.m);
    nn_model_free(untied.m);
}
END_TEST

/* ---------------------------------------------------------- the example */

/* examples/chargpt beside this test binary's folder (build/examples/); NULL
 * (and the test does nothing) in a build without examples (check-asan). */
static const char *chargpt(void) {
    static char p[4096];
    ssize_t n = readlink("/proc/self/exe", p, sizeof p - 32);
    ck_assert_int_gt(n, 0);
    p[n] = '\0';
    char *slash = strrchr(p, '/');
    *slash = '\0';
    slash = strrchr(p, '/');
    snprintf(slash, 32, "/examples/chargpt");
    if (access(p, X_OK)) {
        fprintf(stderr, "test_chargpt: %s not built; its test does nothing here\n", p);
        return NULL;
    }
    return p;
}

static int run_cmd(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp_text(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The example on a small corpus of its own: a few steps train, the
 * validation line has its format, the checkpoint holds the peer's names,
 * the tied weight under both and the masks (loaded strictly into the model
 * built here, whose logits then match a model loaded by the example's
 * --load evaluation), the sample is the prompt and N more bytes, and bad
 * options or a missing corpus are refused. */
START_TEST(test_chargpt_example) {
    const char *exe = chargpt();
    if (!exe) return;
    char dir[] = "/tmp/tapegrad_chargpt_XXXXXX", path[128], cmd[8192], logf[128], ckpt[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *files[3] = {"b", "a", "a.dat"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        for (int k = 0; k < 40; k++)
            fprintf(f, "%s fortune number %d: the quick brown fox.\n%%\n", files[i], k);
        fclose(f);
    }
    snprintf(logf, sizeof logf, "%s/log", dir);
    snprintf(ckpt, sizeof ckpt, "%s/m.st", dir);
    snprintf(cmd, sizeof cmd,
             "'%s' --data '%s' --steps 3 --batch 2 --save '%s' --sample 20 --prompt 'Q: ' >'%s' 2>&1",
             exe, dir, ckpt, logf);
    ck_assert_int_eq(run_cmd(cmd), 0);
    char *out = slurp_text(logf);
    ck_assert_msg(strstr(out, "chargpt: 437760 parameters"), "%s", out);
    ck_assert_msg(strstr(out, "step=3 train_loss="), "%s", out);
    char *val = strstr(out, "steps=3 val_loss=");
    ck_assert_msg(val != NULL, "%s", out);
    double vl = 0, bpb = 0;
    ck_assert_int_eq(sscanf(val, "steps=3 val_loss=%lf val_bpb=%lf", &vl, &bpb), 2);
    ck_assert(vl > 0 && isfinite(vl));
    ck_assert_double_eq_tol(bpb, vl / log(2.0), 1e-3);
    char want_val[64];
    snprintf(want_val, sizeof want_val, "val_loss=%.4f", vl);
    char *sample = strstr(out, "Q: ");
    ck_assert_msg(sample && strlen(sample) == 3 + 20 + 1 && sample[23] == '\n', "%s", out);

    /* the peer's state_dict, loaded strictly: every name, shape, no extra */
    gpt g;
    gpt_init(&g, DTYPE_F32, 128, 4, true, 99);
    ck_assert_msg(nn_model_load(g.m, ckpt) == 0, "%s", tapegrad_error());
    for (int b = 0; b < 2; b++) /* the masks as written: 1 on and below the diagonal */
        for (int i = 0; i < CTX; i++)
            for (int j = 0; j < CTX; j++)
                ck_assert_int_eq(((int64_t *)g.m->buffers[b]->data)[i * CTX + j], j <= i);
    /* the file holds the tied tensor under both names, equal */
    tensor *both[2] = {tensor_zeros(DTYPE_F32, SHAPE(VOCAB, 128)), tensor_zeros(DTYPE_F32, SHAPE(VOCAB, 128))};
    const char *all[N_NAMES + 2];
    tensor *ts[N_NAMES + 2];
    for (int i = 0; i < nn_model_state_count(g.m); i++) {
        tensor *t;
        nn_model_state_at(g.m, i, &all[i], &t);
        ts[i] = t == g.tok.weight ? (i == 0 ? both[0] : both[1]) : t;
    }
    ck_assert_int_eq(nn_model_state_count(g.m), N_NAMES + 2);
    ck_assert_msg(nn_safetensors_load(ckpt, all, ts, N_NAMES + 2) == 0, "%s", tapegrad_error());
    ck_assert(memcmp(both[0]->data, both[1]->data, (size_t)both[0]->size * sizeof(float)) == 0);
    ck_assert(memcmp(both[0]->data, g.tok.weight->data, (size_t)both[0]->size * sizeof(float)) == 0);
    tensor_free(both[0]), tensor_free(both[1]);
    nn_model_free(g.m);

    /* --load with no training evaluates the same model to the same loss */
    snprintf(cmd, sizeof cmd, "'%s' --data '%s' --steps 0 --load '%s' --quiet >'%s' 2>&1", exe, dir,
             ckpt, logf);
    ck_assert_int_eq(run_cmd(cmd), 0);
    out = slurp_text(logf);
    ck_assert_msg(strstr(out, want_val), "%s lacks %s", out, want_val);
    ck_assert_msg(strncmp(out, "steps=0 ", 8) == 0, "--quiet printed more: %s", out);

    static const struct {
        const char *args, *says;
        int rc;
    } bad[] = {
        {"--temperature 0", "--temperature needs a finite number above 0, not \"0\"", 2},
        {"--batch 0", "--batch needs a whole number from 1 to 1000000, not \"0\"", 2},
        {"--steps x", "--steps needs a whole number", 2},
        {"--prompt ''", "--prompt needs at least one byte", 2},
        {"--frobnicate", "usage: chargpt", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "'%s' --data '%s' %s >'%s' 2>&1", exe, dir, bad[i].args, logf);
        ck_assert_int_eq(run_cmd(cmd), bad[i].rc);
        ck_assert_msg(strstr(slurp_text(logf), bad[i].says), "%s: %s", bad[i].args, slurp_text(logf));
    }
    snprintf(cmd, sizeof cmd, "'%s' --data '%s/none' >'%s' 2>&1", exe, dir, logf);
    ck_assert_int_eq(run_cmd(cmd), 1);
    ck_assert(strstr(slurp_text(logf), "/none: No such file or directory"));
    /* a checkpoint of another model (no masks, other names) is refused */
    snprintf(cmd, sizeof cmd, "'%s' --data '%s' --steps 0 --load '%s/a' >'%s' 2>&1", exe, dir, dir,
             logf);
    ck_assert_int_eq(run_cmd(cmd), 1);
    ck_assert_msg(strstr(slurp_text(logf), "chargpt: loading the model: "), "%s", slurp_text(logf));

    /* --resume: 2 + 1 steps through a checkpoint write the file 3 steps
     * write (the windows of the first 2 steps are skipped, AdamW's moments
     * and step count come back), byte for byte. Each run truncates the log
     * (an extension-less file, so part of the corpus) before reading. */
    char ck[3][160];
    static char rcmd[3 * 4096 + 2048];
    for (int i = 0; i < 3; i++) snprintf(ck[i], sizeof ck[i], "%s/ck%d.st", dir, i); /* a dot: not corpus */
    snprintf(rcmd, sizeof rcmd,
             "'%s' --data '%s' --batch 2 --quiet --steps 3 --checkpoint '%s' >'%s' 2>&1 && "
             "'%s' --data '%s' --batch 2 --quiet --steps 2 --checkpoint '%s' >'%s' 2>&1 && "
             "'%s' --data '%s' --batch 2 --quiet --steps 1 --resume '%s' --checkpoint '%s' >'%s' 2>&1 && "
             "cmp -s '%s' '%s'",
             exe, dir, ck[0], logf, exe, dir, ck[1], logf, exe, dir, ck[1], ck[2], logf, ck[0], ck[2]);
    ck_assert_msg(run_cmd(rcmd) == 0, "resume: %s", slurp_text(logf));
    ck_assert_msg(strstr(slurp_text(logf), "checkpoint"), "%s", slurp_text(logf));
    /* a resumed run without the checkpoint, or with --load too, is refused */
    snprintf(cmd, sizeof cmd, "'%s' --data '%s' --steps 1 --resume '%s/none' >'%s' 2>&1", exe, dir, dir, logf);
    ck_assert_int_eq(run_cmd(cmd), 1);
    ck_assert_msg(strstr(slurp_text(logf), "chargpt: resuming: "), "%s", slurp_text(logf));
    snprintf(cmd, sizeof cmd, "'%s' --data '%s' --load '%s' --resume '%s' >'%s' 2>&1", exe, dir, ck[0], ck[1],
             logf);
    ck_assert_int_eq(run_cmd(cmd), 2);
    ck_assert_msg(strstr(slurp_text(logf), "--load and --resume both give the model"), "%s", slurp_text(logf));
    for (int i = 0; i < 3; i++) unlink(ck[i]);

    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    unlink(logf);
    unlink(ckpt);
    rmdir(dir);
}
END_TEST

Suite *chargpt_suite(void) {
    Suite *s = suite_create("chargpt");
    TCase *tc = tcase_create("chargpt");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gpt_names_and_size);
    tcase_add_test(tc, test_gpt_whole_graph_gradcheck);
    tcase_add_test(tc, test_gpt_full_size_fast_gradcheck);
    tcase_add_test(tc, test_gpt_broken_attention_vjp_localised);
    tcase_add_test(tc, test_gpt_gradient_flow);
    tcase_add_test(tc, test_gpt_tied_gradient_is_sum_of_uses);
    tcase_add_test(tc, test_chargpt_example);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(chargpt_suite)
