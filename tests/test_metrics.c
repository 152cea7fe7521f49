/* Metrics lines and their MetricDefinitions: fixed-point formatting, no
 * nan/inf ever printed, definitions within CreateTrainingJob's limits, each
 * regex capturing its value from a formatted line and never matching the
 * per-rank diagnostics. Also the token shard reader's checks. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics.h"
#include "test_util.h"
#include "token_data.h"

static void lines_are_fixed_point(void **state)
{
    (void)state;
    struct sr_error err = {{0}};
    char line[256];
    struct metric_field f[] = {{"step", 120, 0}, {"lr", 6e-9, 8}, {"big", 3.2e12, 1}, {"loss", 3.45123, 4}};
    assert_int_equal(metrics_format(line, sizeof line, "[metrics]", f, 4, &err), 0);
    assert_string_equal(line, "[metrics] step=120 lr=0.00000001 big=3200000000000.0 loss=3.4512\n");
    struct metric_field bad[] = {{"step", 1, 0}, {"train_loss", NAN, 4}};
    assert_int_equal(metrics_format(line, sizeof line, "[metrics]", bad, 2, &err), -1);
    assert_string_equal(err.text, "metric train_loss is nan");
    struct sr_error err2 = {{0}};
    struct metric_field inf[] = {{"grad_norm", INFINITY, 4}};
    assert_int_equal(metrics_format(line, sizeof line, "[metrics]", inf, 1, &err2), -1);
    assert_string_equal(err2.text, "metric grad_norm is infinite");
}

static const char *capture(const char *regex, const char *line, char *out, size_t size)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &code, &at, NULL);
    assert_non_null(re);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    const char *result = NULL;
    if (pcre2_match(re, (PCRE2_SPTR)line, strlen(line), 0, 0, md, NULL) >= 2) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        snprintf(out, size, "%.*s", (int)(ov[3] - ov[2]), line + ov[2]);
        result = out;
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return result;
}

static void definitions_capture_their_values(void **state)
{
    (void)state;
    const char *train = "[algo-1:0] [metrics] step=120 epoch=0 train_loss=3.4512 lr=0.00060000 grad_norm=0.8123 "
                        "tokens_per_sec=61234.5 step_ms=412.3 mfu=0.4120\n";
    const char *val = "[algo-1:0] [metrics] step=120 epoch=0 val_loss=3.5012\n";
    const char *diag = "[algo-2:3] [rank-stats] rank=3 data_ms=0.01 compute_ms=20.00 comm_ms=0.30\n";
    const char *want[][2] = {{"train:loss", "3.4512"},        {"validation:loss", "3.5012"},
                             {"train:learning_rate", "0.00060000"}, {"train:grad_norm", "0.8123"},
                             {"train:tokens_per_sec", "61234.5"}, {"train:step_ms", "412.3"},
                             {"train:mfu", "0.4120"},          {"train:step", "120"}};
    assert_int_equal(metric_definition_count, sizeof want / sizeof want[0]);
    assert_true(metric_definition_count <= METRIC_MAX_DEFINITIONS);
    for (size_t i = 0; i < metric_definition_count; i++) {
        const struct metric_definition *d = &metric_definitions[i];
        assert_string_equal(d->name, want[i][0]);
        assert_true(strlen(d->name) >= 1 && strlen(d->name) <= METRIC_NAME_MAX);
        assert_true(strlen(d->regex) >= 1 && strlen(d->regex) <= METRIC_REGEX_MAX);
        char got[64];
        const char *from = strcmp(d->name, "validation:loss") == 0 ? val : train;
        assert_non_null(capture(d->regex, from, got, sizeof got));
        assert_string_equal(got, want[i][1]);
        assert_null(capture(d->regex, diag, got, sizeof got));
        if (from == train) /* a validation line never feeds a training metric */
            assert_null(capture(d->regex, val, got, sizeof got));
    }
}

static void shard_reader_checks_its_input(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    struct token_source s;
    struct sr_error err = {{0}};
    assert_int_equal(token_source_open(&s, "train", dir, INPUT_MODE_FILE, 9, 64, &err), -1);
    assert_non_null(strstr(err.text, "no token shards (*.bin)"));
    token_source_close(&s);

    uint16_t tokens[20];
    for (int i = 0; i < 20; i++)
        tokens[i] = (uint16_t)i;
    char path[4200];
    snprintf(path, sizeof path, "%s/a.bin", dir);
    assert_int_equal(shard_write(path, tokens, 20, &err), 0);
    /* Windows of 9 overlap by one: offsets 0, 8; then 16 + 9 > 20 wraps to the next epoch. */
    assert_int_equal(token_source_open(&s, "train", dir, INPUT_MODE_FILE, 9, 64, &err), 0);
    const uint16_t *w;
    int64_t starts[3];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(token_source_next(&s, &w, &err), 0);
        starts[k] = w[0];
    }
    assert_true(starts[0] == 0 && starts[1] == 8 && starts[2] == 0);
    assert_int_equal(s.pos.epoch, 1);
    token_source_close(&s);

    /* A token outside the vocabulary is named with its place. */
    struct sr_error err2 = {{0}};
    assert_int_equal(token_source_open(&s, "train", dir, INPUT_MODE_FILE, 9, 5, &err2), 0);
    assert_int_equal(token_source_next(&s, &w, &err2), -1);
    assert_non_null(strstr(err2.text, "token 5 at epoch 0 shard 0 offset 5 is outside the vocabulary (vocab_size 5)"));
    token_source_close(&s);

    /* A file cut short, and one that is not a shard. */
    test_write(dir, "b.bin", "this is not a token shard, but it is long enough to hold a header? no.");
    struct sr_error err3 = {{0}};
    assert_int_equal(token_source_open(&s, "train", dir, INPUT_MODE_FILE, 9, 64, &err3), -1);
    assert_non_null(strstr(err3.text, "b.bin: shorter than the 1024-byte header"));
    token_source_close(&s);
    assert_int_equal(truncate(path, 1024 + 30), 0);
    snprintf(path, sizeof path, "%s/b.bin", dir);
    unlink(path);
    struct sr_error err4 = {{0}};
    assert_int_equal(token_source_open(&s, "train", dir, INPUT_MODE_FILE, 9, 64, &err4), -1);
    assert_non_null(strstr(err4.text, "header says 20 tokens (1064 bytes with the header) but the file has 1054 bytes"));
    token_source_close(&s);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_are_fixed_point),
        cmocka_unit_test(definitions_capture_their_values),
        cmocka_unit_test(shard_reader_checks_its_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
