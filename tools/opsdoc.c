/* opsdoc - prints docs/ops.md from the op registry (make docs): one section
 * per op with its signature, forward and gradient formulas, notes, and the
 * sample cases the gradient checker runs. The registry is the single source,
 * so the reference cannot drift from the code. */
#include <string.h>

#include "../autograd/internal.h"

static void print_cases(const op_def *op) {
    if (!op->sample) {
        printf("- **checker cases**: none (the registry test fails on this op)\n");
        return;
    }
    printf("- **checker cases**:");
    int k = 0;
    for (;; k++) {
        op_sample s;
        memset(&s, 0, sizeof s);
        rng g;
        rng_seed(&g, 1, (uint64_t)k);
        int rc = op->sample(k, &g, &s);
        for (int i = 0; i < s.n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s.inputs[i]);
        if (rc != 0) break;
        printf("%s `%s`", k ? ";" : "", s.name);
    }
    printf("%s\n", k ? "" : " none");
    tapegrad_error_clear();
}

static void print_op(const op_def *op) {
    printf("## %s\n\n", op->name);
    printf("`%s`\n\n", op->signature && *op->signature ? op->signature : op->name);
    printf("- **forward**: %s\n", op->formula_forward && *op->formula_forward ? op->formula_forward
                                                                             : "(missing)");
    printf("- **gradient**: %s\n", op->formula_gradient && *op->formula_gradient
                                       ? op->formula_gradient
                                       : "(missing)");
    if (op->arity >= 0)
        printf("- **inputs**: %d", op->arity);
    else
        printf("- **inputs**: variable");
    if (op->no_grad_inputs) {
        printf(" (no gradient for input");
        for (int i = 0; i < 32; i++)
            if ((op->no_grad_inputs >> i) & 1) printf(" %d", i);
        printf(")");
    }
    printf("\n");
    if (op->notes && *op->notes) printf("- **notes**: %s\n", op->notes);
    printf("- **differentiable twice**: %s\n",
           op->vjp_graph                ? "yes (create_graph records its vjp)"
           : op_differentiable_twice(op) ? "not needed (no input has a gradient: never recorded)"
                                        : "no, first order only (create_graph through it is refused)");
    print_cases(op);
    printf("\n");
}

int main(void) {
    int n = op_count();
    printf("# Operator reference\n\n");
    printf("Generated from the op registry by `make docs` (tools/opsdoc.c); do not edit by hand.\n");
    printf("Every op below is checked against central differences in float64, case by case\n");
    printf("(`make gradcheck`, docs/checker.md). In the formulas g is the upstream gradient\n");
    printf("dL/dy, and unbroadcast(t) sums t over the dimensions that were broadcast.\n");
    int twice = 0, first = 0;
    for (int i = 0; i < n; i++) {
        if (op_at(i)->vjp_graph) twice++;
        else if (!op_differentiable_twice(op_at(i))) first++;
    }
    printf("Differentiable twice (a vjp built from ops, recorded by tensor_grad with create_graph\n");
    printf("and checked by gradgradcheck): %d ops; first order only: %d; the rest have no input\n", twice, first);
    printf("with a gradient.\n\n");
    printf("%d ops:", n);
    for (int i = 0; i < n; i++) printf("%s [%s](#%s)", i ? "," : "", op_at(i)->name, op_at(i)->name);
    printf("\n\n");
    for (int i = 0; i < n; i++) print_op(op_at(i));
    return 0;
}
