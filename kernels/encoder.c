/* Token + position embedding. */
#include "ops.h"

void encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *tok = wte + (size_t)tokens[b * T + t] * C, *pos = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++)
                o[c] = tok[c] + pos[c];
        }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *dtok = dwte + (size_t)tokens[b * T + t] * C, *dpos = dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                dtok[c] += d[c];
                dpos[c] += d[c];
            }
        }
}
