#include "rendezvous_msg.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const OPS[] = {
    [RDZV_JOIN] = "join",       [RDZV_WELCOME] = "welcome", [RDZV_HEARTBEAT] = "heartbeat",
    [RDZV_FAILED] = "failed",   [RDZV_DONE] = "done",       [RDZV_ABORT] = "abort",
    [RDZV_SET] = "set",         [RDZV_GET] = "get",         [RDZV_VALUE] = "value",
    [RDZV_FINISHED] = "finished", [RDZV_STOPPED] = "stopped", [RDZV_FAILED_ON] = "failed_on", [RDZV_HANG] = "hang",
};

static int string_field(json_t *obj, const char *field, size_t max, bool allow_empty, const char **out,
                        struct sr_error *err)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_string(v)) {
        error_setf(err, "rendezvous message: \"%s\" must be a string", field);
        return -1;
    }
    size_t len = json_string_length(v);
    if (len > max || (!allow_empty && len == 0) || memchr(json_string_value(v), '\0', len)) {
        error_setf(err, "rendezvous message: \"%s\" must be 1 to %zu bytes without NUL", field, max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int int_field(json_t *obj, const char *field, json_int_t min, json_int_t max, int *out, struct sr_error *err)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        error_setf(err, "rendezvous message: \"%s\" must be an integer from %lld to %lld", field, (long long)min,
                   (long long)max);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* A duration in seconds: a finite number from 0 to a year. */
static int seconds_field(json_t *obj, const char *field, double *out, struct sr_error *err)
{
    json_t *v = json_object_get(obj, field);
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d >= 0 && d <= 366 * 86400.0)) {
        error_setf(err, "rendezvous message: \"%s\" must be a number of seconds from 0 to a year", field);
        return -1;
    }
    *out = d;
    return 0;
}

static int addr_field(json_t *obj, const char **out, struct sr_error *err)
{
    struct in_addr a;
    if (string_field(obj, "addr", 15, false, out, err) != 0)
        return -1;
    if (inet_pton(AF_INET, *out, &a) != 1) {
        error_setf(err, "rendezvous message: \"addr\" must be an IPv4 address");
        return -1;
    }
    return 0;
}

static int welcome_hosts(json_t *obj, struct rdzv_msg *m, struct sr_error *err)
{
    json_t *hosts = json_object_get(obj, "hosts");
    if (!json_is_array(hosts) || json_array_size(hosts) == 0 || json_array_size(hosts) > RDZV_MAX_HOSTS) {
        error_setf(err, "rendezvous message: \"hosts\" must be an array of 1 to %d hosts", RDZV_MAX_HOSTS);
        return -1;
    }
    m->host_count = json_array_size(hosts);
    m->hosts = calloc(m->host_count, sizeof *m->hosts);
    if (!m->hosts) {
        error_setf(err, "rendezvous message: out of memory");
        return -1;
    }
    for (size_t i = 0; i < m->host_count; i++) {
        json_t *h = json_array_get(hosts, i);
        if (!json_is_object(h) || string_field(h, "host", RDZV_MAX_NAME, false, &m->hosts[i].name, err) != 0 ||
            int_field(h, "ranks", 1, RDZV_MAX_RANKS, &m->hosts[i].ranks, err) != 0 ||
            addr_field(h, &m->hosts[i].addr, err) != 0) {
            error_setf(err, "rendezvous message: hosts[%zu] must be {host, ranks, addr}", i);
            return -1;
        }
    }
    return 0;
}

