/* bureau-agent's metrics and persistent services (issue 3). */
#ifndef BUREAU_AGENT_MONITOR_H
#define BUREAU_AGENT_MONITOR_H

#include <jansson.h>
#include <stdint.h>

#include "agent/agent.h"

#define METRICS_INTERVAL_MS 5000

/* metrics.c: samples CPU, memory, disk, network, load and processes every
 * METRICS_INTERVAL_MS and sends {"type":"metrics",…} unprompted while a
 * host is connected. */
void metrics_poll(struct agent_poll *p);

/* services.c: the "services" request (the desktop's full list of
 * persistent services): starts each one that is not running, stops the
 * ones no longer listed, restarts those that exit (with backoff), and
 * answers with services.status; changes are reported unprompted. */
void services_request(json_t *msg, uint64_t gen);
void services_poll(struct agent_poll *p);
/* A child changed state (from waitpid). Returns 0 when it was a service. */
int services_child_status(int pid, int status);

#endif
