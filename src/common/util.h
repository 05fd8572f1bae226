/* Small helpers shared by bureaud, the CLI and the store: ids, tokens,
 * time, and validation of user-chosen names. */
#ifndef BUREAU_UTIL_H
#define BUREAU_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ID_MAX 40      /* "dsk_" + 20 base32 characters, with room to spare */
#define TOKEN_MAX 64   /* a secret token as shown to the user once */
#define HASH_HEX_LEN 64
#define NAME_MAX_LEN 63

/* A fresh random id with a type prefix: id_new(buf, sizeof buf, "dsk"). */
void id_new(char *out, size_t n, const char *prefix);
/* A fresh random secret ("bk_" + 43 base64url characters). */
void token_new(char *out, size_t n, const char *prefix);
/* SHA-256 of a token, lower-case hex, for storing secrets hashed. */
void token_hash(const char *token, char out[HASH_HEX_LEN + 1]);
/* Constant-time equality of two NUL-terminated strings. */
int secret_equal(const char *a, const char *b);

/* Milliseconds since the epoch (wall clock) and since boot (monotonic). */
int64_t now_ms(void);
int64_t mono_ms(void);
/* "2026-11-22T14:24:29.123Z" */
void time_iso(int64_t ms, char out[32]);
/* Parses what time_iso writes (and a plain date "2026-11-22");
 * returns -1 on a malformed string. */
int time_parse_iso(const char *s, int64_t *ms);

/* A desktop or workspace name: 1..63 characters of [A-Za-z0-9._-], not
 * starting with '.' or '-'. Fills err with status 400 otherwise. */
int name_check(const char *what, const char *name, struct err *err);

/* Creates a directory and its parents (mode 0700 for new ones). */
int mkdir_p(const char *path, struct err *err);
/* Removes a directory tree. Returns 0 or -errno. */
int rm_rf(const char *path);

#endif
