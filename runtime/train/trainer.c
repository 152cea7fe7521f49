#include "trainer.h"

#include <cblas.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "clock.h"
#include "contract.h"
#include "fs.h"
#include "json_file.h"
#include "gpt.h"
#include "gpu_inventory.h"
#include "host_backend.h"
#include "metrics.h"
#include "ops.h"
#include "parse_int.h"
#include "strbuf.h"
#include "token_data.h"
#include "train_config.h"
#include "trainer_gpu.h"

#define BACKEND_TIMEOUT_S 900.0
#define LLMC_MODEL_MAGIC 20240326
#define LLMC_MODEL_VERSION_FP32 3

/* Set by SIGTERM/SIGINT. A signal handler can reach nothing but a global. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct timers {
    double data, compute, comm, wall;
    int steps;
};

struct trainer {
    const struct contract *job;
    struct train_config cfg;
    int rank, world, local_rank, local_world;
    int hosts, host;           /* the job's hosts, this one's index */
    bool train_sharded, val_sharded; /* ShardedByS3Key over several hosts: each host its own files */
    int rank_batch, micro, accum, T;
    struct gpt model;
    float *m, *v;
    struct token_source train, val;
    int has_val;
    struct host_backend backend;
    int *inputs, *targets;
    uint64_t fingerprint;
    int step;
    double peak_flops; /* this rank's measured sgemm rate, or its GPU's bf16 rate */
    struct timers interval;
    const char *gpu_bus_id; /* SAGERUN_GPU: this rank trains on that GPU (NULL: on the CPU) */
    struct trainer_gpu gpu;
    int *step_inputs, *step_targets; /* a GPU step's micro-batches, accum x micro x T */
    char checkpoint_dir[FS_PATH_BYTES];
    int progress_fd; /* the launcher's progress pipe (SAGERUN_PROGRESS_FD), or -1 */
};

static int is_rank0(const struct trainer *t)
{
    return t->rank == 0;
}

/* ---- setup ---- */

/* RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, as the launcher gives them. */
static int read_rank_identity(struct trainer *t, struct sr_error *err)
{
    return require_int_env("trainer", "RANK", 0, 1 << 20, &t->rank, err) != 0 ||
                   require_int_env("trainer", "WORLD_SIZE", 1, 1 << 20, &t->world, err) != 0 ||
                   require_int_env("trainer", "LOCAL_RANK", 0, 1 << 20, &t->local_rank, err) != 0 ||
                   require_int_env("trainer", "LOCAL_WORLD_SIZE", 1, 1 << 20, &t->local_world, err) != 0 ||
                   require_int_env("trainer", "GROUP_RANK", 0, 1 << 20, &t->host, err) != 0 ||
                   require_int_env("trainer", "GROUP_WORLD_SIZE", 1, 1 << 20, &t->hosts, err) != 0
               ? -1
               : 0;
}

static bool channel_sharded(const struct contract *c, const char *name)
{
    const struct channel *ch = contract_channel(c, name);
    return ch && ch->s3_distribution_type && strcmp(ch->s3_distribution_type, "ShardedByS3Key") == 0 &&
           c->resources.host_count > 1;
}

/* Splits the global batch: rank_batch sequences per rank, in micro-batches. */
static int batch_layout(struct trainer *t, const char *hp_path, struct sr_error *err)
{
    const struct train_config *c = &t->cfg;
    if (c->batch_size % t->world != 0) {
        error_config(err, hp_path, "$.batch_size", "%d sequences do not split evenly over %d ranks", c->batch_size,
                     t->world);
        return -1;
    }
    t->rank_batch = c->batch_size / t->world;
    t->micro = c->micro_batch_size ? c->micro_batch_size : t->rank_batch;
    if (t->rank_batch % t->micro != 0) {
        error_config(err, hp_path, "$.micro_batch_size", "%d does not divide the %d sequences of each rank "
                                                         "(batch_size %d over %d ranks)",
                     t->micro, t->rank_batch, c->batch_size, t->world);
        return -1;
    }
    t->accum = t->rank_batch / t->micro;
    t->T = c->model.max_seq_len;
    t->train_sharded = channel_sharded(t->job, "train");
    t->val_sharded = channel_sharded(t->job, "validation");
    if ((t->train_sharded || t->val_sharded) && t->world != t->hosts * t->local_world) {
        error_setf(err, "trainer: ShardedByS3Key gives each host its own part of the batch, so every host must run "
                        "as many ranks; this one runs %d of the %d ranks on %d hosts", t->local_world, t->world,
                   t->hosts);
        return -1;
    }
    return 0;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t model_fingerprint(const struct gpt_config *c)
{
    int dims[5] = {c->max_seq_len, c->vocab_size, c->n_layer, c->n_head, c->n_embd};
    return fnv1a(FNV_OFFSET, dims, sizeof dims);
}

/* OpenBLAS would start a thread per CPU in every rank; ranks that share the
 * machine's CPUs split them instead. OPENBLAS_NUM_THREADS, when set, wins. */
static int blas_threads(const struct trainer *t)
{
    if (getenv("OPENBLAS_NUM_THREADS"))
        return openblas_get_num_threads();
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
    int n = mine >= online ? mine / t->local_world : mine;
    n = n < 1 ? 1 : n;
    openblas_set_num_threads(n);
    return n;
}

/* FLOP/s of a 512^3 sgemm on this rank's CPUs, the best of a few runs (the
 * ranks measure at once, and a run can lose its core for a moment): the
 * denominator of MFU. */
static double measure_peak_flops(void)
{
    enum { S = 512, RUNS = 6 };
    float *a = calloc(S * S, sizeof(float)), *b = calloc(S * S, sizeof(float)), *c = calloc(S * S, sizeof(float));
    double best = 0.0;
    for (int i = 0; a && b && c && i < S * S; i++)
        a[i] = b[i] = (float)(i % 7) * 0.01f;
    for (int r = 0; a && b && c && r < RUNS; r++) {
        double start = clock_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, S, S, 1.0f, a, S, b, S, 0.0f, c, S);
        double elapsed = clock_now() - start;
        if (elapsed > 0 && 2.0 * S * S * S / elapsed > best)
            best = 2.0 * S * S * S / elapsed;
    }
    free(a), free(b), free(c);
    return best;
}

