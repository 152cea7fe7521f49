/* Softmax and cross-entropy, fused: the backward needs only the
 * probabilities, and (probs - onehot) is exact where the chained softmax
 * and log derivatives would lose precision. */
#include <math.h>

#include "ops.h"

void crossentropy_forward(float *losses, float *probs, const float *logits, const int *targets, int N, int V)
{
    for (int i = 0; i < N; i++) {
        const float *z = logits + (size_t)i * V;
        float *p = probs + (size_t)i * V;
        float max = -INFINITY;
        for (int v = 0; v < V; v++)
            if (z[v] > max)
                max = z[v];
        float sum = 0.0f;
        for (int v = 0; v < V; v++) {
            p[v] = expf(z[v] - max);
            sum += p[v];
        }
        for (int v = 0; v < V; v++)
            p[v] /= sum;
        /* -log p[target] from the logits, not from p: no log(0) when the
         * model is very sure and wrong. */
        losses[i] = logf(sum) - (z[targets[i]] - max);
    }
}

void crossentropy_backward(float *dlogits, const float *probs, const int *targets, float dloss, int N, int V)
{
    for (int i = 0; i < N; i++) {
        float *d = dlogits + (size_t)i * V;
        const float *p = probs + (size_t)i * V;
        for (int v = 0; v < V; v++)
            d[v] += dloss * (p[v] - (v == targets[i] ? 1.0f : 0.0f));
    }
}
