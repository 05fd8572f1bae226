/* Alerts: rules and their validation, episodes without flapping, the
 * refused-request window, and the webhook signature. */
#include "core/alerts.h"
#include "tap.h"

#include <string.h>

static json_t *parse(const char *text)
{
	return json_loads(text, 0, NULL);
}

static int apply(struct alert_rules *r, const char *text)
{
	struct err err = ERR_INIT;
	json_t *j = parse(text);
	int rc = alert_rules_apply(r, j, &err);

	json_decref(j);
	return rc;
}

static void test_rules(void)
{
	struct alert_rules r, before;
	json_t *j;

	alert_rules_default(&r);
	ok(r.r[ALERT_CPU].threshold == 90 && r.r[ALERT_CPU].seconds == 300 &&
	       r.r[ALERT_MEMORY].threshold == 95 && r.r[ALERT_DISK].threshold == 90 &&
	       r.r[ALERT_REFUSED_BURST].threshold == 20 && r.r[ALERT_REFUSED_BURST].seconds == 60 &&
	       r.r[ALERT_DESKTOP_ERROR].enabled,
	   "defaults: CPU 90 %% for 5 min, memory 95 %%, disk 90 %%, 20 refusals a minute");
	ok(apply(&r, "{\"cpu\":{\"thresholdPercent\":50,\"forSeconds\":10}}") == 0 &&
	       r.r[ALERT_CPU].threshold == 50 && r.r[ALERT_CPU].seconds == 10 &&
	       r.r[ALERT_MEMORY].threshold == 95,
	   "a partial update changes what it names only");
	before = r;
	ok(apply(&r, "{\"cpu\":{\"thresholdPercent\":-5}}") == -1, "negative thresholds refused");
	ok(apply(&r, "{\"cpu\":{\"thresholdPercent\":150}}") == -1, "thresholds over 100 refused");
	ok(apply(&r, "{\"cpu\":{\"forSeconds\":-1}}") == -1, "negative durations refused");
	ok(apply(&r, "{\"cpu\":{\"bogus\":1}}") == -1, "unknown fields refused");
	ok(apply(&r, "{\"nope\":{}}") == -1, "unknown rules refused");
	ok(apply(&r, "{\"cpu\":{\"enabled\":\"yes\"}}") == -1, "enabled must be a boolean");
	ok(apply(&r, "{\"refusedBurst\":{\"count\":2.5}}") == -1, "a count must be whole");
	ok(apply(&r, "{\"memory\":{\"thresholdPercent\":50},\"cpu\":{\"x\":1}}") == -1 &&
	       !memcmp(&r, &before, sizeof(r)),
	   "a refused update changes nothing, not even its valid parts");
	j = alert_rules_json(&r);
	ok(json_integer_value(json_object_get(json_object_get(j, "cpu"), "forSeconds")) == 10 &&
	       json_is_true(json_object_get(json_object_get(j, "agentError"), "enabled")),
	   "the JSON shows every rule");
	alert_rules_default(&before);
	ok(alert_rules_apply(&before, j, NULL) == 0 && !memcmp(&r, &before, sizeof(r)),
	   "the JSON reads back into the same rules");
	json_decref(j);
}

static void test_track(void)
{
	struct alert_track t = {0};
	int raises = 0, resolves = 0;
	int64_t now = 1000;

	/* over for 10 s is needed; the condition holds for 9 s, then drops */
	for (int i = 0; i < 10; i++, now += 1000)
		raises += alert_track_update(&t, i < 9, 0, now, 10000, 10000) == ALERT_STEP_RAISE;
	ok(raises == 0, "a condition shorter than the rule's duration does not raise");
	for (int i = 0; i <= 10; i++, now += 1000)
		raises += alert_track_update(&t, 1, 0, now, 10000, 10000) == ALERT_STEP_RAISE;
	ok(raises == 1 && t.raised, "held for the duration, it raises");
	for (int i = 0; i < 100; i++, now += 1000)
		raises += alert_track_update(&t, 1, 0, now, 10000, 10000) == ALERT_STEP_RAISE;
	ok(raises == 1, "a condition that lasts raises once");
	/* flapping around the threshold: over, in between, over, ... */
	for (int i = 0; i < 100; i++, now += 1000)
		raises += alert_track_update(&t, i % 2, 0, now, 10000, 10000) == ALERT_STEP_RAISE;
	ok(raises == 1 && t.raised,
	   "flapping inside the hysteresis band neither raises nor resolves");
	/* clear briefly, then over again: still the same episode */
	for (int i = 0; i < 5; i++, now += 1000)
		resolves += alert_track_update(&t, 0, 1, now, 10000, 10000) == ALERT_STEP_RESOLVE;
	raises += alert_track_update(&t, 1, 0, now, 10000, 10000) == ALERT_STEP_RAISE;
	ok(resolves == 0 && raises == 1, "a short clear spell does not end the episode");
	for (int i = 0; i <= 10; i++, now += 1000)
		resolves += alert_track_update(&t, 0, 1, now, 10000, 10000) == ALERT_STEP_RESOLVE;
	ok(resolves == 1 && !t.raised, "clear for the duration, it resolves once");
	for (int i = 0; i <= 10; i++, now += 1000)
		raises += alert_track_update(&t, 1, 0, now, 10000, 10000) == ALERT_STEP_RAISE;
	ok(raises == 2, "after resolving, a new episode raises again");
	memset(&t, 0, sizeof(t));
	ok(alert_track_update(&t, 1, 0, now, 0, 0) == ALERT_STEP_RAISE,
	   "a rule without duration raises on the first observation");
	ok(alert_clear_level(90) == 85 && alert_clear_level(6) == 3,
	   "the clear level sits below the threshold");
}

static void test_burst(void)
{
	static struct alert_burst b;
	int64_t t0 = 100000;

	for (int i = 0; i < 20; i++)
		alert_burst_add(&b, t0 + i * 100);
	ok(alert_burst_count(&b, t0 + 2000, 60000) == 20, "20 events inside the window count");
	ok(alert_burst_count(&b, t0 + 60000 + 950, 60000) == 10,
	   "events older than the window drop out");
	for (int i = 0; i < ALERT_BURST_MAX + 5; i++)
		alert_burst_add(&b, t0 + 5000);
	ok(alert_burst_count(&b, t0 + 5000, 60000) == ALERT_BURST_MAX,
	   "the window remembers at most %d events", ALERT_BURST_MAX);
}

static void test_signature(void)
{
	char sig[ALERT_SIG_LEN];
	const char *data = "what do ya want for nothing?";

	/* RFC 4231, test case 2 */
	alert_signature("Jefe", data, strlen(data), sig);
	ok(!strcmp(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
	   "HMAC-SHA256 matches RFC 4231 test case 2");
	alert_signature("Jefe", data, strlen(data) - 1, sig);
	ok(strcmp(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
	   "a changed body changes the signature");
}

int main(void)
{
	test_rules();
	test_track();
	test_burst();
	test_signature();
	return tap_done();
}
