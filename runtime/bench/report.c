#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "measure.h"
#include "metrics.h"
#include "strbuf.h"

static double number(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static const char *text(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

double report_headline(const json_t *metrics, const char *which, const char **metric)
{
    static const char *const choices[][3] = {
        {"gemm_tflops", "gemm_bf16_tflops", "gemm_fp32_tflops"},
        {"membw_gbs", "membw_d2d_gbs", "membw_copy_gbs"},
        {"train_tokens_per_sec", "train_compute_tokens_per_s", "train_compute_tokens_per_s"},
    };
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        if (strcmp(which, choices[i][0]) != 0)
            continue;
        for (int k = 1; k < 3; k++) {
            const json_t *v = json_object_get(metrics, choices[i][k]);
            if (json_is_number(v)) {
                if (metric)
                    *metric = choices[i][k];
                return json_number_value(v);
            }
        }
    }
    return -1;
}

/* A node of host_memory, or what is known of it. */
static void print_node(FILE *out, const json_t *placement, const char *which)
{
    char key[32];
    snprintf(key, sizeof key, "%s_node", which);
    json_int_t node = json_integer_value(json_object_get(placement, key));
    snprintf(key, sizeof key, "%s_pages_on", which);
    const json_t *on = json_object_get(placement, key);
    fprintf(out, "%s node %lld", which, (long long)node);
    if (on)
        fprintf(out, " (pages found on %lld)", (long long)json_integer_value(on));
    snprintf(key, sizeof key, "%s_note", which);
    if (*text(placement, key))
        fprintf(out, " (%s)", text(placement, key));
}

/* Which GPU each GPU rank drove, and where its host buffers were. */
static void print_gpus(FILE *out, const json_t *ranks)
{
    const json_t *r;
    size_t i;
    json_array_foreach(ranks, i, r) {
        const json_t *gpu = json_object_get(r, "gpu"), *placement = json_object_get(r, "host_memory");
        if (!gpu)
            continue;
        fprintf(out, "#   rank %lld: %s at %s", json_integer_value(json_object_get(r, "rank")), text(gpu, "name"),
                text(gpu, "bus_id"));
        if (placement) {
            fputs("; host copies from ", out);
            print_node(out, placement, "local");
            if (json_integer_value(json_object_get(placement, "remote_node")) >= 0) {
                fputs(" and ", out);
                print_node(out, placement, "remote");
            }
            if (*text(placement, "note"))
                fprintf(out, "; %s", text(placement, "note"));
        }
        fputc('\n', out);
    }
}

static void print_ranks(FILE *out, const json_t *ranks)
{
    const json_t *first = json_object_get(json_array_get(ranks, 0), "metrics"), *r, *v;
    const char *metric;
    size_t i;
    fprintf(out, "# per rank\n# %5s %-12s %-4s %6s", "rank", "host", "dev", "cpus");
    json_object_foreach((json_t *)first, metric, v)
        fprintf(out, " %26s", metric);
    fputc('\n', out);
    json_array_foreach(ranks, i, r) {
        fprintf(out, "  %5lld %-12s %-4s %6.0f", json_integer_value(json_object_get(r, "rank")), text(r, "host"),
                text(r, "device"), number(r, "cpus"));
        json_object_foreach((json_t *)first, metric, v)
            fprintf(out, " %26.4f", number(json_object_get(r, "metrics"), metric));
        fputc('\n', out);
    }
    print_gpus(out, ranks);
}

/* nccl-tests' columns (all_reduce_perf), "root" and "redop" included. */
static void print_allreduce(FILE *out, const json_t *ar)
{
    const json_t *rows = json_object_get(ar, "rows"), *row;
    size_t i;
    fprintf(out, "# all-reduce: %s backend, %lld ranks, %s\n", text(ar, "backend"),
            json_integer_value(json_object_get(ar, "ranks")), text(ar, "security"));
    fprintf(out, "#%11s %12s %8s %6s %6s %9s %7s %7s %6s %9s %7s %7s %6s\n", "size", "count", "type", "redop", "root",
            "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
    fprintf(out, "#%11s %12s %8s %6s %6s %9s %7s %7s %6s %9s %7s %7s %6s\n", "(B)", "(elements)", "", "", "", "(us)",
            "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
    double busbw_sum = 0;
    json_array_foreach(rows, i, row) {
        const json_t *o = json_object_get(row, "out_of_place"), *p = json_object_get(row, "in_place");
        fprintf(out, " %11.0f %12.0f %8s %6s %6d %9.1f %7.3f %7.3f %6lld %9.1f %7.3f %7.3f %6lld\n",
                number(row, "bytes"), number(row, "count"), "float", "sum", -1, number(o, "time_us"),
                number(o, "algbw_gbs"), number(o, "busbw_gbs"), json_integer_value(json_object_get(o, "wrong")),
                number(p, "time_us"), number(p, "algbw_gbs"), number(p, "busbw_gbs"),
                json_integer_value(json_object_get(p, "wrong")));
        busbw_sum += number(p, "busbw_gbs");
    }
    if (json_array_size(rows))
        fprintf(out, "# Avg bus bandwidth    : %.3f GB/s (in place)\n", busbw_sum / (double)json_array_size(rows));
}

static void print_checks(FILE *out, const char *who, const json_t *entry)
{
    const json_t *c;
    size_t i;
    fprintf(out, "  %-40s %s\n", who, json_is_true(json_object_get(entry, "passed")) ? "PASS" : "FAIL");
    json_array_foreach(json_object_get(entry, "checks"), i, c) {
        const json_t *min = json_object_get(c, "baseline_min"), *med = json_object_get(c, "peer_median");
        fprintf(out, "    %-30s %14.4f", text(c, "metric"), number(c, "value"));
        if (min)
            fprintf(out, "  min %.4f", json_number_value(min));
        if (med)
            fprintf(out, "  %5.1f%% of peer median %.4f", 100.0 * number(c, "peer_ratio"), json_number_value(med));
        fprintf(out, "%s%s\n", json_is_true(json_object_get(c, "passed")) ? "" : "  FAIL: ", text(c, "reason"));
    }
    if (*text(entry, "reason"))
        fprintf(out, "    FAIL: %s\n", text(entry, "reason"));
}

static void print_verdict(FILE *out, const json_t *verdict)
{
    const json_t *e;
    size_t i;
    char who[300];
    fprintf(out, "# validation (straggler threshold %.0f%% of the peer median)\n",
            100.0 * number(verdict, "straggler_ratio"));
    json_array_foreach(json_object_get(verdict, "ranks"), i, e) {
        snprintf(who, sizeof who, "rank %lld (%s %s %lld)", json_integer_value(json_object_get(e, "rank")),
                 text(e, "host"), text(e, "device"), json_integer_value(json_object_get(e, "local_rank")));
        print_checks(out, who, e);
    }
    json_array_foreach(json_object_get(verdict, "hosts"), i, e) {
        snprintf(who, sizeof who, "host %s (%s, %lld ranks)", text(e, "host"), text(e, "instance_type"),
                 json_integer_value(json_object_get(e, "ranks")));
        print_checks(out, who, e);
    }
    print_checks(out, "job", json_object_get(verdict, "job"));
    size_t failures = json_array_size(json_object_get(verdict, "failures"));
    fprintf(out, "# %s", failures ? "VALIDATION FAILED:\n" : "validation passed\n");
    json_array_foreach(json_object_get(verdict, "failures"), i, e)
        fprintf(out, "#   %s\n", json_string_value(e));
}

void report_print(FILE *out, const json_t *results, const json_t *verdict)
{
    fprintf(out, "# sagerun %s: %lld hosts, %lld ranks\n", text(results, "mode"),
            json_integer_value(json_object_get(results, "hosts")),
            json_integer_value(json_object_get(results, "world_size")));
    print_ranks(out, json_object_get(results, "ranks"));
    const json_t *train = json_object_get(results, "train");
    if (train)
        fprintf(out, "# train: preset %s, %lld parameters, %lld x %lld tokens per rank: step %.1f ms, %.1f tokens/s, "
                     "MFU %.4f\n",
                text(train, "preset"), json_integer_value(json_object_get(train, "params")),
                json_integer_value(json_object_get(train, "batch")), json_integer_value(json_object_get(train, "seq_len")),
                number(train, "step_ms"), number(train, "tokens_per_sec"), number(train, "mfu"));
    if (json_object_get(results, "allreduce"))
        print_allreduce(out, json_object_get(results, "allreduce"));
    if (verdict)
        print_verdict(out, verdict);
    fflush(out);
}

static const char *const headlines[] = {"gemm_tflops", "membw_gbs", "train_tokens_per_sec"};
#define HEADLINES (sizeof headlines / sizeof headlines[0])

/* "[bench] host=H ranks=N <headline>=<sum over its ranks>..." */
static int emit_host_line(const json_t *ranks, const char *host, struct sr_error *err)
{
    double sums[HEADLINES] = {0};
    bool seen[HEADLINES] = {false};
    int members = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(ranks, i, r) {
        if (strcmp(text(r, "host"), host) != 0)
            continue;
        members++;
        for (size_t h = 0; h < HEADLINES; h++) {
            double v = report_headline(json_object_get(r, "metrics"), headlines[h], NULL);
            if (v >= 0) {
                sums[h] += v;
                seen[h] = true;
            }
        }
    }
    struct metric_field fields[1 + HEADLINES] = {{"ranks", members, 0}};
    int count = 1;
    for (size_t h = 0; h < HEADLINES; h++)
        if (seen[h])
            fields[count++] = (struct metric_field){headlines[h], sums[h], 4};
    char tag[300], line[1024];
    snprintf(tag, sizeof tag, "[bench] host=%s", host);
    if (metrics_format(line, sizeof line, tag, fields, count, err) != 0)
        return -1;
    return metrics_emit(STDOUT_FILENO, line, err);
}

/* One line per host (sums of its ranks' headline figures), one for the job. */
int report_emit_metrics(const json_t *results, struct sr_error *err)
{
    const json_t *ranks = json_object_get(results, "ranks"), *r;
    json_t *done = json_object();
    size_t i;
    int rc = 0;
    json_array_foreach(ranks, i, r) {
        const char *host = text(r, "host");
        if (json_object_get(done, host))
            continue;
        json_object_set_new(done, host, json_true());
        if (emit_host_line(ranks, host, err) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(done);
    if (rc != 0)
        return -1;
    struct metric_field job[5] = {{"hosts", number(results, "hosts"), 0}, {"ranks", number(results, "world_size"), 0}};
    int count = 2;
    const json_t *rows = json_object_get(json_object_get(results, "allreduce"), "rows");
    if (json_array_size(rows))
        job[count++] = (struct metric_field){
            "allreduce_busbw_gbs", number(json_object_get(json_array_get(rows, json_array_size(rows) - 1), "in_place"),
                                          "busbw_gbs"), 4};
    const json_t *train = json_object_get(results, "train");
    if (train) {
        job[count++] = (struct metric_field){"train_tokens_per_sec", number(train, "tokens_per_sec"), 1};
        job[count++] = (struct metric_field){"train_step_ms", number(train, "step_ms"), 2};
    }
    char line[1024];
    if (metrics_format(line, sizeof line, "[bench] job", job, count, err) != 0)
        return -1;
    return metrics_emit(STDOUT_FILENO, line, err);
}

/* ---- the picture ---- */

#define SVG_W 960
#define PANEL_H 260
#define SVG_LEFT 90 /* room for the axis labels */

/* `text`: host names, metric names and numbers, nothing XML must escape. */
static void svg_text(struct strbuf *s, double x, double y, const char *anchor, const char *text)
{
    strbuf_printf(s, "<text x='%.1f' y='%.1f' text-anchor='%s' font-size='12'>%s</text>\n", x, y, anchor, text);
}

/* busbw (in and out of place) against log2(bytes). */
static void svg_allreduce(struct strbuf *s, const json_t *rows, double top)
{
    size_t n = json_array_size(rows), i;
    const json_t *row;
    double max = 0;
    json_array_foreach(rows, i, row) {
        max = fmax(max, number(json_object_get(row, "in_place"), "busbw_gbs"));
        max = fmax(max, number(json_object_get(row, "out_of_place"), "busbw_gbs"));
    }
    max = max > 0 ? max * 1.1 : 1;
    double x0 = SVG_LEFT, x1 = SVG_W - 30, y0 = top + PANEL_H - 40, y1 = top + 30;
    svg_text(s, SVG_W / 2.0, top + 18, "middle", "all-reduce bus bandwidth (GB/s) by message size");
    strbuf_printf(s, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", x0, y0, x1, y0);
    strbuf_printf(s, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", x0, y0, x0, y1);
    char label[64];
    snprintf(label, sizeof label, "%.3g", max);
    svg_text(s, x0 - 6, y1 + 4, "end", label);
    svg_text(s, x0 - 6, y0 + 4, "end", "0");
    const char *modes[2] = {"in_place", "out_of_place"}, *colors[2] = {"#1f77b4", "#ff7f0e"};
    for (int m = 0; m < 2; m++) {
        strbuf_printf(s, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colors[m]);
        json_array_foreach(rows, i, row) {
            double x = n > 1 ? x0 + (x1 - x0) * (double)i / (double)(n - 1) : (x0 + x1) / 2;
            double y = y0 - (y0 - y1) * number(json_object_get(row, modes[m]), "busbw_gbs") / max;
            strbuf_printf(s, "%.1f,%.1f ", x, y);
        }
        strbuf_puts(s, "'/>\n");
        strbuf_printf(s, "<text x='%.0f' y='%.0f' font-size='12' fill='%s'>%s</text>\n", x1 - 120, y1 + 14.0 * m,
                      colors[m], m == 0 ? "in place" : "out of place");
    }
    json_array_foreach(rows, i, row) {
        double x = n > 1 ? x0 + (x1 - x0) * (double)i / (double)(n - 1) : (x0 + x1) / 2, b = number(row, "bytes");
        snprintf(label, sizeof label, b >= 1 << 20 ? "%.0fM" : b >= 1 << 10 ? "%.0fK" : "%.0f",
                 b >= 1 << 20 ? b / (1 << 20) : b >= 1 << 10 ? b / (1 << 10) : b);
        svg_text(s, x, y0 + 16, "middle", label);
    }
}

/* Whether the verdict failed `metric` of rank i. */
static bool check_failed(const json_t *verdict, size_t i, const char *metric)
{
    const json_t *c;
    size_t k;
    json_array_foreach(json_object_get(json_array_get(json_object_get(verdict, "ranks"), i), "checks"), k, c)
        if (strcmp(text(c, "metric"), metric) == 0)
            return !json_is_true(json_object_get(c, "passed"));
    return false;
}

/* One bar per rank for a headline figure, red where the verdict failed
 * that figure, and the median of all ranks as a dashed line (what
 * stragglers are held to). */
static void svg_bars(struct strbuf *s, const json_t *ranks, const json_t *verdict, const char *which, double top)
{
    size_t n = json_array_size(ranks), i;
    const json_t *r;
    double max = 0, *values = xcalloc(n + 1, sizeof *values);
    const char *metric = "";
    json_array_foreach(ranks, i, r) {
        values[i] = fmax(report_headline(json_object_get(r, "metrics"), which, &metric), 0);
        max = fmax(max, values[i]);
    }
    if (max <= 0) {
        free(values);
        return;
    }
    max *= 1.1;
    double x0 = SVG_LEFT, x1 = SVG_W - 30, y0 = top + PANEL_H - 40, y1 = top + 30, w = (x1 - x0) / (double)n;
    char label[128];
    snprintf(label, sizeof label, "%s per rank (red: failed validation; dashed: median)", metric);
    svg_text(s, SVG_W / 2.0, top + 18, "middle", label);
    strbuf_printf(s, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", x0, y0, x1, y0);
    snprintf(label, sizeof label, "%.5g", max);
    svg_text(s, x0 - 6, y1 + 4, "end", label);
    json_array_foreach(ranks, i, r) {
        double h = (y0 - y1) * values[i] / max;
        bool failed = check_failed(verdict, i, metric);
        strbuf_printf(s, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'/>\n", x0 + w * (double)i + w * 0.1,
                      y0 - h, w * 0.8, h, failed ? "#d62728" : "#2ca02c");
        snprintf(label, sizeof label, "%s/%lld", text(r, "host"), json_integer_value(json_object_get(r, "local_rank")));
        svg_text(s, x0 + w * ((double)i + 0.5), y0 + 16, "middle", label);
    }
    struct bench_stats stats;
    bench_stats_of(values, (int)n, &stats);
    double y = y0 - (y0 - y1) * stats.median / max;
    strbuf_printf(s, "<line x1='%.0f' y1='%.1f' x2='%.0f' y2='%.1f' stroke='black' stroke-dasharray='6,4'/>\n", x0, y,
                  x1, y);
    snprintf(label, sizeof label, "%.5g", stats.median);
    svg_text(s, x0 - 6, y + 4, "end", label);
    free(values);
}

int report_write_svg(const char *path, const json_t *results, const json_t *verdict, struct sr_error *err)
{
    struct strbuf s;
    strbuf_init(&s);
    double top = 0;
    const json_t *rows = json_object_get(json_object_get(results, "allreduce"), "rows");
    struct strbuf body;
    strbuf_init(&body);
    if (json_array_size(rows)) {
        svg_allreduce(&body, rows, top);
        top += PANEL_H;
    }
    for (size_t h = 0; h < HEADLINES; h++) {
        size_t before = body.len;
        svg_bars(&body, json_object_get(results, "ranks"), verdict, headlines[h], top);
        if (body.len > before)
            top += PANEL_H;
    }
    strbuf_printf(&s, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%.0f' font-family='sans-serif'>\n"
                      "<rect width='100%%' height='100%%' fill='white'/>\n",
                  SVG_W, top > 0 ? top : 40);
    strbuf_puts(&s, body.data ? body.data : "");
    strbuf_puts(&s, "</svg>\n");
    int rc = fs_write_text(path, s.data, err);
    strbuf_free(&body);
    strbuf_free(&s);
    return rc;
}
