/* Desktop metrics: the series, the registry, the agent's messages and the
 * Prometheus text. See metrics.h. */
#include "core/metrics.h"
#include "core/alerts.h"
#include "core/app.h"
#include "core/services.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "store/store.h"
#include "vm/driver.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define METRICS_INTERVAL_MS 5000 /* the agent's default, for clients */
#define METRICS_PROC_MAX 4096	 /* bytes read of /proc/<pid>/stat */

/* The series */

void metrics_series_push(struct metrics_series *ser, const struct metrics_sample *s)
{
	ser->s[ser->head] = *s;
	ser->head = (ser->head + 1) % METRICS_SERIES_LEN;
	if (ser->count < METRICS_SERIES_LEN)
		ser->count++;
}

const struct metrics_sample *metrics_series_latest(const struct metrics_series *ser)
{
	if (!ser->count)
		return NULL;
	return &ser->s[(ser->head + METRICS_SERIES_LEN - 1) % METRICS_SERIES_LEN];
}

size_t metrics_series_since(const struct metrics_series *ser, int64_t since,
			    struct metrics_sample *out, size_t max)
{
	size_t first = (ser->head + METRICS_SERIES_LEN - ser->count) % METRICS_SERIES_LEN, n = 0;

	for (size_t i = 0; i < ser->count && n < max; i++) {
		const struct metrics_sample *s = &ser->s[(first + i) % METRICS_SERIES_LEN];

		if (s->at > since)
			out[n++] = *s;
	}
	return n;
}

/* The agent's message */

/* A non-negative integer field of obj. */
static int get_size(json_t *obj, const char *key, int64_t *out, struct err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return err_set(err, 400, "invalid_metrics", "%s must be a non-negative integer",
			       key);
	*out = json_integer_value(v);
	return 0;
}

/* {"usedBytes":…, "totalBytes":…} with used <= total. */
static int get_usage(json_t *msg, const char *key, int64_t *used, int64_t *total, struct err *err)
{
	json_t *o = json_object_get(msg, key);

	if (!json_is_object(o))
		return err_set(err, 400, "invalid_metrics", "%s must be an object", key);
	if (get_size(o, "usedBytes", used, err) || get_size(o, "totalBytes", total, err))
		return -1;
	if (*used > *total)
		return err_set(err, 400, "invalid_metrics", "%s: used exceeds total", key);
	return 0;
}

static int get_load(json_t *msg, double load[3], struct err *err)
{
	json_t *a = json_object_get(msg, "load");

	if (!json_is_array(a) || json_array_size(a) != 3)
		return err_set(err, 400, "invalid_metrics", "load must be 3 numbers");
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_number(v) || json_number_value(v) < 0 ||
		    json_number_value(v) > METRICS_LOAD_MAX)
			return err_set(err, 400, "invalid_metrics", "load must be 3 numbers");
		load[i] = json_number_value(v);
	}
	return 0;
}

int metrics_sample_from_agent(json_t *msg, struct metrics_sample *s, struct err *err)
{
	json_t *cpu = json_object_get(msg, "cpuPercent"), *disk = json_object_get(msg, "disk");
	json_t *net = json_object_get(msg, "network"), *path;
	int64_t procs;

	memset(s, 0, sizeof(*s));
	if (!json_is_number(cpu) || json_number_value(cpu) < 0 || json_number_value(cpu) > 100)
		return err_set(err, 400, "invalid_metrics", "cpuPercent must be 0..100");
	s->cpu_pct = json_number_value(cpu);
	if (get_usage(msg, "memory", &s->mem_used, &s->mem_total, err) ||
	    get_usage(msg, "disk", &s->disk_used, &s->disk_total, err))
		return -1;
	path = json_object_get(disk, "path");
	if (!json_is_string(path) || json_string_length(path) >= sizeof(s->disk_path))
		return err_set(err, 400, "invalid_metrics", "disk.path must be a short string");
	snprintf(s->disk_path, sizeof(s->disk_path), "%s", json_string_value(path));
	if (!json_is_object(net))
		return err_set(err, 400, "invalid_metrics", "network must be an object");
	if (get_size(net, "rxBytes", &s->net_rx, err) ||
	    get_size(net, "txBytes", &s->net_tx, err) || get_load(msg, s->load, err) ||
	    get_size(msg, "processes", &procs, err))
		return -1;
	s->procs = procs > 1000000000 ? 1000000000 : (int)procs;
	return 0;
}

