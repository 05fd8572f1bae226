/* The config file: "key = value" lines for endpoint, key and workspace. It
 * holds a secret, so it is written 0600 in a 0700 folder, atomically. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "common/xalloc.h"

#define CONFIG_MAX_SIZE (64 * 1024)

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* A value may be quoted ("..." or '...') to keep spaces or a '#'. */
static char *unquote(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

static void set(char **slot, const char *v)
{
	free(*slot);
	*slot = xstrdup(v);
}

static int parse_line(char *line, int lineno, struct cli_config *cfg, struct err *err)
{
	char *s = trim(line), *eq, *k, *v;

	if (*s == '\0' || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq)
		return err_set(err, 2, "config", "line %d: expected \"key = value\"", lineno);
	*eq = '\0';
	k = trim(s);
	v = trim(eq + 1);
	if (v[0] != '"' && v[0] != '\'') {
		char *hash = strstr(v, " #");
		if (hash) {
			*hash = '\0';
			v = trim(v);
		}
	}
	v = unquote(v);
	if (strcmp(k, "endpoint") == 0)
		set(&cfg->endpoint, v);
	else if (strcmp(k, "key") == 0)
		set(&cfg->key, v);
	else if (strcmp(k, "workspace") == 0)
		set(&cfg->workspace, v);
	else if (*k == '\0')
		return err_set(err, 2, "config", "line %d: missing key before '='", lineno);
	return 0;
}

int cli_config_parse(const char *text, struct cli_config *cfg, struct err *err)
{
	char *copy = xstrdup(text), *p = copy;
	int lineno = 0, rc = 0;

	while (p && rc == 0) {
		char *nl = strchr(p, '\n');

		if (nl)
			*nl = '\0';
		lineno++;
		rc = parse_line(p, lineno, cfg, err);
		p = nl ? nl + 1 : NULL;
	}
	free(copy);
	return rc;
}

int cli_config_load(const char *path, struct cli_config *cfg, struct err *err)
{
	FILE *f = fopen(path, "r");
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	int rc;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		return err_sys(err, errno, "config %s", path);
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b.len + n > CONFIG_MAX_SIZE) {
			fclose(f);
			buf_release(&b);
			return err_set(err, 2, "config", "config %s: larger than %d bytes", path,
				       CONFIG_MAX_SIZE);
		}
		buf_append(&b, chunk, n);
	}
	fclose(f);
	rc = cli_config_parse(b.data ? b.data : "", cfg, err);
	if (rc)
		err_prefix(err, "config %s", path);
	buf_release(&b);
	return rc;
}

static int write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, s, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		len -= (size_t)w;
	}
	return 0;
}

int cli_config_write(const char *path, const struct cli_config *cfg, struct err *err)
{
	struct buf b = BUF_INIT;
	char *dir = xstrdup(path), *slash = strrchr(dir, '/'), *tmp;
	int fd, rc;

	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir_p(dir, err)) {
			free(dir);
			return -1;
		}
	}
	free(dir);
	buf_puts(&b, "# bureau CLI configuration (holds an API key: keep it 0600)\n");
	if (cfg->endpoint)
		buf_printf(&b, "endpoint = %s\n", cfg->endpoint);
	if (cfg->key)
		buf_printf(&b, "key = %s\n", cfg->key);
	if (cfg->workspace)
		buf_printf(&b, "workspace = %s\n", cfg->workspace);
	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = err_sys(err, errno, "write %s", tmp);
		goto out;
	}
	rc = write_all(fd, b.data, b.len);
	if (rc == 0 && fsync(fd))
		rc = -errno;
	if (close(fd) && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		rc = err_sys(err, -rc, "write %s", path);
	}
out:
	explicit_bzero(b.data, b.len);
	buf_release(&b);
	free(tmp);
	return rc;
}

char *cli_config_path(void)
{
	const char *p = getenv("BUREAU_CONFIG"), *home;

	if (p && *p)
		return xstrdup(p);
	p = getenv("XDG_CONFIG_HOME");
	if (p && *p == '/')
		return xasprintf("%s/bureau/config", p);
	home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	return xasprintf("%s/.config/bureau/config", home);
}

void cli_config_release(struct cli_config *cfg)
{
	if (cfg->key)
		explicit_bzero(cfg->key, strlen(cfg->key));
	free(cfg->endpoint);
	free(cfg->key);
	free(cfg->workspace);
	memset(cfg, 0, sizeof(*cfg));
}
