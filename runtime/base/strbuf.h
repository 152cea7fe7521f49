/* strbuf.h — a growable, always NUL-terminated byte string.
 *
 * Output of sagerun (env listings, JSON) is built whole in a strbuf and only
 * printed when complete, so a failure never leaves half an answer on stdout.
 * Allocation failure aborts the process with a message: there is no useful
 * way to continue a configuration step without memory.
 */
#ifndef SAGERUN_STRBUF_H
#define SAGERUN_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *data; /* NUL-terminated; never NULL after strbuf_init */
    size_t len;
    size_t cap;
};

void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb); /* empty it, keeping the memory */
void strbuf_append(struct strbuf *sb, const char *bytes, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the buffer to the caller (free() it); sb is released, as after
 * strbuf_free, until strbuf_init is called again. */
char *strbuf_detach(struct strbuf *sb);

/* Frees a NULL-terminated array of strings and the strings (NULL is fine). */
void strv_free(char **v);

/* malloc/strdup that abort with a message instead of returning NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
char *xstrdup(const char *s);

#endif
