#include "pyjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Decodes one UTF-8 sequence (jansson guarantees valid UTF-8). */
static uint32_t utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int extra = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    if (extra)
        c &= 0x3F >> extra;
    for (int i = 1; i <= extra; i++)
        c = (c << 6) | (s[i] & 0x3F);
    *p = s + 1 + extra;
    return c;
}

static void dump_string(const char *s, size_t len, struct strbuf *out)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    strbuf_putc(out, '"');
    while (p < end) {
        uint32_t c = utf8_next(&p);
        switch (c) {
        case '"': strbuf_puts(out, "\\\""); break;
        case '\\': strbuf_puts(out, "\\\\"); break;
        case '\n': strbuf_puts(out, "\\n"); break;
        case '\r': strbuf_puts(out, "\\r"); break;
        case '\t': strbuf_puts(out, "\\t"); break;
        case '\b': strbuf_puts(out, "\\b"); break;
        case '\f': strbuf_puts(out, "\\f"); break;
        default:
            if (c >= 0x20 && c <= 0x7E) {
                strbuf_putc(out, (char)c);
            } else if (c < 0x10000) {
                strbuf_printf(out, "\\u%04x", (unsigned)c);
            } else { /* UTF-16 surrogate pair, as Python writes it */
                c -= 0x10000;
                strbuf_printf(out, "\\u%04x\\u%04x", 0xD800u + (unsigned)(c >> 10),
                              0xDC00u + (unsigned)(c & 0x3FF));
            }
        }
    }
    strbuf_putc(out, '"');
}

void pyjson_float_repr(double x, struct strbuf *out)
{
    if (x == 0) {
        strbuf_puts(out, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    /* Shortest precision whose correctly rounded form reads back as x. */
    char sci[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, x);
        if (strtod(sci, NULL) == x)
            break;
    }
    const char *p = sci;
    if (*p == '-') {
        strbuf_putc(out, '-');
        p++;
    }
    char digits[24];
    size_t nd = 0;
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int decpt = atoi(p + 1) + 1; /* digits d1d2... mean 0.d1d2... x 10^decpt */

    if (decpt > 16 || decpt < -3) {
        strbuf_putc(out, digits[0]);
        if (nd > 1) {
            strbuf_putc(out, '.');
            strbuf_append(out, digits + 1, nd - 1);
        }
        int e = decpt - 1;
        strbuf_printf(out, "e%c%02d", e < 0 ? '-' : '+', abs(e));
    } else if (decpt <= 0) {
        strbuf_puts(out, "0.");
        for (int i = 0; i < -decpt; i++)
            strbuf_putc(out, '0');
        strbuf_append(out, digits, nd);
    } else if ((size_t)decpt >= nd) {
        strbuf_append(out, digits, nd);
        for (size_t i = nd; i < (size_t)decpt; i++)
            strbuf_putc(out, '0');
        strbuf_puts(out, ".0");
    } else {
        strbuf_append(out, digits, (size_t)decpt);
        strbuf_putc(out, '.');
        strbuf_append(out, digits + decpt, nd - (size_t)decpt);
    }
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **json_sorted_keys(const json_t *obj, size_t *count)
{
    size_t n = json_object_size(obj), i = 0;
    const char **keys = xcalloc(n, sizeof *keys);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) keys[i++] = key;
    qsort(keys, n, sizeof *keys, compare_keys);
    *count = n;
    return keys;
}

void pyjson_dumps(const json_t *v, struct strbuf *out)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n;
        const char **keys = json_sorted_keys(v, &n);
        strbuf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i)
                strbuf_putc(out, ',');
            dump_string(keys[i], strlen(keys[i]), out);
            strbuf_putc(out, ':');
            pyjson_dumps(json_object_get(v, keys[i]), out);
        }
        strbuf_putc(out, '}');
        free(keys);
        break;
    }
    case JSON_ARRAY:
        strbuf_putc(out, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                strbuf_putc(out, ',');
            pyjson_dumps(json_array_get(v, i), out);
        }
        strbuf_putc(out, ']');
        break;
    case JSON_STRING: dump_string(json_string_value(v), json_string_length(v), out); break;
    case JSON_INTEGER: strbuf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: pyjson_float_repr(json_real_value(v), out); break;
    case JSON_TRUE: strbuf_puts(out, "true"); break;
    case JSON_FALSE: strbuf_puts(out, "false"); break;
    case JSON_NULL: strbuf_puts(out, "null"); break;
    }
}

/* repr(str): single quotes unless the text has ' and no ". */
static void repr_string(const char *s, struct strbuf *out)
{
    char quote = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';
    strbuf_putc(out, quote);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == (unsigned char)quote) {
            strbuf_putc(out, '\\');
            strbuf_putc(out, (char)*p);
        } else if (*p == '\n') {
            strbuf_puts(out, "\\n");
        } else if (*p == '\r') {
            strbuf_puts(out, "\\r");
        } else if (*p == '\t') {
            strbuf_puts(out, "\\t");
        } else if (*p < 0x20 || *p == 0x7F) {
            strbuf_printf(out, "\\x%02x", *p);
        } else {
            strbuf_putc(out, (char)*p);
        }
    }
    strbuf_putc(out, quote);
}

static void repr_value(const json_t *v, struct strbuf *out)
{
    if (json_is_string(v))
        repr_string(json_string_value(v), out);
    else
        pyjson_str(v, out);
}

void pyjson_str(const json_t *v, struct strbuf *out)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: { /* dicts print in insertion order; jansson keeps it */
        const char *key;
        json_t *value;
        bool first = true;
        strbuf_putc(out, '{');
        json_object_foreach((json_t *)v, key, value) {
            if (!first)
                strbuf_puts(out, ", ");
            first = false;
            repr_string(key, out);
            strbuf_puts(out, ": ");
            repr_value(value, out);
        }
        strbuf_putc(out, '}');
        break;
    }
    case JSON_ARRAY:
        strbuf_putc(out, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                strbuf_puts(out, ", ");
            repr_value(json_array_get(v, i), out);
        }
        strbuf_putc(out, ']');
        break;
    case JSON_STRING: strbuf_append(out, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: strbuf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: pyjson_float_repr(json_real_value(v), out); break;
    case JSON_TRUE: strbuf_puts(out, "True"); break;
    case JSON_FALSE: strbuf_puts(out, "False"); break;
    case JSON_NULL: strbuf_puts(out, "None"); break;
    }
}

json_t *pyjson_decode_or_string(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    return v ? v : json_string(text);
}

bool pyjson_truthy(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return json_object_size(v) > 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0;
    case JSON_TRUE: return true;
    case JSON_FALSE:
    case JSON_NULL: return false;
    }
    return false;
}

bool pyjson_contains(const json_t *container, const char *needle)
{
    if (json_is_object(container))
        return json_object_get(container, needle) != NULL;
    if (json_is_string(container))
        return strstr(json_string_value(container), needle) != NULL;
    if (json_is_array(container)) {
        for (size_t i = 0; i < json_array_size(container); i++) {
            const json_t *item = json_array_get(container, i);
            if (json_is_string(item) && strcmp(json_string_value(item), needle) == 0)
                return true;
        }
    }
    return false;
}
