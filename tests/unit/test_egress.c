/* The egress proxy: CONNECT parsing and allowlist matching, then real
 * tunnels through the proxy's unix socket to servers on loopback: allowed,
 * refused, malformed, oversized, a name that leads inside, early data,
 * and a flood that a slow guest must not buffer without bound. */
#include "common/util.h"
#include "core/egress.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FLOOD_BYTES (64 * 1024 * 1024)

static char sock_path[256];
static int echo_port, flood_port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int log_count, log_allowed;
static uint64_t log_up, log_down;
static char log_why[200];
static uv_async_t stop_async;
static struct egress *proxy;

static int allow(const char *host, int port, char *why, size_t n, void *arg)
{
	(void)arg;
	if (!strcmp(host, "localhost") ||
	    (!strcmp(host, "127.0.0.1") && (port == echo_port || port == flood_port))) {
		snprintf(why, n, "allowed by test");
		return 1;
	}
	snprintf(why, n, "%s:%d is not on the allowlist", host, port);
	return 0;
}

static void logfn(const char *host, int port, int allowed, const char *why, uint64_t up,
		  uint64_t down, void *arg)
{
	(void)host;
	(void)port;
	(void)arg;
	pthread_mutex_lock(&mu);
	log_count++;
	log_allowed = allowed;
	log_up = up;
	log_down = down;
	snprintf(log_why, sizeof(log_why), "%s", why);
	pthread_mutex_unlock(&mu);
}

static void on_stop(uv_async_t *a)
{
	egress_close(proxy);
	uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg)
{
	uv_loop_t *loop = arg;

	uv_run(loop, UV_RUN_DEFAULT);
	return NULL;
}

static int listen_tcp(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	listen(fd, 16);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*port = ntohs(a.sin_port);
	return fd;
}

static void *echo_server(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	char buf[4096];

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		ssize_t n;
		if (fd < 0)
			return NULL;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(fd, buf, (size_t)n) != n)
				break;
		close(fd);
	}
}

static void *flood_server(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	static char buf[65536];

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		size_t sent = 0;
		if (fd < 0)
			return NULL;
		memset(buf, 'x', sizeof(buf));
		while (sent < FLOOD_BYTES) {
			ssize_t n = write(fd, buf, sizeof(buf));
			if (n <= 0)
				break;
			sent += (size_t)n;
		}
		close(fd);
	}
}

