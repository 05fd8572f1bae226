/* config.c: the guest's identity and first-boot configuration, pushed by
 * bureaud on the control stream.
 *
 *   {"type":"personalize","id":N, "hostname"?, "machineId"?, "seed"?,
 *    "timeMs"?, "regenerateHostKeys"?}            → personalize.done
 *     what a guest restored from a memory image (warm template, snapshot,
 *     hibernation) must not share with its siblings, and its clock.
 *   {"type":"configure","id":N, "desktopId", "hostname"?, "password"?,
 *    "sshKeys"?, "timezone"?, "env"?, "provider"?}  → configure.done
 *     applied once per desktop: the record CONFIG_DIR/configured.json
 *     names the desktop it was applied for; the AI provider's key lands
 *     only in CONFIG_DIR/provider.json (0600).
 *
 * Both run in a forked child (ssh-keygen and friends may take seconds
 * under emulation) so the agent's loop never blocks. CONFIG_DIR is
 * /etc/bureau on the desktop image and /data/etc/bureau on the tiny one,
 * whose /etc lives in RAM. */
#ifndef BUREAU_AGENT_CONFIG_H
#define BUREAU_AGENT_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "agent/agent.h"

/* At start: re-applies the identity recorded on the disk where the root
 * filesystem does not keep it (tiny). */
void config_init(void);
/* The requests; msg is borrowed, its secret strings are wiped. */
void config_configure_request(json_t *msg, uint64_t gen);
void config_personalize_request(json_t *msg, uint64_t gen);
/* Adds the children's result pipes to the poll set. */
void config_poll(struct agent_poll *p);
/* The folder of the agent's own files (provider.json, configured.json). */
const char *config_dir(void);

#endif
