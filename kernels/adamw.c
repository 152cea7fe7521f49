/* The optimizer: global gradient norm and AdamW. */
#include <math.h>

#include "ops.h"

double sum_of_squares(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, const struct adamw_hparams *h)
{
    float m_correction = 1.0f - powf(h->beta1, (float)h->t);
    float v_correction = 1.0f - powf(h->beta2, (float)h->t);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * h->grad_scale;
        m[i] = h->beta1 * m[i] + (1.0f - h->beta1) * g;
        v[i] = h->beta2 * v[i] + (1.0f - h->beta2) * g * g;
        float m_hat = m[i] / m_correction, v_hat = v[i] / v_correction;
        param[i] -= h->lr * (m_hat / (sqrtf(v_hat) + h->eps) + h->weight_decay * param[i]);
    }
}
