#include "judge.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "measure.h"
#include "strbuf.h"

static const char *text_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Ranks or hosts compare with those of the same instance type and device. */
static bool same_group(const json_t *a, const json_t *b)
{
    return strcmp(text_of(a, "instance_type"), text_of(b, "instance_type")) == 0 &&
           strcmp(text_of(a, "device"), text_of(b, "device")) == 0;
}

/* The median of `metric` over the members of `of`'s group in `members`
 * (itself included); the group's size in *peers. */
static double group_median(const json_t *members, const json_t *of, const char *metric, size_t *peers)
{
    size_t i, n = 0;
    json_t *m;
    double *values = xcalloc(json_array_size(members) + 1, sizeof *values);
    json_array_foreach(members, i, m) {
        json_t *v = json_object_get(json_object_get(m, "metrics"), metric);
        if (json_is_number(v) && same_group(m, of))
            values[n++] = json_number_value(v);
    }
    struct bench_stats stats = {0};
    if (n)
        bench_stats_of(values, (int)n, &stats);
    double med = stats.median;
    free(values);
    *peers = n;
    return med;
}

struct verdict {
    double ratio;     /* straggler threshold */
    json_t *failures; /* texts */
};

/* Judges one metric of one rank or host (`who`), against `baseline` (NULL:
 * none) scaled by `scale`, and the peer median when there are peers. */
static json_t *check_metric(struct verdict *v, const char *who, const char *metric, double value,
                            const json_t *baseline, double scale, double median, size_t peers)
{
    json_t *c = json_pack("{s:s, s:f}", "metric", metric, "value", value);
    struct strbuf reason;
    strbuf_init(&reason);
    if (baseline) {
        bool per_cpu = json_is_true(json_object_get(baseline, "per_cpu"));
        double k = per_cpu ? scale : 1.0;
        double min = json_number_value(json_object_get(baseline, "min")) * k;
        double peak = json_number_value(json_object_get(baseline, "peak")) * k;
        json_object_set_new(c, "baseline_min", json_real(min));
        json_object_set_new(c, "peak", json_real(peak));
        json_object_set_new(c, "source", json_string(text_of(baseline, "source")));
        if (peak > 0)
            json_object_set_new(c, "fraction_of_peak", json_real(value / peak));
        if (value < min)
            strbuf_printf(&reason, "%s %.4g is under the baseline minimum %.4g%s", metric, value, min,
                          per_cpu ? " (per-vCPU figure x CPUs used)" : "");
    }
    if (peers > 1 && median > 0) {
        json_object_set_new(c, "peer_median", json_real(median));
        json_object_set_new(c, "peer_ratio", json_real(value / median));
        if (value < v->ratio * median)
            strbuf_printf(&reason, "%s%s %.4g is %.0f%% of the median of its %zu peers (%.4g; threshold %.0f%%)",
                          reason.len ? "; " : "", metric, value, 100.0 * value / median, peers, median,
                          100.0 * v->ratio);
    }
    bool ok = reason.len == 0;
    json_object_set_new(c, "passed", json_boolean(ok));
    if (!ok) {
        json_object_set_new(c, "reason", json_string(reason.data));
        json_array_append_new(v->failures, json_sprintf("%s: %s", who, reason.data));
    }
    strbuf_free(&reason);
    return c;
}

/* Appends an entry's checks; returns whether all passed. */
static bool judge_entry(struct verdict *v, const json_t *members, const json_t *entry, const char *who,
                        const json_t *baselines, json_t *out)
{
    const char *metric;
    json_t *value, *checks = json_array();
    bool ok = true;
    double cpus = json_number_value(json_object_get(entry, "cpus"));
    json_object_foreach(json_object_get(entry, "metrics"), metric, value) {
        size_t peers;
        double med = group_median(members, entry, metric, &peers);
        const json_t *b = baselines ? baselines_find(baselines, text_of(entry, "instance_type"),
                                                     text_of(entry, "device"), metric)
                                    : NULL;
        json_t *c = check_metric(v, who, metric, json_number_value(value), b, cpus, med, peers);
        ok = ok && json_is_true(json_object_get(c, "passed"));
        json_array_append_new(checks, c);
    }
    json_object_set_new(out, "checks", checks);
    return ok;
}

/* Host entries: the sums of their ranks' metrics, in order of first rank. */
static json_t *host_sums(const json_t *ranks)
{
    json_t *hosts = json_array(), *by_name = json_object(), *r;
    size_t i;
    json_array_foreach(ranks, i, r) {
        const char *name = text_of(r, "host");
        json_t *h = json_object_get(by_name, name);
        if (!h) {
            h = json_pack("{s:s, s:s, s:s, s:i, s:f, s:o}", "host", name, "instance_type", text_of(r, "instance_type"),
                          "device", text_of(r, "device"), "ranks", 0, "cpus", 0.0, "metrics", json_deep_copy(
                          json_object_get(r, "metrics")));
            json_object_set(by_name, name, h);
            json_array_append_new(hosts, h);
        } else {
            const char *metric;
            json_t *value, *sums = json_object_get(h, "metrics");
            json_object_foreach(json_object_get(r, "metrics"), metric, value) {
                json_t *sum = json_object_get(sums, metric);
                if (sum)
                    json_real_set(sum, json_number_value(sum) + json_number_value(value));
            }
        }
        json_object_set_new(h, "ranks", json_integer(json_integer_value(json_object_get(h, "ranks")) + 1));
        json_object_set_new(h, "cpus", json_real(json_number_value(json_object_get(h, "cpus")) +
                                                 json_number_value(json_object_get(r, "cpus"))));
    }
    json_decref(by_name);
    return hosts;
}

