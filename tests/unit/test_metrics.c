/* Metrics: the ring of samples, the agent's message, the Prometheus
 * text, and the host's view of a process. */
#include "core/metrics.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct metrics_sample sample_at(int64_t at, double cpu)
{
	struct metrics_sample s;

	memset(&s, 0, sizeof(s));
	s.at = at;
	s.cpu_pct = cpu;
	s.mem_used = 512;
	s.mem_total = 1024;
	s.disk_used = 1;
	s.disk_total = 4;
	snprintf(s.disk_path, sizeof(s.disk_path), "/data");
	return s;
}

static void test_series(void)
{
	static struct metrics_series ser;
	static struct metrics_sample out[METRICS_SERIES_LEN];
	struct metrics_sample s;
	size_t n;

	ok(metrics_series_latest(&ser) == NULL, "an empty series has no latest sample");
	for (int i = 1; i <= 3; i++) {
		s = sample_at(i * 1000, i);
		metrics_series_push(&ser, &s);
	}
	ok(metrics_series_latest(&ser)->at == 3000, "latest is the newest pushed");
	n = metrics_series_since(&ser, 1000, out, METRICS_SERIES_LEN);
	ok(n == 2 && out[0].at == 2000 && out[1].at == 3000,
	   "since returns the newer samples, oldest first");
	ok(metrics_series_since(&ser, 3000, out, METRICS_SERIES_LEN) == 0,
	   "since the newest returns nothing");
	for (int i = 4; i <= METRICS_SERIES_LEN + 10; i++) {
		s = sample_at(i * 1000, 1);
		metrics_series_push(&ser, &s);
	}
	ok(ser.count == METRICS_SERIES_LEN, "the series is bounded at %d samples",
	   METRICS_SERIES_LEN);
	n = metrics_series_since(&ser, 0, out, METRICS_SERIES_LEN);
	ok(n == METRICS_SERIES_LEN && out[0].at == 11000 &&
	       out[n - 1].at == (METRICS_SERIES_LEN + 10) * 1000,
	   "after wrapping, the oldest samples are gone and order holds");
	ok(metrics_series_since(&ser, 0, out, 5) == 5 && out[0].at == 11000, "since stops at max");
}

static json_t *agent_msg(void)
{
	return json_pack("{s:s, s:f, s:{s:I, s:I}, s:{s:s, s:I, s:I}, s:{s:I, s:I}, s:[f, f, f], "
			 "s:i}",
			 "type", "metrics", "cpuPercent", 12.5, "memory", "usedBytes",
			 (json_int_t)100, "totalBytes", (json_int_t)400, "disk", "path", "/data",
			 "usedBytes", (json_int_t)9, "totalBytes", (json_int_t)10, "network",
			 "rxBytes", (json_int_t)0, "txBytes", (json_int_t)0, "load", 0.5, 0.25, 0.0,
			 "processes", 42);
}

static void test_agent_msg(void)
{
	struct metrics_sample s;
	struct err err = ERR_INIT;
	json_t *m = agent_msg(), *j;

	ok(metrics_sample_from_agent(m, &s, &err) == 0 && s.cpu_pct == 12.5 && s.mem_used == 100 &&
	       s.disk_total == 10 && s.procs == 42 && s.load[0] == 0.5 &&
	       !strcmp(s.disk_path, "/data"),
	   "a well-formed agent message is read");
	ok(metrics_mem_pct(&s) == 25.0 && metrics_disk_pct(&s) == 90.0,
	   "memory and disk percentages");
	j = metrics_sample_json(&s);
	ok(json_real_value(json_object_get(json_object_get(j, "memory"), "percent")) == 25.0 &&
	       json_is_null(json_object_get(j, "host")),
	   "the API's JSON has percentages, and host null without a host view");
	json_decref(j);
	json_object_set_new(m, "cpuPercent", json_real(101));
	ok(metrics_sample_from_agent(m, &s, &err) == -1, "CPU over 100 %% is refused");
	json_object_set_new(m, "cpuPercent", json_real(1));
	json_object_set_new(json_object_get(m, "memory"), "usedBytes", json_integer(500));
	ok(metrics_sample_from_agent(m, &s, &err) == -1, "used memory above total is refused");
	json_object_set_new(json_object_get(m, "memory"), "usedBytes", json_integer(-1));
	ok(metrics_sample_from_agent(m, &s, &err) == -1, "negative sizes are refused");
	json_object_set_new(json_object_get(m, "memory"), "usedBytes", json_integer(1));
	json_object_set_new(m, "load", json_pack("[f, f]", 1.0, 2.0));
	ok(metrics_sample_from_agent(m, &s, &err) == -1, "a load of two numbers is refused");
	json_object_set_new(m, "load", json_pack("[f, f, f]", 1.0, 2.0, 3.0));
	json_object_del(m, "network");
	ok(metrics_sample_from_agent(m, &s, &err) == -1, "a missing network object is refused");
	json_decref(m);
}

/* Whether every line is a comment or `name{labels} number`. */
static int prom_lines_valid(const char *text)
{
	char *copy = strdup(text), *save, *line;
	int good = 1;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp, *end;

		if (line[0] == '#')
			continue;
		sp = strrchr(line, ' ');
		if (!sp || sp == line) {
			good = 0;
			break;
		}
		strtod(sp + 1, &end);
		if (*end)
			good = 0;
	}
	free(copy);
	return good;
}

static void test_prom(void)
{
	struct metrics_sample s = sample_at(1700000000000, 33.5);
	struct metrics_prom_state states[] = {{"running", 1}, {"stopped", 2}};
	struct metrics_prom_desktop ds[] = {
	    {"dsk_a", "ws_1", "free", "we\"ird\\na\nme", &s},
	    {"dsk_b", "ws_1", "pro", "off", NULL},
	};
	struct buf out = BUF_INIT;

	metrics_prom_format(&out, states, 2, ds, 2);
	ok(strstr(out.data, "bureau_desktops{state=\"running\"} 1\n") &&
	       strstr(out.data, "bureau_desktops{state=\"stopped\"} 2\n"),
	   "desktops counted by state");
	ok(strstr(out.data, "# TYPE bureau_desktop_cpu_percent gauge\n") &&
	       strstr(out.data, "bureau_desktop_cpu_percent{desktop=\"dsk_a\",workspace=\"ws_1\","
				"tier=\"free\",name=\"we\\\"ird\\\\na\\nme\"} 33.5\n"),
	   "per-desktop gauges carry escaped labels");
	ok(!strstr(out.data, "dsk_b"), "a desktop without a sample has no gauges");
	ok(!strstr(out.data, "bureau_desktop_qemu_cpu_percent{"),
	   "host gauges only with a host view");
	ok(strstr(out.data, "# TYPE bureau_desktop_network_receive_bytes_total counter\n") != NULL,
	   "byte totals are counters");
	ok(prom_lines_valid(out.data), "every line is a comment or a sample");
	buf_release(&out);
}

static void test_proc(void)
{
	int64_t ticks = -1, rss = -1;

	ok(metrics_proc_read(getpid(), &ticks, &rss) == 0 && ticks >= 0 && rss > 0,
	   "the host view reads this process's CPU ticks and resident memory");
	ok(metrics_proc_read(0x7ffffff0, &ticks, &rss) == -1, "a missing process reads as gone");
}

int main(void)
{
	test_series();
	test_agent_msg();
	test_prom();
	test_proc();
	return tap_done();
}
