#include "mpi.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "clock.h"
#include "fs.h"
#include "strbuf.h"
#include "transport.h"

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

char *mpi_rsh_agent(const struct contract *c)
{
    const json_t *custom = json_object_get(c->hyperparameters.decoded, "sagemaker_mpi_custom_mpi_options");
    char *agent = NULL;
    if (json_is_string(custom)) {
        char *copy = xstrdup(json_string_value(custom)), *save = NULL;
        const char *prev2 = "", *prev = "";
        for (char *w = strtok_r(copy, " \t\n", &save); w && !agent; w = strtok_r(NULL, " \t\n", &save)) {
            if ((strcmp(prev2, "-mca") == 0 || strcmp(prev2, "--mca") == 0) && strcmp(prev, "plm_rsh_agent") == 0)
                agent = xstrdup(w);
            prev2 = prev;
            prev = w;
        }
        free(copy);
    }
    const char *env = getenv("OMPI_MCA_plm_rsh_agent");
    if (!agent && env && *env)
        agent = xstrdup(env);
    return agent;
}

#define AGENT_TIMEOUT_S 10.0

/* `AGENT HOST true`, as mpirun runs `AGENT HOST orted ...`. */
static bool agent_reaches(const char *host, const char *agent, char *why, size_t size)
{
    char *copy = xstrdup(agent), *save = NULL, *argv[32];
    int n = 0;
    for (char *w = strtok_r(copy, " \t", &save); w && n < 29; w = strtok_r(NULL, " \t", &save))
        argv[n++] = w;
    argv[n++] = (char *)host;
    argv[n++] = "true";
    argv[n] = NULL;
    struct strbuf text;
    strbuf_init(&text);
    int status = capture_run(argv, clock_now() + AGENT_TIMEOUT_S, 512, &text);
    text.data[strcspn(text.data, "\r\n")] = '\0';
    bool ok = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
        snprintf(why, size, "\"%s %s true\" failed%s%s", agent, host, text.data[0] ? ": " : "", text.data);
    strbuf_free(&text);
    free(copy);
    return ok;
}

/* ssh's port: what the toolkit waits for on each host. */
static bool ssh_port_open(const char *host, char *why, size_t size)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, "22", &hints, &ai);
    if (rc != 0) {
        snprintf(why, size, "%s does not resolve: %s", host, gai_strerror(rc));
        return false;
    }
    struct sr_error err = {{0}};
    struct conn c;
    bool timed_out;
    struct sockaddr_in to;
    memcpy(&to, ai->ai_addr, sizeof to);
    freeaddrinfo(ai);
    bool ok = conn_connect_retry(&to, NULL, clock_now() + 2.0, 2.0, 2.0, &c, &timed_out, &err) == 0;
    if (ok)
        conn_close(&c);
    else
        snprintf(why, size, "ssh's port 22 on %s: %s", host, err.text);
    return ok;
}

bool mpi_host_ready(const char *host, const char *agent, char *why, size_t size)
{
    return agent ? agent_reaches(host, agent, why, size) : ssh_port_open(host, why, size);
}
