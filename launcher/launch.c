#include "launch.h"

#include <errno.h>
#include <sched.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "flight_recorder.h"
#include "fs.h"
#include "host_session.h"
#include "mpi.h"
#include "mpi_job.h"
#include "nccl_net_env.h"
#include "parse_int.h"
#include "rank_env.h"
#include "sm_env.h"
#include "strbuf.h"
#include "supervisor.h"
#include "train_config.h"
#include "trainer.h"

extern char **environ;

#define FAILURE_GRACE_S 3.0   /* other ranks' time to exit after one failed */

/* The command line every rank runs: CMD ARGS... then the user arguments. */
static char **command_line(char **cmd, int cmd_count, const json_t *user_args)
{
    size_t n = (size_t)cmd_count + json_array_size(user_args);
    char **argv = xcalloc(n + 1, sizeof *argv);
    for (int i = 0; i < cmd_count; i++)
        argv[i] = xstrdup(cmd[i]);
    for (size_t i = 0; i < json_array_size(user_args); i++)
        argv[(size_t)cmd_count + i] = xstrdup(json_string_value(json_array_get(user_args, i)));
    return argv;
}

/* The program the job names, as sagemaker-training finds it: $SAGEMAKER_PROGRAM
 * or the sagemaker_program hyperparameter, in sagemaker_submit_directory when
 * that is a local directory, else in <ML root>/code. Python scripts run with
 * python3, shell scripts with /bin/sh, anything else directly. Returns the
 * command (NULL-terminated) and the directory to run it in. */
static char **entry_point(const struct contract *c, int *count, char **cwd, struct sr_error *err)
{
    const char *program = getenv("SAGEMAKER_PROGRAM");
    const json_t *hp = json_object_get(c->hyperparameters.decoded, "sagemaker_program");
    if ((!program || !*program) && json_is_string(hp))
        program = json_string_value(hp);
    if (!program || !*program)
        return NULL; /* the built-in trainer */
    const json_t *submit = json_object_get(c->hyperparameters.decoded, "sagemaker_submit_directory");
    struct strbuf dir, path;
    strbuf_init(&dir);
    strbuf_init(&path);
    if (json_is_string(submit) && json_string_value(submit)[0] == '/' && access(json_string_value(submit), X_OK) == 0)
        strbuf_puts(&dir, json_string_value(submit));
    else
        strbuf_printf(&dir, "%s/code", c->ml_root);
    strbuf_printf(&path, "%s/%s", dir.data, program);
    if (access(path.data, R_OK) != 0) {
        error_setf(err, "train: entry point %s (program \"%s\") cannot be read: %s; sagerun does not download "
                        "sagemaker_submit_directory, so put the code in the image or in %s/code",
                   path.data, program, strerror(errno), c->ml_root);
        strbuf_free(&dir);
        strbuf_free(&path);
        return NULL;
    }
    size_t len = strlen(program);
    const char *runner = len > 3 && strcmp(program + len - 3, ".py") == 0   ? "python3"
                         : len > 3 && strcmp(program + len - 3, ".sh") == 0 ? "/bin/sh"
                                                                            : NULL;
    char **cmd = xcalloc(3, sizeof *cmd);
    *count = 0;
    if (runner)
        cmd[(*count)++] = xstrdup(runner);
    cmd[(*count)++] = strbuf_detach(&path);
    *cwd = strbuf_detach(&dir);
    return cmd;
}

/* The built-in trainer: this same binary, `sagerun trainer`, in every rank. */
static char **builtin_trainer(const struct contract *c, int *count, struct sr_error *err)
{
    char self[FS_PATH_BYTES];
    if (fs_self_executable(self, sizeof self, "train", err) != 0)
        return NULL;
    char **cmd = xcalloc(5, sizeof *cmd);
    cmd[0] = xstrdup(self);
    cmd[1] = xstrdup("trainer");
    cmd[2] = xstrdup("--ml-root");
    cmd[3] = xstrdup(c->ml_root);
    *count = 4;
    return cmd;
}