static double pct(int64_t used, int64_t total)
{
	return total > 0 ? 100.0 * (double)used / (double)total : 0.0;
}

double metrics_mem_pct(const struct metrics_sample *s)
{
	return pct(s->mem_used, s->mem_total);
}

double metrics_disk_pct(const struct metrics_sample *s)
{
	return pct(s->disk_used, s->disk_total);
}

/* Rounds to two decimals: the JSON stays readable. */
static json_t *num(double v)
{
	return json_real(round(v * 100.0) / 100.0);
}

json_t *metrics_sample_json(const struct metrics_sample *s)
{
	char at[32];

	time_iso(s->at, at);
	return json_pack(
	    "{s:s, s:o, s:{s:I, s:I, s:o}, s:{s:s, s:I, s:I, s:o}, s:{s:I, s:I}, s:[o, o, o], "
	    "s:i, s:o}",
	    "at", at, "cpuPercent", num(s->cpu_pct), "memory", "usedBytes", (json_int_t)s->mem_used,
	    "totalBytes", (json_int_t)s->mem_total, "percent", num(metrics_mem_pct(s)), "disk",
	    "path", s->disk_path, "usedBytes", (json_int_t)s->disk_used, "totalBytes",
	    (json_int_t)s->disk_total, "percent", num(metrics_disk_pct(s)), "network", "rxBytes",
	    (json_int_t)s->net_rx, "txBytes", (json_int_t)s->net_tx, "load", num(s->load[0]),
	    num(s->load[1]), num(s->load[2]), "processes", s->procs, "host",
	    s->host_ok ? json_pack("{s:o, s:I}", "cpuPercent", num(s->host_cpu_pct), "rssBytes",
				   (json_int_t)s->host_rss)
		       : json_null());
}

/* Prometheus text */

/* A label value: backslash, quote and newline escaped, as the format says. */
static void prom_label(struct buf *out, const char *name, const char *v, int first)
{
	buf_printf(out, "%s%s=\"", first ? "" : ",", name);
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_printf(out, "\\%c", *v);
		else if (*v == '\n')
			buf_puts(out, "\\n");
		else
			buf_append(out, v, 1);
	}
	buf_puts(out, "\"");
}

/* One per-desktop family: what it is called and how to read it. */
struct prom_family {
	const char *name;
	const char *type;
	const char *help;
	double (*get)(const struct metrics_sample *s);
	int host; /* only when the host view was read */
};

static double f_cpu(const struct metrics_sample *s)
{
	return s->cpu_pct;
}
static double f_mem_used(const struct metrics_sample *s)
{
	return (double)s->mem_used;
}
static double f_mem_total(const struct metrics_sample *s)
{
	return (double)s->mem_total;
}
static double f_disk_used(const struct metrics_sample *s)
{
	return (double)s->disk_used;
}
static double f_disk_total(const struct metrics_sample *s)
{
	return (double)s->disk_total;
}
static double f_rx(const struct metrics_sample *s)
{
	return (double)s->net_rx;
}
static double f_tx(const struct metrics_sample *s)
{
	return (double)s->net_tx;
}
static double f_load1(const struct metrics_sample *s)
{
	return s->load[0];
}
static double f_load5(const struct metrics_sample *s)
{
	return s->load[1];
}
static double f_load15(const struct metrics_sample *s)
{
	return s->load[2];
}
static double f_procs(const struct metrics_sample *s)
{
	return s->procs;
}
static double f_host_cpu(const struct metrics_sample *s)
{
	return s->host_cpu_pct;
}
static double f_host_rss(const struct metrics_sample *s)
{
	return (double)s->host_rss;
}
static double f_at(const struct metrics_sample *s)
{
	return (double)s->at / 1000.0;
}

