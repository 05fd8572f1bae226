/* A minimal TAP producer for the unit tests: ok(cond, name, ...). */
#ifndef BUREAU_TAP_H
#define BUREAU_TAP_H

void tap_plan(int n);
/* Records one test; returns cond so callers can bail out. */
int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Prints the plan if none was given and returns the exit status. */
int tap_done(void);

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#endif
