/* sagerun env: the resolved plan and the SM_* environment of this host. */
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "commands.h"
#include "contract.h"
#include "host_session.h"
#include "mpi.h"
#include "options.h"
#include "plan.h"
#include "pyjson.h"
#include "sm_env.h"
#include "strbuf.h"
#include "tls.h"
#include "trainer.h"

static json_t *plan_json(const struct job *j)
{
    const struct contract *c = &j->contract;
    const struct plan *p = &j->plan;
    json_t *hosts = json_array(), *channels = json_array();
    for (size_t i = 0; i < p->host_count; i++) {
        const struct host_plan *h = &p->hosts[i];
        json_array_append_new(hosts, json_pack("{s:s, s:s, s:i, s:i, s:s}", "name", h->name, "instance_type",
                                               h->instance_type, "ranks", h->ranks, "first_rank", h->first_rank,
                                               "rank_source", h->rank_source));
    }
    for (size_t i = 0; i < p->channel_count; i++) {
        const struct channel_plan *ch = &p->channels[i];
        json_array_append_new(channels, json_pack("{s:s, s:s, s:s, s:b}", "name", ch->channel->name, "mode",
                                                  input_mode_name(ch->channel->mode), "path", ch->path,
                                                  "present", ch->present));
    }
    json_t *gpus = json_array();
    for (int i = 0; i < p->gpus.count; i++)
        json_array_append_new(gpus, json_pack("{s:s, s:s}", "name", p->gpus.gpus[i].name, "bus_id",
                                              p->gpus.gpus[i].bus_id));
    return json_pack("{s:s, s:s, s:i, s:i, s:s, s:b, s:s, s:i, s:i, s:i, s:i, s:o, s:s, s:o, s:o, "
                     "s:{s:s, s:s?}, s:{s:b, s:s, s:s?, s:s?}, s:s?, s:s?}",
                     "ml_root", c->ml_root, "current_host", c->resources.current_host,
                     "host_index", (int)p->host_index, "host_count", (int)p->host_count,
                     "leader", p->leader, "is_leader", p->is_leader,
                     "master_addr", p->master_addr, "master_port", p->master_port,
                     "local_ranks", p->local_ranks, "first_rank", p->first_rank, "world_size", p->world_size,
                     "gpus", gpus, "gpu_source", p->gpus.source, "hosts", hosts, "channels", channels,
                     "checkpoint", "local_path", c->checkpoint.local_path, "s3_uri", c->checkpoint.s3_uri,
                     "encryption", "enabled", j->encryption.enabled, "source", j->encryption.source, "covered",
                     j->encryption.enabled ? TLS_COVERED : NULL, "not_covered",
                     j->encryption.enabled ? TLS_NOT_COVERED : NULL,
                     "job_name", c->training_job.job_name, "warning", p->warning[0] ? p->warning : NULL);
}

/* How hosts will talk: TLS mode and key material (or why it is missing:
 * train would refuse to start), kernel TLS, where the rendezvous listens. */
static json_t *transport_json(const struct job *j)
{
    const struct plan *p = &j->plan;
    struct tls_settings tls;
    struct sr_error err = {{0}};
    char ktls[256];
    int rc = job_tls_settings(j, &tls, &err);
    bool offload = tls_kernel_offload_available(ktls, sizeof ktls);
    struct host_session_options so;
    struct sr_error options_err = {{0}};
    char rendezvous[SR_ERROR_MAX + 32];
    if (host_session_options_from_env(&so, &options_err) != 0) /* train would refuse it: say why */
        snprintf(rendezvous, sizeof rendezvous, "invalid: %s", options_err.text);
    else if (p->host_count > 1)
        snprintf(rendezvous, sizeof rendezvous, "%s:%d", p->leader, so.port);
    else
        snprintf(rendezvous, sizeof rendezvous, "this host, any free port (one-host job)");
    json_t *t = json_pack("{s:s, s:s, s:b, s:s, s:s}", "tls", rc == 0 ? tls_mode_name(tls.mode) : "missing",
                          "key_material", rc == 0 ? (tls.mode == TLS_OFF ? "none needed" : tls.source) : err.text,
                          "kernel_tls_available", offload, "kernel_tls", ktls, "rendezvous", rendezvous);
    OPENSSL_cleanse(&tls, sizeof tls);
    return t;
}

