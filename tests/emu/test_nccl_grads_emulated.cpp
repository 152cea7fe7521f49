/* The data-parallel backend's schedule (runtime/gpu/nccl_grads.c) on the
 * emulator: two ranks as processes, each a GPU model (gpt_cuda) on its own
 * emulated device, the NCCL stand-in (emu_nccl.cpp) between them.
 *
 * - Buckets are announced in backward order (final LayerNorm, the last
 *   layer ... the first, the embeddings), and each all-reduce sums
 *   gradients that are complete: the all-reduced gradients equal, bit for
 *   bit, the sum of what each rank computes alone without overlap. The
 *   emulator runs the communication stream before the compute stream's
 *   work that it was not made to wait for (emu_runtime.cpp), so a missing
 *   or misplaced wait sums unfinished gradients and fails here.
 * - Over steps with AdamW the replicas stay bit-identical, in fp32 and in
 *   bf16 all-reduce mode.
 * - A collective that never completes (the peer left) ends the rank by
 *   its watchdog within the timeout, naming the bucket.
 */
#include "cuda_emu.hpp"

#include <setjmp.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>

#include "gpt.h"
#include "nccl_grads.h"
#include "rng.h"
}

namespace {

const struct gpt_config CFG = {32, 64, 3, 4, 64};
const int B = 2, T = 32, N = B * T, STEPS = 3;
const size_t BUCKET_BYTES = 64 << 10; /* several buckets for this model */

std::string dir;

std::string path(int rank, const char *what)
{
    return dir + "/rank" + std::to_string(rank) + "-" + what;
}

bool write_file(const std::string &p, const void *data, size_t bytes)
{
    FILE *f = fopen(p.c_str(), "wb");
    bool ok = f && fwrite(data, 1, bytes, f) == bytes;
    return f && fclose(f) == 0 && ok;
}

std::vector<float> read_floats(const std::string &p)
{
    FILE *f = fopen(p.c_str(), "rb");
    assert_non_null(f);
    std::vector<float> x;
    float v;
    while (fread(&v, 4, 1, f) == 1)
        x.push_back(v);
    fclose(f);
    return x;
}

void tokens_for(int rank, int step, int *inputs, int *targets)
{
    struct rng r;
    rng_seed(&r, (uint64_t)(1000 * rank + step + 1));
    for (int i = 0; i < N; i++) {
        inputs[i] = (int)(rng_next(&r) % (uint64_t)CFG.vocab_size);
        targets[i] = (int)(rng_next(&r) % (uint64_t)CFG.vocab_size);
    }
}

/* A child's checks: a message and exit status 2 (cmocka lives in the parent). */
#define CHILD_OK(cond)                                                                                             \
    do {                                                                                                           \
        if (!(cond)) {                                                                                             \
            fprintf(stderr, "rank child: %s failed: %s\n", #cond, err.text);                                      \
            _exit(2);                                                                                              \
        }                                                                                                          \
    } while (0)

struct recorder {
    struct nccl_grads *g;
    std::vector<int> stages;
};

int record_ready(void *ctx, int stage, struct sr_error *err)
{
    recorder *r = (recorder *)ctx;
    r->stages.push_back(stage);
    return nccl_grads_ready(r->g, stage, err);
}

struct model_state {
    struct gpt_cuda *model;
    float *mom, *var, *norm, *scalars;
    double *partials;
    size_t n;
};

void create_model(model_state &s, cudaStream_t stream, const std::vector<float> &params, struct sr_error &err)
{
    CHILD_OK(gpt_cuda_create(&s.model, &CFG, B, T, GPT_ATTENTION_AUTO, stream, &err) == 0);
    s.n = gpt_cuda_num_params(s.model);
    CHILD_OK(gpt_cuda_set_params(s.model, params.data(), &err) == 0);
    CHILD_OK(cudaMalloc((void **)&s.mom, s.n * 4) == cudaSuccess);
    CHILD_OK(cudaMalloc((void **)&s.var, s.n * 4) == cudaSuccess);
    CHILD_OK(cudaMemset(s.mom, 0, s.n * 4) == cudaSuccess && cudaMemset(s.var, 0, s.n * 4) == cudaSuccess);
    CHILD_OK(cudaMalloc((void **)&s.norm, 4) == cudaSuccess && cudaMalloc((void **)&s.scalars, 8) == cudaSuccess);
    CHILD_OK(cudaMalloc((void **)&s.partials, GPT_CUDA_NORM_PARTIALS * 8) == cudaSuccess);
}

/* Forward and backward of one micro-batch; with g, its buckets all-reduced
 * as backward goes and the scalars behind them. */
void forward_backward(model_state &s, cudaStream_t stream, int rank, int step, recorder *rec, struct sr_error &err)
{
    int inputs[N], targets[N];
    tokens_for(rank, step, inputs, targets);
    float dloss = 1.0f / (2.0f * N);
    CHILD_OK(cudaMemsetAsync(gpt_cuda_grads(s.model), 0, s.n * 4, stream) == cudaSuccess);
    CHILD_OK(cudaMemsetAsync(s.scalars, 0, 8, stream) == cudaSuccess);
    CHILD_OK(gpt_cuda_forward(s.model, inputs, targets, dloss, s.scalars, dloss, &err) == 0);
    CHILD_OK(gpt_cuda_backward(s.model, rec ? record_ready : nullptr, rec, &err) == 0);
    if (rec)
        CHILD_OK(nccl_grads_finish(rec->g, s.scalars, 2, &err) == 0);
    CHILD_OK(cudaStreamSynchronize(stream) == cudaSuccess);
}

std::vector<float> host_grads(model_state &s)
{
    std::vector<float> g(s.n);
    if (cudaMemcpy(g.data(), gpt_cuda_grads(s.model), s.n * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        _exit(3);
    return g;
}

/* A rank: its own gradients alone first, then the data-parallel steps.
 * `leave` makes it go after joining, before any collective. */
void rank_main(int rank, const unsigned char *id, bool bf16, bool leave, double timeout_s,
               const std::vector<float> &params)
{
    struct sr_error err = {{0}};
    cudaStream_t stream;
    CHILD_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    model_state alone, dp;
    create_model(alone, stream, params, err);
    forward_backward(alone, stream, rank, 0, nullptr, err);
    std::vector<float> own = host_grads(alone);
    CHILD_OK(write_file(path(rank, "own"), own.data(), own.size() * 4));

    create_model(dp, stream, params, err);
    struct nccl_grads g;
    struct nccl_grads_config nc = {rank, 2, id, BUCKET_BYTES, bf16, timeout_s};
    CHILD_OK(nccl_grads_init(&g, &nc, dp.model, stream, &err) == 0);
    if (leave)
        _exit(0);
    char plan[2048];
    nccl_grads_describe(&g, plan, sizeof plan);
    fprintf(stderr, "rank %d: %s\n", rank, plan);
    recorder rec = {&g, {}};
    struct gpt_cuda_adamw_hparams h = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1};
    for (int step = 0; step < STEPS; step++) {
        forward_backward(dp, stream, rank, step, &rec, err);
        if (step == 0) {
            std::vector<float> reduced = host_grads(dp);
            CHILD_OK(write_file(path(rank, "reduced"), reduced.data(), reduced.size() * 4));
        }
        h.t = step + 1;
        CHILD_OK(gpt_cuda_adamw(dp.model, dp.mom, dp.var, dp.norm, dp.partials, &h, &err) == 0);
    }
    std::vector<float> final_params(dp.n), stages(rec.stages.begin(), rec.stages.end());
    CHILD_OK(gpt_cuda_get_params(dp.model, final_params.data(), &err) == 0);
    CHILD_OK(write_file(path(rank, "params"), final_params.data(), final_params.size() * 4));
    CHILD_OK(write_file(path(rank, "stages"), stages.data(), stages.size() * 4));
    nccl_grads_destroy(&g);
    _exit(0);
}

struct ranks_result {
    int status[2];
    std::string stderr_text[2];
};

/* Both ranks as children, each with its stderr kept. */
ranks_result run_ranks(bool bf16, int leaving_rank)
{
    char tmpl[] = "/tmp/sagerun-nccl-grads-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    dir = tmpl;
    struct gpt cpu;
    struct sr_error e = {{0}};
    assert_int_equal(gpt_create(&cpu, &CFG, B, T, &e), 0);
    gpt_init(&cpu, 42);
    std::vector<float> params(cpu.params_memory, cpu.params_memory + cpu.num_params);
    gpt_free(&cpu);
    unsigned char id[NCCL_UNIQUE_ID_BYTES];
    assert_int_equal(nccl_unique_id(id, &e), 0);
    pid_t pids[2];
    int pipes[2][2];
    fflush(NULL);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(pipe(pipes[r]), 0);
        pids[r] = fork();
        assert_true(pids[r] >= 0);
        if (pids[r] == 0) {
            dup2(pipes[r][1], 2);
            close(pipes[r][0]);
            /* 1 s where the watchdog must fire; else room for a slow (sanitized) machine */
            rank_main(r, id, bf16, r == leaving_rank, leaving_rank >= 0 ? 1.0 : 120.0, params);
        }
        close(pipes[r][1]);
    }
    ranks_result out;
    for (int r = 0; r < 2; r++) {
        char chunk[4096];
        ssize_t n;
        while ((n = read(pipes[r][0], chunk, sizeof chunk)) > 0)
            out.stderr_text[r].append(chunk, (size_t)n);
        close(pipes[r][0]);
        assert_int_equal(waitpid(pids[r], &out.status[r], 0), pids[r]);
        print_message("  rank %d: %s", r, out.stderr_text[r].c_str());
    }
    return out;
}

void remove_dir()
{
    for (int r = 0; r < 2; r++)
        for (const char *what : {"own", "reduced", "params", "stages"})
            unlink(path(r, what).c_str());
    rmdir(dir.c_str());
}

void check_schedule(bool bf16)
{
    ranks_result res = run_ranks(bf16, -1);
    for (int r = 0; r < 2; r++)
        assert_true(WIFEXITED(res.status[r]) && WEXITSTATUS(res.status[r]) == 0);
    assert_non_null(strstr(res.stderr_text[0].c_str(), "buckets:")); /* more than one */
    std::vector<float> stages = read_floats(path(0, "stages"));
    assert_int_equal(stages.size(), (size_t)STEPS * (CFG.n_layer + 2));
    for (int s = 0; s < STEPS; s++)
        for (int p = 0; p < CFG.n_layer + 2; p++) /* final LayerNorm, layers last to first, embeddings */
            assert_true(stages[(size_t)s * (CFG.n_layer + 2) + p] == (float)(CFG.n_layer - p));
    std::vector<float> own0 = read_floats(path(0, "own")), own1 = read_floats(path(1, "own"));
    std::vector<float> red0 = read_floats(path(0, "reduced")), red1 = read_floats(path(1, "reduced"));
    assert_true(own0.size() == red0.size() && own1.size() == red0.size() && red1.size() == red0.size());
    assert_memory_equal(red0.data(), red1.data(), red0.size() * 4); /* every rank got the same sum */
    size_t wrong = 0;
    double worst = 0;
    for (size_t i = 0; i < red0.size(); i++) {
        float want = own0[i] + own1[i];
        if (bf16) { /* each slice rounded to bf16, summed in bf16 */
            float a = __bfloat162float(__float2bfloat16_rn(own0[i]));
            float b = __bfloat162float(__float2bfloat16_rn(own1[i]));
            want = __bfloat162float(__float2bfloat16_rn(a + b));
        }
        if (red0[i] != want) {
            wrong++;
            worst = fmax(worst, fabs((double)red0[i] - want));
        }
    }
    print_message("  %zu of %zu all-reduced gradients differ from the sum of the ranks' own (worst %.3g)\n", wrong,
                  red0.size(), worst);
    assert_int_equal(wrong, 0);
    std::vector<float> p0 = read_floats(path(0, "params")), p1 = read_floats(path(1, "params"));
    assert_int_equal(p0.size(), p1.size());
    assert_memory_equal(p0.data(), p1.data(), p0.size() * 4); /* replicas identical after the steps */
    remove_dir();
}

void buckets_follow_backward_fp32(void **state)
{
    (void)state;
    check_schedule(false);
}

void buckets_follow_backward_bf16(void **state)
{
    (void)state;
    check_schedule(true);
}

void watchdog_ends_a_collective_that_never_completes(void **state)
{
    (void)state;
    ranks_result res = run_ranks(false, 1);
    assert_true(WIFEXITED(res.status[1]) && WEXITSTATUS(res.status[1]) == 0);
    assert_true(WIFEXITED(res.status[0]) && WEXITSTATUS(res.status[0]) == 1);
    const char *text = res.stderr_text[0].c_str();
    assert_non_null(strstr(text, "sagerun-trainer: rank 0: all-reduce of gradient bucket 1 of"));
    assert_non_null(strstr(text, "did not complete within 1 s (SAGERUN_COLLECTIVE_TIMEOUT_S); NCCL communicator "
                                 "aborted"));
    remove_dir();
}

} /* namespace */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_follow_backward_fp32),
        cmocka_unit_test(buckets_follow_backward_bf16),
        cmocka_unit_test(watchdog_ends_a_collective_that_never_completes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
