#include "common/json.h"

#include <string.h>

json_t *json_parse_object(const char *data, size_t len, struct err *err)
{
	json_error_t je;
	json_t *j;

	if (len == 0) {
		err_set(err, 400, "invalid_json", "request body must be a JSON object");
		return NULL;
	}
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		err_set(err, 400, "invalid_json", "malformed JSON at line %d column %d: %s",
			je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		err_set(err, 400, "invalid_json", "request body must be a JSON object");
		return NULL;
	}
	return j;
}

int json_only_fields(json_t *obj, const char *const allowed[], struct err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		int ok = 0;
		for (size_t i = 0; allowed[i]; i++)
			if (!strcmp(key, allowed[i]))
				ok = 1;
		if (!ok)
			return err_set(err, 400, "unknown_field", "unknown field \"%.64s\"", key);
	}
	return 0;
}

static int missing(const char *key, struct err *err)
{
	return err_set(err, 400, "invalid_request", "field \"%s\" is required", key);
}

int json_get_string(json_t *obj, const char *key, int required, const char **out,
		    struct err *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return required ? missing(key, err) : 0;
	if (!json_is_string(v))
		return err_set(err, 400, "invalid_type", "field \"%s\" must be a string", key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return err_set(err, 400, "invalid_request", "field \"%s\" contains a NUL byte",
			       key);
	*out = json_string_value(v);
	return 0;
}

int json_get_int(json_t *obj, const char *key, int required, long long *out, struct err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return required ? missing(key, err) : 0;
	if (!json_is_integer(v))
		return err_set(err, 400, "invalid_type", "field \"%s\" must be an integer", key);
	*out = json_integer_value(v);
	return 0;
}

int json_get_bool(json_t *obj, const char *key, int required, int *out, struct err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return required ? missing(key, err) : 0;
	if (!json_is_boolean(v))
		return err_set(err, 400, "invalid_type", "field \"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}