static void transport_text(const json_t *t, struct strbuf *out)
{
    strbuf_printf(out, "#   TLS: %s; key material: %s\n", json_string_value(json_object_get(t, "tls")),
                  json_string_value(json_object_get(t, "key_material")));
    strbuf_printf(out, "#   kernel TLS offload: %s\n", json_string_value(json_object_get(t, "kernel_tls")));
    strbuf_printf(out, "#   rendezvous: %s\n", json_string_value(json_object_get(t, "rendezvous")));
}

static void plan_text(const struct job *j, struct strbuf *out)
{
    const struct contract *c = &j->contract;
    const struct plan *p = &j->plan;
    const struct host_plan *self = &p->hosts[p->host_index];
    strbuf_printf(out, "# sagerun plan for %s (host %zu of %zu), ML root %s\n", self->name, p->host_index + 1,
                  p->host_count, c->ml_root);
    strbuf_printf(out, "#   leader %s%s, master %s:%d\n", p->leader, p->is_leader ? " (this host)" : "",
                  p->master_addr, p->master_port);
    strbuf_printf(out, "#   this host: ranks %d-%d of world size %d (%s)\n", p->first_rank,
                  p->first_rank + p->local_ranks - 1, p->world_size, self->rank_source);
    for (int i = 0; i < p->gpus.count; i++)
        strbuf_printf(out, "#   GPU %d: %s at %s\n", i, p->gpus.gpus[i].name, p->gpus.gpus[i].bus_id);
    for (size_t i = 0; i < p->host_count; i++) {
        const struct host_plan *h = &p->hosts[i];
        strbuf_printf(out, "#   host %s: %s, ranks %d-%d (%s)\n", h->name, h->instance_type, h->first_rank,
                      h->first_rank + h->ranks - 1, h->rank_source);
    }
    for (size_t i = 0; i < p->channel_count; i++) {
        const struct channel_plan *ch = &p->channels[i];
        char reading[SR_ERROR_MAX + 64];
        trainer_describe_channel(c, ch->channel, reading, sizeof reading);
        strbuf_printf(out, "#   channel %s: %s mode, %s (%s)\n#     %s\n", ch->channel->name,
                      input_mode_name(ch->channel->mode), ch->path, ch->present ? "present" : "not present yet",
                      reading);
    }
    strbuf_printf(out, "#   checkpoints: %s%s%s\n", c->checkpoint.local_path, c->checkpoint.s3_uri ? " <-> " : "",
                  c->checkpoint.s3_uri ? c->checkpoint.s3_uri : "");
    strbuf_printf(out, "#   inter-host encryption: %s (%s)\n", j->encryption.enabled ? "on" : "off",
                  j->encryption.source);
    if (j->encryption.enabled)
        strbuf_printf(out, "#     encrypted: %s\n#     not encrypted: %s\n", TLS_COVERED, TLS_NOT_COVERED);
    if (p->warning[0])
        strbuf_printf(out, "#   warning: %s\n", p->warning);
}

/* The command `sagerun train --launcher mpirun -- <command>` runs on the
 * leader, with the binding and stop grace the environment selects. */
static json_t *mpirun_json(const struct contract *c, const struct plan *p, struct sr_error *err)
{
    enum bind_policy bind;
    int stop_grace_s;
    char *cmd[] = {"<command>"};
    char **argv;
    if (launch_settings(NULL, NULL, &bind, &stop_grace_s, err) != 0 ||
        !(argv = mpi_command(c, p, bind, stop_grace_s, cmd, 1, err)))
        return NULL;
    json_t *list = json_array();
    for (char **a = argv; *a; a++)
        json_array_append_new(list, json_string(*a));
    strv_free(argv);
    return list;
}

static bool shell_identifier(const char *s)
{
    for (const char *q = s; *q; q++)
        if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || *q == '_' || (q > s && *q >= '0' && *q <= '9')))
            return false;
    return *s != '\0';
}

static void shell_quote(const char *s, struct strbuf *out)
{
    strbuf_putc(out, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            strbuf_puts(out, "'\\''");
        else
            strbuf_putc(out, *s);
    }
    strbuf_putc(out, '\'');
}

