/* LayerNorm over the channels of each row. */
#include <math.h>

#include "ops.h"

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C)
{
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *o = out + (size_t)i * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= (float)C;
        /* Two passes (mean, then squared deviations): one-pass E[x^2]-E[x]^2
         * cancels badly when the mean is large against the spread. */
        float var = 0.0f;
        for (int c = 0; c < C; c++)
            var += (x[c] - m) * (x[c] - m);
        var /= (float)C;
        float s = 1.0f / sqrtf(var + LAYERNORM_EPS);
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[i] = m;
        rstd[i] = s;
    }
}

/* With xhat = (x - mean) * rstd and g = dout * weight:
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C)
{
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        float g_mean = 0.0f, gx_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - mean[i]) * rstd[i];
            float g = d[c] * weight[c];
            g_mean += g;
            gx_mean += g * xhat;
        }
        g_mean /= (float)C;
        gx_mean /= (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - mean[i]) * rstd[i];
            float g = d[c] * weight[c];
            dbias[c] += d[c];
            dweight[c] += d[c] * xhat;
            dx[c] += rstd[i] * (g - g_mean - xhat * gx_mean);
        }
    }
}