static bool channel_is_recordio(const struct channel *ch)
{
    return ch->record_wrapper_type && strcmp(ch->record_wrapper_type, "RecordIO") == 0;
}

static int open_channel(struct trainer *t, const char *name, struct token_source *s, struct sr_error *err)
{
    const struct channel *ch = contract_channel(t->job, name);
    char dir[FS_PATH_BYTES];
    if (ch->mode == INPUT_MODE_PIPE) {
        /* One FIFO per host: its bytes go to one reader only. */
        if (t->local_world > 1) {
            error_setf(err, "channel %s is in Pipe mode, which the built-in trainer reads with one rank per host; "
                            "this host runs %d (set SAGERUN_NPROC_PER_HOST=1, or use File or FastFile mode)",
                       name, t->local_world);
            return -1;
        }
        const char *pipes = getenv("SAGERUN_PIPE_DIR");
        snprintf(dir, sizeof dir, "%s", pipes && *pipes ? pipes : "");
        if (!dir[0])
            snprintf(dir, sizeof dir, "%s/input/data", t->job->ml_root);
    } else { /* File, and FastFile (a mounted file system) */
        snprintf(dir, sizeof dir, "%s/input/data/%s", t->job->ml_root, name);
    }
    bool sharded = channel_sharded(t->job, name);
    size_t sequences = (size_t)t->cfg.batch_size / (sharded ? (size_t)t->hosts : 1);
    if (token_source_open(s, name, dir, ch->mode, sequences * t->T + 1, t->cfg.model.vocab_size, err) != 0)
        return -1;
    if (channel_is_recordio(ch))
        token_source_recordio(s);
    return 0;
}

/* The synthetic dataset of `sagerun sample` says what loss it can reach. */
static void report_data_floor(const struct trainer *t)
{
    char path[FS_PATH_BYTES];
    snprintf(path, sizeof path, "%s/input/data/train/source.json", t->job->ml_root);
    json_t *src = json_load_file(path, 0, NULL);
    double floor_nats = json_real_value(json_object_get(src, "entropy_rate_nats"));
    if (src && floor_nats > 0)
        fprintf(stderr, "sagerun-trainer: data: %s; the best achievable loss is its entropy rate, %.4f nats/token\n",
                json_string_value(json_object_get(src, "description")), floor_nats);
    json_decref(src);
}

/* ---- all-reduce helpers ---- */

/* Whether every rank holds the same 64-bit value: its bytes, one per float,
 * are summed (exact in fp32 for fewer than 65793 ranks) and compared with
 * world x mine. */
static int ranks_agree(struct trainer *t, uint64_t value, int *agree, struct sr_error *err)
{
    float bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (float)((value >> (8 * i)) & 0xff);
    if (host_backend_allreduce(&t->backend, bytes, 8, RING_F32, err) != 0)
        return -1;
    *agree = 1;
    for (int i = 0; i < 8; i++)
        if (bytes[i] != (float)t->world * (float)((value >> (8 * i)) & 0xff))
            *agree = 0;
    return 0;
}

/* ---- checkpoints and the model ---- */

static struct checkpoint_state checkpoint_view(struct trainer *t)
{
    return (struct checkpoint_state){t->fingerprint,      (uint64_t)t->step,   token_source_position(&t->train),
                                     (uint64_t)t->cfg.seed, t->model.num_params, t->model.params_memory,
                                     t->m,                t->v};
}

