/* json_file.h — reading (and writing) one JSON file with precise errors.
 *
 * Syntax errors name the file, line and column ("<path>:3:14: invalid JSON:
 * ..."); duplicate keys are refused (Python would silently keep the last one,
 * which hides mistakes in hand-written configs).
 */
#ifndef SAGERUN_JSON_FILE_H
#define SAGERUN_JSON_FILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Config files are small; anything larger is refused rather than parsed. */
#define JSON_FILE_MAX_BYTES (16u << 20)

/* Parses text (len bytes, need not be NUL-terminated). `path` is used only
 * in messages. Returns a new reference or NULL with err set. */
json_t *json_text_parse(const char *text, size_t len, const char *path, struct sr_error *err);

/* Reads and parses `path`. A missing file is an error unless `optional`, in
 * which case *out is NULL and 0 is returned. Returns 0 or -1 with err set. */
int json_file_load(const char *path, bool optional, json_t **out, struct sr_error *err);

/* Writes `value` as indented JSON with sorted keys to `path`, atomically
 * (fs_write_text). */
int json_file_write(const char *path, const json_t *value, struct sr_error *err);

/* Name of a JSON type as messages use it: "object", "string", ... */
const char *json_type_name(const json_t *v);

/* JSON path of a member: "$.hosts" + "current" -> "$.hosts.current", or
 * "$[\"odd key\"]" when the key is not a plain identifier. */
void json_path_member(char *out, size_t size, const char *parent, const char *key);

#endif
