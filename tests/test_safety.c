/* test_safety.c - misuse that must be refused, not run: a tape tensor kept
 * across tape_reset() (stale) given to any op or accessor, a vjp that fails
 * inside backward, a NULL bias from a failed expression, and a gradient
 * marked as requiring grad. */
#include <string.h>
#include <unistd.h>

#include "../autograd/internal.h"
#include "check_main.h"

#define STALE_PART "is stale: it was computed before the last tape_reset()"

/* The pending error contains part; clears it. */
static void assert_error_has(const char *part) {
    const char *e = tapegrad_error();
    ck_assert_msg(e != NULL, "no error pending; expected one with \"%s\"", part);
    ck_assert_msg(strstr(e, part) != NULL, "error \"%s\" lacks \"%s\"", e, part);
    tapegrad_error_clear();
}

/* loss = sum(w * w), w = [0.5, -1.5, 2]: d loss / dw = 2 w. */
static tensor *square_loss(tensor *w) { return tensor_sum_all(tensor_mul(w, w)); }

START_TEST(test_stale_loss_refused_after_its_slot_is_reused) {
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){0.5, -1.5, 2});
    tensor_set_requires_grad(w, true);
    tensor *old = square_loss(w);
    ck_assert_ptr_nonnull(old);
    /* The next steps build the same graph: before headers left the arena the
     * new loss took the old one's address and epoch check passed. */
    for (int step = 0; step < 4; step++) {
        tape_reset();
        tensor *fresh = square_loss(w);
        ck_assert_ptr_nonnull(fresh);
        ck_assert_ptr_ne(fresh, old);
        tapegrad_error_clear();
        ck_assert_int_eq(tensor_backward(old), -1);
        assert_error_has("tensor_backward: output [] " STALE_PART);
        ck_assert_ptr_null(w->grad); /* nothing was differentiated */
    }
    /* the current step's loss still works */
    tape_reset();
    tensor *loss = square_loss(w);
    ck_assert_int_eq(tensor_backward(loss), 0);
    ck_assert_tensor(w->grad, ((double[]){1, -3, 4}), 0);
    tensor_free(w);
    tape_release();
}
END_TEST

START_TEST(test_stale_tensor_refused_by_every_accessor) {
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){0.5, -1.5, 2});
    tensor *u = tensor_zeros(DTYPE_F64, SHAPE(3));
    tensor_set_requires_grad(w, true);
    tensor *loss = square_loss(w);
    tensor *v = tensor_mul_scalar(w, 3); /* [3] */
    ck_assert_ptr_nonnull(loss);
    ck_assert_ptr_nonnull(v);
    ck_assert_close(tensor_item(loss), 0.25 + 2.25 + 4, 1e-12);
    tape_reset();
    square_loss(w); /* the next step reuses the arena */
    tapegrad_error_clear();

    /* tensor_item reports an error, not only NaN */
    ck_assert(isnan(tensor_item(loss)));
    assert_error_has("tensor_item: tensor [] " STALE_PART);
    ck_assert(isnan(tensor_get(v, 0)));
    assert_error_has("tensor_get: tensor [3] " STALE_PART);
    ck_assert(isnan(tensor_at(v, (int64_t[]){1})));
    assert_error_has("tensor_at: tensor [3] " STALE_PART);
    ck_assert_int_eq(tensor_set(v, 0, 1.0), -1);
    assert_error_has("tensor_set: tensor [3] " STALE_PART);
    ck_assert_int_eq(tensor_copy_data(u, v), -1);
    assert_error_has("tensor_copy_data: source [3] " STALE_PART);
    ck_assert_int_eq(tensor_copy_data(v, u), -1);
    assert_error_has("tensor_copy_data: destination [3] " STALE_PART);
    ck_assert_ptr_null(tensor_clone(v));
    assert_error_has("tensor_clone: tensor [3] " STALE_PART);
    ck_assert_ptr_null(tensor_to_dtype(v, DTYPE_F32));
    assert_error_has("tensor_to_dtype: tensor [3] " STALE_PART);
    ck_assert_ptr_null(tensor_detach(v));
    assert_error_has("tensor_detach: tensor [3] " STALE_PART);
    ck_assert_int_eq(tensor_set_requires_grad(v, true), -1);
    assert_error_has("tensor_set_requires_grad: tensor [3] " STALE_PART);
    ck_assert_int_eq(tensor_zero_grad(v), -1);
    assert_error_has("tensor_zero_grad: tensor [3] " STALE_PART);
    ck_assert_int_eq(nn_init_constant(v, 1.0), -1);
    assert_error_has("nn_init_constant: tensor [3] " STALE_PART);
    char path[] = "/tmp/tapegrad_stale_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(nn_safetensors_save(path, (const char *[]){"v"}, (tensor *[]){v}, 1), -1);
    assert_error_has("nn_safetensors_save: v [3] " STALE_PART);
    unlink(path);

    /* a stale upstream gradient for a fresh output */
    tensor *y = tensor_mul(w, w);
    ck_assert_int_eq(tensor_backward_with(y, v), -1);
    assert_error_has("tensor_backward_with: upstream gradient [3] " STALE_PART);
    /* NULL, with no error pending, is named */
    ck_assert(isnan(tensor_item(NULL)));
    assert_error_has("tensor_item: tensor is NULL");
    ck_assert_ptr_null(tensor_detach(NULL));
    assert_error_has("tensor_detach: tensor is NULL");
    /* tensor_item on a non-scalar is an error too */
    ck_assert(isnan(tensor_item(y)));
    assert_error_has("tensor_item: tensor [3] has 3 elements, not 1");
    tensor_free(w);
    tensor_free(u);
    tape_release();
}
END_TEST