/* A GPU rank's weights and optimizer state live on the GPU; the host copy
 * is refreshed before anything reads it (checkpoints, the model, hashes). */
static int pull_from_gpu(struct trainer *t, struct sr_error *err)
{
    if (!t->gpu.engine)
        return 0;
    return t->gpu.api->get_state(t->gpu.engine, t->model.params_memory, t->m, t->v, err);
}

static int resume_or_init(struct trainer *t, struct sr_error *err)
{
    struct checkpoint_state s = checkpoint_view(t);
    char loaded[FS_PATH_BYTES] = "";
    int rc = checkpoint_load_latest(t->checkpoint_dir, &s, loaded, sizeof loaded, stderr, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        gpt_init(&t->model, (uint64_t)t->cfg.seed);
        memset(t->m, 0, t->model.num_params * sizeof(float));
        memset(t->v, 0, t->model.num_params * sizeof(float));
    } else {
        t->step = (int)s.step;
        if (token_source_seek(&t->train, &s.data, err) != 0)
            return -1;
    }
    if (t->gpu.engine && t->gpu.api->set_state(t->gpu.engine, t->model.params_memory, t->m, t->v, err) != 0)
        return -1;
    uint64_t where = fnv1a(fnv1a(FNV_OFFSET, &s.step, sizeof s.step), &s.data, sizeof s.data);
    int agree;
    if (ranks_agree(t, rc ? where : 0, &agree, err) != 0)
        return -1;
    if (!agree) {
        error_setf(err, "trainer: the ranks did not all resume from the same checkpoint (rank %d: %s); every host "
                        "needs the same checkpoints (SageMaker copies them from CheckpointConfig.S3Uri)",
                   t->rank, rc ? loaded : "none found");
        return -1;
    }
    if (is_rank0(t)) {
        if (rc)
            fprintf(stderr, "sagerun-trainer: resumed from %s at step %d (epoch %lld)\n", loaded, t->step,
                    (long long)t->train.pos.epoch);
        else
            fprintf(stderr, "sagerun-trainer: no checkpoint in %s; initialised from seed %lld\n", t->checkpoint_dir,
                    (long long)t->cfg.seed);
    }
    return 0;
}

static int save_checkpoint(struct trainer *t, struct sr_error *err)
{
    if (t->local_rank != 0) /* one writer per host; every host keeps its own copy */
        return 0;
    double start = clock_now();
    if (pull_from_gpu(t, err) != 0)
        return -1;
    struct checkpoint_state s = checkpoint_view(t);
    if (checkpoint_save(t->checkpoint_dir, &s, t->cfg.checkpoint_keep, err) != 0)
        return -1;
    fprintf(stderr, "sagerun-trainer: rank %d: checkpoint of step %d written to %s in %.3f s\n", t->rank, t->step,
            t->checkpoint_dir, clock_now() - start);
    return 0;
}

/* The model in llm.c's checkpoint format (version 3: fp32, the vocabulary
 * unpadded), plus its hyperparameters, into /opt/ml/model. */
static int save_model(struct trainer *t, struct sr_error *err)
{
    const struct gpt_config *c = &t->cfg.model;
    char dir[FS_PATH_BYTES], path[FS_PATH_BYTES], tmp[FS_PATH_BYTES];
    snprintf(dir, sizeof dir, "%s/model", t->job->ml_root);
    snprintf(path, sizeof path, "%s/model.bin", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (fs_mkdirs(dir, err) != 0 || pull_from_gpu(t, err) != 0)
        return -1;
    int32_t header[256] = {LLMC_MODEL_MAGIC, LLMC_MODEL_VERSION_FP32, c->max_seq_len, c->vocab_size, c->n_layer,
                           c->n_head,        c->n_embd,               c->vocab_size};
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        error_setf(err, "trainer: cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = fwrite(header, sizeof header, 1, f) == 1 &&
             fwrite(t->model.params_memory, sizeof(float), t->model.num_params, f) == t->model.num_params;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        error_setf(err, "trainer: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/model_config.json", dir);
    json_t *cfg = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s}", "preset", t->cfg.preset, "n_layer",
                            c->n_layer, "n_head", c->n_head, "n_embd", c->n_embd, "seq_len", c->max_seq_len,
                            "vocab_size", c->vocab_size, "steps", t->step, "format",
                            "llm.c model checkpoint, version 3 (fp32)");
    int rc = json_file_write(path, cfg, err);
    json_decref(cfg);
    return rc;
}

/* ---- training ---- */

/* The rank's sequences of micro-batch k of a window: inputs and next
 * tokens. A window is the whole batch's (rank r takes the r-th part), or
 * with a sharded channel its host's part (local rank l takes the l-th). */
