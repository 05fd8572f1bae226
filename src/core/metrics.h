/* Desktop metrics: what each guest's agent samples every few seconds
 * ({"type":"metrics",…} on the control stream) plus bureaud's own view of
 * the desktop's QEMU process, kept as a bounded time series per desktop,
 * shown on the desktop's JSON, served by GET /api/desktops/{id}/metrics and
 * exposed fleet-wide as Prometheus text on GET /metrics.
 *
 * The series live in memory only (a restart of bureaud starts them
 * afresh). Samples are recorded on the loop thread and read by API workers,
 * so the registry takes a lock; the series functions below are pure. */
#ifndef BUREAU_METRICS_H
#define BUREAU_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define METRICS_SERIES_LEN 720 /* an hour at the agent's default 5 s */
#define METRICS_LOAD_MAX 1e6   /* anything above is not a load average */

struct app;
struct desktop;
struct vm;

struct metrics_sample {
	int64_t at;	   /* when bureaud received it, ms since the epoch */
	double cpu_pct;	   /* guest CPU busy, percent of all its vCPUs */
	int64_t mem_used;  /* bytes (total - available) */
	int64_t mem_total; /* bytes */
	int64_t disk_used; /* bytes of the guest's data filesystem */
	int64_t disk_total;
	char disk_path[16]; /* "/" or "/data" */
	int64_t net_rx;	    /* bytes since boot, all interfaces but lo */
	int64_t net_tx;
	double load[3]; /* 1, 5, 15 minutes */
	int procs;
	int host_ok;	     /* the host fields below were read */
	double host_cpu_pct; /* QEMU process, percent of one host CPU */
	int64_t host_rss;    /* QEMU process resident memory, bytes */
};

/* A ring of the newest METRICS_SERIES_LEN samples. */
struct metrics_series {
	struct metrics_sample s[METRICS_SERIES_LEN];
	size_t head; /* where the next sample goes */
	size_t count;
};

void metrics_series_push(struct metrics_series *ser, const struct metrics_sample *s);
/* The newest sample, or NULL when empty. */
const struct metrics_sample *metrics_series_latest(const struct metrics_series *ser);
/* Copies the samples with at > since into out (at most max), oldest
 * first; returns how many. */
size_t metrics_series_since(const struct metrics_series *ser, int64_t since,
			    struct metrics_sample *out, size_t max);

/* Reads the agent's message; -1 with err when a field is missing, of the
 * wrong type or out of range (negative sizes, used > total, CPU > 100). */
int metrics_sample_from_agent(json_t *msg, struct metrics_sample *s, struct err *err);
/* The API's JSON of one sample. */
json_t *metrics_sample_json(const struct metrics_sample *s);
/* Percent of memory and disk in use (0 when the total is unknown). */
double metrics_mem_pct(const struct metrics_sample *s);
double metrics_disk_pct(const struct metrics_sample *s);

/* Prometheus text exposition (format 0.0.4) of the fleet. */
struct metrics_prom_desktop {
	const char *id, *workspace, *tier, *name;
	const struct metrics_sample *s; /* NULL: no sample (not running) */
};
struct metrics_prom_state {
	const char *state;
	int64_t count;
};
void metrics_prom_format(struct buf *out, const struct metrics_prom_state *states, size_t nstates,
			 const struct metrics_prom_desktop *ds, size_t n);

/* The registry (any thread). */
/* Records a sample of a desktop (the loop). */
void metrics_record(const char *desktop_id, const struct metrics_sample *s);
/* Copies the newest sample; -1 when the desktop has none. */
int metrics_latest(const char *desktop_id, struct metrics_sample *out);
/* The newest sample as JSON, or JSON null. */
json_t *metrics_latest_json(const char *desktop_id);
/* {"desktopId","intervalMs","samples":[…]} of the samples after since. */
json_t *metrics_series_json(const char *desktop_id, int64_t since);
/* Drops a destroyed desktop's series. */
void metrics_forget(const char *desktop_id);

/* bureaud's view of a process from /proc: CPU ticks and resident bytes.
 * Returns -1 when the process is gone. */
int metrics_proc_read(int pid, int64_t *ticks, int64_t *rss);

/* The reconciler's hook for agent messages other than readiness: metrics
 * go to the series and the alert rules, services' status to
 * core/services.c, errors to the alerts. d and msg are borrowed. */
void metrics_agent_msg(struct app *app, const struct desktop *d, struct vm *vm, json_t *msg);

#endif
