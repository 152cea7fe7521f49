/* sagerun-allreduce: the host backend's all-reduce as a rank program, run
 * under `sagerun train -- sagerun-allreduce MODE`. Modes:
 *   --check            sums of known data over many lengths (0, 1, odd,
 *                      not divisible by the world size, multi-slice), fp32
 *                      and bf16, checked exactly on every rank
 *   --marker TEXT      all-reduces a buffer filled with TEXT (what a packet
 *                      capture looks for on the wire)
 *   --seconds S        keeps all-reducing 1 MiB for S seconds (a job that is
 *                      still running when a test kills a host)
 *   --bench            algbw and busbw from --min-bytes to --max-bytes, in
 *                      the columns of nccl-tests (bench/mpi_allreduce.c prints
 *                      the same for MPI_Allreduce), and the CPU time per
 *                      all-reduce of all ranks together and of the whole
 *                      machine (rank 0's view of /proc/stat: for hosts that
 *                      share one machine); --iters N sets the timed
 *                      iterations of every size
 * Exit status 0 only if every check passed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "host_backend.h"

static float value(int rank, size_t i) { return (float)((int)((i * 7 + (size_t)rank * 13) % 5) - 2); }

static int check(struct host_backend *b, struct sr_error *err)
{
    const size_t counts[] = {0, 1, 2, 3, 7, 1000, 65537, 262147, 1048576 + 3};
    int cases = 0;
    for (int t = 0; t < 2; t++) {
        enum ring_dtype type = t == 0 ? RING_F32 : RING_BF16;
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            size_t n = counts[c];
            void *buf = malloc(n * 4 + 4);
            for (size_t i = 0; i < n; i++) {
                if (type == RING_F32)
                    ((float *)buf)[i] = value(b->rank, i);
                else
                    ((uint16_t *)buf)[i] = f32_to_bf16(value(b->rank, i));
            }
            if (host_backend_allreduce(b, buf, n, type, err) != 0)
                return -1;
            for (size_t i = 0; i < n; i++) {
                float want = 0;
                for (int k = 0; k < b->size; k++)
                    want += value(k, i);
                float got = type == RING_F32 ? ((float *)buf)[i] : bf16_to_f32(((uint16_t *)buf)[i]);
                if (got != want) {
                    error_setf(err, "check failed: %s sum of %zu elements: element %zu is %g, want %g",
                               type == RING_F32 ? "fp32" : "bf16", n, i, got, want);
                    return -1;
                }
            }
            free(buf);
            cases++;
        }
    }
    printf("allreduce check passed: rank %d of %d, %d cases exact (fp32 and bf16, 0 to %zu elements), %s\n", b->rank,
           b->size, cases, counts[sizeof counts / sizeof counts[0] - 1], b->security);
    return 0;
}

static int repeat(struct host_backend *b, const char *marker, double seconds, struct sr_error *err)
{
    size_t bytes = 1 << 20, mlen = marker ? strlen(marker) : 0;
    unsigned char *buf = malloc(bytes);
    double start = clock_now(), last_report = start;
    long rounds = 0;
    do {
        for (size_t i = 0; i < bytes; i++) /* fresh every round: the sum would change it */
            buf[i] = mlen ? (unsigned char)marker[i % mlen] : (unsigned char)(i * 31 + (size_t)b->rank);
        if (host_backend_allreduce(b, buf, bytes / 4, RING_F32, err) != 0) {
            free(buf);
            return -1;
        }
        rounds++;
        if (b->rank == 0 && clock_now() - last_report >= 1.0) {
            printf("allreduce: %ld rounds of 1 MiB\n", rounds);
            fflush(stdout);
            last_report = clock_now();
        }
    } while (clock_now() - start < seconds);
    if (b->rank == 0)
        printf("allreduce done: %ld rounds of 1 MiB, %s\n", rounds, b->security);
    free(buf);
    return 0;
}

static int bench(struct host_backend *b, size_t min_bytes, size_t max_bytes, int fixed_iters, struct sr_error *err)
{
    float *buf = malloc(max_bytes);
    memset(buf, 0, max_bytes);
    if (b->rank == 0)
        printf("# sagerun host backend, %d ranks, %s\n# %12s %10s %12s %10s %10s %12s %12s\n", b->size,
               b->security, "bytes", "iters", "time_us", "algbw_GBs", "busbw_GBs", "cpu_us_ranks", "cpu_us_busy");
    for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
        int iters = fixed_iters ? fixed_iters : bytes <= (1 << 20) ? 50 : bytes <= (16 << 20) ? 10 : 3;
        if (host_backend_allreduce(b, buf, bytes / 4, RING_F32, err) != 0) /* warm-up */
            return -1;
        double start = clock_now(), cpu = clock_process_cpu(), busy = clock_machine_busy();
        for (int i = 0; i < iters; i++)
            if (host_backend_allreduce(b, buf, bytes / 4, RING_F32, err) != 0)
                return -1;
        double t = (clock_now() - start) / iters;
        busy = (clock_machine_busy() - busy) / iters;
        float cpu_ranks = (float)((clock_process_cpu() - cpu) / iters); /* summed over the ranks by the ring itself */
        if (host_backend_allreduce(b, &cpu_ranks, 1, RING_F32, err) != 0)
            return -1;
        double algbw = (double)bytes / t / 1e9, busbw = algbw * 2.0 * (b->size - 1) / b->size;
        if (b->rank == 0)
            printf("  %12zu %10d %12.1f %10.3f %10.3f %12.1f %12.1f\n", bytes, iters, t * 1e6, algbw, busbw,
                   cpu_ranks * 1e6, busy * 1e6);
        fflush(stdout);
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"check", no_argument, NULL, 'c'},          {"marker", required_argument, NULL, 'm'},
        {"seconds", required_argument, NULL, 's'},  {"bench", no_argument, NULL, 'b'},
        {"min-bytes", required_argument, NULL, 'n'}, {"max-bytes", required_argument, NULL, 'x'},
        {"iters", required_argument, NULL, 'i'},     {NULL, 0, NULL, 0},
    };
    int mode = 0, opt, iters = 0;
    const char *marker = NULL;
    double seconds = 0;
    size_t min_bytes = 4096, max_bytes = 256u << 20;
    opterr = 0; /* hyperparameters arrive as --key value: not ours, not errors */
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'c': mode = 'c'; break;
        case 'b': mode = 'b'; break;
        case 'm': mode = 'r', marker = optarg; break;
        case 's': mode = 'r', seconds = atof(optarg); break;
        case 'n': min_bytes = strtoull(optarg, NULL, 0); break;
        case 'x': max_bytes = strtoull(optarg, NULL, 0); break;
        case 'i': iters = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        default: break;
        }
    }
    if (!mode) {
        fprintf(stderr, "usage: sagerun-allreduce --check | --marker TEXT | --seconds S | --bench [--min-bytes N] "
                        "[--max-bytes N] [--iters N]\n");
        return 2;
    }
    struct host_backend b;
    struct sr_error err = {{0}};
    int rc = host_backend_open(&b, 600, &err);
    if (rc == 0) {
        rc = mode == 'c' ? check(&b, &err) : mode == 'b' ? bench(&b, min_bytes, max_bytes, iters, &err)
                                                         : repeat(&b, marker, seconds, &err);
        host_backend_close(&b);
    }
    if (rc != 0) {
        fprintf(stderr, "sagerun-allreduce: %s\n", err.text);
        return 1;
    }
    return 0;
}