static void take_micro_batch(struct trainer *t, const uint16_t *window, bool sharded, int k)
{
    size_t first = (size_t)(sharded ? t->local_rank : t->rank) * t->rank_batch + (size_t)k * t->micro;
    for (int i = 0; i < t->micro; i++)
        for (int p = 0; p < t->T; p++) {
            size_t at = (first + (size_t)i) * t->T + (size_t)p;
            t->inputs[i * t->T + p] = window[at];
            t->targets[i * t->T + p] = window[at + 1];
        }
}

struct step_result {
    float loss, grad_norm, lr;
    int stop;
};

static int check_finite(struct trainer *t, const struct step_result *r, struct sr_error *err)
{
    if (isfinite(r->loss) && isfinite(r->grad_norm))
        return 0;
    char line[256];
    snprintf(line, sizeof line, "[warning] step=%d train_loss=%f grad_norm=%f: training diverged; stopping\n",
             t->step + 1, r->loss, r->grad_norm);
    if (is_rank0(t))
        metrics_emit(STDOUT_FILENO, line, err);
    error_setf(err, "trainer: training diverged at step %d (train_loss %f, grad_norm %f); lower learning_rate "
                    "or raise warmup_steps", t->step + 1, r->loss, r->grad_norm);
    return -1;
}

/* A GPU step: the engine runs the rank's micro-batches, the all-reduce
 * (overlapped with backward) and AdamW; the host only feeds tokens. */
static int train_step_gpu(struct trainer *t, const uint16_t *window, struct step_result *out, double t1,
                          struct sr_error *err)
{
    size_t per_micro = (size_t)t->micro * t->T;
    for (int k = 0; k < t->accum; k++) {
        take_micro_batch(t, window, t->train_sharded, k);
        memcpy(t->step_inputs + k * per_micro, t->inputs, per_micro * sizeof(int));
        memcpy(t->step_targets + k * per_micro, t->targets, per_micro * sizeof(int));
    }
    out->lr = (float)train_config_lr(&t->cfg, t->step);
    struct cuda_step_hparams h = {out->lr, (float)t->cfg.beta1, (float)t->cfg.beta2, (float)t->cfg.eps,
                                  (float)t->cfg.weight_decay, (float)t->cfg.grad_clip, t->step + 1};
    struct cuda_step_result r;
    float dloss = 1.0f / ((float)t->cfg.batch_size * (float)t->T);
    if (t->gpu.api->step(t->gpu.engine, t->step_inputs, t->step_targets, t->accum, dloss, stop_requested != 0, &h, &r,
                         err) != 0)
        return -1;
    out->loss = r.loss;
    out->grad_norm = r.grad_norm;
    out->stop = r.stop;
    /* The engine skipped the update of a non-finite step; the job stops here. */
    if (check_finite(t, out, err) != 0)
        return -1;
    t->step++;
    double t2 = clock_now();
    t->interval.compute += r.compute_s;
    t->interval.comm += r.comm_wait_s;
    t->interval.wall += t2 - t1;
    t->interval.steps++;
    return 0;
}

/* A CPU step: forward and backward over the rank's micro-batches, the
 * gradients (and loss and stop flag) all-reduced over the host ring, the
 * global norm, clipping and AdamW, all on this rank's CPUs. */
static int train_step_cpu(struct trainer *t, const uint16_t *window, struct step_result *out, double t0, double t1,
                          struct sr_error *err)
{
    memset(t->model.grads_memory, 0, t->model.num_params * sizeof(float));
    float dloss = 1.0f / ((float)t->cfg.batch_size * (float)t->T), loss_share = 0.0f;
    for (int k = 0; k < t->accum; k++) {
        take_micro_batch(t, window, t->train_sharded, k);
        float loss = gpt_forward(&t->model, t->inputs, t->targets);
        gpt_backward(&t->model, t->inputs, t->targets, dloss);
        loss_share += loss * (float)t->micro / (float)t->cfg.batch_size;
    }
    double t2 = clock_now();
    float shared[2] = {loss_share, stop_requested ? 1.0f : 0.0f};
    if (host_backend_allreduce(&t->backend, t->model.grads_memory, t->model.num_params, RING_F32, err) != 0 ||
        host_backend_allreduce(&t->backend, shared, 2, RING_F32, err) != 0)
        return -1;
    double t3 = clock_now();
    float norm = (float)sqrt(sum_of_squares(t->model.grads_memory, t->model.num_params));
    out->loss = shared[0];
    out->grad_norm = norm;
    out->stop = shared[1] > 0.0f;
    out->lr = (float)train_config_lr(&t->cfg, t->step);
    if (check_finite(t, out, err) != 0)
        return -1;
    struct adamw_hparams h = {out->lr, (float)t->cfg.beta1, (float)t->cfg.beta2, (float)t->cfg.eps, 0.0f, 1.0f,
                              t->step + 1};
    if (t->cfg.grad_clip > 0 && norm > t->cfg.grad_clip)
        h.grad_scale = (float)t->cfg.grad_clip / norm;
    size_t off = 0;
    for (int i = 0; i < GPT_PARAM_TENSORS; i++) {
        h.weight_decay = gpt_tensor_decays(i) ? (float)t->cfg.weight_decay : 0.0f;
        adamw_update(t->model.params_memory + off, t->model.grads_memory + off, t->m + off, t->v + off,
                     t->model.param_sizes[i], &h);
        off += t->model.param_sizes[i];
    }
    t->step++;
    double t4 = clock_now();
    t->interval.data += t1 - t0;
    t->interval.compute += (t2 - t1) + (t4 - t3);
    t->interval.comm += t3 - t2;
    t->interval.wall += t4 - t0;
    t->interval.steps++;
    return 0;
}

