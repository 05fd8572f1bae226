/* The error that travels upward: an HTTP status, a stable machine code
 * ("not_found", "invalid_request"...), an errno when one applies, and a
 * message for people. The caller owns it; functions that fail return -1 or
 * NULL *and* fill it. Never decide success by looking at it. */
#ifndef BUREAU_ERR_H
#define BUREAU_ERR_H

struct err {
	int status;
	int errnum;
	char code[32];
	char msg[512];
};

#define ERR_INIT {0}

/* Fills err (which may be NULL) and returns -1 so callers can
 * `return err_set(...)`. */
int err_set(struct err *err, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Like err_set, with errnum recorded and strerror appended. */
int err_sys(struct err *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds context in front of the message: "clone golden image: <old>". */
void err_prefix(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *err);

#endif
