/* The guest's identity and first-boot configuration (see config.h). The
 * parent validates nothing but the message's shape: the child applies
 * each item, checks it on the way, and reports per item, so one bad item
 * (an unknown time zone) does not cost the others. */
#include "agent/config.h"
#include "agent/stream.h"
#include "common/buf.h"
#include "common/log.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CFG_JOBS_MAX 4
#define CFG_RESULT_MAX (32 * 1024)
#define CFG_JOB_TIMEOUT_MS 180000
#define CFG_HOSTNAME_MAX 63
#define CFG_SEED_MAX 512 /* bytes of entropy accepted per request */
#define CFG_ENV_MAX 64
#define CFG_ENV_VALUE_MAX 4096
#define CFG_SSH_KEYS_MAX 32
#define CFG_SSH_KEY_MAX 8192
#define CFG_SECRET_MAX 1024
#define CFG_AGENT_UID 1000
#define CFG_X_SOCKET "/tmp/.X11-unix/X0"

struct cfg_job {
	pid_t pid;
	int fd;
	uint64_t gen;
	json_t *id;
	char type[32]; /* the reply's type */
	struct buf out;
	int64_t deadline;
};

static struct cfg_job *jobs[CFG_JOBS_MAX];

const char *config_dir(void)
{
	return strcmp(agent_image(), "tiny") ? "/etc/bureau" : "/data/etc/bureau";
}

/* ---- small file helpers (child side) ---- */

static int mkdirs(const char *path, mode_t mode)
{
	char tmp[512], *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, mode) && errno != EEXIST ? -1 : 0;
}

/* Writes data to path through a temporary file created with `mode` from
 * the start (a secret is never readable by others, not even briefly),
 * fsynced and renamed over the old one. */
static int file_put(const char *path, const char *data, size_t len, mode_t mode, uid_t uid,
		    gid_t gid)
{
	char tmp[600];
	int fd, r = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (write(fd, data, len) == (ssize_t)len && fchmod(fd, mode) == 0 &&
	    fchown(fd, uid, gid) == 0 && fsync(fd) == 0)
		r = 0;
	close(fd);
	if (r == 0 && rename(tmp, path))
		r = -1;
	if (r)
		unlink(tmp);
	return r;
}

