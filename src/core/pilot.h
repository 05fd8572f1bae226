/* bureaud's side of the pilot, the AI agent inside each desktop (issue 6).
 *
 * chat.c       the conversation: user messages are stored "queued" and
 *              delivered to the guest whenever its agent is connected (on
 *              ready, and right after they are posted); what the pilot says
 *              and does comes back as messages that are stored, audited and
 *              published as events ("chat.message", "chat.delta",
 *              "chat.tool"); token usage per call; the agent's status.
 * approvals.c  every tool call of the pilot is checked here first
 *              (approval.check); a sensitive one becomes an approval that
 *              waits for a person, with a screenshot, and is denied when
 *              nobody decides within the workspace's timeout.
 * egress_desktop.c  one egress proxy per running desktop, its policy (the
 *              provider's host plus the workspace allowlist) and its log.
 *
 * The messages on the channel's control stream (JSON, stream 0):
 *   host → guest  {"type":"chat.send","id":N,"msgId","message","from"?}
 *                   → {"type":"chat.accepted","id":N,"msgId"}
 *                 {"type":"chat.interrupt"}
 *                 {"type":"approval.decision","ref","decision":
 *                   "allow"|"approve"|"deny"|"expired","approvalId"?,"note"?}
 *   guest → host  {"type":"chat.delta","replyTo","text"}
 *                 {"type":"chat.message","role","replyTo","content","data"?}
 *                 {"type":"pilot.status","status","task"?}
 *                 {"type":"pilot.usage","provider","model","inputTokens",
 *                   "outputTokens"}
 *                 {"type":"approval.check","ref","kind","action","label"?,
 *                   "input"?}
 * Everything runs on the loop thread unless said otherwise. */
#ifndef BUREAU_PILOT_H
#define BUREAU_PILOT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

struct app;
struct vm;

#define CHAT_MESSAGE_MAX (32 * 1024)	 /* a user message, bytes */
#define CHAT_CONTENT_MAX (64 * 1024)	 /* what is stored of a pilot message */
#define CHAT_PAGE_DEFAULT 50
#define CHAT_PAGE_MAX 500
#define APPROVAL_TIMEOUT_DEFAULT_S 600	 /* no decision within: denied */
#define APPROVAL_TIMEOUT_MAX_S 86400
#define APPROVAL_RULES_MAX 64
#define APPROVAL_PATTERN_MAX 256
#define EGRESS_ALLOW_MAX 64		 /* allowlist entries per workspace */

/* At start: loads the agents' statuses and the pending approvals (their
 * expiry timers). */
void pilot_init(struct app *app);
/* Stops the timers. */
void pilot_shutdown(struct app *app);

/* The agent of a desktop is (again) connected: deliver what waits. */
void chat_push(struct app *app, const char *desktop_id);
/* A message from the guest; returns 1 when it was one of the pilot's. */
int pilot_agent_msg(struct app *app, const struct desktop *d, struct vm *vm, json_t *msg);
/* Any thread: the desktop JSON's "agent" object (new reference). */
json_t *chat_agent_json(const char *desktop_id);

/* Sets the agent's status as if the pilot had reported it. */
void chat_agent_status(struct app *app, const struct desktop *d, const char *status);
/* On a worker: stores a message of the conversation and its event (ev,
 * for publishing on the loop). */
int chat_store_message(struct store *s, const struct desktop *d, struct chat_msg *m,
		       struct event *ev, struct err *err);
json_t *chat_msg_json(const struct chat_msg *m);

/* Approvals */
/* Whether an action is sensitive under the built-in defaults and the
 * workspace's rules (a JSON array of {"pattern","kind"?} or NULL); fills
 * why. kind: shell, computer, files; label: what the model said the action
 * is ("purchase", "deployment", "credential_entry"), or NULL. Pure: used by
 * the unit tests. */
int approval_policy_sensitive(const char *kind, const char *action, const char *label,
			      const json_t *rules, char *why, size_t n);
/* Validates a workspace's rules document {"rules":[...],"timeoutSeconds"?}. */
int approval_rules_check(const json_t *doc, struct err *err);
/* On the loop, after an approval was decided through the API: tell the
 * pilot and stop the timer. */
void approval_decided(struct app *app, const struct approval *a);
json_t *approval_json(const struct approval *a);

/* Egress */
/* The desktop's VM is starting or was found running: listen on
 * STATE/desktops/<id>/egress.sock. */
void egress_desktop_open(struct app *app, const struct desktop *d);
/* Its VM ended. */
void egress_desktop_close(struct app *app, const char *desktop_id);
/* bureaud stops: every proxy closes (the VMs keep running). */
void egress_desktop_close_all(struct app *app);
/* A workspace's allowlist changed: reload the policy of its desktops. */
void egress_workspace_changed(struct app *app, const char *workspace_id);
/* Validates {"allow":["host","*.domain","host:port"]}. */
int egress_allow_check(const json_t *doc, struct err *err);
/* The host a provider's API lives on ("" when unknown): base_url's host
 * when given, else the provider's default. Fills port too. */
int egress_provider_host(const char *provider, const char *base_url, char *host, size_t n,
			 int *port);

#endif
