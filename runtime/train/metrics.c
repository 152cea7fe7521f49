#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* A fixed-point number: what metrics_format writes. */
#define NUMBER "(-?[0-9]+(?:\\.[0-9]+)?)"

const struct metric_definition metric_definitions[] = {
    {"train:loss", "\\[metrics\\] step=[0-9]+ epoch=[0-9]+ train_loss=" NUMBER},
    {"validation:loss", "\\[metrics\\] step=[0-9]+ epoch=[0-9]+ val_loss=" NUMBER},
    {"train:learning_rate", "\\[metrics\\] step=[0-9]+ .* lr=" NUMBER},
    {"train:grad_norm", "\\[metrics\\] step=[0-9]+ .* grad_norm=" NUMBER},
    {"train:tokens_per_sec", "\\[metrics\\] step=[0-9]+ .* tokens_per_sec=" NUMBER},
    {"train:step_ms", "\\[metrics\\] step=[0-9]+ .* step_ms=" NUMBER},
    {"train:mfu", "\\[metrics\\] step=[0-9]+ .* mfu=" NUMBER},
    {"train:step", "\\[metrics\\] step=([0-9]+) epoch=[0-9]+ train_loss="},
};
const size_t metric_definition_count = sizeof metric_definitions / sizeof metric_definitions[0];

int metrics_format(char *buf, size_t size, const char *tag, const struct metric_field *fields, int count,
                   struct sr_error *err)
{
    size_t used = (size_t)snprintf(buf, size, "%s", tag);
    for (int i = 0; i < count; i++) {
        if (!isfinite(fields[i].value)) {
            error_setf(err, "metric %s is %s", fields[i].name, isnan(fields[i].value) ? "nan" : "infinite");
            return -1;
        }
        if (used < size)
            used += (size_t)snprintf(buf + used, size - used, " %s=%.*f", fields[i].name, fields[i].decimals,
                                     fields[i].value);
    }
    if (used + 1 >= size) {
        error_setf(err, "metrics line longer than %zu bytes", size);
        return -1;
    }
    buf[used++] = '\n';
    buf[used] = '\0';
    return 0;
}

int metrics_emit(int fd, const char *line, struct sr_error *err)
{
    size_t len = strlen(line);
    ssize_t n;
    do
        n = write(fd, line, len);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len) { /* a pipe takes up to PIPE_BUF bytes whole; metrics lines are far shorter */
        error_setf(err, "cannot write a metrics line: %s", n < 0 ? strerror(errno) : "short write");
        return -1;
    }
    return 0;
}

json_t *metrics_definitions_json(void)
{
    json_t *list = json_array();
    for (size_t i = 0; i < metric_definition_count; i++)
        json_array_append_new(list,
                              json_pack("{s:s, s:s}", "Name", metric_definitions[i].name, "Regex",
                                        metric_definitions[i].regex));
    return list;
}

json_t *metrics_bench_definitions_json(int hosts)
{
    static const char *const host_metrics[] = {"gemm_tflops", "membw_gbs", "train_tokens_per_sec"};
    static const char *const job_metrics[] = {"allreduce_busbw_gbs", "train_tokens_per_sec", "train_step_ms"};
    json_t *list = json_array();
    for (int h = 1; h <= hosts; h++)
        for (size_t i = 0; i < sizeof host_metrics / sizeof *host_metrics; i++)
            json_array_append_new(list, json_pack("{s:o, s:o}", "Name",
                                                  json_sprintf("algo-%d:%s", h, host_metrics[i]), "Regex",
                                                  json_sprintf("\\[bench\\] host=algo-%d .*\\b%s=" NUMBER, h,
                                                               host_metrics[i])));
    for (size_t i = 0; i < sizeof job_metrics / sizeof *job_metrics; i++)
        json_array_append_new(list, json_pack("{s:o, s:o}", "Name", json_sprintf("job:%s", job_metrics[i]), "Regex",
                                              json_sprintf("\\[bench\\] job .*\\b%s=" NUMBER, job_metrics[i])));
    return list;
}

int metrics_check_log(FILE *log, const json_t *definitions, struct metric_tally *tallies, struct sr_error *err)
{
    size_t count = json_array_size(definitions);
    if (count > METRIC_MAX_DEFINITIONS) {
        error_setf(err, "%zu metric definitions; CreateTrainingJob takes at most %d", count, METRIC_MAX_DEFINITIONS);
        return -1;
    }
    pcre2_code *re[METRIC_MAX_DEFINITIONS] = {0};
    pcre2_match_data *md = NULL;
    int rc = -1;
    for (size_t i = 0; i < count; i++) {
        const json_t *d = json_array_get(definitions, i);
        const char *name = json_string_value(json_object_get(d, "Name"));
        const char *regex = json_string_value(json_object_get(d, "Regex"));
        if (!name || !regex) {
            error_setf(err, "metric definition %zu: needs the strings Name and Regex", i);
            goto out;
        }
        int code;
        PCRE2_SIZE at;
        re[i] = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &code, &at, NULL);
        if (!re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            error_setf(err, "metric %s: regex does not compile at %zu: %s", name, (size_t)at, (const char *)msg);
            goto out;
        }
        tallies[i] = (struct metric_tally){0};
    }
    md = pcre2_match_data_create(4, NULL);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, log)) >= 0)
        for (size_t i = 0; i < count; i++) {
            if (pcre2_match(re[i], (PCRE2_SPTR)line, (PCRE2_SIZE)len, 0, 0, md, NULL) < 2)
                continue;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t n = ov[3] - ov[2];
            if (n >= sizeof tallies[i].last)
                n = sizeof tallies[i].last - 1;
            memcpy(tallies[i].last, line + ov[2], n);
            tallies[i].last[n] = '\0';
            tallies[i].matches++;
        }
    free(line);
    if (ferror(log)) {
        error_setf(err, "reading the log: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    pcre2_match_data_free(md);
    for (size_t i = 0; i < count; i++)
        pcre2_code_free(re[i]);
    return rc;
}