static void env_text(const json_t *vars, struct strbuf *out)
{
    size_t n;
    const char **names = json_sorted_keys(vars, &n);
    for (size_t i = 0; i < n; i++) {
        const char *value = json_string_value(json_object_get(vars, names[i]));
        /* SM_HP_<key> keeps the key's dashes, as the toolkit does; such names
         * are valid in a process environment but not in `export`. */
        if (!shell_identifier(names[i]))
            strbuf_printf(out, "# not a shell name; set in the environment of ranks: %s=", names[i]);
        else
            strbuf_printf(out, "export %s=", names[i]);
        shell_quote(value, out);
        strbuf_putc(out, '\n');
    }
    free(names);
}

static const struct option options[] = {
    {"ml-root", required_argument, NULL, 'r'},     {"nproc-per-host", required_argument, NULL, 'n'},
    {"master-port", required_argument, NULL, 'p'}, {"format", required_argument, NULL, 'f'},
    {"launcher", required_argument, NULL, 'l'},    {NULL, 0, NULL, 0},
};

int cmd_env(int argc, char **argv)
{
    struct job_options jo;
    struct sr_error err = {{0}};
    job_options_init(&jo);
    bool json_format = false, mpirun = false;
    int opt;
    if (options_check(argc, argv, options, false) != 0)
        return EXIT_USAGE;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int handled = job_options_parse(&jo, opt, optarg, &err);
        if (handled < 0)
            return command_fail(jo.ml_root, &err);
        if (handled)
            continue;
        if (opt == 'f' && (strcmp(optarg, "json") == 0 || strcmp(optarg, "shell") == 0)) {
            json_format = strcmp(optarg, "json") == 0;
            continue;
        }
        if (opt == 'l' && (strcmp(optarg, "mpirun") == 0 || strcmp(optarg, "local") == 0)) {
            mpirun = strcmp(optarg, "mpirun") == 0;
            continue;
        }
        if (opt == 'f')
            fprintf(stderr, "sagerun env: --format must be shell or json, not \"%s\"\n", optarg);
        if (opt == 'l')
            fprintf(stderr, "sagerun env: --launcher must be local or mpirun, not \"%s\"\n", optarg);
        return EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "sagerun env: unexpected argument \"%s\"\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (job_options_finish(&jo, &err) != 0)
        return command_fail(jo.ml_root, &err);

    struct job j;
    if (job_load(&jo, &j, &err) != 0)
        return command_fail(jo.ml_root, &err);
    json_t *command = mpirun ? mpirun_json(&j.contract, &j.plan, &err) : NULL;
    if (mpirun && !command) {
        job_free(&j);
        return command_fail(jo.ml_root, &err);
    }
    json_t *vars = sm_env_build(&j.contract, &j.plan);
    json_t *plan = plan_json(&j);
    json_t *transport = transport_json(&j);
    json_object_set(plan, "transport", transport);
    if (command)
        json_object_set_new(plan, "mpirun_command", command);
    if (command && j.encryption.enabled)
        json_object_set_new(plan, "mpirun_warning", json_string(MPIRUN_NOT_ENCRYPTED));
    struct strbuf out;
    strbuf_init(&out);
    if (json_format) {
        json_t *doc = json_pack("{s:o, s:O}", "plan", plan, "env", vars);
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
        strbuf_puts(&out, text);
        strbuf_putc(&out, '\n');
        free(text);
        json_decref(doc);
    } else {
        plan_text(&j, &out);
        transport_text(transport, &out);
        if (command) {
            strbuf_puts(&out, "#   mpirun command (the leader runs it):");
            for (size_t i = 0; i < json_array_size(command); i++)
                strbuf_printf(&out, " %s", json_string_value(json_array_get(command, i)));
            strbuf_putc(&out, '\n');
            if (j.encryption.enabled)
                strbuf_printf(&out, "#   warning: encryption is on, but under mpirun %s\n", MPIRUN_NOT_ENCRYPTED);
        }
        json_decref(plan);
        env_text(vars, &out);
    }
    json_decref(transport);
    fwrite(out.data, 1, out.len, stdout);
    int status = fflush(stdout) == 0 ? EXIT_OK : EXIT_JOB_FAILED;
    strbuf_free(&out);
    json_decref(vars);
    job_free(&j);
    return status;
}
