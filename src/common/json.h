/* Helpers over jansson for strict request bodies. */
#ifndef BUREAU_JSON_H
#define BUREAU_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

/* Parses a request body that must be one JSON object. Fills err (400) on
 * malformed JSON or another top-level type. */
json_t *json_parse_object(const char *data, size_t len, struct err *err);

/* Rejects fields not in the NULL-terminated list `allowed` (400). */
int json_only_fields(json_t *obj, const char *const allowed[], struct err *err);

/* Optional string field: returns 0 and sets *out (NULL when absent), or -1
 * with err (400) when present with another type. `required` makes absence
 * an error too. */
int json_get_string(json_t *obj, const char *key, int required, const char **out,
		    struct err *err);
/* Same for integers and booleans; *out is left alone when absent. */
int json_get_int(json_t *obj, const char *key, int required, long long *out, struct err *err);
int json_get_bool(json_t *obj, const char *key, int required, int *out, struct err *err);

#endif