static int fields(json_t *o, struct rdzv_msg *m, struct sr_error *err)
{
    switch (m->op) {
    case RDZV_JOIN:
        return string_field(o, "job", RDZV_MAX_NAME, true, &m->job, err) ||
                       string_field(o, "host", RDZV_MAX_NAME, false, &m->host, err) ||
                       int_field(o, "index", 0, RDZV_MAX_HOSTS - 1, &m->index, err) ||
                       int_field(o, "ranks", 1, RDZV_MAX_RANKS, &m->ranks, err) || addr_field(o, &m->addr, err)
                   ? -1
                   : 0;
    case RDZV_WELCOME: return welcome_hosts(o, m, err);
    case RDZV_HEARTBEAT: return json_object_get(o, "idle") ? seconds_field(o, "idle", &m->idle, err) : 0;
    case RDZV_HANG: return seconds_field(o, "idle", &m->idle, err);
    case RDZV_FINISHED: return 0;
    case RDZV_FAILED: return string_field(o, "reason", RDZV_MAX_REASON, false, &m->reason, err);
    case RDZV_DONE: return int_field(o, "status", 0, 255, &m->status, err);
    case RDZV_STOPPED: return string_field(o, "signal", 16, false, &m->signal, err);
    case RDZV_FAILED_ON:
    case RDZV_ABORT:
        return string_field(o, "host", RDZV_MAX_NAME, m->op == RDZV_ABORT, &m->host, err) ||
                       string_field(o, "reason", RDZV_MAX_REASON, false, &m->reason, err)
                   ? -1
                   : 0;
    case RDZV_SET:
    case RDZV_VALUE:
        return string_field(o, "key", RDZV_MAX_KEY, false, &m->key, err) ||
                       string_field(o, "value", RDZV_MAX_VALUE, true, &m->value, err)
                   ? -1
                   : 0;
    case RDZV_GET: return string_field(o, "key", RDZV_MAX_KEY, false, &m->key, err);
    }
    return -1;
}

int rdzv_parse(const char *data, size_t len, struct rdzv_msg *out, struct sr_error *err)
{
    memset(out, 0, sizeof *out);
    out->idle = -1;
    json_error_t jerr;
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        error_setf(err, "rendezvous message: %s", o ? "not a JSON object" : jerr.text);
        json_decref(o);
        return -1;
    }
    out->json = o;
    const char *op;
    if (string_field(o, "op", 16, false, &op, err) != 0) {
        rdzv_msg_free(out);
        return -1;
    }
    size_t i = 0;
    while (i < sizeof OPS / sizeof OPS[0] && strcmp(OPS[i], op) != 0)
        i++;
    if (i == sizeof OPS / sizeof OPS[0]) {
        error_setf(err, "rendezvous message: unknown op \"%.16s\"", op);
        rdzv_msg_free(out);
        return -1;
    }
    out->op = (enum rdzv_op)i;
    if (fields(o, out, err) != 0) {
        rdzv_msg_free(out);
        return -1;
    }
    return 0;
}

void rdzv_msg_free(struct rdzv_msg *m)
{
    free(m->hosts);
    json_decref(m->json);
    memset(m, 0, sizeof *m);
}

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 if invalid. */
static size_t utf8_sequence(const unsigned char *p)
{
    size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

json_t *rdzv_text(const char *text)
{
    char *copy = strdup(text);
    if (!copy)
        return NULL;
    for (unsigned char *p = (unsigned char *)copy; *p;) {
        size_t n = utf8_sequence(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
    json_t *s = json_string(copy);
    if (!s) /* overlong forms and surrogates pass the check above; jansson knows better */
        s = json_string("(text not valid UTF-8)");
    free(copy);
    return s;
}

void rdzv_frame(json_t *msg, struct strbuf *out)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text) {
        fprintf(stderr, "sagerun: out of memory encoding a rendezvous message\n");
        abort();
    }
    uint32_t len = (uint32_t)strlen(text);
    unsigned char prefix[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                               (unsigned char)len};
    strbuf_append(out, (const char *)prefix, 4);
    strbuf_append(out, text, len);
    free(text);
}

int rdzv_take(struct strbuf *in, struct rdzv_msg *out, struct sr_error *err)
{
    if (in->len < 4)
        return 0;
    const unsigned char *p = (const unsigned char *)in->data;
    uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (len == 0 || len > RDZV_MAX_MESSAGE) {
        error_setf(err, "rendezvous frame of %u bytes (limit %d)", len, RDZV_MAX_MESSAGE);
        return -1;
    }
    if (in->len < 4 + (size_t)len)
        return 0;
    int rc = rdzv_parse(in->data + 4, len, out, err);
    memmove(in->data, in->data + 4 + len, in->len - 4 - len + 1);
    in->len -= 4 + (size_t)len;
    return rc == 0 ? 1 : -1;
}
