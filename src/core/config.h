/* bureaud's configuration: defaults that work out of the box, a file of
 * `key = value` lines, then command-line flags `--key value`, each later
 * source overriding the earlier. One table (config.c) drives parsing,
 * defaults and --help. */
#ifndef BUREAU_CONFIG_H
#define BUREAU_CONFIG_H

#include "common/err.h"

struct config {
	char listen[128];
	char state_dir[1024];
	char image_dir[1100];
	char store[1100];
	char accel[8];
	char log_level[8];
	char currency[8];
	double price_free; /* per running hour */
	double price_pro;
	double price_max;
	int plan_limit;      /* desktops per new workspace */
	int stop_timeout_s;  /* graceful powerdown wait */
	int boot_timeout_s;  /* create/start → ready, else error */
	int session_ttl_h;
	int retention_days; /* audit, events and egress log kept; 0: forever */
	char metrics_token[128]; /* bearer token for GET /metrics; "": admins' keys only */
	char templates[8];	    /* "on" or "off" */
	char template_images[64];   /* built at startup: "tiny,desktop" */
	char hibernate_compress[8]; /* "none" or "zstd" */
	char free_page_reporting[8]; /* "on" or "off" */
	char image_gc[8];	     /* the hourly image sweep: "auto", "on" or "off" */
	int print_routes;
};

/* Fills cfg from defaults, the config file (--config FILE, or
 * STATE/bureau.conf when present) and argv. Returns -1 with err on a bad
 * flag, file or value; 1 when --help was printed. */
int config_load(struct config *cfg, int argc, char **argv, struct err *err);
void config_usage(const char *prog);

#endif