/* How this host takes part in the job: alone under mpirun (MPI numbers the
 * ranks), else through the rendezvous (session). A user's program gets the
 * hyperparameters as --key value arguments; the built-in trainer reads them
 * from the job itself. */
struct job_link {
    const struct mpi_rank *mpi;
    const char *mpi_rendezvous; /* a slot of sagerun's mpirun: where to tell its rank's failure */
    struct host_session *session;
    const struct tls_settings *tls;
    json_t *nccl_vars; /* nccl_net_env.h */
    bool hyperparameters_as_args;
};

/* What ranks need to reach each other: the rendezvous, this host's address,
 * the same TLS settings as the launcher, and NCCL's TLS plugin. */
static void add_link_vars(json_t *vars, const struct job_link *jl)
{
    tls_settings_export(jl->tls, vars);
    json_object_update(vars, jl->nccl_vars);
    if (!jl->session)
        return;
    json_object_set_new(vars, "SAGERUN_RENDEZVOUS", json_string(jl->session->rendezvous));
    json_object_set_new(vars, "SAGERUN_HOST_ADDR", json_string(jl->session->host_addr));
}

/* With SAGERUN_RANKS_PER_GPU=k, up to k ranks share each GPU (rank r gets
 * GPU r / k): several NCCL ranks on a one-GPU test machine. */
static int share_gpus(const struct gpu_inventory *gpus, int ranks, struct gpu_inventory *shared, int *per_gpu,
                      struct sr_error *err)
{
    *shared = *gpus;
    *per_gpu = 1;
    if (parse_int_env(RANKS_PER_GPU_ENV, 1, 64, per_gpu, err) < 0)
        return -1;
    if (*per_gpu == 1 || gpus->count == 0)
        return 0;
    if (ranks > gpus->count * *per_gpu || ranks > GPU_INVENTORY_MAX) {
        error_setf(err, "%s=%d: %d ranks do not fit on %d GPUs", RANKS_PER_GPU_ENV, *per_gpu, ranks, gpus->count);
        return -1;
    }
    shared->count = ranks;
    for (int r = 0; r < ranks; r++)
        shared->gpus[r] = gpus->gpus[r / *per_gpu];
    return 0;
}

/* The CPUs a rank may run on: its binding's, else an equal share of the
 * launcher's own (OMP_NUM_THREADS, rank_env.h). */
static int rank_cpus(hwloc_const_bitmap_t cpuset, int local_size)
{
    int bound = cpuset ? hwloc_bitmap_weight(cpuset) : 0;
    if (bound > 0)
        return bound;
    cpu_set_t allowed;
    int all = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
    return all / local_size > 0 ? all / local_size : 1;
}

/* A directory of this launch's own for the ranks' error files
 * (error_file.h), in $TMPDIR or /tmp; "" when none can be made, and the
 * ranks then go without one (their output still tells). */
static void error_dir_make(char *dir, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/sagerun-errors-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "sagerun: cannot make a directory for the ranks' error files (%s): %s\n", dir,
                strerror(errno));
        dir[0] = '\0';
    }
}

static void error_dir_remove(const char *dir, char (*files)[FS_PATH_BYTES], int count)
{
    if (!dir[0])
        return;
    for (int i = 0; i < count; i++)
        unlink(files[i]);
    rmdir(dir);
}

/* A slot of sagerun's mpirun: its rank's own failure goes to the job at
 * once (mpi_job.h), and its host's launcher writes the failure file from
 * the job's verdict; a rank stopped by mpirun (a failure elsewhere) is no
 * news. The slot's failure file stays unwritten (`failure` empty) unless
 * the job could not be told. */
static void slot_end(const struct contract *c, const struct job_link *jl, const struct supervisor_result *result,
                     char *failure, size_t size)
{
    failure[0] = '\0';
    if (!result->failure[0])
        return;
    if (result->stop_signal)
        return;
    fprintf(stderr, "sagerun: %s\n", result->failure);
    struct sr_error err = {{0}};
    if (mpi_job_report(c, jl->tls, jl->mpi_rendezvous, result->failure, &err) != 0)
        snprintf(failure, size, "%s (and the job could not be told: %s)", result->failure, err.text);
}