static const struct prom_family prom_families[] = {
    {"bureau_desktop_cpu_percent", "gauge", "Guest CPU busy, percent of its vCPUs.", f_cpu, 0},
    {"bureau_desktop_memory_used_bytes", "gauge", "Guest memory in use.", f_mem_used, 0},
    {"bureau_desktop_memory_total_bytes", "gauge", "Guest memory.", f_mem_total, 0},
    {"bureau_desktop_disk_used_bytes", "gauge", "Guest data filesystem in use.", f_disk_used, 0},
    {"bureau_desktop_disk_total_bytes", "gauge", "Guest data filesystem size.", f_disk_total, 0},
    {"bureau_desktop_network_receive_bytes_total", "counter", "Bytes received by the guest.", f_rx,
     0},
    {"bureau_desktop_network_transmit_bytes_total", "counter", "Bytes sent by the guest.", f_tx, 0},
    {"bureau_desktop_load1", "gauge", "Guest load average, 1 minute.", f_load1, 0},
    {"bureau_desktop_load5", "gauge", "Guest load average, 5 minutes.", f_load5, 0},
    {"bureau_desktop_load15", "gauge", "Guest load average, 15 minutes.", f_load15, 0},
    {"bureau_desktop_processes", "gauge", "Processes in the guest.", f_procs, 0},
    {"bureau_desktop_qemu_cpu_percent", "gauge",
     "CPU of the desktop's QEMU process, percent of one host CPU.", f_host_cpu, 1},
    {"bureau_desktop_qemu_resident_bytes", "gauge", "Resident memory of the QEMU process.",
     f_host_rss, 1},
    {"bureau_desktop_metrics_timestamp_seconds", "gauge", "When the last sample arrived.", f_at, 0},
};

static void prom_family_write(struct buf *out, const struct prom_family *f,
			      const struct metrics_prom_desktop *ds, size_t n)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
	for (size_t i = 0; i < n; i++) {
		if (!ds[i].s || (f->host && !ds[i].s->host_ok))
			continue;
		buf_printf(out, "%s{", f->name);
		prom_label(out, "desktop", ds[i].id, 1);
		prom_label(out, "workspace", ds[i].workspace, 0);
		prom_label(out, "tier", ds[i].tier, 0);
		prom_label(out, "name", ds[i].name, 0);
		buf_printf(out, "} %.17g\n", f->get(ds[i].s));
	}
}

void metrics_prom_format(struct buf *out, const struct metrics_prom_state *states, size_t nstates,
			 const struct metrics_prom_desktop *ds, size_t n)
{
	buf_puts(out, "# HELP bureau_desktops Desktops by observed state.\n"
		      "# TYPE bureau_desktops gauge\n");
	for (size_t i = 0; i < nstates; i++) {
		buf_puts(out, "bureau_desktops{");
		prom_label(out, "state", states[i].state, 1);
		buf_printf(out, "} %lld\n", (long long)states[i].count);
	}
	for (size_t i = 0; i < sizeof(prom_families) / sizeof(prom_families[0]); i++)
		prom_family_write(out, &prom_families[i], ds, n);
}

/* The registry */

struct metrics_entry {
	char id[ID_MAX];
	struct metrics_series series;
	int64_t proc_ticks; /* QEMU's CPU ticks at the last sample */
	int64_t proc_at;    /* mono ms of that reading; 0: none yet */
	int proc_pid;
	struct metrics_entry *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_entry *reg_head;

/* With reg_lock held. */
static struct metrics_entry *entry_find(const char *id)
{
	for (struct metrics_entry *e = reg_head; e; e = e->next)
		if (!strcmp(e->id, id))
			return e;
	return NULL;
}

/* With reg_lock held. */
static struct metrics_entry *entry_get(const char *id)
{
	struct metrics_entry *e = entry_find(id);