static int proxy_connect(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct timeval tv = {10, 0};

	snprintf(a.sun_path, sizeof(a.sun_path), "%.100s", sock_path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads the proxy's answer head; returns its status code. */
static int read_status(int fd, char *rest, size_t *rest_len)
{
	char buf[4096];
	size_t len = 0;
	char *end;

	while (len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if ((end = strstr(buf, "\r\n\r\n"))) {
			if (rest) {
				*rest_len = len - (size_t)(end + 4 - buf);
				memcpy(rest, end + 4, *rest_len);
			}
			return atoi(buf + 9);
		}
	}
	return -1;
}

static int request(const char *req)
{
	int fd = proxy_connect(), status;

	if (fd < 0)
		return -1;
	if (write(fd, req, strlen(req)) < 0)
		return -1;
	status = read_status(fd, NULL, NULL);
	close(fd);
	return status;
}

static void wait_logs(int n)
{
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&mu);
		int c = log_count;
		pthread_mutex_unlock(&mu);
		if (c >= n)
			return;
		usleep(10000);
	}
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

static void test_parse(void)
{
	char host[256];
	int port;
	struct err err;

	ok(egress_parse_connect("CONNECT api.Example.com:443 HTTP/1.1\r\n\r\n", host, sizeof(host),
				&port, &err) == 0 &&
	   !strcmp(host, "api.example.com") && port == 443,
	   "CONNECT host:port parsed, host lower-cased");
	ok(egress_parse_connect("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n", host, sizeof(host), &port,
				&err) == 0 &&
	   !strcmp(host, "::1") && port == 8443,
	   "CONNECT [IPv6]:port parsed");
	ok(egress_parse_connect("CONNECT example.com HTTP/1.1\r\n\r\n", host, sizeof(host), &port,
				&err) == -1,
	   "missing port refused");
	ok(egress_parse_connect("CONNECT example.com:99999 HTTP/1.1\r\n\r\n", host, sizeof(host),
				&port, &err) == -1,
	   "port out of range refused");
	ok(egress_parse_connect("GET http://example.com/ HTTP/1.1\r\n\r\n", host, sizeof(host),
				&port, &err) == -1 &&
	   err.status == 405,
	   "plain GET refused with 405");
	ok(egress_parse_connect("CONNECT ex/ample.com:443 HTTP/1.1\r\n\r\n", host, sizeof(host),
				&port, &err) == -1,
	   "bad character in host refused");
	ok(egress_parse_connect("CONNECT a.com:443\r\n\r\n", host, sizeof(host), &port, &err) == -1,
	   "missing HTTP version refused");
}

static void test_match(void)
{
	ok(egress_match("api.anthropic.com", "api.anthropic.com", 443), "exact name, port 443");
	ok(!egress_match("api.anthropic.com", "api.anthropic.com", 80), "other port refused");
	ok(egress_match("API.openai.com", "api.openai.com", 443), "case-insensitive");
	ok(egress_match("*.example.com", "a.b.example.com", 443), "wildcard subdomain");
	ok(!egress_match("*.example.com", "example.com", 443), "wildcard needs a subdomain");
	ok(!egress_match("*.example.com", "evilexample.com", 443), "wildcard is a suffix at a dot");
	ok(egress_match("127.0.0.1:8443", "127.0.0.1", 8443), "explicit port");
	ok(!egress_match("*", "anything.com", 443), "a bare * allows nothing");
	ok(!egress_match("", "a.com", 443), "empty pattern allows nothing");
}

static void test_tunnels(void)
{
	char req[256], rest[4096], buf[65536];
	size_t rest_len = 0, got = 0;
	long before, peak = 0;
	int fd, status;

	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", echo_port);
	fd = proxy_connect();
	ok(fd >= 0 && write(fd, req, strlen(req)) > 0 && read_status(fd, NULL, NULL) == 200,
	   "allowed CONNECT answers 200");
	ok(write(fd, "hello", 5) == 5 && read(fd, buf, sizeof(buf)) == 5 && !memcmp(buf, "hello", 5),
	   "bytes go through the tunnel both ways");
	close(fd);
	wait_logs(1);
	ok(log_count == 1 && log_allowed == 1 && log_up == 5 && log_down == 5,
	   "an ended tunnel is logged with its byte counts");

	ok(request("CONNECT 10.1.2.3:443 HTTP/1.1\r\n\r\n") == 403, "not on the allowlist: 403");
	wait_logs(2);
	ok(log_count == 2 && log_allowed == 0 && strstr(log_why, "allowlist"),
	   "the refusal is logged with its reason");
	ok(request("HELLO\r\n\r\n") == 405, "not a CONNECT: 405");
	ok(request("CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n") == 400, "malformed CONNECT: 400");
	memset(buf, 'a', 9000);
	buf[9000] = '\0';
	ok(request(buf) == 431, "oversized request head: 431");
	ok(request("CONNECT localhost:9 HTTP/1.1\r\n\r\n") == 403,
	   "a name leading to an internal address: 403");

	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nearly", echo_port);
	fd = proxy_connect();
	write(fd, req, strlen(req));
	status = read_status(fd, rest, &rest_len);
	while (rest_len < 5 && read(fd, rest + rest_len, 1) == 1)
		rest_len++;
	ok(status == 200 && rest_len == 5 && !memcmp(rest, "early", 5),
	   "data sent right behind the head is forwarded");
	close(fd);

	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", flood_port);
	fd = proxy_connect();
	write(fd, req, strlen(req));
	status = read_status(fd, rest, &rest_len);
	got = rest_len;
	before = rss_kb();
	sleep(1); /* the guest does not read; the proxy must stop reading too */
	peak = rss_kb() - before;
	while (got < FLOOD_BYTES) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		got += (size_t)n;
		if (rss_kb() - before > peak)
			peak = rss_kb() - before;
	}
	close(fd);
	ok(status == 200 && got == FLOOD_BYTES, "a 64 MiB download arrives whole (%zu bytes)", got);
	ok(peak < 8 * 1024, "a slow guest does not make the proxy buffer it (peak +%ld KiB)", peak);
}

int main(void)
{
	static uv_loop_t loop;
	struct err err;
	pthread_t lt, et, ft;
	char dir[] = "/tmp/bureau-egress-XXXXXX";

	test_parse();
	test_match();
	mkdtemp(dir);
	snprintf(sock_path, sizeof(sock_path), "%s/egress.sock", dir);
	pthread_create(&et, NULL, echo_server, (void *)(intptr_t)listen_tcp(&echo_port));
	pthread_create(&ft, NULL, flood_server, (void *)(intptr_t)listen_tcp(&flood_port));
	uv_loop_init(&loop);
	proxy = egress_listen(&loop, sock_path, allow, logfn, NULL, &err);
	ok(proxy != NULL, "proxy listens on a unix socket");
	uv_async_init(&loop, &stop_async, on_stop);
	pthread_create(&lt, NULL, loop_thread, &loop);
	test_tunnels();
	uv_async_send(&stop_async);
	pthread_join(lt, NULL);
	ok(uv_loop_close(&loop) == 0, "closing the proxy closes every handle");
	unlink(sock_path);
	rmdir(dir);
	return tap_done();
}