/* One optimizer step: the next window of the train channel, then the
 * rank's part of the step on its GPU or its CPUs. */
static int train_step(struct trainer *t, struct step_result *out, struct sr_error *err)
{
    double t0 = clock_now();
    const uint16_t *window;
    if (token_source_next(&t->train, &window, err) != 0)
        return -1;
    double t1 = clock_now();
    int rc;
    if (!t->gpu.engine) {
        rc = train_step_cpu(t, window, out, t0, t1, err);
    } else {
        t->interval.data += t1 - t0;
        t->interval.wall += t1 - t0;
        rc = train_step_gpu(t, window, out, t1, err);
    }
    /* A step done is progress for the launcher's hang watch, printed or not. */
    if (rc == 0 && t->progress_fd >= 0 && write(t->progress_fd, "s", 1) < 0 && errno != EAGAIN)
        t->progress_fd = -1;
    return rc;
}

/* Mean loss over val_batches windows of the validation channel (from its
 * start in File mode, so evaluations are comparable). */
static int validate(struct trainer *t, float *val_loss, struct sr_error *err)
{
    if (t->val.mode != INPUT_MODE_PIPE) {
        struct data_position start = {0, 0, 0};
        if (token_source_seek(&t->val, &start, err) != 0)
            return -1;
    }
    float sum = 0.0f;
    for (int b = 0; b < t->cfg.val_batches; b++) {
        const uint16_t *window;
        if (token_source_next(&t->val, &window, err) != 0)
            return -1;
        float weight = (float)t->micro / (float)t->cfg.batch_size;
        for (int k = 0; k < t->accum; k++) {
            take_micro_batch(t, window, t->val_sharded, k);
            if (!t->gpu.engine) {
                sum += gpt_forward(&t->model, t->inputs, t->targets) * weight;
                continue;
            }
            /* the engine adds weight * sum of token losses: a mean needs / (micro * T) */
            float part;
            if (t->gpu.api->evaluate(t->gpu.engine, t->inputs, t->targets, 1, weight / ((float)t->micro * t->T),
                                     &part, err) != 0)
                return -1;
            sum += part;
        }
    }
    if (host_backend_allreduce(&t->backend, &sum, 1, RING_F32, err) != 0)
        return -1;
    *val_loss = sum / (float)t->cfg.val_batches;
    return 0;
}

static int emit(const struct metric_field *fields, int count, const char *tag, struct sr_error *err)
{
    char line[512];
    if (metrics_format(line, sizeof line, tag, fields, count, err) != 0)
        return -1;
    return metrics_emit(STDOUT_FILENO, line, err);
}

static int log_interval(struct trainer *t, const struct step_result *r, struct sr_error *err)
{
    struct timers *iv = &t->interval;
    double tokens = (double)iv->steps * t->cfg.batch_size * t->T, tps = iv->wall > 0 ? tokens / iv->wall : 0;
    double flops = 3.0 * gpt_flops_per_token(&t->cfg.model, t->T) * tps; /* forward + backward (2x) */
    double mfu = t->peak_flops > 0 ? flops / (t->peak_flops * t->world) : 0;
    int rc = 0;
    if (is_rank0(t)) {
        struct metric_field f[] = {{"step", t->step, 0},
                                   {"epoch", (double)t->train.pos.epoch, 0},
                                   {"train_loss", r->loss, 4},
                                   {"lr", r->lr, 8},
                                   {"grad_norm", r->grad_norm, 4},
                                   {"tokens_per_sec", tps, 1},
                                   {"step_ms", 1000 * iv->wall / iv->steps, 1},
                                   {"mfu", mfu, 4}};
        rc = emit(f, 8, "[metrics]", err);
    }
    struct metric_field d[] = {{"rank", t->rank, 0},
                               {"data_ms", 1000 * iv->data / iv->steps, 2},
                               {"compute_ms", 1000 * iv->compute / iv->steps, 2},
                               {"comm_ms", 1000 * iv->comm / iv->steps, 2}};
    if (rc == 0)
        rc = emit(d, 4, "[rank-stats]", err);
    memset(iv, 0, sizeof *iv);
    return rc;
}