static char *file_get(const char *path, size_t max)
{
	FILE *f = fopen(path, "re");
	char *s;
	size_t n;

	if (!f)
		return NULL;
	s = calloc(1, max + 1);
	n = fread(s, 1, max, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Runs argv (absolute path) with env, waits; returns its exit status or -1. */
static int run(char *const argv[], char *const envp[])
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The agent user's home. */
static int agent_home(char *out, size_t n)
{
	struct agent_user u;

	if (agent_user_lookup("agent", &u))
		return -1;
	snprintf(out, n, "%s", u.home);
	return 0;
}

/* ---- items ---- */

struct report {
	json_t *items;
	json_t *errors;
};

static void report_fail(struct report *r, const char *item, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_fail(struct report *r, const char *item, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(r->errors, json_pack("{s:s, s:s}", "item", item, "message", msg));
}

static int hostname_valid(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > CFG_HOSTNAME_MAX || h[0] == '-' || h[n - 1] == '-')
		return 0;
	for (; *h; h++)
		if (!isalnum((unsigned char)*h) && *h != '-')
			return 0;
	return 1;
}

/* Keeps the running X server reachable for the agent user: its cookie is
 * filed under the old host name, so clients would be refused after the
 * rename. Local connections of these users are allowed outright. */
static void x_allow_local_users(void)
{
	char home[256], xauth[300], *env[3];
	char *argv[] = {"/usr/bin/xhost", "+si:localuser:agent", "+si:localuser:root", NULL};

	if (access(CFG_X_SOCKET, F_OK) || access(argv[0], X_OK) || agent_home(home, sizeof(home)))
		return;
	snprintf(xauth, sizeof(xauth), "XAUTHORITY=%s/.Xauthority", home);
	env[0] = "DISPLAY=:0";
	env[1] = xauth;
	env[2] = NULL;
	run(argv, env);
}

static int hosts_update(const char *h)
{
	char *old = file_get("/etc/hosts", 64 * 1024), *line, *save;
	struct buf b = BUF_INIT;
	int r;

	if (!old)
		return 0;
	for (line = strtok_r(old, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "127.0.1.1", 9))
			buf_printf(&b, "%s\n", line);
	buf_printf(&b, "127.0.1.1\t%s\n", h);
	r = file_put("/etc/hosts", b.data, b.len, 0644, 0, 0);
	buf_release(&b);
	free(old);
	return r;
}

static void apply_hostname(const char *h, struct report *r)
{
	char line[80];

	if (!hostname_valid(h)) {
		report_fail(r, "hostname", "not a valid host name");
		return;
	}
	x_allow_local_users();
	snprintf(line, sizeof(line), "%s\n", h);
	if (sethostname(h, strlen(h)) ||
	    file_put("/etc/hostname", line, strlen(line), 0644, 0, 0) || hosts_update(h)) {
		report_fail(r, "hostname", "%s", strerror(errno));
		return;
	}
	json_array_append_new(r->items, json_string("hostname"));
}

static int hex_valid(const char *s, size_t want)
{
	size_t n = strlen(s);

	if (want && n != want)
		return 0;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return 0;
	return n % 2 == 0;
}

static void apply_machine_id(const char *id, struct report *r)
{
	char line[40];

	if (!hex_valid(id, 32)) {
		report_fail(r, "machineId", "must be 32 hexadecimal digits");
		return;
	}
	/* systemd may have bind-mounted a transient id over the file. */
	umount2("/etc/machine-id", MNT_DETACH);
	snprintf(line, sizeof(line), "%s\n", id);
	if (file_put("/etc/machine-id", line, strlen(line), 0444, 0, 0)) {
		report_fail(r, "machineId", "%s", strerror(errno));
		return;
	}
	if (access("/var/lib/dbus", F_OK) == 0) {
		unlink("/var/lib/dbus/machine-id");
		file_put("/var/lib/dbus/machine-id", line, strlen(line), 0444, 0, 0);
	}
	json_array_append_new(r->items, json_string("machineId"));
}

/* Mixes the host's entropy into the kernel's pool, credited, and replaces
 * the saved seed so that the next boot does not reuse the template's. */
static void apply_seed(const char *hex, struct report *r)
{
	size_t n = strlen(hex) / 2;
	struct {
		struct rand_pool_info info;
		unsigned char buf[CFG_SEED_MAX];
	} e;
	unsigned char fresh[512];
	int fd;

	if (!hex_valid(hex, 0) || n == 0 || n > CFG_SEED_MAX) {
		report_fail(r, "seed", "must be 2..%d hexadecimal digits", CFG_SEED_MAX * 2);
		return;
	}
	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &e.buf[i]);
	e.info.entropy_count = (int)n * 8;
	e.info.buf_size = (int)n;
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, &e.info)) {
		report_fail(r, "seed", "RNDADDENTROPY: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	explicit_bzero(&e, sizeof(e));
	if (access("/var/lib/systemd/random-seed", F_OK) == 0 &&
	    getrandom(fresh, sizeof(fresh), 0) == (ssize_t)sizeof(fresh))
		file_put("/var/lib/systemd/random-seed", (char *)fresh, sizeof(fresh), 0600, 0, 0);
	explicit_bzero(fresh, sizeof(fresh));
	json_array_append_new(r->items, json_string("seed"));
}

static void apply_time(json_int_t ms, struct report *r)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};

	if (ms <= 0 || clock_settime(CLOCK_REALTIME, &ts)) {
		report_fail(r, "timeMs", "%s", ms <= 0 ? "not a time" : strerror(errno));
		return;
	}
	json_array_append_new(r->items, json_string("timeMs"));
}

/* New SSH host keys, where the image has an SSH server's keys at all. */
static void apply_host_keys(struct report *r)
{
	char *argv[] = {"/usr/bin/ssh-keygen", "-A", NULL};
	char *env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	static const char *const kinds[] = {"rsa", "ecdsa", "ed25519", "dsa"};
	char path[128];

	if (access("/etc/ssh", F_OK))
		return;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(path, sizeof(path), "/etc/ssh/ssh_host_%s_key", kinds[i]);
		unlink(path);
		snprintf(path, sizeof(path), "/etc/ssh/ssh_host_%s_key.pub", kinds[i]);
		unlink(path);
	}
	if (access(argv[0], X_OK) == 0 && run(argv, env) != 0) {
		report_fail(r, "hostKeys", "ssh-keygen -A failed");
		return;
	}
	json_array_append_new(r->items, json_string("hostKeys"));
}