/* A node dropped from the tape (the checker's tg_tape_truncate) is refused. */
START_TEST(test_backward_refuses_an_output_dropped_from_the_tape) {
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){0.5, -1.5, 2});
    tensor_set_requires_grad(w, true);
    tensor *loss = square_loss(w);
    tg_tape_truncate(0);
    ck_assert_int_eq(tensor_backward(loss), -1);
    assert_error_has("tensor_backward: output [] is no longer on the tape");
    tensor_free(w);
    tape_release();
}
END_TEST

/* One step with more tape tensors than the ring's first block (8192
 * headers), twice: the ring grows instead of reusing a live header, and every
 * tensor keeps its own value. */
START_TEST(test_header_ring_never_reuses_a_live_header) {
    enum { N = 20000 };
    static tensor *ts[N];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            ts[i] = tg_tensor_tape_new(DTYPE_F64, 0, NULL);
            ck_assert_ptr_nonnull(ts[i]);
            *(double *)ts[i]->data = i + round;
        }
        for (int i = 0; i < N; i++) {
            ck_assert_msg(tensor_get(ts[i], 0) == i + round, "tensor %d of round %d", i, round);
            if (i) ck_assert_ptr_ne(ts[i], ts[i - 1]);
        }
        tape_reset();
        /* all of them are stale now */
        ck_assert(isnan(tensor_item(ts[0])) && isnan(tensor_item(ts[N - 1])));
        tapegrad_error_clear();
    }
    tape_release();
}
END_TEST

/* The checker's re-runs give their headers back, marked stale; the next
 * re-run takes the same slots, and the tensors before the mark stay fresh. */
START_TEST(test_header_seek_marks_given_back_headers_stale) {
    tensor *kept = tg_tensor_tape_new(DTYPE_F64, 0, NULL);
    *(double *)kept->data = 7;
    tape_header_pos p = tg_tape_header_tell();
    tensor *a = tg_tensor_tape_new(DTYPE_F64, 0, NULL), *b = tg_tensor_tape_new(DTYPE_F64, 0, NULL);
    ck_assert(a && b);
    tg_tape_header_seek(p);
    tapegrad_error_clear();
    ck_assert(isnan(tensor_item(a)) && isnan(tensor_item(b)));
    assert_error_has(STALE_PART);
    ck_assert_ptr_eq(tg_tensor_tape_new(DTYPE_F64, 0, NULL), a);
    ck_assert_close(tensor_item(kept), 7, 0);
    ck_assert_ptr_null(tapegrad_error());
    tape_release();
}
END_TEST

static void sample_free(op_sample *s) {
    for (int i = 0; i < s->n_inputs; i++) tensor_free(s->inputs[i]);
}

