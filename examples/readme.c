#include <stdio.h>
#include <tapegrad.h>

/* A tiny linear model y = x W + b, loss = mean(y^2), gradients by the tape. */
int main(void) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(2, 3), (double[]){1, 2, 3, -1, 0.5, 2});
    tensor *W = tensor_from_doubles(DTYPE_F32, SHAPE(3, 2), (double[]){0.1, -0.2, 0.3, 0.4, -0.5, 0.6});
    tensor *b = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){0.1, -0.1});
    tensor_set_requires_grad(W, true);   /* W and b are leaves we want gradients for */
    tensor_set_requires_grad(b, true);

    tensor *y = tensor_add(tensor_matmul(x, W), b);    /* ops record nodes on the tape */
    tensor *loss = tensor_mean_all(tensor_mul(y, y));
    if (!loss || tensor_backward(loss) != 0) {         /* one check for the whole expression */
        fprintf(stderr, "error: %s\n", tapegrad_error());
        return 1;
    }
    printf("loss = %.6f\n", tensor_item(loss));
    tensor_print(stdout, W->grad, "dloss/dW");
    tensor_print(stdout, b->grad, "dloss/db");

    tape_reset();                        /* releases every op output at once */
    tensor_free(x);                      /* user-created tensors are freed by the user */
    tensor_free(W);
    tensor_free(b);
    return 0;
}
