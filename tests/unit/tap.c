#include "tap.h"

#include <stdarg.h>
#include <stdio.h>

static int tap_count, tap_failed, tap_planned;

void tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
}

int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

int tap_done(void)
{
	if (!tap_planned)
		printf("1..%d\n", tap_count);
	return tap_failed || (tap_planned && tap_planned != tap_count) ? 1 : 0;
}
