/* synthetic_data.h — the embedded default dataset: tokens from a seeded
 * first-order Markov chain. Each token has `branching` possible successors
 * with random probabilities, so the best any model can do is the chain's
 * entropy rate H = sum_s pi(s) * H(next | s) (pi: the stationary
 * distribution), in nats per token: the floor the training loss falls to. */
#ifndef SAGERUN_SYNTHETIC_DATA_H
#define SAGERUN_SYNTHETIC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define MARKOV_MAX_VOCAB 4096

struct markov_source {
    int vocab_size, branching;
    int *next;    /* [vocab][branching] successor tokens */
    double *prob; /* [vocab][branching] their probabilities */
    double entropy_rate;
};

/* vocab_size in [2, MARKOV_MAX_VOCAB], branching in [1, vocab_size]. */
int markov_source_build(struct markov_source *m, int vocab_size, int branching, uint64_t seed);
void markov_generate(const struct markov_source *m, struct rng *r, uint16_t *out, size_t count);
void markov_source_free(struct markov_source *m);

#endif
