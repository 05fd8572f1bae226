#include "core/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_type { OPT_STR, OPT_INT, OPT_DOUBLE, OPT_FLAG };

struct opt {
	const char *name;
	enum opt_type type;
	size_t offset;
	size_t size; /* strings: the buffer's size; integers: the largest value */
	const char *def;
	const char *help;
};

#define OPT_INT_MAX 1000000000

#define STR(f) OPT_STR, offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NUM(t, f) t, offsetof(struct config, f), 0
#define INT(f, max) OPT_INT, offsetof(struct config, f), max

static const struct opt options[] = {
	{"listen", STR(listen), "127.0.0.1:8080", "address:port of the API and dashboard"},
	{"state-dir", STR(state_dir), "", "where desktops and the database live "
					  "(default /var/lib/bureau as root, else ~/.local/state/bureau)"},
	{"image-dir", STR(image_dir), "", "golden images (default STATE/images)"},
	{"store", STR(store), "", "database: sqlite:PATH (default sqlite:STATE/bureau.db)"},
	{"accel", STR(accel), "auto", "auto (probe), kvm or tcg"},
	{"log-level", STR(log_level), "info", "debug, info or warn"},
	{"currency", STR(currency), "EUR", "currency of the tier prices"},
	{"price-free", NUM(OPT_DOUBLE, price_free), "0", "price per running hour, free tier"},
	{"price-pro", NUM(OPT_DOUBLE, price_pro), "0.0671", "price per running hour, pro tier"},
	{"price-max", NUM(OPT_DOUBLE, price_max), "0.2041", "price per running hour, max tier"},
	{"plan-limit", NUM(OPT_INT, plan_limit), "5", "desktops a new workspace may have"},
	{"stop-timeout", NUM(OPT_INT, stop_timeout_s), "30", "seconds of graceful powerdown"},
	{"boot-timeout", NUM(OPT_INT, boot_timeout_s), "600", "seconds from boot to ready"},
	{"image-gc", STR(image_gc), "auto",
	 "hourly removal of image versions and warm templates nothing uses: on, off, or auto "
	 "(on when the image dir is inside the state dir)"},
	{"session-ttl", NUM(OPT_INT, session_ttl_h), "168", "hours a login session lasts"},
	{"retention-days", INT(retention_days, 36500), "90",
	 "days the audit log, events and egress log are kept, 0..36500 (0: forever)"},
	{"metrics-token", STR(metrics_token), "",
	 "bearer token that may read GET /metrics (besides admins' API keys)"},
	{"templates", STR(templates), "on",
	 "on: new desktops resume a warm template (built on first use); off: cold boot"},
	{"template-images", STR(template_images), "",
	 "images whose free-tier template is built at startup (e.g. tiny,desktop)"},
	{"hibernate-compress", STR(hibernate_compress), "none",
	 "memory images of hibernation, templates and snapshots: none or zstd"},
	{"free-page-reporting", STR(free_page_reporting), "on",
	 "guests hand freed pages back through virtio-balloon: on or off"},
	{"print-routes", NUM(OPT_FLAG, print_routes), "0", "print the API's routes and exit"},
};

#define NOPTS (sizeof(options) / sizeof(options[0]))

static const struct opt *opt_find(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (!strcmp(options[i].name, name))
			return &options[i];
	return NULL;
}