	if (e)
		return e;
	e = xcalloc(1, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->next = reg_head;
	reg_head = e;
	return e;
}

void metrics_record(const char *desktop_id, const struct metrics_sample *s)
{
	pthread_mutex_lock(&reg_lock);
	metrics_series_push(&entry_get(desktop_id)->series, s);
	pthread_mutex_unlock(&reg_lock);
}

int metrics_latest(const char *desktop_id, struct metrics_sample *out)
{
	const struct metrics_sample *s = NULL;
	struct metrics_entry *e;

	pthread_mutex_lock(&reg_lock);
	e = entry_find(desktop_id);
	if (e && (s = metrics_series_latest(&e->series)))
		*out = *s;
	pthread_mutex_unlock(&reg_lock);
	return s ? 0 : -1;
}

json_t *metrics_latest_json(const char *desktop_id)
{
	struct metrics_sample s;

	if (metrics_latest(desktop_id, &s))
		return json_null();
	return metrics_sample_json(&s);
}

json_t *metrics_series_json(const char *desktop_id, int64_t since)
{
	struct metrics_sample *copy = xcalloc(METRICS_SERIES_LEN, sizeof(*copy));
	struct metrics_entry *e;
	json_t *samples = json_array();
	size_t n = 0;

	pthread_mutex_lock(&reg_lock);
	e = entry_find(desktop_id);
	if (e)
		n = metrics_series_since(&e->series, since, copy, METRICS_SERIES_LEN);
	pthread_mutex_unlock(&reg_lock);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(samples, metrics_sample_json(&copy[i]));
	free(copy);
	return json_pack("{s:s, s:i, s:i, s:o}", "desktopId", desktop_id, "intervalMs",
			 METRICS_INTERVAL_MS, "capacity", METRICS_SERIES_LEN, "samples", samples);
}

void metrics_forget(const char *desktop_id)
{
	struct metrics_entry **pp, *e = NULL;

	pthread_mutex_lock(&reg_lock);
	for (pp = &reg_head; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, desktop_id)) {
			e = *pp;
			*pp = e->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	free(e);
}

/* The host's view */

int metrics_proc_read(int pid, int64_t *ticks, int64_t *rss)
{
	char path[64], text[METRICS_PROC_MAX], *p;
	unsigned long long utime, stime;
	long long pages;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (!(f = fopen(path, "re")))
		return -1;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	/* The command name may hold spaces and parentheses: fields are
	 * counted from the last ')'. utime and stime are fields 14 and 15. */
	if (!(p = strrchr(text, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
		   &stime) != 2)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	if (!(f = fopen(path, "re")))
		return -1;
	n = fscanf(f, "%*d %lld", &pages);
	fclose(f);
	if (n != 1)
		return -1;
	*ticks = (int64_t)(utime + stime);
	*rss = pages * sysconf(_SC_PAGESIZE);
	return 0;
}

/* Adds QEMU's CPU (since the previous sample) and memory to s. */
static void host_view(const char *desktop_id, int pid, struct metrics_sample *s)
{
	int64_t ticks, rss, now = mono_ms();
	struct metrics_entry *e;
	long hz = sysconf(_SC_CLK_TCK);

	if (pid <= 0 || metrics_proc_read(pid, &ticks, &rss))
		return;
	pthread_mutex_lock(&reg_lock);
	e = entry_get(desktop_id);
	if (e->proc_at && e->proc_pid == pid && now > e->proc_at && ticks >= e->proc_ticks) {
		s->host_ok = 1;
		s->host_cpu_pct = 100.0 * (double)(ticks - e->proc_ticks) / (double)hz /
				  ((double)(now - e->proc_at) / 1000.0);
		s->host_rss = rss;
	}
	e->proc_ticks = ticks;
	e->proc_at = now;
	e->proc_pid = pid;
	pthread_mutex_unlock(&reg_lock);
}

/* The hook */

static void on_metrics(struct app *app, const struct desktop *d, struct vm *vm, json_t *msg)
{
	struct metrics_sample s;
	struct err err = ERR_INIT;

	if (metrics_sample_from_agent(msg, &s, &err)) {
		log_warnx("desktop=%s malformed metrics from the agent: %s", d->id, err.msg);
		return;
	}
	s.at = now_ms();
	host_view(d->id, vm ? vm_pid(vm) : 0, &s);
	metrics_record(d->id, &s);
	alerts_on_sample(app, d, &s);
}

void metrics_agent_msg(struct app *app, const struct desktop *d, struct vm *vm, json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (!type)
		return;
	if (!strcmp(type, "metrics"))
		on_metrics(app, d, vm, msg);
	else if (!strcmp(type, "services.status"))
		services_on_status(app, d, msg);
	else if (!strcmp(type, "error"))
		alerts_on_agent_error(app, d, json_string_value(json_object_get(msg, "message")));
}
