#include "train_config.h"

#include "contract.h"
#include "json_file.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum kind { INT, INT64, REAL };

struct setting {
    const char *name;
    enum kind kind;
    size_t offset;
    double min, max;
};

#define FIELD(name, kind, min, max) {#name, kind, offsetof(struct train_config, name), min, max}
#define MODEL(name, field, min, max) {#name, INT, offsetof(struct train_config, model.field), min, max}

static const struct setting settings[] = {
    MODEL(n_layer, n_layer, 1, 1024),
    MODEL(n_head, n_head, 1, 1024),
    MODEL(n_embd, n_embd, 1, 65536),
    MODEL(seq_len, max_seq_len, 1, 1 << 20),
    MODEL(vocab_size, vocab_size, 2, 65536), /* tokens are uint16 in the data */
    FIELD(batch_size, INT, 1, 1 << 24),
    FIELD(micro_batch_size, INT, 1, 1 << 24),
    FIELD(max_steps, INT, 0, 1e9),
    FIELD(warmup_steps, INT, 0, 1e9),
    FIELD(learning_rate, REAL, 0, 10),
    FIELD(min_lr_ratio, REAL, 0, 1),
    FIELD(weight_decay, REAL, 0, 10),
    FIELD(beta1, REAL, 0, 0.999999),
    FIELD(beta2, REAL, 0, 0.999999999),
    FIELD(eps, REAL, 1e-30, 1),
    FIELD(grad_clip, REAL, 0, 1e9),
    FIELD(seed, INT64, 0, 9007199254740992.0),
    FIELD(log_interval, INT, 1, 1e9),
    FIELD(val_interval, INT, 0, 1e9),
    FIELD(val_batches, INT, 1, 1e9),
    FIELD(checkpoint_interval, INT, 0, 1e9),
    FIELD(checkpoint_keep, INT, 1, 1000),
    FIELD(weight_check_interval, INT, 0, 1e9),
    FIELD(allreduce_bucket_mb, REAL, 0.001, 65536),
};
#define SETTING_COUNT (sizeof settings / sizeof settings[0])

static const struct {
    const char *name;
    struct gpt_config model;
} presets[] = {
    {"gpt2-124m", {1024, 50257, 12, 12, 768}},
    {"tiny", {64, 256, 2, 4, 64}},
};

static void defaults(struct train_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->preset, sizeof c->preset, "%s", presets[0].name);
    c->model = presets[0].model;
    c->batch_size = 8;
    c->max_steps = 100;
    c->warmup_steps = -1; /* 5% of max_steps unless set */
    c->learning_rate = 6e-4;
    c->min_lr_ratio = 0.1;
    c->weight_decay = 0.1;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
    c->eps = 1e-8;
    c->grad_clip = 1.0;
    c->seed = 1337;
    c->log_interval = 10;
    c->val_interval = 100;
    c->val_batches = 8;
    c->checkpoint_interval = 100;
    c->checkpoint_keep = 2;
    c->allreduce_bucket_mb = 25; /* PyTorch DDP's bucket_cap_mb */
}

static int set_value(struct train_config *c, const struct setting *s, const char *text, const char *path,
                     struct sr_error *err)
{
    char *end;
    errno = 0;
    double v = s->kind == REAL ? strtod(text, &end) : (double)strtoll(text, &end, 10);
    if (end == text || *end || errno || !isfinite(v) || v < s->min || v > s->max) {
        char where[300];
        json_path_member(where, sizeof where, "$", s->name);
        error_config(err, path, where, "\"%s\" is not %s from %g to %g", text,
                     s->kind == REAL ? "a number" : "an integer", s->min, s->max);
        return -1;
    }
    void *field = (char *)c + s->offset;
    if (s->kind == INT)
        *(int *)field = (int)v;
    else if (s->kind == INT64)
        *(int64_t *)field = strtoll(text, NULL, 10);
    else
        *(double *)field = v;
    return 0;
}