static int opt_set(struct config *cfg, const struct opt *o, const char *value, struct err *err)
{
	char *base = (char *)cfg + o->offset, *end;

	switch (o->type) {
	case OPT_STR:
		if (strlen(value) >= o->size)
			return err_set(err, 0, "config", "%s: value too long", o->name);
		strcpy(base, value);
		return 0;
	case OPT_INT:
	case OPT_FLAG: {
		long v, max = o->size ? (long)o->size : OPT_INT_MAX;
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || *end || end == value || v < 0 || v > max)
			return err_set(err, 0, "config", "%s: not a valid number (0..%ld): %s",
				       o->name, max, value);
		*(int *)base = (int)v;
		return 0;
	}
	case OPT_DOUBLE: {
		double v;
		errno = 0;
		v = strtod(value, &end);
		if (errno || *end || end == value || v < 0)
			return err_set(err, 0, "config", "%s: not a valid price: %s", o->name,
				       value);
		*(double *)base = v;
		return 0;
	}
	}
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int config_file(struct config *cfg, const char *path, int must_exist, struct err *err)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	int lineno = 0;

	if (!f) {
		if (!must_exist && errno == ENOENT)
			return 0;
		return err_sys(err, errno, "config file %s", path);
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = trim(line), *eq, *key;
		const struct opt *o;

		lineno++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			fclose(f);
			return err_set(err, 0, "config", "%s:%d: expected key = value", path, lineno);
		}
		*eq = '\0';
		key = trim(s);
		o = opt_find(key);
		if (!o || o->type == OPT_FLAG) {
			fclose(f);
			return err_set(err, 0, "config", "%s:%d: unknown setting \"%s\"", path,
				       lineno, key);
		}
		if (opt_set(cfg, o, trim(eq + 1), err)) {
			fclose(f);
			err_prefix(err, "%s:%d", path, lineno);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

void config_usage(const char *prog)
{
	printf("usage: %s [--config FILE] [--KEY VALUE ...]\n\n", prog);
	printf("Settings (also accepted as `KEY = VALUE` lines in the config file):\n");
	for (size_t i = 0; i < NOPTS; i++)
		printf("  --%-14s %s%s%s%s\n", options[i].name, options[i].help,
		       *options[i].def && options[i].type != OPT_FLAG ? " [" : "",
		       options[i].type != OPT_FLAG ? options[i].def : "",
		       *options[i].def && options[i].type != OPT_FLAG ? "]" : "");
	printf("\nEnvironment, first start only: BUREAU_ADMIN_EMAIL (admin@localhost), "
	       "BUREAU_ADMIN_PASSWORD (else one is generated and printed once).\n");
}

static void defaults_derive(struct config *cfg)
{
	if (!*cfg->state_dir) {
		const char *home = getenv("HOME");
		if (geteuid() == 0 || !home)
			snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/bureau");
		else
			snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s/.local/state/bureau",
				 home);
	}
	if (!*cfg->image_dir)
		snprintf(cfg->image_dir, sizeof(cfg->image_dir), "%s/images", cfg->state_dir);
	if (!*cfg->store)
		snprintf(cfg->store, sizeof(cfg->store), "sqlite:%s/bureau.db", cfg->state_dir);
}

int config_load(struct config *cfg, int argc, char **argv, struct err *err)
{
	const char *file = NULL;
	char path[1100];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTS; i++)
		opt_set(cfg, &options[i], options[i].def, err);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			config_usage(argv[0]);
			return 1;
		}
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			file = argv[i + 1];
		if (!strcmp(argv[i], "--state-dir") && i + 1 < argc &&
		    opt_set(cfg, opt_find("state-dir"), argv[i + 1], err))
			return -1;
	}
	if (file && config_file(cfg, file, 1, err))
		return -1;
	if (!file) {
		struct config tmp = *cfg;
		defaults_derive(&tmp);
		snprintf(path, sizeof(path), "%s/bureau.conf", tmp.state_dir);
		if (config_file(cfg, path, 0, err))
			return -1;
	}
	for (int i = 1; i < argc; i++) {
		const struct opt *o;
		if (strncmp(argv[i], "--", 2))
			return err_set(err, 0, "usage", "unexpected argument \"%s\"", argv[i]);
		if (!strcmp(argv[i], "--config")) {
			i++;
			continue;
		}
		o = opt_find(argv[i] + 2);
		if (!o)
			return err_set(err, 0, "usage", "unknown option %s (see --help)", argv[i]);
		if (o->type == OPT_FLAG) {
			*(int *)((char *)cfg + o->offset) = 1;
			continue;
		}
		if (i + 1 >= argc)
			return err_set(err, 0, "usage", "%s needs a value", argv[i]);
		if (opt_set(cfg, o, argv[++i], err))
			return -1;
	}
	if (strcmp(cfg->accel, "auto") && strcmp(cfg->accel, "kvm") && strcmp(cfg->accel, "tcg"))
		return err_set(err, 0, "config", "accel must be auto, kvm or tcg");
	if ((strcmp(cfg->templates, "on") && strcmp(cfg->templates, "off")) ||
	    (strcmp(cfg->free_page_reporting, "on") && strcmp(cfg->free_page_reporting, "off")))
		return err_set(err, 0, "config", "templates and free-page-reporting are on or off");
	if (strcmp(cfg->hibernate_compress, "none") && strcmp(cfg->hibernate_compress, "zstd"))
		return err_set(err, 0, "config", "hibernate-compress must be none or zstd");
	if (strcmp(cfg->image_gc, "auto") && strcmp(cfg->image_gc, "on") &&
	    strcmp(cfg->image_gc, "off"))
		return err_set(err, 0, "config", "image-gc must be auto, on or off");
	defaults_derive(cfg);
	return 0;
}
