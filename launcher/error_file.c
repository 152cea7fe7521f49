#include "error_file.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "json_file.h"

/* The innermost frame of a Python traceback: its last `File "...", line N,
 * in f` line, without the indentation. */
static void innermost_frame(const char *traceback, char *out, size_t size)
{
    out[0] = '\0';
    for (const char *line = traceback; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *text = line + strspn(line, " ");
        if (strncmp(text, "File \"", 6) == 0)
            snprintf(out, size, "%.*s", (int)(len - (size_t)(text - line)), text);
        line = end ? end + 1 : NULL;
    }
}

/* Copies `text` onto one line: a failure reason is one line. */
static void one_line(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (; *text && n + 1 < size; text++)
        out[n++] = *text == '\n' || *text == '\r' || *text == '\t' ? ' ' : *text;
    out[n] = '\0';
}

bool error_file_summary(const char *path, char *out, size_t size)
{
    json_t *root = NULL;
    struct sr_error err = {{0}};
    if (json_file_load(path, true, &root, &err) != 0 || !root)
        return false; /* none, or not JSON: the last output lines still tell */
    const json_t *message = json_object_get(root, "message");
    const char *text = json_string_value(json_is_object(message) ? json_object_get(message, "message") : message);
    const char *stack = json_string_value(json_object_get(json_object_get(message, "extraInfo"), "py_callstack"));
    bool found = text && *text;
    if (found) {
        char line[400], frame[400];
        one_line(text, line, sizeof line);
        innermost_frame(stack ? stack : "", frame, sizeof frame);
        if (frame[0])
            snprintf(out, size, "%s (%s)", line, frame);
        else
            snprintf(out, size, "%s", line);
    }
    json_decref(root);
    return found;
}
