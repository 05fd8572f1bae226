/* Retention: what grows with every request, event and guest connection is
 * pruned. The audit log, the stored events and the egress log lose their
 * rows older than the retention-days setting (0 keeps them forever), and
 * expired sessions go too; chat history, usage, alerts and approvals are
 * user data and stay. The prune runs on a worker shortly after startup and
 * then every hour, in short batches (store_prune). */
#ifndef BUREAU_RETENTION_H
#define BUREAU_RETENTION_H

#define RETENTION_FIRST_MS 5000		 /* after startup, once the rest is under way */
#define RETENTION_EVERY_MS (3600 * 1000) /* then hourly */

struct app;

/* Starts the timer (loop thread). */
void retention_start(struct app *app);
/* Stops the timer, and a prune in progress after its current batch, so
 * that a stopping bureaud does not wait for a long first prune. */
void retention_stop(void);

#endif
