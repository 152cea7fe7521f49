#include "measure.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "rng.h"
#include "transport.h"

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_stats_of(double *runs, int n, struct bench_stats *out)
{
    qsort(runs, (size_t)n, sizeof *runs, compare_doubles);
    out->median = n % 2 ? runs[n / 2] : 0.5 * (runs[n / 2 - 1] + runs[n / 2]);
    out->min = runs[0];
    out->max = runs[n - 1];
    out->repeats = n;
}

void bench_stats_of_device(double *runs, int n, double throttle, struct bench_stats *out)
{
    for (int i = 0; throttle < 1.0 && i < n; i++)
        runs[i] /= throttle;
    bench_stats_of(runs, n, out);
}

void bench_throttle_wait(double elapsed, double throttle)
{
    if (throttle >= 1.0 || elapsed <= 0.0)
        return;
    double s = elapsed / throttle - elapsed;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int bench_measure(bench_work_fn work, void *ctx, const struct bench_timing *t, struct bench_stats *out,
                  struct sr_error *err)
{
    for (int i = 0; i < t->warmup; i++)
        if (work(ctx, err) != 0)
            return -1;
    double *runs = calloc((size_t)t->repeats, sizeof *runs);
    if (!runs) {
        error_setf(err, "bench: out of memory for %d timings", t->repeats);
        return -1;
    }
    for (int i = 0; i < t->repeats; i++) {
        double start = clock_now();
        if (work(ctx, err) != 0) {
            free(runs);
            return -1;
        }
        bench_throttle_wait(clock_now() - start, t->throttle);
        runs[i] = clock_now() - start;
    }
    bench_stats_of(runs, t->repeats, out);
    free(runs);
    return 0;
}

int bench_throttle_from_env(double *throttle, struct sr_error *err)
{
    *throttle = 1.0;
    const char *text = getenv("SAGERUN_BENCH_THROTTLE");
    if (!text || !*text)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !(v > 0.0 && v <= 1.0)) {
        error_setf(err, "environment variable SAGERUN_BENCH_THROTTLE: \"%s\" is not a number in (0, 1]", text);
        return -1;
    }
    *throttle = v;
    return 0;
}

void bench_fill_random(float *x, size_t n, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
}