/* Ranks, their environments and bindings, then supervision. */
static int launch_ranks(const struct contract *c, const struct plan *p, const struct launch_options *o, char **cmd,
                        int cmd_count, const char *cwd, const struct job_link *jl, struct sr_error *err)
{
    const struct mpi_rank *mpi = jl->mpi;
    int local_size = mpi ? mpi->local_size : p->local_ranks;
    int first = mpi ? mpi->local_rank : 0, count = mpi ? 1 : p->local_ranks;
    struct gpu_inventory gpus;
    int per_gpu;
    if (share_gpus(&p->gpus, local_size, &gpus, &per_gpu, err) != 0)
        return -1;
    hwloc_topology_t topo;
    if (topology_open(&topo, NULL, err) != 0)
        return -1;
    struct binding_plan binding;
    if (binding_plan_build(topo, &gpus, local_size, o->bind, &binding, err) != 0) {
        hwloc_topology_destroy(topo);
        return -1;
    }
    json_t *vars = sm_env_build(c, p);
    add_link_vars(vars, jl);
    if (!jl->hyperparameters_as_args) /* sagerun's own rank programs tell their progress (supervisor.h) */
        json_object_set_new(vars, PROGRESS_FD_ENV, json_sprintf("%d", SUPERVISOR_PROGRESS_FD));
    json_t *user_args = jl->hyperparameters_as_args ? sm_env_user_args(c->hyperparameters.decoded) : json_array();
    char **argv = command_line(cmd, cmd_count, user_args);
    struct rank_spec *specs = xcalloc((size_t)count, sizeof *specs);
    char error_dir[FS_PATH_BYTES], (*error_files)[FS_PATH_BYTES] = xcalloc((size_t)count, sizeof *error_files);
    error_dir_make(error_dir, sizeof error_dir);
    char recorder[FS_PATH_BYTES] = ""; /* a program of the job's own: PyTorch's flight recorder */
    if (jl->hyperparameters_as_args)
        flight_recorder_prepare(error_dir, recorder, sizeof recorder);
    for (int i = 0; i < count; i++) {
        int l = first + i;
        const struct rank_binding *rb = &binding.ranks[l];
        char hostid[320];
        snprintf(hostid, sizeof hostid, "%s-rank%d", c->resources.current_host, l);
        int rank = mpi ? mpi->rank : p->first_rank + l;
        snprintf(error_files[i], sizeof error_files[i], "%s/rank-%d.json", error_dir, rank);
        const char *error_file = error_dir[0] ? error_files[i] : NULL;
        struct rank_identity id = {rank, l, mpi ? mpi->size : p->world_size, local_size, (int)p->host_index,
                                   p->master_addr, p->master_port, c->resources.network_interface_name,
                                   p->hosts[p->host_index].instance_type, rb->gpu_bus_id[0] ? rb->gpu_bus_id : NULL,
                                   per_gpu > 1 ? hostid : NULL, error_file, (int)p->host_count,
                                   c->training_job.job_name, rank_cpus(rb->cpuset, local_size),
                                   recorder[0] ? recorder : NULL};
        specs[i] = (struct rank_spec){id.rank, l, argv, rank_env_build(environ, vars, &id), rb->cpuset,
                                      rb->nodeset, rb->gpu_bus_id[0] ? rb->gpu_bus_id : NULL, cwd, error_file, NULL,
                                      !jl->hyperparameters_as_args};
    }
    char hang_dir[FS_PATH_BYTES];
    snprintf(hang_dir, sizeof hang_dir, "%s/output/data", c->ml_root);
    struct supervisor_options so = {c->resources.current_host, FAILURE_GRACE_S, o->stop_grace_s, topo,
                                    STDOUT_FILENO, STDERR_FILENO, jl->session ? &jl->session->link : NULL, hang_dir,
                                    0};
    struct supervisor_result result;
    int status = supervise(specs, count, &so, &result, err);
    if (status == 0 && result.failure[0])
        flight_recorder_gather(error_dir, c->ml_root, result.failure, sizeof result.failure);
    if (status == 0) {
        status = result.exit_status;
        char failure[2048];
        if (jl->mpi_rendezvous)
            slot_end(c, jl, &result, failure, sizeof failure);
        else if (!jl->session)
            snprintf(failure, sizeof failure, "%s", result.failure);
        else if (host_session_finish(jl->session, c->resources.current_host, &result, failure, sizeof failure) != 0 &&
                 status == 0)
            status = EXIT_JOB_FAILED; /* the job failed elsewhere after this host's ranks were done */
        if (failure[0])
            error_setf(err, "%s", failure);
    }
    for (int i = 0; i < count; i++)
        strv_free((char **)specs[i].envp);
    flight_recorder_remove(error_dir);
    error_dir_remove(error_dir, error_files, count);
    free(error_files);
    free(specs);
    strv_free(argv);
    json_decref(user_args);
    json_decref(vars);
    binding_plan_free(&binding);
    hwloc_topology_destroy(topo);
    return status;
}

