#include "json_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "strbuf.h"

const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

json_t *json_text_parse(const char *text, size_t len, const char *path, struct sr_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        error_setf(err, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    return root;
}

int json_file_load(const char *path, bool optional, json_t **out, struct sr_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT && optional)
            return 0;
        if (errno == ENOENT)
            error_setf(err, "%s: file is missing", path);
        else
            error_setf(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        error_setf(err, "%s: not a regular file", path);
        fclose(f);
        return -1;
    }
    if ((unsigned long long)st.st_size > JSON_FILE_MAX_BYTES) {
        error_setf(err, "%s: file is %lld bytes, over the %u-byte limit for a config file",
                   path, (long long)st.st_size, JSON_FILE_MAX_BYTES);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    char *text = xmalloc(size + 1);
    size_t got = fread(text, 1, size, f);
    int read_failed = ferror(f);
    fclose(f);
    if (read_failed || got != size) {
        error_setf(err, "%s: cannot read: %s", path, read_failed ? strerror(errno) : "file changed while reading");
        free(text);
        return -1;
    }
    *out = json_text_parse(text, size, path, err);
    free(text);
    return *out ? 0 : -1;
}

int json_file_write(const char *path, const json_t *value, struct sr_error *err)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) {
        error_setf(err, "cannot write %s: the value cannot be encoded as JSON", path);
        return -1;
    }
    int rc = fs_write_text(path, text, err);
    free(text);
    return rc;
}

void json_path_member(char *out, size_t size, const char *parent, const char *key)
{
    bool plain = *key != '\0';
    for (const char *p = key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            plain = false;
    if (plain)
        snprintf(out, size, "%s.%s", parent, key);
    else
        snprintf(out, size, "%s[\"%s\"]", parent, key);
}
