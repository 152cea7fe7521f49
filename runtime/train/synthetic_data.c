#include "synthetic_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* pi by power iteration, averaged over the last half of the iterations so
 * a periodic chain converges too. */
static void stationary(const struct markov_source *m, double *pi)
{
    int V = m->vocab_size, K = m->branching;
    double *cur = xcalloc((size_t)V, sizeof *cur), *nxt = xcalloc((size_t)V, sizeof *nxt);
    for (int s = 0; s < V; s++)
        cur[s] = 1.0 / V;
    memset(pi, 0, (size_t)V * sizeof *pi);
    enum { ITERATIONS = 4000 };
    for (int it = 0; it < ITERATIONS; it++) {
        memset(nxt, 0, (size_t)V * sizeof *nxt);
        for (int s = 0; s < V; s++)
            for (int k = 0; k < K; k++)
                nxt[m->next[s * K + k]] += cur[s] * m->prob[s * K + k];
        memcpy(cur, nxt, (size_t)V * sizeof *cur);
        if (it >= ITERATIONS / 2)
            for (int s = 0; s < V; s++)
                pi[s] += cur[s] / (ITERATIONS / 2);
    }
    free(cur);
    free(nxt);
}

int markov_source_build(struct markov_source *m, int vocab_size, int branching, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    if (vocab_size < 2 || vocab_size > MARKOV_MAX_VOCAB || branching < 1 || branching > vocab_size)
        return -1;
    int V = vocab_size, K = branching;
    m->vocab_size = V;
    m->branching = K;
    m->next = xcalloc((size_t)V * K, sizeof *m->next);
    m->prob = xcalloc((size_t)V * K, sizeof *m->prob);
    struct rng r;
    rng_seed(&r, seed);
    char *taken = xcalloc((size_t)V, 1);
    for (int s = 0; s < V; s++) {
        memset(taken, 0, (size_t)V);
        double total = 0.0;
        for (int k = 0; k < K; k++) {
            int t;
            do
                t = (int)(rng_next(&r) % (uint64_t)V);
            while (taken[t]);
            taken[t] = 1;
            m->next[s * K + k] = t;
            m->prob[s * K + k] = -log(rng_uniform(&r)); /* Exp(1) weights: a flat Dirichlet */
            total += m->prob[s * K + k];
        }
        for (int k = 0; k < K; k++)
            m->prob[s * K + k] /= total;
    }
    free(taken);
    double *pi = xcalloc((size_t)V, sizeof *pi);
    stationary(m, pi);
    for (int s = 0; s < V; s++)
        for (int k = 0; k < K; k++) {
            double p = m->prob[s * K + k];
            m->entropy_rate -= pi[s] * p * log(p);
        }
    free(pi);
    return 0;
}

void markov_generate(const struct markov_source *m, struct rng *r, uint16_t *out, size_t count)
{
    int K = m->branching, s = (int)(rng_next(r) % (uint64_t)m->vocab_size);
    for (size_t i = 0; i < count; i++) {
        out[i] = (uint16_t)s;
        double u = rng_uniform(r), acc = 0.0;
        int k = 0;
        while (k < K - 1 && (acc += m->prob[s * K + k]) < u)
            k++;
        s = m->next[s * K + k];
    }
}

void markov_source_free(struct markov_source *m)
{
    free(m->next);
    free(m->prob);
    memset(m, 0, sizeof *m);
}
