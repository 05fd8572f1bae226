/* Metrics: one sample every METRICS_INTERVAL_MS from /proc and statvfs,
 * sent unprompted on the control stream. CPU is the busy share of all
 * CPUs since the previous sample (/proc/stat); memory is MemTotal minus
 * MemAvailable; disk is the desktop's data filesystem (/data when it is
 * mounted, as on the tiny image, else /); network sums every interface but
 * lo (0 when the guest has none); processes counts /proc/<pid>. */
#include "agent/monitor.h"
#include "common/log.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

struct cpu_times {
	unsigned long long busy, total;
};

static struct {
	int64_t next;	      /* when the next sample is due */
	struct cpu_times cpu; /* at the previous sample */
	int have_cpu;
} m;

static int cpu_read(struct cpu_times *t)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 4)
		return -1;
	t->total = 0;
	for (int i = 0; i < 8; i++)
		t->total += v[i];
	t->busy = t->total - v[3] - v[4]; /* idle and iowait */
	return 0;
}

static double cpu_percent(void)
{
	struct cpu_times now;
	double pct = 0;

	if (cpu_read(&now))
		return 0;
	if (m.have_cpu && now.total > m.cpu.total && now.busy >= m.cpu.busy)
		pct = 100.0 * (double)(now.busy - m.cpu.busy) / (double)(now.total - m.cpu.total);
	m.cpu = now;
	m.have_cpu = 1;
	return pct > 100 ? 100 : pct;
}

static void mem_read(json_int_t *used, json_int_t *total)
{
	char line[256];
	long long v, tot = 0, avail = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	*used = *total = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %lld kB", &v) == 1)
			tot = v * 1024;
		else if (sscanf(line, "MemAvailable: %lld kB", &v) == 1)
			avail = v * 1024;
	}
	fclose(f);
	*total = tot;
	*used = avail >= 0 && avail <= tot ? tot - avail : 0;
}

/* Whether path is a mount point of its own (listed in /proc/mounts). */
static int is_mounted(const char *path)
{
	char dev[256], dir[256], line[1024];
	FILE *f = fopen("/proc/mounts", "re");
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%255s %255s", dev, dir) == 2 && !strcmp(dir, path);
	fclose(f);
	return found;
}

static const char *disk_read(json_int_t *used, json_int_t *total)
{
	const char *path = is_mounted("/data") ? "/data" : "/";
	struct statvfs st;

	*used = *total = 0;
	if (statvfs(path, &st) == 0 && st.f_blocks >= st.f_bfree) {
		*total = (json_int_t)st.f_blocks * (json_int_t)st.f_frsize;
		*used = (json_int_t)(st.f_blocks - st.f_bfree) * (json_int_t)st.f_frsize;
	}
	return path;
}

static void net_read(json_int_t *rx, json_int_t *tx)
{
	char line[512], name[64];
	unsigned long long r, t;
	FILE *f = fopen("/proc/net/dev", "re");

	*rx = *tx = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		*colon = ' ';
		if (sscanf(line, "%63s %llu %*u %*u %*u %*u %*u %*u %*u %llu", name, &r, &t) != 3 ||
		    !strcmp(name, "lo"))
			continue;
		*rx += (json_int_t)r;
		*tx += (json_int_t)t;
	}
	fclose(f);
}

static int procs_count(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += isdigit((unsigned char)e->d_name[0]) != 0;
	closedir(d);
	return n;
}

static json_t *metrics_sample(void)
{
	json_int_t mu, mt, du, dt, rx, tx;
	double load[3] = {0, 0, 0};
	const char *disk;
	FILE *f;

	mem_read(&mu, &mt);
	disk = disk_read(&du, &dt);
	net_read(&rx, &tx);
	if ((f = fopen("/proc/loadavg", "re"))) {
		if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = load[1] = load[2] = 0;
		fclose(f);
	}
	return json_pack("{s:s, s:i, s:f, s:{s:I, s:I}, s:{s:s, s:I, s:I}, s:{s:I, s:I}, "
			 "s:[f, f, f], s:i}",
			 "type", "metrics", "intervalMs", METRICS_INTERVAL_MS, "cpuPercent",
			 cpu_percent(), "memory", "usedBytes", mu, "totalBytes", mt, "disk", "path",
			 disk, "usedBytes", du, "totalBytes", dt, "network", "rxBytes", rx,
			 "txBytes", tx, "load", load[0], load[1], load[2], "processes",
			 procs_count());
}

void metrics_poll(struct agent_poll *p)
{
	int64_t now = agent_now_ms();
	json_t *msg;

	if (!m.next) {
		/* The first sample needs a previous CPU reading. */
		cpu_percent();
		m.next = now + METRICS_INTERVAL_MS;
	}
	if (now >= m.next) {
		m.next = now + METRICS_INTERVAL_MS;
		msg = metrics_sample();
		if (msg)
			agent_send(agent_session(), msg);
		json_decref(msg);
	}
	agent_poll_wake(p, m.next);
}
