/* Causal multi-head self-attention, straightforward loops: position t of
 * head h attends to positions 0..t with softmax(q.k / sqrt(head size)). */
#include <math.h>

#include "ops.h"

static float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void attention_forward(float *out, float *att, const float *inp, int B, int T, int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t row = 3 * (size_t)C;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const float *base = inp + (size_t)b * T * row, *q = base + t * row + h * hs;
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                float max = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = dot(q, base + t2 * row + C + h * hs, hs) * scale;
                    if (a[t2] > max)
                        max = a[t2];
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(a[t2] - max); /* minus the max: exp cannot overflow */
                    sum += a[t2];
                }
                for (int t2 = 0; t2 < T; t2++)
                    a[t2] = t2 <= t ? a[t2] / sum : 0.0f;
                float *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++)
                    o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = base + t2 * row + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++)
                        o[i] += a[t2] * v[i];
                }
            }
}

/* Through the softmax: with datt[t2] = dout.v(t2),
 * dpre[t2] = att[t2] * (datt[t2] - sum_j att[j] * datt[j]). datt is
 * recomputed in the second pass rather than stored, so the kernel needs no
 * scratch memory. */
void attention_backward(float *dinp, const float *dout, const float *inp, const float *att, int B, int T, int C,
                        int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t row = 3 * (size_t)C;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const float *base = inp + (size_t)b * T * row, *q = base + t * row + h * hs;
                float *dbase = dinp + (size_t)b * T * row, *dq = dbase + t * row + h * hs;
                const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const float *d = dout + ((size_t)b * T + t) * C + h * hs;
                float expected = 0.0f;
                for (int t2 = 0; t2 <= t; t2++)
                    expected += a[t2] * dot(d, base + t2 * row + 2 * C + h * hs, hs);
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = base + t2 * row + C + h * hs, *v = base + t2 * row + 2 * C + h * hs;
                    float *dk = dbase + t2 * row + C + h * hs, *dv = dbase + t2 * row + 2 * C + h * hs;
                    float dpre = a[t2] * (dot(d, v, hs) - expected) * scale;
                    for (int i = 0; i < hs; i++) {
                        dv[i] += a[t2] * d[i];
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                    }
                }
            }
}
