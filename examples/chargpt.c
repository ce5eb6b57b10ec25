/* chargpt.c - a byte-level GPT language model on Debian's fortunes.
 *
 *   chargpt [--steps 2000] [--batch 16] [--lr 1e-3] [--threads 1] [--seed 0]
 *           [--data DIR] [--save FILE] [--load FILE] [--quiet]
 *           [--checkpoint FILE] [--resume FILE]
 *           [--sample N] [--temperature 1] [--prompt TEXT]
 *
 * The recipe of ../shared/peers/chargpt_torch.py --model gpt: the files of
 * DIR (default /usr/share/games/fortunes, package fortunes) without an
 * extension, concatenated in sorted name order as bytes, the last 10 % held
 * out; windows of T = 64 bytes drawn at random (seeded); a GPT-2 style
 * model: token embedding 256 -> 128 plus a learned position embedding, 2
 * pre-LayerNorm blocks (causal self-attention with 4 heads, MLP
 * 128 -> 512 -> 128 with GELU's tanh form), a final LayerNorm and a head
 * that is the token embedding's weight (tied, no bias), no dropout; mean
 * cross-entropy over all B x T positions; AdamW lr 1e-3 (weight decay 0.01),
 * batch 16, 1 thread.
 *
 * Prints the training loss every 100 steps (on a terminal a progress bar;
 * --quiet prints neither), then exactly one line
 *   steps=S val_loss=L val_bpb=B seconds=S
 * with the validation loss in nats and bits per byte over 50 batches of
 * held-out windows drawn from a fixed seed (S seconds: training alone).
 * --save writes the model as a safetensors state_dict under the peer's names
 * (tok.weight, pos.weight, blocks.N.ln1.weight, ..., blocks.N.mask, ln.weight,
 * ln.bias, head.weight: the tied weight under both of its names, as PyTorch's
 * state_dict keeps it), which PyTorch's model loads with strict=True. The
 * peer's blocks hold their causal mask as a buffer `mask` [T, T] (true on and
 * below the diagonal); it is written as 0/1 int64 (load_state_dict copies it
 * into the boolean buffer), on --load it may be BOOL (as PyTorch writes it:
 * scripts/torch_chargpt_load.py) or int64, and it must be there but is not used:
 * the blocks here are causal by construction. --load reads a model (--steps
 * 0 with --load evaluates and samples it without training). --sample N
 * prints N bytes drawn after --prompt (default a newline) from
 * softmax(logits / --temperature), the model seeing the last T bytes.
 * --checkpoint writes, after training, a training checkpoint
 * (nn_checkpoint_save: the model, AdamW's state and its step count);
 * --resume continues from one for --steps more steps, drawing the windows
 * an uninterrupted run would have drawn, so 10 + 10 steps through a
 * checkpoint end where 20 steps end, bit for bit. The model, the loss, the
 * validation, the sampler and the training loop are examples/chargpt.h,
 * shared with the data-parallel examples/dist/chargpt. Uses the public
 * header only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "chargpt.h"

int main(int argc, char **argv) {
    options o;
    int rc = chargpt_parse(argc, argv, "chargpt", false, &o);
    if (rc) return rc;
    tapegrad_set_threads(o.threads);
    unsigned char *text = NULL;
    int64_t len = 0;
    if (charlm_read_corpus("chargpt", o.data, CTX, &text, &len)) return 1;
    int64_t n_train = (int64_t)((double)len * 0.9), n_val = len - n_train;
    net n;
    if (chargpt_net_init(&n, o.seed)) return ex_fail("chargpt", "building the model");
    if (o.load && nn_model_load(n.m, o.load)) return ex_fail("chargpt", "loading the model");
    optim_config cfg = optim_defaults(OPTIM_ADAMW);
    cfg.lr = o.lr;
    int n_params;
    tensor *const *params = nn_model_parameters(n.m, &n_params);
    optim *opt = optim_new(&cfg, params, n_params);
    if (!opt) return ex_fail("chargpt", "setting up training");
    if (o.resume && nn_checkpoint_load(o.resume, n.m, opt, NULL)) return ex_fail("chargpt", "resuming");
    if (!o.quiet)
        printf("chargpt: %lld parameters, %lld training bytes, %lld validation bytes, adamw lr %g, "
           "batch %lld, context %d, %d threads\n",
           (long long)nn_model_numel(n.m), (long long)n_train, (long long)n_val, o.lr,
           (long long)o.batch, CTX, tapegrad_threads());
    fflush(stdout);
    double t0 = ex_now();
    const char *what;
    if (chargpt_train(&n, opt, &o, &chargpt_one_process, text, n_train, "chargpt", &what))
        return ex_fail("chargpt", what);
    double secs = ex_now() - t0;
    double vl = chargpt_validate(&n, text + n_train, n_val);
    if (!isfinite(vl)) return ex_fail("chargpt", "validating");
    printf("steps=%lld val_loss=%.4f val_bpb=%.4f seconds=%.1f\n", (long long)optim_steps(opt), vl,
           vl / log(2.0), secs);
    if (o.save) {
        if (nn_model_save(n.m, o.save)) return ex_fail("chargpt", "saving the model");
        printf("saved %s\n", o.save);
    }
    if (o.checkpoint) {
        if (nn_checkpoint_save(o.checkpoint, n.m, opt, NULL)) return ex_fail("chargpt", "writing the checkpoint");
        printf("checkpoint %s at step %lld\n", o.checkpoint, (long long)optim_steps(opt));
    }
    if (o.sample > 0 && chargpt_sample(&n, &o, "chargpt")) return ex_fail("chargpt", "sampling");
    optim_free(opt);
    nn_model_free(n.m);
    free(text);
    return 0;
}