static int run_validation(struct trainer *t, struct sr_error *err)
{
    float loss;
    if (validate(t, &loss, err) != 0)
        return -1;
    struct metric_field f[] = {{"step", t->step, 0}, {"epoch", (double)t->train.pos.epoch, 0}, {"val_loss", loss, 4}};
    if (is_rank0(t))
        return emit(f, 3, "[metrics]", err);
    return 0;
}

/* Every weight_check_interval steps (debug): all replicas must be identical. */
static int check_replicas(struct trainer *t, struct sr_error *err)
{
    if (pull_from_gpu(t, err) != 0)
        return -1;
    uint64_t h = fnv1a(FNV_OFFSET, t->model.params_memory, t->model.num_params * sizeof(float));
    int agree;
    if (ranks_agree(t, h, &agree, err) != 0)
        return -1;
    if (!agree) {
        error_setf(err, "trainer: rank %d: the model replicas differ after step %d (weights hash %016llx)", t->rank,
                   t->step, (unsigned long long)h);
        return -1;
    }
    return 0;
}

static int every(int step, int interval)
{
    return interval > 0 && step % interval == 0;
}

static int train_loop(struct trainer *t, struct sr_error *err)
{
    struct step_result r = {0};
    while (t->step < t->cfg.max_steps) {
        if (train_step(t, &r, err) != 0)
            return -1;
        int last = t->step == t->cfg.max_steps || r.stop;
        if ((every(t->step, t->cfg.log_interval) || last) && log_interval(t, &r, err) != 0)
            return -1;
        if (t->has_val && (every(t->step, t->cfg.val_interval) || last) && run_validation(t, err) != 0)
            return -1;
        if (every(t->step, t->cfg.weight_check_interval) && check_replicas(t, err) != 0)
            return -1;
        if ((every(t->step, t->cfg.checkpoint_interval) || last) && save_checkpoint(t, err) != 0)
            return -1;
        if (r.stop) {
            if (is_rank0(t))
                fprintf(stderr, "sagerun-trainer: stop requested (SIGTERM); stopped after step %d with a checkpoint\n",
                        t->step);
            return 0;
        }
    }
    return 0;
}

/* One channel the trainer reads (see trainer_check_channels). */
static int check_channel(const struct contract *c, const struct channel *ch, const char *file, struct sr_error *err)
{
    char path[512];
    const char *ct = ch->content_type;
    if (channel_is_recordio(ch) && ch->mode != INPUT_MODE_PIPE) {
        snprintf(path, sizeof path, "$.%s.RecordWrapperType", ch->name);
        error_config(err, file, path, "\"RecordIO\" in %s mode: SageMaker wraps records in Pipe mode only (\"In File "
                                      "mode, leave this field unset or set it to None\"), so these files are not "
                                      "wrapped; set it to None", ch->mode == INPUT_MODE_FILE ? "File" : "FastFile");
        return -1;
    }
    if (channel_sharded(c, ch->name) && ch->mode == INPUT_MODE_PIPE) {
        snprintf(path, sizeof path, "$.%s.S3DistributionType", ch->name);
        error_config(err, file, path, "\"ShardedByS3Key\" in Pipe mode: the job's %zu hosts must agree on where "
                                      "an epoch ends before it starts, and a FIFO does not say how much it holds; "
                                      "use File or FastFile mode", c->resources.host_count);
        return -1;
    }
    if (ct && strcmp(ct, "application/octet-stream") != 0) {
        snprintf(path, sizeof path, "$.%s.ContentType", ch->name);
        error_config(err, file, path, "\"%s\": the built-in trainer reads llm.c token shards "
                                      "(application/octet-stream, or no ContentType)", ct);
        return -1;
    }
    return 0;
}

int trainer_check_channels(const struct contract *c, struct sr_error *err)
{
    if (!contract_channel(c, "train")) {
        error_setf(err, "trainer: inputdataconfig.json has no \"train\" channel; the built-in trainer reads token "
                        "shards (llm.c format) from it");
        return -1;
    }
    char file[FS_PATH_BYTES];
    snprintf(file, sizeof file, "%s/inputdataconfig.json", c->config_dir);
    static const char *const read[] = {"train", "validation"};
    for (size_t i = 0; i < sizeof read / sizeof *read; i++) {
        const struct channel *ch = contract_channel(c, read[i]);
        if (ch && check_channel(c, ch, file, err) != 0)
            return -1;
    }
    return 0;
}

