#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char base32[] = "0123456789abcdefghjkmnpqrstvwxyz";

void id_new(char *out, size_t n, const char *prefix)
{
	unsigned char raw[20];
	size_t len;

	randombytes_buf(raw, sizeof(raw));
	len = (size_t)snprintf(out, n, "%s_", prefix);
	for (size_t i = 0; i < sizeof(raw) && len + 1 < n; i++)
		out[len++] = base32[raw[i] & 31];
	out[len] = '\0';
}

void token_new(char *out, size_t n, const char *prefix)
{
	unsigned char raw[32];
	char enc[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(enc, sizeof(enc), raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(out, n, "%s_%s", prefix, enc);
	sodium_memzero(raw, sizeof(raw));
}

void token_hash(const char *token, char out[HASH_HEX_LEN + 1])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	sodium_bin2hex(out, HASH_HEX_LEN + 1, h, sizeof(h));
}

int secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return 0;
	return sodium_memcmp(a, b, la) == 0;
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void time_iso(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int time_parse_iso(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int msec = 0, n = 0;

	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
		return -1;
	if (s[n] == 'T') {
		int m = 0;
		if (sscanf(s + n, "T%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &m) != 3)
			return -1;
		n += m;
		if (s[n] == '.') {
			m = 0;
			if (sscanf(s + n, ".%3d%n", &msec, &m) != 1)
				return -1;
			n += m;
		}
		if (s[n] == 'Z')
			n++;
	}
	if (s[n] != '\0')
		return -1;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = (int64_t)timegm(&tm) * 1000 + msec;
	return 0;
}

int name_check(const char *what, const char *name, struct err *err)
{
	size_t len = strlen(name);

	if (len == 0)
		return err_set(err, 400, "invalid_request", "%s must not be empty", what);
	if (len > NAME_MAX_LEN)
		return err_set(err, 400, "invalid_request", "%s is longer than %d characters", what,
			       NAME_MAX_LEN);
	if (name[0] == '.' || name[0] == '-')
		return err_set(err, 400, "invalid_request", "%s must not start with '.' or '-'",
			       what);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return err_set(err, 400, "invalid_request",
				       "%s may only contain letters, digits, '.', '_' and '-'", what);
	}
	return 0;
}

int mkdir_p(const char *path, struct err *err)
{
	char tmp[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return err_set(err, 500, "internal", "bad directory path");
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return err_sys(err, errno, "mkdir %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return err_sys(err, errno, "mkdir %s", tmp);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP ? rmdir(path) : unlink(path))
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

int rm_rf(const char *path)
{
	int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	if (r < 0 && errno == ENOENT)
		return 0;
	return r > 0 ? -r : r;
}
