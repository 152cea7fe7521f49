/* attention_lse.h — the reference for fused attention's saved statistic:
 * lse[b, h, t] = log sum_{t2 <= t} exp(q_t . k_t2 / sqrt(HS)), in double,
 * from qkv [B, T, 3, NH, HS] (the layout of ops.h's attention). */
#ifndef SAGERUN_ATTENTION_LSE_H
#define SAGERUN_ATTENTION_LSE_H

#include <math.h>
#include <stddef.h>

static void attention_lse_reference(float *lse, const float *qkv, int B, int T, int C, int NH)
{
    int HS = C / NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * HS;
                double max = -INFINITY, sum = 0.0;
                for (int pass = 0; pass < 2; pass++)
                    for (int t2 = 0; t2 <= t; t2++) {
                        const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                        double s = 0.0;
                        for (int i = 0; i < HS; i++)
                            s += (double)q[i] * k[i];
                        s /= sqrt((double)HS);
                        if (pass == 0)
                            max = fmax(max, s);
                        else
                            sum += exp(s - max);
                    }
                lse[((size_t)b * NH + h) * T + t] = (float)(max + log(sum));
            }
}

#endif