/* This host joins the job through the rendezvous (host_session.h). */
static int join_job(const struct contract *c, struct plan *p, const struct launch_options *o,
                    const struct tls_settings *tls, SSL_CTX **ctx, struct host_session *session, struct sr_error *err)
{
    struct host_session_options so;
    *ctx = NULL;
    if (host_session_options_from_env(&so, err) != 0)
        return -1;
    so.port += o->rendezvous_port_shift;
    if (so.port > 65535) {
        error_setf(err, "SAGERUN_RENDEZVOUS_PORT %d leaves no port for the preflight's own session (%d)",
                   so.port - o->rendezvous_port_shift, so.port);
        return -1;
    }
    if (tls->mode != TLS_OFF && !(*ctx = tls_context_create(tls, err)))
        return -1;
    if (host_session_start(session, c, p, *ctx, &so, err) != 0) {
        tls_context_free(*ctx);
        return -1;
    }
    fprintf(stderr, "sagerun: %s joined a job of %zu hosts and %d ranks (rendezvous %s, %s)\n",
            c->resources.current_host, p->host_count, p->world_size, session->rendezvous, session->security);
    if (tls->mode != TLS_OFF)
        fprintf(stderr, "sagerun: encryption on: TLS covers %s; not covered: %s\n", TLS_COVERED, TLS_NOT_COVERED);
    fflush(NULL);
    return 0;
}

/* Joins the job through the rendezvous, then launches this host's ranks. */
static int launch_joined(const struct contract *c, struct plan *p, const struct launch_options *o, char **cmd,
                         int cmd_count, const char *cwd, const struct tls_settings *tls, json_t *nccl_vars,
                         bool builtin, struct sr_error *err)
{
    SSL_CTX *ctx = NULL;
    struct host_session session;
    if (join_job(c, p, o, tls, &ctx, &session, err) != 0)
        return -1;
    struct job_link jl = {NULL, NULL, &session, tls, nccl_vars, !builtin};
    int status = launch_ranks(c, p, o, cmd, cmd_count, cwd, &jl, err);
    tls_context_free(ctx);
    return status;
}

/* Under mpirun: every host joins the job; the leader then runs mpirun,
 * the others stay until the job ends (mpi_job.h). */
static int start_mpirun(const struct contract *c, struct plan *p, const struct launch_options *o, char **cmd,
                        int cmd_count, const char *cwd, const struct tls_settings *tls, struct sr_error *err)
{
    SSL_CTX *ctx = NULL;
    struct host_session session;
    if (join_job(c, p, o, tls, &ctx, &session, err) != 0)
        return -1;
    int status = p->is_leader
                     ? mpi_job_lead(c, p, o, cmd, cmd_count, cwd, tls->mode != TLS_OFF, &session, err)
                     : mpi_job_serve(c, &session, err);
    tls_context_free(ctx);
    return status;
}