/* Replaces the agent user's hash in /etc/shadow (SHA-512 crypt). */
static int shadow_set(const char *hash)
{
	char *old = file_get("/etc/shadow", 256 * 1024), *line, *save, *rest;
	struct buf b = BUF_INIT;
	struct stat st;
	int found = 0, r = -1;

	if (!old || stat("/etc/shadow", &st))
		goto out;
	for (line = strtok_r(old, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "agent:", 6) && (rest = strchr(line + 6, ':'))) {
			buf_printf(&b, "agent:%s%s\n", hash, rest);
			found = 1;
		} else {
			buf_printf(&b, "%s\n", line);
		}
	}
	if (found)
		r = file_put("/etc/shadow", b.data, b.len, st.st_mode & 07777, st.st_uid,
			     st.st_gid);
out:
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_release(&b);
	free(old);
	return r;
}

static void apply_password(const char *pw, struct report *r)
{
	static const char abc[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char rnd[16];
	char salt[32];
	struct crypt_data cd;
	const char *hash;

	if (!*pw || strlen(pw) > CFG_SECRET_MAX ||
	    getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		report_fail(r, "password", "empty, too long, or no randomness for the salt");
		return;
	}
	memcpy(salt, "$6$", 3);
	for (size_t i = 0; i < sizeof(rnd); i++)
		salt[3 + i] = abc[rnd[i] % 64];
	salt[3 + sizeof(rnd)] = '\0';
	memset(&cd, 0, sizeof(cd));
	hash = crypt_r(pw, salt, &cd);
	if (!hash || hash[0] == '*' || shadow_set(hash)) {
		report_fail(r, "password", "cannot set the agent user's password");
	} else {
		json_array_append_new(r->items, json_string("password"));
	}
	explicit_bzero(&cd, sizeof(cd));
}

static void apply_ssh_keys(json_t *keys, struct report *r)
{
	char home[256], dir[300], path[320];
	struct buf b = BUF_INIT;
	size_t i;
	json_t *k;

	if (!json_is_array(keys) || json_array_size(keys) > CFG_SSH_KEYS_MAX) {
		report_fail(r, "sshKeys", "must be an array of at most %d keys", CFG_SSH_KEYS_MAX);
		return;
	}
	json_array_foreach (keys, i, k) {
		const char *s = json_string_value(k);
		if (!s || strlen(s) > CFG_SSH_KEY_MAX || strpbrk(s, "\r\n")) {
			report_fail(r, "sshKeys", "key %zu is not one line", i);
			buf_release(&b);
			return;
		}
		buf_printf(&b, "%s\n", s);
	}
	if (agent_home(home, sizeof(home))) {
		report_fail(r, "sshKeys", "no agent user");
		buf_release(&b);
		return;
	}
	snprintf(dir, sizeof(dir), "%s/.ssh", home);
	snprintf(path, sizeof(path), "%s/authorized_keys", dir);
	if (mkdirs(dir, 0700) || chown(dir, CFG_AGENT_UID, CFG_AGENT_UID) ||
	    file_put(path, b.len ? b.data : "", b.len, 0600, CFG_AGENT_UID, CFG_AGENT_UID))
		report_fail(r, "sshKeys", "%s: %s", path, strerror(errno));
	else
		json_array_append_new(r->items, json_string("sshKeys"));
	buf_release(&b);
}

static int tz_valid(const char *tz)
{
	if (!*tz || strlen(tz) > 64 || tz[0] == '/' || strstr(tz, ".."))
		return 0;
	for (; *tz; tz++)
		if (!isalnum((unsigned char)*tz) && !strchr("/_+-", *tz))
			return 0;
	return 1;
}

static void apply_timezone(const char *tz, struct report *r)
{
	char zone[128], line[80];

	if (!tz_valid(tz)) {
		report_fail(r, "timezone", "not a time zone name");
		return;
	}
	snprintf(zone, sizeof(zone), "/usr/share/zoneinfo/%s", tz);
	if (access(zone, R_OK) && (!strcmp(tz, "UTC") || !strcmp(tz, "Etc/UTC"))) {
		/* No zone files (tiny): without /etc/localtime the C library
		 * uses UTC anyway. */
		unlink("/etc/localtime");
		snprintf(line, sizeof(line), "%s\n", tz);
		if (file_put("/etc/timezone", line, strlen(line), 0644, 0, 0) == 0)
			json_array_append_new(r->items, json_string("timezone"));
		else
			report_fail(r, "timezone", "%s", strerror(errno));
		return;
	}
	if (access(zone, R_OK)) {
		report_fail(r, "timezone", "the image has no zone %s", tz);
		return;
	}
	unlink("/etc/localtime.tmp");
	snprintf(line, sizeof(line), "%s\n", tz);
	if (symlink(zone, "/etc/localtime.tmp") || rename("/etc/localtime.tmp", "/etc/localtime") ||
	    file_put("/etc/timezone", line, strlen(line), 0644, 0, 0)) {
		report_fail(r, "timezone", "%s", strerror(errno));
		return;
	}
	json_array_append_new(r->items, json_string("timezone"));
}

static int env_name_valid(const char *k)
{
	if (!*k || strlen(k) > 128 || (!isalpha((unsigned char)*k) && *k != '_'))
		return 0;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_')
			return 0;
	return 1;
}

/* export NAME='value' lines, read by login shells. */
static void apply_env(json_t *env, struct report *r)
{
	const char *k;
	json_t *v;
	struct buf b = BUF_INIT;
	char path[300];

	if (!json_is_object(env) || json_object_size(env) > CFG_ENV_MAX) {
		report_fail(r, "env", "must be an object of at most %d strings", CFG_ENV_MAX);
		return;
	}
	buf_puts(&b, "# Written by bureau-agent from the desktop's first-boot configuration.\n");
	json_object_foreach (env, k, v) {
		const char *s = json_string_value(v);
		if (!env_name_valid(k) || !s || json_string_length(v) > CFG_ENV_VALUE_MAX ||
		    strlen(s) != json_string_length(v)) {
			report_fail(r, "env", "invalid variable %.64s", k);
			buf_release(&b);
			return;
		}
		buf_printf(&b, "export %s='", k);
		for (; *s; s++)
			*s == '\'' ? buf_puts(&b, "'\\''") : buf_printf(&b, "%c", *s);
		buf_puts(&b, "'\n");
	}
	if (strcmp(agent_image(), "tiny"))
		snprintf(path, sizeof(path), "/etc/profile.d/bureau-env.sh");
	else
		snprintf(path, sizeof(path), "%s/env.sh", config_dir());
	if (file_put(path, b.data, b.len, 0644, 0, 0))
		report_fail(r, "env", "%s: %s", path, strerror(errno));
	else
		json_array_append_new(r->items, json_string("env"));
	buf_release(&b);
}

/* The AI provider's configuration, key included: readable by root only. */
static void apply_provider(json_t *p, struct report *r)
{
	const char *name = json_string_value(json_object_get(p, "provider"));
	json_t *key = json_object_get(p, "apiKey");
	char path[300], *text;
	int rc;

	if (!json_is_object(p) || !name ||
	    (strcmp(name, "anthropic") && strcmp(name, "openai") && strcmp(name, "openrouter")) ||
	    (key && (!json_is_string(key) || json_string_length(key) > CFG_SECRET_MAX))) {
		report_fail(r, "provider", "provider must be anthropic, openai or openrouter");
		return;
	}
	snprintf(path, sizeof(path), "%s/provider.json", config_dir());
	text = json_dumps(p, JSON_COMPACT);
	rc = text ? file_put(path, text, strlen(text), 0600, 0, 0) : -1;
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	if (rc)
		report_fail(r, "provider", "%s: %s", path, strerror(errno));
	else
		json_array_append_new(r->items, json_string("provider"));
}

/* What a restarted tiny guest forgets (its /etc is in RAM). */
static void identity_record(json_t *msg)
{
	char path[300], *text;
	json_t *id = json_object();
	const char *keys[] = {"hostname", "machineId"};

	for (size_t i = 0; i < 2; i++)
		if (json_is_string(json_object_get(msg, keys[i])))
			json_object_set(id, keys[i], json_object_get(msg, keys[i]));
	if (json_object_size(id) && !mkdirs(config_dir(), 0755)) {
		json_t *old;
		snprintf(path, sizeof(path), "%s/identity.json", config_dir());
		old = json_load_file(path, 0, NULL);
		if (old) {
			json_object_update_missing(id, old);
			json_decref(old);
		}
		text = json_dumps(id, JSON_COMPACT);
		file_put(path, text, strlen(text), 0644, 0, 0);
		free(text);
	}
	json_decref(id);
}

void config_init(void)
{
	char path[300];
	json_t *id;
	struct report r = {json_array(), json_array()};
	const char *s;

	if (strcmp(agent_image(), "tiny"))
		goto out;
	snprintf(path, sizeof(path), "%s/identity.json", config_dir());
	if (!(id = json_load_file(path, 0, NULL)))
		goto out;
	if ((s = json_string_value(json_object_get(id, "hostname"))) && hostname_valid(s))
		sethostname(s, strlen(s));
	if ((s = json_string_value(json_object_get(id, "machineId"))) && hex_valid(s, 32))
		apply_machine_id(s, &r);
	json_decref(id);
	log_info("event=identity-restored");
out:
	json_decref(r.items);
	json_decref(r.errors);
}

/* ---- the two requests, in the child ---- */

static json_t *personalize_apply(json_t *msg)
{
	struct report r = {json_array(), json_array()};
	json_t *v;

	if ((v = json_object_get(msg, "timeMs")))
		apply_time(json_integer_value(v), &r);
	if ((v = json_object_get(msg, "seed")))
		apply_seed(json_string_value(v) ?: "", &r);
	if ((v = json_object_get(msg, "machineId")))
		apply_machine_id(json_string_value(v) ?: "", &r);
	if ((v = json_object_get(msg, "hostname")))
		apply_hostname(json_string_value(v) ?: "", &r);
	if (json_is_true(json_object_get(msg, "regenerateHostKeys")))
		apply_host_keys(&r);
	identity_record(msg);
	return json_pack("{s:o, s:o}", "items", r.items, "errors", r.errors);
}

static json_t *configure_apply(json_t *msg)
{
	struct report r = {json_array(), json_array()};
	const char *desktop = json_string_value(json_object_get(msg, "desktopId"));
	char path[300], *text;
	json_t *v, *rec;

	if (!desktop || !*desktop)
		return json_pack("{s:s}", "error", "desktopId is required");
	snprintf(path, sizeof(path), "%s/configured.json", config_dir());
	rec = json_load_file(path, 0, NULL);
	if (rec && !strcmp(json_string_value(json_object_get(rec, "desktopId")) ?: "", desktop)) {
		json_decref(rec);
		return json_pack("{s:b, s:b, s:[], s:[]}", "applied", 0, "already", 1, "items",
				 "errors");
	}
	json_decref(rec);
	if (mkdirs(config_dir(), 0755))
		return json_pack("{s:s}", "error", "cannot create the config folder");
	if ((v = json_object_get(msg, "hostname")))
		apply_hostname(json_string_value(v) ?: "", &r);
	if ((v = json_object_get(msg, "password")))
		apply_password(json_string_value(v) ?: "", &r);
	if ((v = json_object_get(msg, "sshKeys")))
		apply_ssh_keys(v, &r);
	if ((v = json_object_get(msg, "timezone")))
		apply_timezone(json_string_value(v) ?: "", &r);
	if ((v = json_object_get(msg, "env")))
		apply_env(v, &r);
	if ((v = json_object_get(msg, "provider")))
		apply_provider(v, &r);
	identity_record(msg);
	rec = json_pack("{s:s, s:I, s:O}", "desktopId", desktop, "appliedAt",
			(json_int_t)time(NULL) * 1000, "items", r.items);
	text = json_dumps(rec, JSON_COMPACT);
	if (file_put(path, text, strlen(text), 0644, 0, 0))
		report_fail(&r, "record", "%s: %s", path, strerror(errno));
	free(text);
	json_decref(rec);
	return json_pack("{s:b, s:o, s:o}", "applied", 1, "items", r.items, "errors", r.errors);
}

/* ---- jobs, in the agent ---- */

/* Zeroes every string that may hold a secret, before the message is freed. */
static void secrets_wipe(json_t *msg)
{
	json_t *v = json_object_get(msg, "password");
	json_t *p = json_object_get(msg, "provider");

	if (json_is_string(v))
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
	v = p ? json_object_get(p, "apiKey") : NULL;
	if (json_is_string(v))
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
}

static void job_free(int i)
{
	struct cfg_job *j = jobs[i];

	jobs[i] = NULL;
	if (j->fd >= 0)
		close(j->fd);
	json_decref(j->id);
	buf_release(&j->out);
	free(j);
}

static void job_reply(int i)
{
	struct cfg_job *j = jobs[i];
	json_t *res = j->out.len ? json_loadb(j->out.data, j->out.len, 0, NULL) : NULL;
	const char *err;

	if (!res || (err = json_string_value(json_object_get(res, "error")))) {
		agent_send_error(j->gen, j->id, res ? err : "the configuration child failed");
	} else {
		json_object_set_new(res, "type", json_string(j->type));
		json_object_set(res, "id", j->id ? j->id : json_null());
		agent_send(j->gen, res);
		log_info("event=%s items=%zu errors=%zu", j->type,
			 json_array_size(json_object_get(res, "items")),
			 json_array_size(json_object_get(res, "errors")));
	}
	json_decref(res);
	job_free(i);
}

static void job_read_cb(void *obj, int fd, short revents)
{
	int i = (int)(intptr_t)obj;
	struct cfg_job *j = jobs[i];
	char b[4096];
	ssize_t n = read(fd, b, sizeof(b));

	if (n > 0 && j->out.len + (size_t)n <= CFG_RESULT_MAX) {
		buf_append(&j->out, b, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	job_reply(i); /* end of file, error, or too much */
}

static void job_child(json_t *msg, json_t *(*fn)(json_t *), int fd)
{
	sigset_t none;
	json_t *res;
	char *text;

	sigemptyset(&none);
	sigaddset(&none, SIGCHLD); /* waitpid() here, not a signalfd */
	sigprocmask(SIG_SETMASK, &none, NULL);
	res = fn(msg);
	secrets_wipe(msg);
	text = json_dumps(res, JSON_COMPACT);
	if (text && write(fd, text, strlen(text)) < 0)
		_exit(1);
	_exit(0);
}

static void job_start(json_t *msg, uint64_t gen, const char *reply, json_t *(*fn)(json_t *))
{
	int fds[2], i;
	struct cfg_job *j;
	pid_t pid;

	for (i = 0; i < CFG_JOBS_MAX && jobs[i]; i++)
		;
	if (i == CFG_JOBS_MAX || pipe2(fds, O_CLOEXEC)) {
		agent_send_error(gen, json_object_get(msg, "id"),
				 "too many configuration requests");
		secrets_wipe(msg);
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		job_child(msg, fn, fds[1]);
	}
	close(fds[1]);
	secrets_wipe(msg);
	if (pid < 0) {
		close(fds[0]);
		agent_send_error(gen, json_object_get(msg, "id"), "fork failed");
		return;
	}
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	j = calloc(1, sizeof(*j));
	j->pid = pid;
	j->fd = fds[0];
	j->gen = gen;
	j->id = json_incref(json_object_get(msg, "id"));
	snprintf(j->type, sizeof(j->type), "%s", reply);
	j->deadline = agent_now_ms() + CFG_JOB_TIMEOUT_MS;
	jobs[i] = j;
}

void config_configure_request(json_t *msg, uint64_t gen)
{
	job_start(msg, gen, "configure.done", configure_apply);
}

void config_personalize_request(json_t *msg, uint64_t gen)
{
	job_start(msg, gen, "personalize.done", personalize_apply);
}

void config_poll(struct agent_poll *p)
{
	int64_t now = agent_now_ms();

	for (int i = 0; i < CFG_JOBS_MAX; i++) {
		struct cfg_job *j = jobs[i];

		if (!j)
			continue;
		if (now >= j->deadline) {
			kill(j->pid, SIGKILL);
			job_reply(i);
			continue;
		}
		agent_poll_add(p, j->fd, POLLIN, job_read_cb, (void *)(intptr_t)i);
		agent_poll_wake(p, j->deadline);
	}
}
