/* A growable byte buffer, always NUL-terminated for convenience. */
#ifndef BUREAU_BUF_H
#define BUREAU_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Returns the data; the caller owns it and the buffer is empty again. */
char *buf_detach(struct buf *b, size_t *len);
void buf_release(struct buf *b);

#endif