/* What every launch needs before this host joins: key material (fail
 * closed: encryption on needs it) and NCCL's TLS plugin settings. */
static int link_settings(const struct job *j, struct tls_settings *tls, json_t *nccl_vars, struct sr_error *err)
{
    if (job_tls_settings(j, tls, err) != 0)
        return -1;
    return nccl_net_env_add(tls, j->plan.gpus.count, nccl_vars, err);
}

int launch_builtin_program(struct job *j, const struct launch_options *o, char **cmd, int cmd_count,
                           struct sr_error *err)
{
    const struct contract *c = &j->contract;
    struct plan *p = &j->plan;
    if (o->mpirun || getenv("OMPI_COMM_WORLD_RANK")) {
        error_setf(err, "%s: sagerun's own rank programs run under sagerun's launcher (their ranks meet through the "
                        "rendezvous); --launcher mpirun is for a program of the job's own",
                   cmd[1]);
        return -1;
    }
    struct tls_settings tls;
    json_t *nccl_vars = json_object();
    int status = link_settings(j, &tls, nccl_vars, err);
    if (status == 0)
        status = launch_joined(c, p, o, cmd, cmd_count, NULL, &tls, nccl_vars, true, err);
    json_decref(nccl_vars);
    OPENSSL_cleanse(&tls, sizeof tls);
    return status;
}

/* The built-in trainer; bad settings fail here, before any rank starts. */
static int run_builtin_trainer(struct job *j, const struct launch_options *o, struct sr_error *err)
{
    struct train_config trainer_config;
    char hp_path[FS_PATH_BYTES];
    snprintf(hp_path, sizeof hp_path, "%s/hyperparameters.json", j->contract.config_dir);
    if (train_config_parse(j->contract.hyperparameters.raw, hp_path, &trainer_config, err) != 0 ||
        trainer_check_channels(&j->contract, err) != 0)
        return -1;
    int count;
    char **cmd = builtin_trainer(&j->contract, &count, err);
    if (!cmd)
        return -1;
    int status = launch_builtin_program(j, o, cmd, count, err);
    strv_free(cmd);
    return status;
}

/* A program of the job's own: under mpirun, as its leader, or joined. */
static int run_user_program(struct job *j, const struct launch_options *o, char **cmd, int cmd_count,
                            const char *cwd, struct sr_error *err)
{
    const struct contract *c = &j->contract;
    struct plan *p = &j->plan;
    struct tls_settings tls;
    struct mpi_rank mpi;
    int status;
    json_t *nccl_vars = json_object();
    if (link_settings(j, &tls, nccl_vars, err) != 0) {
        status = -1;
    } else if (mpi_rank_from_env(&mpi, err)) {
        const char *rendezvous = getenv("SAGERUN_RENDEZVOUS"); /* set when the mpirun is sagerun's */
        struct job_link jl = {&mpi, rendezvous && *rendezvous ? rendezvous : NULL, NULL, &tls, nccl_vars, true};
        status = launch_ranks(c, p, o, cmd, cmd_count, cwd, &jl, err);
    } else if (error_is_set(err)) {
        status = -1;
    } else if (o->mpirun) {
        status = start_mpirun(c, p, o, cmd, cmd_count, cwd, &tls, err);
    } else {
        status = launch_joined(c, p, o, cmd, cmd_count, cwd, &tls, nccl_vars, false, err);
    }
    json_decref(nccl_vars);
    OPENSSL_cleanse(&tls, sizeof tls);
    return status;
}

int launch_program(struct job *j, const struct launch_options *o, char **cmd, int cmd_count, struct sr_error *err)
{
    if (cmd_count > 0)
        return run_user_program(j, o, cmd, cmd_count, NULL, err);
    char *cwd = NULL;
    char **program = entry_point(&j->contract, &cmd_count, &cwd, err);
    if (!program)
        return error_is_set(err) ? -1 : run_builtin_trainer(j, o, err);
    int status = run_user_program(j, o, program, cmd_count, cwd, err);
    strv_free(program);
    free(cwd);
    return status;
}
