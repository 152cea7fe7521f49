#include "mpi.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "strbuf.h"

extern char **environ;

static int env_int(const char *name, int *out)
{
    const char *v = getenv(name);
    char *end;
    if (!v)
        return -1;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0 || n > 1 << 20)
        return -1;
    *out = (int)n;
    return 0;
}

bool mpi_rank_from_env(struct mpi_rank *out, struct sr_error *err)
{
    if (!getenv("OMPI_COMM_WORLD_SIZE"))
        return false;
    if (env_int("OMPI_COMM_WORLD_RANK", &out->rank) || env_int("OMPI_COMM_WORLD_SIZE", &out->size) ||
        env_int("OMPI_COMM_WORLD_LOCAL_RANK", &out->local_rank) ||
        env_int("OMPI_COMM_WORLD_LOCAL_SIZE", &out->local_size) || out->rank >= out->size ||
        out->local_rank >= out->local_size) {
        error_setf(err, "mpirun: OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK and _LOCAL_SIZE must be consistent "
                        "integers");
        return false;
    }
    return true;
}

static void push(char ***argv, size_t *n, const char *s)
{
    *argv = realloc(*argv, (*n + 2) * sizeof **argv);
    if (!*argv)
        abort();
    (*argv)[(*n)++] = xstrdup(s);
    (*argv)[*n] = NULL;
}

char **mpi_command(const struct contract *c, const struct plan *p, enum bind_policy bind, int stop_grace_s,
                   char *const *cmd, int cmd_count, struct sr_error *err)
{
    /* mpirun starts the same binary on every host, by its absolute path. */
    char self[FS_PATH_BYTES];
    if (fs_self_executable(self, sizeof self, "mpirun", err) != 0)
        return NULL;
    char grace[16];
    snprintf(grace, sizeof grace, "%d", stop_grace_s);
    char **argv = NULL;
    size_t n = 0;
    struct strbuf hosts;
    strbuf_init(&hosts);
    for (size_t i = 0; i < p->host_count; i++)
        strbuf_printf(&hosts, "%s%s:%d", i ? "," : "", p->hosts[i].name, p->hosts[i].ranks);
    char np[16];
    snprintf(np, sizeof np, "%d", p->world_size);
    const char *ifname = c->resources.network_interface_name;
    const char *fixed[] = {"mpirun", "--allow-run-as-root", "--host", hosts.data, "-np", np,
                           /* sagerun binds each rank itself, nearest its GPU */
                           "--bind-to", "none", "--map-by", "slot",
                           "-mca", "btl_tcp_if_include", ifname, "-mca", "oob_tcp_if_include", ifname,
                           "-mca", "plm_rsh_no_tree_spawn", "1", "-mca", "pml", "ob1", "-mca", "btl", "^openib",
                           "-mca", "orte_abort_on_non_zero_status", "1", "-x", "PATH", NULL};
    for (const char **f = fixed; *f; f++)
        push(&argv, &n, *f);
    if (getenv("LD_LIBRARY_PATH")) { /* mpirun warns about -x of an unset variable */
        push(&argv, &n, "-x");
        push(&argv, &n, "LD_LIBRARY_PATH");
    }
    for (char **e = environ; *e; e++) /* sagerun's own settings reach every host */
        if (strncmp(*e, "SAGERUN_", 8) == 0) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(strcspn(*e, "=")), *e);
            push(&argv, &n, "-x");
            push(&argv, &n, name);
        }
    const json_t *custom = json_object_get(c->hyperparameters.decoded, "sagemaker_mpi_custom_mpi_options");
    if (json_is_string(custom)) {
        char *copy = xstrdup(json_string_value(custom)), *save = NULL;
        for (char *w = strtok_r(copy, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
            push(&argv, &n, w);
        free(copy);
    }
    push(&argv, &n, self);
    push(&argv, &n, "train");
    push(&argv, &n, "--ml-root");
    push(&argv, &n, c->ml_root);
    push(&argv, &n, "--bind");
    push(&argv, &n, bind_policy_name(bind));
    push(&argv, &n, "--stop-grace");
    push(&argv, &n, grace);
    push(&argv, &n, "--");
    for (int i = 0; i < cmd_count; i++)
        push(&argv, &n, cmd[i]);
    strbuf_free(&hosts);
    return argv;
}

/* Whether a live (not zombie) process named orted exists. */
static bool orted_running(void)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return false;
    bool found = false;
    struct dirent *d;
    while (!found && (d = readdir(proc))) {
        if (d->d_name[0] < '0' || d->d_name[0] > '9')
            continue;
        char path[300], line[512];
        snprintf(path, sizeof path, "/proc/%s/stat", d->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        /* "<pid> (<comm>) <state> ...": comm may hold spaces, so find the last ')'. */
        if (fgets(line, sizeof line, f)) {
            char *open = strchr(line, '('), *close = strrchr(line, ')');
            found = open && close && close - open - 1 == 5 && strncmp(open + 1, "orted", 5) == 0 &&
                    close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
        }
        fclose(f);
    }
    closedir(proc);
    return found;
}

int mpi_wait_for_leader(int wait_s, struct sr_error *err)
{
    const struct timespec tick = {0, 200 * 1000 * 1000};
    time_t until = time(NULL) + wait_s;
    while (!orted_running()) {
        if (time(NULL) >= until) {
            error_setf(err, "mpirun: the leader's mpirun started nothing on this host within %d s (no orted "
                            "process); is the leader up and can it reach this host?", wait_s);
            return -1;
        }
        nanosleep(&tick, NULL);
    }
    while (orted_running())
        nanosleep(&tick, NULL);
    return 0;
}