/* A tape-owned copy of t, made stale by the reset that follows. */
static tensor *tape_copy(const tensor *t) {
    tensor *c = tg_tensor_tape_new(t->dtype, t->ndim, t->shape);
    ck_assert_ptr_nonnull(c);
    memcpy(c->data, t->data, (size_t)t->size * tg_dtype_size(t->dtype));
    return c;
}

/* Every input of every sample case of every registry op, given stale
 * (including inputs a case's build leaves unused), is refused with the
 * staleness message. */
START_TEST(test_every_registry_op_refuses_a_stale_input) {
    int checked = 0;
    for (int i = 0, n = op_count(); i < n; i++) {
        const op_def *op = op_at(i);
        rng g;
        rng_seed(&g, 7, 1);
        for (int k = 0;; k++) {
            op_sample s;
            memset(&s, 0, sizeof s);
            int rc = op->sample(k, &g, &s);
            ck_assert_msg(rc == 0 || (rc == 1 && k > 0), "%s: sample case %d: %d", op->name, k, rc);
            if (rc) break;
            for (int j = 0; j < s.n_inputs; j++) {
                if (!s.inputs[j]) continue; /* an optional input not given */
                tensor *stale = tape_copy(s.inputs[j]);
                /* the arena's chunks go back to the allocator (the header
                 * ring stays): under AddressSanitizer a builder that reads the
                 * stale input's data before refusing it is a use after free */
                tape_reset();
                tg_arena_release();
                /* a fresh build of the case takes the stale copy's old place */
                tapegrad_error_clear();
                ck_assert_msg(op->build(s.inputs, &s) != NULL, "%s: case %d fails: %s", op->name,
                              k, tapegrad_error());
                tensor *in[SAMPLE_MAX_INPUTS];
                memcpy(in, s.inputs, sizeof in);
                in[j] = stale;
                ck_assert_msg(op->build(in, &s) == NULL, "%s, case %d accepted a stale input %d",
                              op->name, k, j);
                const char *e = tapegrad_error();
                ck_assert_msg(e && strstr(e, STALE_PART), "%s, case %d, stale input %d: error \"%s\"",
                              op->name, k, j, e ? e : "(none)");
                tapegrad_error_clear();
                tape_reset();
                checked++;
            }
            sample_free(&s);
        }
    }
    ck_assert_int_ge(checked, op_count());
    tape_release();
}
END_TEST

/* Truncated BPTT: h_t = tanh(h_{t-1} W + x_t), the state carried from one
 * step to the next with tensor_detach; carried without it, it is refused. */
START_TEST(test_truncated_bptt_carries_state_with_detach) {
    tensor *W = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2), (double[]){0.3, -0.2, 0.5, 0.1});
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(1, 2), (double[]){0.4, -0.7});
    tensor_set_requires_grad(W, true);
    tensor *h = tensor_zeros(DTYPE_F64, SHAPE(1, 2)); /* user-owned state */
    double ref[2] = {0, 0};
    for (int step = 0; step < 3; step++) {
        tensor *hn = tensor_tanh(tensor_add(tensor_matmul(h, W), x));
        ck_assert_ptr_nonnull(hn);
        ck_assert_int_eq(tensor_backward(tensor_sum_all(hn)), 0);
        /* the same recurrence by hand */
        double r0 = tanh(ref[0] * 0.3 + ref[1] * 0.5 + 0.4);
        double r1 = tanh(ref[0] * -0.2 + ref[1] * 0.1 - 0.7);
        ref[0] = r0, ref[1] = r1;
        tensor *carried = tensor_detach(hn);
        ck_assert_ptr_nonnull(carried);
        ck_assert(!carried->tape_owned && !carried->requires_grad && carried->node == -1);
        tape_reset();
        ck_assert_tensor(carried, ref, 1e-12);
        /* the tape-owned state itself may not cross the reset */
        ck_assert_ptr_null(tensor_matmul(hn, W));
        assert_error_has("matmul: input 0 [1,2] " STALE_PART);
        tensor_free(h);
        h = carried;
    }
    tensor_free(h);
    tensor_free(W);
    tensor_free(x);
    tape_release();
}
END_TEST

/* x2 = 2 x -> conv2d(x2, w, b) -> sum. Each allocation backward makes is
 * failed in turn: backward returns -1 with an out-of-memory message, and a
 * failure inside conv2d's vjp names it and stops there, before mul_scalar's
 * vjp gives x a gradient. */