static json_t *judge_ranks(struct verdict *v, const json_t *ranks, const json_t *baselines, json_t *host_failed)
{
    json_t *out = json_array(), *r;
    size_t i;
    json_array_foreach(ranks, i, r) {
        char who[512];
        snprintf(who, sizeof who, "%s %s %lld (rank %lld)", text_of(r, "host"),
                 strcmp(text_of(r, "device"), "gpu") == 0 ? "GPU" : "CPU rank",
                 json_integer_value(json_object_get(r, "local_rank")), json_integer_value(json_object_get(r, "rank")));
        json_t *e = json_pack("{s:O, s:O, s:O, s:O, s:O}", "rank", json_object_get(r, "rank"), "host",
                              json_object_get(r, "host"), "local_rank", json_object_get(r, "local_rank"), "device",
                              json_object_get(r, "device"), "instance_type", json_object_get(r, "instance_type"));
        bool ok = judge_entry(v, ranks, r, who, baselines, e);
        json_object_set_new(e, "passed", json_boolean(ok));
        if (!ok)
            json_object_set_new(host_failed, text_of(r, "host"), json_true());
        json_array_append_new(out, e);
    }
    return out;
}

static json_t *judge_hosts(struct verdict *v, const json_t *ranks, const json_t *host_failed)
{
    json_t *hosts = host_sums(ranks), *h;
    size_t i;
    json_array_foreach(hosts, i, h) {
        bool ok = judge_entry(v, hosts, h, text_of(h, "host"), NULL, h);
        if (json_object_get(host_failed, text_of(h, "host"))) {
            ok = false;
            json_object_set_new(h, "reason", json_string("one or more of its ranks failed"));
        }
        json_object_set_new(h, "passed", json_boolean(ok));
    }
    return hosts;
}

/* Wrong elements, and the largest message's in-place busbw against the
 * baseline of the job's instance type (when all hosts share one, and there
 * are links to judge: one rank's all-reduce moves nothing, busbw 0). */
static json_t *judge_allreduce(struct verdict *v, const json_t *results, const json_t *hosts,
                               const json_t *baselines)
{
    const json_t *rows = json_object_get(json_object_get(results, "allreduce"), "rows"), *row;
    json_t *checks = json_array();
    if (!json_array_size(rows))
        return checks;
    size_t i;
    long wrong = 0;
    json_array_foreach(rows, i, row) {
        wrong += (long)json_integer_value(json_object_get(json_object_get(row, "out_of_place"), "wrong"));
        wrong += (long)json_integer_value(json_object_get(json_object_get(row, "in_place"), "wrong"));
    }
    json_t *c = json_pack("{s:s, s:I, s:b}", "metric", "allreduce_wrong_elements", "value", (json_int_t)wrong, "passed",
                          wrong == 0);
    if (wrong) {
        json_object_set_new(c, "reason", json_sprintf("%ld elements summed wrong", wrong));
        json_array_append_new(v->failures, json_sprintf("job: all-reduce: %ld elements summed wrong", wrong));
    }
    json_array_append_new(checks, c);
    if (json_integer_value(json_object_get(results, "world_size")) < 2)
        return checks;
    const json_t *last = json_array_get(rows, json_array_size(rows) - 1), *first = json_array_get(hosts, 0);
    double busbw = json_number_value(json_object_get(json_object_get(last, "in_place"), "busbw_gbs"));
    const char *metric = json_array_size(hosts) > 1 ? "allreduce_internode_busbw_gbs" : "allreduce_busbw_gbs";
    bool one_type = true;
    json_t *h;
    json_array_foreach(hosts, i, h)
        one_type = one_type && same_group(h, first);
    const json_t *b = one_type && baselines ? baselines_find(baselines, text_of(first, "instance_type"),
                                                            text_of(first, "device"), metric)
                                            : NULL;
    json_array_append_new(checks, check_metric(v, "job", metric, busbw, b, 1.0, 0.0, 0));
    return checks;
}

json_t *judge_results(const json_t *results, const json_t *baselines, double straggler_ratio)
{
    struct verdict v = {straggler_ratio, json_array()};
    const json_t *ranks = json_object_get(results, "ranks");
    json_t *host_failed = json_object();
    json_t *rank_report = judge_ranks(&v, ranks, baselines, host_failed);
    json_t *host_report = judge_hosts(&v, ranks, host_failed);
    json_t *job = judge_allreduce(&v, results, host_report, baselines);
    json_decref(host_failed);
    bool job_ok = true;
    size_t i;
    json_t *c;
    json_array_foreach(job, i, c)
        job_ok = job_ok && json_is_true(json_object_get(c, "passed"));
    return json_pack("{s:b, s:f, s:o, s:o, s:o, s:{s:o, s:b}}", "passed", json_array_size(v.failures) == 0,
                     "straggler_ratio", straggler_ratio, "failures", v.failures, "ranks", rank_report, "hosts",
                     host_report, "job", "checks", job, "passed", job_ok);
}

void judge_failures_text(const json_t *verdict, struct strbuf *out)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(verdict, "failures"), i, f)
        strbuf_printf(out, "%s%s", i ? "; " : "", json_string_value(f));
}
