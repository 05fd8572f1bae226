/* pilot_run.c: bureau-agent's side of the pilot. It starts bureau-pilot
 * (found beside bureau-agent), restarts it when it ends (with a pause that
 * grows while it keeps failing), forwards the host's chat.send,
 * chat.interrupt and approval.decision to it and relays its lines to the
 * host. See pilot.h for why the pilot is its own program. */
#ifndef BUREAU_AGENT_PILOT_RUN_H
#define BUREAU_AGENT_PILOT_RUN_H

#include <jansson.h>
#include <stdint.h>

#include "agent/agent.h"

#define PILOT_RUN_OUT_MAX (8 * 1024 * 1024) /* queued for the pilot: then refused */
#define PILOT_RUN_LINE_MAX (4 * 1024 * 1024) /* a line from the pilot */
#define PILOT_RUN_RESTART_MS 1000
#define PILOT_RUN_RESTART_MAX_MS 60000

/* The host's messages for the pilot (message table of main.c). */
void pilot_run_request(json_t *msg, uint64_t gen);
/* Starts the pilot when due, adds its pipe to the poll set. */
void pilot_run_poll(struct agent_poll *p);
/* 0 when pid was the pilot (reaped), -1 otherwise. */
int pilot_run_child_status(int pid, int status);

#endif