START_TEST(test_failing_vjp_stops_backward_and_names_the_op) {
    rng g;
    rng_seed(&g, 3, 1);
    tensor *x = tensor_rand(&g, DTYPE_F32, SHAPE(2, 2, 5, 5), -1, 1);
    tensor *w = tensor_rand(&g, DTYPE_F32, SHAPE(3, 2, 3, 3), -1, 1);
    tensor *b = tensor_rand(&g, DTYPE_F32, SHAPE(3), -1, 1);
    tensor_set_requires_grad(x, true);
    tensor_set_requires_grad(w, true);
    tensor_set_requires_grad(b, true);
    int failures = 0, in_conv_vjp = 0;
    for (int64_t k = 0; k < 1000; k++) {
        tape_reset();
        tensor_free(x->grad), x->grad = NULL;
        tensor *loss = tensor_sum_all(tensor_conv2d(tensor_mul_scalar(x, 2), w, b, CONV2D_DEFAULT));
        ck_assert_ptr_nonnull(loss);
        tg_mem_fail_after(k);
        int rc = tensor_backward(loss);
        tg_mem_fail_after(-1);
        if (rc == 0) break;
        failures++;
        const char *e = tapegrad_error();
        ck_assert_msg(e && strstr(e, "out of memory: allocation of "), "allocation %lld: \"%s\"",
                      (long long)k, e ? e : "(none)");
        if (strstr(e, "tensor_backward: the vjp of conv2d (tape position 1) failed: out of memory")) {
            in_conv_vjp++;
            ck_assert_ptr_null(x->grad);
        }
        tapegrad_error_clear();
    }
    ck_assert_int_ge(failures, 3);
    ck_assert_int_ge(in_conv_vjp, 1);
    ck_assert_ptr_null(tapegrad_error());
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tape_release();
}
END_TEST

/* conv2d given the NULL of a failed bias expression reports that failure,
 * like linear, instead of running without a bias. */
START_TEST(test_conv2d_failed_bias_expression_propagates) {
    tensor *x = tensor_ones(DTYPE_F32, SHAPE(1, 1, 3, 3));
    tensor *w = tensor_ones(DTYPE_F32, SHAPE(2, 1, 2, 2));
    tensor *b2 = tensor_ones(DTYPE_F32, SHAPE(2));
    tensor *b3 = tensor_ones(DTYPE_F32, SHAPE(3));
    tapegrad_error_clear();
    tensor *bad = tensor_add(b2, b3); /* shapes do not broadcast */
    ck_assert_ptr_null(bad);
    char first[512];
    snprintf(first, sizeof first, "%s", tapegrad_error());
    ck_assert_ptr_null(tensor_conv2d(x, w, bad, CONV2D_DEFAULT));
    ck_assert_str_eq(tapegrad_error(), first);
    tapegrad_error_clear();
    /* no error pending: NULL is "no bias" */
    ck_assert_ptr_nonnull(tensor_conv2d(x, w, NULL, CONV2D_DEFAULT));
    tensor_free(x);
    tensor_free(w);
    tensor_free(b2);
    tensor_free(b3);
    tape_release();
}
END_TEST

/* Marking a gradient as requiring grad is refused; later steps still send
 * d loss / dw = 2 w into w.grad and allocate nothing new. */
START_TEST(test_gradient_cannot_require_grad) {
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){0.5, -1.5, 2});
    tensor_set_requires_grad(w, true);
    int64_t bytes = -1;
    for (int step = 0; step < 5; step++) {
        tensor_zero_grad(w);
        ck_assert_int_eq(tensor_backward(square_loss(w)), 0);
        ck_assert_int_eq(tensor_set_requires_grad(w->grad, true), -1);
        assert_error_has("tensor_set_requires_grad: this tensor is a gradient (another tensor's .grad);"
                         " gradients of gradients (higher-order) are not supported");
        ck_assert(!w->grad->requires_grad);
        ck_assert_ptr_null(w->grad->grad);
        ck_assert_tensor(w->grad, ((double[]){1, -3, 4}), 0);
        /* an intermediate's gradient is refused the same way */
        tensor *y = tensor_mul(w, w);
        ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
        ck_assert_int_eq(tensor_set_requires_grad(y->grad, true), -1);
        tapegrad_error_clear();
        ck_assert_int_eq(tensor_set_requires_grad(w->grad, false), 0); /* off stays allowed */
        tape_reset();
        if (step == 2) bytes = tapegrad_allocated_bytes();
        if (step > 2) ck_assert_int_eq(tapegrad_allocated_bytes(), bytes);
    }
    tensor_free(w);
    tape_release();
}
END_TEST