static int set_allreduce_dtype(struct train_config *c, const json_t *value, const char *path, struct sr_error *err)
{
    const char *text = json_string_value(value);
    if (text && (strcmp(text, "fp32") == 0 || strcmp(text, "bf16") == 0)) {
        c->allreduce_bf16 = strcmp(text, "bf16") == 0;
        return 0;
    }
    error_config(err, path, "$.allreduce_dtype", "\"%s\" is not fp32 or bf16", text ? text : "?");
    return -1;
}

static int set_attention(struct train_config *c, const json_t *value, const char *path, struct sr_error *err)
{
    static const char *const names[] = {[GPT_ATTENTION_AUTO] = "auto", [GPT_ATTENTION_FLASH] = "flash",
                                        [GPT_ATTENTION_MATERIALIZED] = "materialized"};
    const char *text = json_string_value(value);
    for (size_t i = 0; text && i < sizeof names / sizeof *names; i++)
        if (strcmp(text, names[i]) == 0) {
            c->attention = (enum gpt_attention)i;
            return 0;
        }
    error_config(err, path, "$.attention", "\"%s\" is not auto, flash or materialized", text ? text : "?");
    return -1;
}

/* The settings that take a word, not a number: 1 when `key` is one of them
 * (and was set), 0 when it is not, -1 on a bad value. */
static int choose(struct train_config *c, const char *key, const json_t *value, const char *path,
                  struct sr_error *err)
{
    static const struct {
        const char *name;
        int (*set)(struct train_config *, const json_t *, const char *, struct sr_error *);
    } choices[] = {{"allreduce_dtype", set_allreduce_dtype}, {"attention", set_attention}};
    for (size_t i = 0; i < sizeof choices / sizeof *choices; i++)
        if (strcmp(key, choices[i].name) == 0)
            return choices[i].set(c, value, path, err) == 0 ? 1 : -1;
    return 0;
}

static int apply_preset(struct train_config *c, const json_t *hp, const char *path, struct sr_error *err)
{
    const json_t *model = json_object_get(hp, "model");
    if (!model)
        return 0;
    const char *name = json_string_value(model);
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(name, presets[i].name) == 0) {
            snprintf(c->preset, sizeof c->preset, "%s", name);
            c->model = presets[i].model;
            return 0;
        }
    error_config(err, path, "$.model", "\"%s\" is not a model preset (gpt2-124m, tiny)", name ? name : "?");
    return -1;
}

int train_config_parse(const json_t *hp, const char *path, struct train_config *c, struct sr_error *err)
{
    defaults(c);
    if (apply_preset(c, hp, path, err) != 0)
        return -1;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)hp, key, value) {
        if (strcmp(key, "model") == 0 || strncmp(key, "sagemaker_", 10) == 0)
            continue;
        int chosen = choose(c, key, value, path, err);
        if (chosen < 0)
            return -1;
        if (chosen)
            continue;
        const struct setting *s = NULL;
        for (size_t i = 0; i < SETTING_COUNT && !s; i++)
            if (strcmp(settings[i].name, key) == 0)
                s = &settings[i];
        if (!s) {
            char where[300];
            json_path_member(where, sizeof where, "$", key);
            error_config(err, path, where, "the built-in trainer has no hyperparameter \"%s\" (see README: "
                                         "\"Built-in trainer\")", key);
            return -1;
        }
        if (set_value(c, s, json_string_value(value), path, err) != 0)
            return -1;
    }
    if (c->warmup_steps < 0)
        c->warmup_steps = c->max_steps / 20;
    if (c->model.n_embd % c->model.n_head != 0) {
        error_config(err, path, "$.n_embd", "%d is not a multiple of n_head (%d)", c->model.n_embd, c->model.n_head);
        return -1;
    }
    return 0;
}

double train_config_lr(const struct train_config *c, int step)
{
    if (step < c->warmup_steps)
        return c->learning_rate * (step + 1) / c->warmup_steps;
    double min_lr = c->learning_rate * c->min_lr_ratio;
    int span = c->max_steps - c->warmup_steps;
    double progress = span > 0 ? (double)(step - c->warmup_steps) / span : 1.0;
    if (progress > 1.0)
        progress = 1.0;
    return min_lr + 0.5 * (1.0 + cos(M_PI * progress)) * (c->learning_rate - min_lr);
}
