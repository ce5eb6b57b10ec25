/* gradcheck_lenet5.c - time the whole-LeNet-5 gradient check.
 *
 *   gradcheck_lenet5 [--fast] [--batch 2] [--replay auto|always|never]
 *
 * The function of ../shared/peers/gradcheck_lenet5_torch.py: (the ten
 * parameters, a batch of images) -> mean cross-entropy, checked in float64
 * with eps 1e-6, atol 1e-5, rtol 1e-3, on one thread; full mode (every
 * number by central differences) or fast mode (random projections), with
 * replay verified (opt.replay AUTO, the default). One line:
 *   gradcheck_lenet5 mode=full batch=2 numbers=N pass=1 seconds=S fn_calls=C rerun_inputs=R
 * (C calls of fn: recording and verification; R inputs found to need re-runs).
 * The checker's own clock (report.seconds) times the check alone. */
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"

static tensor *loss_fn(tensor *const *in, int n, void *ctx) {
    (void)n; /* in: the ten parameters, x, labels */
    (void)ctx;
    return nn_lenet5_loss_with(in, in[NN_LENET5_NPARAMS], in[NN_LENET5_NPARAMS + 1]);
}

int main(int argc, char **argv) {
    bool fast = false;
    int64_t batch = 2;
    gradcheck_replay replay = GRADCHECK_REPLAY_AUTO;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--fast")) fast = true;
        else if (!strcmp(argv[a], "--batch") && a + 1 < argc) batch = atoll(argv[++a]);
        else if (!strcmp(argv[a], "--replay") && a + 1 < argc && !strcmp(argv[a + 1], "auto"))
            replay = GRADCHECK_REPLAY_AUTO, a++;
        else if (!strcmp(argv[a], "--replay") && a + 1 < argc && !strcmp(argv[a + 1], "always"))
            replay = GRADCHECK_REPLAY_ALWAYS, a++;
        else if (!strcmp(argv[a], "--replay") && a + 1 < argc && !strcmp(argv[a + 1], "never"))
            replay = GRADCHECK_REPLAY_NEVER, a++;
        else {
            fprintf(stderr, "usage: gradcheck_lenet5 [--fast] [--batch 2] [--replay auto|always|never]\n");
            return 2;
        }
    }
    if (batch < 1) {
        fprintf(stderr, "gradcheck_lenet5: batch must be positive\n");
        return 2;
    }
    tapegrad_set_threads(1);
    enum { N = NN_LENET5_NPARAMS + 2 };
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 0);
    rng g;
    rng_seed(&g, 0, 3);
    tensor *in[N] = {0};
    for (int i = 0; net && i < NN_LENET5_NPARAMS; i++) in[i] = net->model->params[i];
    in[N - 2] = tensor_randn(&g, DTYPE_F32, SHAPE(batch, 1, 28, 28), 0.0, 1.0);
    in[N - 1] = tensor_new(DTYPE_I64, SHAPE(batch));
    for (int64_t i = 0; in[N - 1] && i < batch; i++)
        tensor_set(in[N - 1], i, (double)rng_below(&g, 10));
    int64_t numbers = 0;
    for (int i = 0; i < N - 1; i++) numbers += in[i] ? in[i]->size : 0;
    gradcheck_options o = gradcheck_defaults();
    o.eps = 1e-6, o.atol = 1e-5, o.rtol = 1e-3;
    o.fast = fast;
    o.replay = replay;
    o.check_mask = (1u << (N - 1)) - 1; /* not the labels */
    gradcheck_report r = {0};
    int rc = !net || !in[N - 1] ? -1 : gradcheck(loss_fn, NULL, in, N, &o, &r);
    if (rc) fprintf(stderr, "gradcheck_lenet5: %s\n", tapegrad_error());
    else
    {
        int reruns = 0;
        for (int i = 0; i < N; i++) reruns += r.input[i].rerun;
        static const char *replay_name[] = {"auto", "always", "never"};
        printf("gradcheck_lenet5 mode=%s batch=%lld numbers=%lld pass=%d seconds=%.3f replay=%s"
               " fn_calls=%lld rerun_inputs=%d\n",
               fast ? "fast" : "full", (long long)batch, (long long)numbers, r.passed, r.seconds,
               replay_name[replay], (long long)r.fn_calls, reruns);
    }
    tensor_free(in[N - 2]);
    tensor_free(in[N - 1]);
    nn_lenet5_free(net);
    bool passed = rc == 0 && r.passed;
    gradcheck_report_free(&r);
    return passed ? 0 : 1;
}