/* A custom op whose vjp hits a library error (an index out of range): the
 * user's vjp returns void, yet backward sees the failure and names the op. */
static void copy_forward(tensor *const *in, int n, const double *params, tensor *out) {
    (void)n, (void)params;
    tensor_copy_data(out, in[0]);
}
static void failing_vjp(tensor *const *in, int n, const double *params, const tensor *out,
                        const tensor *gout, tensor *const *gin) {
    (void)in, (void)n, (void)params, (void)out, (void)gout;
    tensor_set(gin[0], -1, 0.0);
}

START_TEST(test_custom_vjp_failure_stops_backward) {
    op_spec sp = {.name = "copy_failing_vjp", .arity = 1, .forward = copy_forward, .vjp = failing_vjp};
    const op_def *op = op_register(&sp);
    ck_assert_ptr_nonnull(op);
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){0.5, -1.5, 2});
    tensor_set_requires_grad(w, true);
    tensor *y = tensor_apply(op, (tensor *[]){w}, 1, NULL);
    tensor *loss = tensor_sum_all(y);
    ck_assert_ptr_nonnull(loss);
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_backward(loss), -1);
    assert_error_has("tensor_backward: the vjp of copy_failing_vjp (tape position 0) failed:"
                     " tensor_set: index -1 out of range");
    /* an error already pending is kept as the cause; backward still stops */
    tensor_zeros(DTYPE_F32, SHAPE(-1));
    ck_assert_ptr_nonnull(tapegrad_error());
    char first[512];
    snprintf(first, sizeof first, "%s", tapegrad_error());
    ck_assert_int_eq(tensor_backward(loss), -1);
    ck_assert_str_eq(tapegrad_error(), first);
    tapegrad_error_clear();
    tensor_free(w);
    tape_release();
}
END_TEST

/* The contract checker calls vjps itself: a failing one is reported as such,
 * not judged on the buffers it left half written. */
static void failing_internal_vjp(tape_node *n, tensor *const *gin) {
    (void)n;
    tensor_set(gin[0], -1, 0.0);
}

START_TEST(test_contract_check_reports_a_failing_vjp) {
    op_def broken = *op_find("neg");
    broken.vjp = failing_internal_vjp;
    op_contract_report r;
    ck_assert_int_eq(tg_op_check_contract(&broken, 1, &r), 0);
    ck_assert(!r.passed);
    ck_assert_msg(strstr(r.message, "(or the vjp failed: tensor_set: index -1 out of range)"),
                  "report: %s", r.message);
    op_check_report_free(&r);
    tapegrad_error_clear();
    tape_release();
}
END_TEST

Suite *safety_suite(void) {
    Suite *s = suite_create("safety");
    TCase *tc = tcase_create("safety");
    /* the registry-wide stale check builds every sample case twice: seconds
     * under AddressSanitizer on a busy machine, over Check's default 4 */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stale_loss_refused_after_its_slot_is_reused);
    tcase_add_test(tc, test_stale_tensor_refused_by_every_accessor);
    tcase_add_test(tc, test_backward_refuses_an_output_dropped_from_the_tape);
    tcase_add_test(tc, test_header_ring_never_reuses_a_live_header);
    tcase_add_test(tc, test_header_seek_marks_given_back_headers_stale);
    tcase_add_test(tc, test_every_registry_op_refuses_a_stale_input);
    tcase_add_test(tc, test_truncated_bptt_carries_state_with_detach);
    tcase_add_test(tc, test_failing_vjp_stops_backward_and_names_the_op);
    tcase_add_test(tc, test_conv2d_failed_bias_expression_propagates);
    tcase_add_test(tc, test_gradient_cannot_require_grad);
    tcase_add_test(tc, test_contract_check_reports_a_failing_vjp);
    /* last: it adds an op without sample cases to the registry */
    tcase_add_test(tc, test_custom_vjp_failure_stops_backward);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(safety_suite)