void trainer_describe_channel(const struct contract *c, const struct channel *ch, char *out, size_t size)
{
    char file[FS_PATH_BYTES];
    snprintf(file, sizeof file, "%s/inputdataconfig.json", c->config_dir);
    struct sr_error err = {{0}};
    if (strcmp(ch->name, "train") != 0 && strcmp(ch->name, "validation") != 0) {
        snprintf(out, size, "not read by the built-in trainer");
    } else if (check_channel(c, ch, file, &err) != 0) {
        snprintf(out, size, "refused by the built-in trainer: %s", err.text);
    } else if (ch->mode == INPUT_MODE_PIPE) {
        snprintf(out, size, "built-in trainer: llm.c token shards back to back in the FIFOs %s_0, _1, ... (one an "
                            "epoch)%s, read by one rank per host", ch->name,
                 channel_is_recordio(ch) ? ", each shard a RecordIO record, unwrapped" : "");
    } else if (channel_sharded(c, ch->name)) {
        snprintf(out, size, "built-in trainer: ShardedByS3Key: this host's own *.bin shards in name order, windows "
                            "of batch_size / %zu sequences split among its ranks; an epoch ends, on every host, after "
                            "the fewest windows any host's files give", c->resources.host_count);
    } else {
        snprintf(out, size, "built-in trainer: *.bin token shards in name order, the same windows of batch_size "
                            "sequences on every host, split among all ranks");
    }
}

static int setup(struct trainer *t, struct sr_error *err)
{
    char hp_path[FS_PATH_BYTES];
    snprintf(hp_path, sizeof hp_path, "%s/hyperparameters.json", t->job->config_dir);
    if (train_config_parse(t->job->hyperparameters.raw, hp_path, &t->cfg, err) != 0 || read_rank_identity(t, err) != 0 ||
        batch_layout(t, hp_path, err) != 0 || trainer_check_channels(t->job, err) != 0)
        return -1;
    snprintf(t->checkpoint_dir, sizeof t->checkpoint_dir, "%s", t->job->checkpoint.local_path);
    bool default_dir = strcmp(t->job->checkpoint.local_path, t->job->default_checkpoint_dir) == 0;
    if (checkpoint_dir_prepare(t->checkpoint_dir,
                               default_dir ? "the default: no LocalPath in checkpointconfig.json"
                                           : "checkpointconfig.json LocalPath",
                               err) != 0)
        return -1;
    t->fingerprint = model_fingerprint(&t->cfg.model);
    /* On a GPU the host model only holds the weights (activations for one token). */
    const char *gpu = getenv(GPU_ENV);
    t->gpu_bus_id = gpu && *gpu ? gpu : NULL;
    if (gpt_create(&t->model, &t->cfg.model, t->gpu_bus_id ? 1 : t->micro, t->gpu_bus_id ? 1 : t->T, err) != 0)
        return -1;
    if (t->gpu_bus_id) {
        t->step_inputs = calloc((size_t)t->rank_batch * t->T, sizeof(int));
        t->step_targets = calloc((size_t)t->rank_batch * t->T, sizeof(int));
        if (!t->step_inputs || !t->step_targets) {
            error_setf(err, "trainer: out of memory for a step's tokens");
            return -1;
        }
    }
    t->m = calloc(t->model.num_params, sizeof(float));
    t->v = calloc(t->model.num_params, sizeof(float));
    t->inputs = calloc((size_t)t->micro * t->T, sizeof(int));
    t->targets = calloc((size_t)t->micro * t->T, sizeof(int));
    if (!t->m || !t->v || !t->inputs || !t->targets) {
        error_setf(err, "trainer: out of memory for the optimizer state of %zu parameters", t->model.num_params);
        return -1;
    }
    if (open_channel(t, "train", &t->train, err) != 0)
        return -1;
    t->has_val = contract_channel(t->job, "validation") != NULL;
    if (t->has_val && open_channel(t, "validation", &t->val, err) != 0)
        return -1;
    return 0;
}

static void describe(const struct trainer *t, int threads)
{
    const struct gpt_config *m = &t->cfg.model;
    fprintf(stderr, "sagerun-trainer: model %s: %d layers, %d heads, width %d, sequence %d, vocabulary %d: %.3fM "
                    "parameters\n", t->cfg.preset, m->n_layer, m->n_head, m->n_embd, m->max_seq_len, m->vocab_size,
            t->model.num_params / 1e6);
    fprintf(stderr, "sagerun-trainer: %d ranks; each step %d sequences x %d tokens; per rank %d in %d micro-batch%s "
                    "of %d; %d steps; host backend (%s); %d BLAS thread%s per rank, sgemm %.1f GFLOP/s\n",
            t->world, t->cfg.batch_size, t->T, t->rank_batch, t->accum, t->accum > 1 ? "es" : "", t->micro,
            t->cfg.max_steps, t->backend.security, threads, threads > 1 ? "s" : "", t->peak_flops / 1e9);
    if (t->gpu.engine)
        fprintf(stderr, "sagerun-trainer: rank 0 on %s\n", t->gpu.api->describe(t->gpu.engine));
}

