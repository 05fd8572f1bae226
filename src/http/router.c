/* The route table: patterns of literal segments and {name} placeholders.
 * Matching is strict: "/api/desktops/" is not "/api/desktops" (404), so
 * each resource has exactly one spelling. A HEAD request falls back to the
 * GET route (the server leaves the body out). */
#include "http/http.h"

#include <stdio.h>
#include <string.h>

/* Matches one placeholder "{name}" at *pat against the segment at *path,
 * advancing both. Returns 0, or -1 when the segment is empty, too long, or
 * the match has no room left. */
static int route_placeholder(const char **pat, const char **path, struct route_match *m)
{
	const char *close = strchr(*pat, '}');
	size_t nlen, vlen = strcspn(*path, "/");

	if (!close || vlen == 0 || vlen >= ROUTE_PARAM_MAX || m->nparams >= ROUTE_MAX_PARAMS)
		return -1;
	nlen = (size_t)(close - *pat - 1);
	if (nlen >= sizeof(m->names[0]))
		return -1;
	memcpy(m->names[m->nparams], *pat + 1, nlen);
	m->names[m->nparams][nlen] = '\0';
	memcpy(m->values[m->nparams], *path, vlen);
	m->values[m->nparams][vlen] = '\0';
	m->nparams++;
	*pat = close + 1;
	*path += vlen;
	return 0;
}

/* Does path match pattern? Fills m's parameters as it goes. */
static int route_match_path(const char *pat, const char *path, struct route_match *m)
{
	m->nparams = 0;
	while (*pat) {
		if (*pat == '{') {
			if (route_placeholder(&pat, &path, m))
				return 0;
			continue;
		}
		if (*pat != *path)
			return 0;
		pat++;
		path++;
	}
	return *path == '\0';
}

/* Adds method to the comma-separated list unless it is already there. */
static void allow_add(char *allow, size_t len, const char *method)
{
	size_t mlen = strlen(method), used = strlen(allow);
	const char *p = allow;

	while ((p = strstr(p, method))) {
		if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
			return;
		p += mlen;
	}
	snprintf(allow + used, len - used, "%s%s", used ? ", " : "", method);
}

static int route_method_fits(const char *route_method, const char *method)
{
	return !strcmp(route_method, method) ||
	       (!strcmp(method, "HEAD") && !strcmp(route_method, "GET"));
}

int route_find(const struct route *routes, size_t n, const char *method, const char *path,
	       struct route_match *m, char *allow, size_t allow_len)
{
	struct route_match scratch;
	int found = 0, path_matched = 0;
	size_t i;

	if (allow && allow_len)
		allow[0] = '\0';
	for (i = 0; i < n; i++) {
		if (!route_match_path(routes[i].pattern, path, &scratch))
			continue;
		path_matched = 1;
		if (route_method_fits(routes[i].method, method) &&
		    (strcmp(method, "HEAD") || !found)) {
			*m = scratch;
			m->route = &routes[i];
			/* An exact HEAD route wins over the GET fallback. */
			if (!strcmp(routes[i].method, method))
				return 200;
			found = 1;
		}
		if (allow && allow_len) {
			allow_add(allow, allow_len, routes[i].method);
			if (!strcmp(routes[i].method, "GET"))
				allow_add(allow, allow_len, "HEAD");
		}
	}
	if (found)
		return 200;
	return path_matched ? 405 : 404;
}

const char *route_param(const struct route_match *m, const char *name)
{
	int i;

	for (i = 0; i < m->nparams; i++)
		if (!strcmp(m->names[i], name))
			return m->values[i];
	return NULL;
}
