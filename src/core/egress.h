/* The egress proxy: the only way out of a desktop. Each desktop gets an
 * HTTP CONNECT proxy on a unix socket in its folder; QEMU's user-mode
 * network forwards the guest's proxy address there (guestfwd), so the
 * proxy knows which desktop asks without trusting anything the guest says.
 * Every CONNECT is decided by the policy callback and reported to the log
 * callback, allowed or refused; only CONNECT is spoken (HTTPS, and plain
 * HTTP tunnelled), so the proxy never sees or keeps what passes through. */
#ifndef BUREAU_EGRESS_H
#define BUREAU_EGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

#define EGRESS_MAX_HEAD 8192              /* the CONNECT request head: 431 beyond */
#define EGRESS_HEAD_TIMEOUT_MS 10000      /* to send the head: then closed */
#define EGRESS_HIGH_WATER (256 * 1024)    /* per direction: stop reading the other side */
#define EGRESS_LOW_WATER (64 * 1024)      /* resume below this */
#define EGRESS_MAX_TUNNELS 64             /* per desktop */

struct egress;

/* Whether host:port may be reached; fills why (for the log) either way. */
typedef int (*egress_allow_fn)(const char *host, int port, char *why, size_t n, void *arg);
/* One line per tunnel: when refused (bytes 0), and when an allowed tunnel
 * ends, with the bytes that went up (guest → out) and down. */
typedef void (*egress_log_fn)(const char *host, int port, int allowed, const char *why,
			      uint64_t up, uint64_t down, void *arg);

/* Listens on the unix socket path (replacing a stale one). */
struct egress *egress_listen(uv_loop_t *loop, const char *path, egress_allow_fn allow,
			     egress_log_fn log, void *arg, struct err *err);
/* Stops listening and ends every tunnel; frees itself once closed. */
void egress_close(struct egress *e);
int egress_tunnels(const struct egress *e);

/* Parses "CONNECT host:port HTTP/1.x" (the first line of head); host may be
 * a name, an IPv4 address or [IPv6]. Returns 0, or -1 with err (400). */
int egress_parse_connect(const char *head, char *host, size_t n, int *port, struct err *err);
/* Whether host:port matches an allowlist entry: "api.example.com" (port
 * 443), "*.example.com" (any subdomain, port 443), "host:port" (that port),
 * "*" never. */
int egress_match(const char *pattern, const char *host, int port);

#endif