/* A GPU rank's engine; the MFU denominator becomes the GPU's bf16 rate. */
static int open_gpu(struct trainer *t, struct sr_error *err)
{
    struct trainer_gpu_spec spec = {&t->cfg, t->micro, t->T, t->rank, t->world, t->gpu_bus_id};
    if (trainer_gpu_open(&t->gpu, &spec, &t->backend, err) != 0)
        return -1;
    t->peak_flops = t->gpu.api->peak_flops(t->gpu.engine);
    return 0;
}

static void teardown(struct trainer *t)
{
    trainer_gpu_close(&t->gpu);
    host_backend_close(&t->backend);
    token_source_close(&t->train);
    if (t->has_val)
        token_source_close(&t->val);
    gpt_free(&t->model);
    free(t->m);
    free(t->v);
    free(t->inputs);
    free(t->targets);
    free(t->step_inputs);
    free(t->step_targets);
}

/* ShardedByS3Key: each host holds other files, so the hosts agree through
 * the rendezvous that an epoch ends, for the whole job, after the fewest
 * windows any host's files give; each epoch starts again at every host's
 * first file, and what a larger host holds beyond that is not read. */
static int share_epochs(struct trainer *t, struct sr_error *err)
{
    if (!t->train_sharded)
        return 0;
    struct rdzv_client cl;
    double deadline = clock_now() + BACKEND_TIMEOUT_S;
    if (host_backend_rendezvous(&t->backend, &cl, deadline, err) != 0)
        return -1;
    char key[64], value[32];
    int rc = 0;
    if (t->local_rank == 0) {
        snprintf(key, sizeof key, "epoch-windows/train/%d", t->host);
        snprintf(value, sizeof value, "%lld", (long long)token_source_epoch_windows(&t->train));
        rc = rdzv_set(&cl, key, value, deadline, err);
    }
    int64_t fewest = INT64_MAX;
    struct strbuf counts;
    strbuf_init(&counts);
    for (int h = 0; rc == 0 && h < t->hosts; h++) {
        char *text = NULL;
        snprintf(key, sizeof key, "epoch-windows/train/%d", h);
        rc = rdzv_get(&cl, key, &text, deadline, err);
        if (rc == 0) {
            int64_t n = strtoll(text, NULL, 10);
            fewest = n < fewest ? n : fewest;
            strbuf_printf(&counts, "%s%s %lld", h ? ", " : "", t->job->resources.hosts[h], (long long)n);
        }
        free(text);
    }
    rdzv_client_close(&cl);
    if (rc == 0) {
        token_source_share_epochs(&t->train, fewest);
        if (is_rank0(t))
            fprintf(stderr, "sagerun-trainer: channel train is ShardedByS3Key: each of the %d hosts reads its own "
                            "files, %d sequences of each step's %d; an epoch is %lld windows, the fewest any host's "
                            "files give (%s)\n", t->hosts, t->cfg.batch_size / t->hosts, t->cfg.batch_size,
                    (long long)fewest, counts.data);
    }
    strbuf_free(&counts);
    return rc;
}

/* The launcher's progress pipe, when it gave one (non-blocking: a full
 * pipe means the launcher knows already). */
static int progress_pipe(void)
{
    const char *v = getenv("SAGERUN_PROGRESS_FD");
    int fd = v && *v ? atoi(v) : -1;
    if (fd < 3 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        return -1;
    return fd;
}

int trainer_run(const char *ml_root, struct sr_error *err)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct contract job;
    if (contract_load(&job, ml_root, err) != 0)
        return -1;
    struct trainer t;
    memset(&t, 0, sizeof t);
    t.job = &job;
    t.train.fd = t.val.fd = -1;
    t.progress_fd = progress_pipe();
    int rc = setup(&t, err);
    int threads = rc == 0 ? blas_threads(&t) : 0;
    if (rc == 0 && !t.gpu_bus_id)
        t.peak_flops = measure_peak_flops(); /* a GPU rank's comes from its GPU (open_gpu) */
    if (rc == 0)
        rc = host_backend_open(&t.backend, BACKEND_TIMEOUT_S, err);
    if (rc == 0)
        rc = share_epochs(&t, err);
    if (rc == 0 && t.gpu_bus_id)
        rc = open_gpu(&t, err);
    if (rc == 0 && is_rank0(&t)) {
        describe(&t, threads);
        report_data_floor(&t);
    }
    if (rc == 0)
        rc = resume_or_init(&t, err);
    if (rc == 0)
        rc = train_loop(&t, err);
    if (rc == 0 && is_rank0(&t))
        rc = save_model(&t, err);
    teardown(&t);
    contract_free(&job);
    return rc;
}
