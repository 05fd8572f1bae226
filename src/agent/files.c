/* Files for the host: download ("file.read" stream), upload ("file.write"
 * stream, atomic), and list, stat, mkdir, move and delete on the control
 * stream. Every operation runs with the permissions of the request's user
 * (setfsuid/setfsgid and its groups around the system calls; the agent is
 * single-threaded, so nothing else runs meanwhile) unless it is root.
 *
 * Path rules, the same for every operation:
 *   - absolute, normalised: "/" or "/a/b" with no empty, "." or ".."
 *     components, no NUL, at most FILES_PATH_MAX bytes;
 *   - the user "agent" (any non-root user) reaches only its home and
 *     /tmp: the path must be one of them or below one of them;
 *   - resolution below that root uses openat2(RESOLVE_BENEATH |
 *     RESOLVE_NO_SYMLINKS): a symbolic link anywhere on the way is refused,
 *     so no link can lead out (the last component itself is never
 *     followed either: stat reports a link, delete and move act on the link);
 *   - root may use any path, and symbolic links are followed for it except
 *     in the last component.
 * Failures carry the errno name ("ENOENT") for bureaud to turn into a
 * status. */
#include "agent/stream.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FILES_PATH_MAX 4095
#define FILES_LIST_MAX 2000			 /* entries in one listing */
#define FILES_LIST_BYTES (CH_MAX_PAYLOAD - 1024) /* room for the rest of the answer */
#define FILES_DELETE_DEPTH 64			 /* recursive delete */
#define FILES_READ_BURST (1024 * 1024)		 /* per stream per loop turn */

/* Where a path leads: the directory that holds its last component (an
 * O_PATH descriptor) and that component; is_root when the path is the
 * area's root itself (then name is "."). */
struct loc {
	int dirfd;
	char name[NAME_MAX + 1];
	int is_root;
};

static const char *errno_name(int e)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
	    {ENOENT, "ENOENT"},
	    {EACCES, "EACCES"},
	    {EPERM, "EPERM"},
	    {EEXIST, "EEXIST"},
	    {ENOTDIR, "ENOTDIR"},
	    {EISDIR, "EISDIR"},
	    {ENOTEMPTY, "ENOTEMPTY"},
	    {EXDEV, "EXDEV"},
	    {ELOOP, "ELOOP"},
	    {EINVAL, "EINVAL"},
	    {ENAMETOOLONG, "ENAMETOOLONG"},
	    {ENOSPC, "ENOSPC"},
	    {EDQUOT, "EDQUOT"},
	    {EROFS, "EROFS"},
	    {EBUSY, "EBUSY"},
	    {ETXTBSY, "ETXTBSY"},
	    {EMLINK, "EMLINK"},
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	return "EIO";
}

/* ---- acting as the user ---- */

static gid_t saved_groups[64];
static int saved_ngroups = -1;

static void fs_become(const struct agent_user *u)
{
	if (u->uid == 0)
		return;
	if (saved_ngroups < 0)
		saved_ngroups = getgroups(64, saved_groups);
	if (setgroups((size_t)u->ngroups, u->groups))
		log_warn("setgroups");
	setfsgid(u->gid);
	setfsuid(u->uid);
}

static void fs_unbecome(const struct agent_user *u)
{
	if (u->uid == 0)
		return;
	setfsuid(0);
	setfsgid(0);
	if (saved_ngroups >= 0 && setgroups((size_t)saved_ngroups, saved_groups))
		log_warn("setgroups");
}

/* ---- paths ---- */

/* Checks the shape of path; returns 0 or -EINVAL with why. */
static int path_check(json_t *jpath, char *why, size_t n)
{
	const char *p = json_string_value(jpath), *c;

	if (!p) {
		snprintf(why, n, "\"path\" must be a string");
		return -EINVAL;
	}
	if (strlen(p) != json_string_length(jpath)) {
		snprintf(why, n, "path contains a NUL byte");
		return -EINVAL;
	}
	if (p[0] != '/') {
		snprintf(why, n, "path must be absolute");
		return -EINVAL;
	}
	if (json_string_length(jpath) > FILES_PATH_MAX) {
		snprintf(why, n, "path is longer than %d bytes", FILES_PATH_MAX);
		return -ENAMETOOLONG;
	}
	if (!strcmp(p, "/"))
		return 0;
	for (c = p; *c;) {
		size_t len = strcspn(c + 1, "/");

		if (len == 0 || (len == 1 && c[1] == '.') ||
		    (len == 2 && c[1] == '.' && c[2] == '.')) {
			snprintf(why, n,
				 "path must be normalised: no empty, \".\" or \"..\" parts");
			return -EINVAL;
		}
		if (len > NAME_MAX) {
			snprintf(why, n, "a path component is longer than %d bytes", NAME_MAX);
			return -ENAMETOOLONG;
		}
		c += 1 + len;
	}
	return 0;
}

/* The area root path falls in for u, and the rest of path below it. */
static const char *path_area(const struct agent_user *u, const char *path, const char **rest)
{
	const char *roots[] = {u->home, "/tmp"};
	size_t i, len;

	if (u->uid == 0) {
		*rest = path + 1;
		return "/";
	}
	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		len = strlen(roots[i]);
		if (len > 1 && !strncmp(path, roots[i], len) &&
		    (path[len] == '\0' || path[len] == '/')) {
			*rest = path[len] ? path + len + 1 : path + len;
			return roots[i];
		}
	}
	return NULL;
}

static int openat2_beneath(int dirfd, const char *rel, int flags, int root)
{
	struct open_how how = {0};

	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = root ? RESOLVE_NO_MAGICLINKS
			   : RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

/* Resolves path for u into l, as u (call between fs_become/unbecome).
 * Returns 0, or -errno with why. */
static int path_resolve(const struct agent_user *u, json_t *jpath, struct loc *l, char *why,
			size_t n)
{
	const char *path = json_string_value(jpath), *rest, *root, *slash;
	char parent[FILES_PATH_MAX + 1];
	int rootfd, r;

	l->dirfd = -1;
	l->is_root = 0;
	if ((r = path_check(jpath, why, n)))
		return r;
	if (!(root = path_area(u, path, &rest))) {
		snprintf(why, n, "%s may only use paths in %s and /tmp", u->name, u->home);
		return -EACCES;
	}
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		r = -errno;
		snprintf(why, n, "cannot open %s: %s", root, strerror(errno));
		return r;
	}
	if (!*rest) {
		l->dirfd = rootfd;
		l->is_root = 1;
		snprintf(l->name, sizeof(l->name), ".");
		return 0;
	}
	slash = strrchr(rest, '/');
	snprintf(l->name, sizeof(l->name), "%s", slash ? slash + 1 : rest);
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - rest) : 1,
		 slash ? rest : ".");
	l->dirfd = openat2_beneath(rootfd, parent, O_PATH | O_DIRECTORY, u->uid == 0);
	r = l->dirfd < 0 ? -errno : 0;
	close(rootfd);
	if (r == -ELOOP || r == -EXDEV)
		snprintf(why, n, "%s: a symbolic link on the way is not followed", path);
	else if (r)
		snprintf(why, n, "%s: %s", path, strerror(-r));
	return r;
}

static void loc_release(struct loc *l)
{
	if (l->dirfd >= 0)
		close(l->dirfd);
	l->dirfd = -1;
}

/* ---- answers on the control stream ---- */

static void reply_errno(uint64_t gen, json_t *msg, int e, const char *why)
{
	json_t *m = json_pack("{s:s, s:O?, s:s, s:s}", "type", "error", "id",
			      json_object_get(msg, "id"), "message", why, "errno", errno_name(e));

	agent_send(gen, m);
	json_decref(m);
}

static void reply_ok(uint64_t gen, json_t *msg, const char *type, json_t *body)
{
	json_object_set_new(body, "type", json_string(type));
	json_object_set(body, "id", json_object_get(msg, "id") ?: json_null());
	agent_send(gen, body);
	json_decref(body);
}

static const char *mode_type(mode_t m)
{
	return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

static json_t *stat_json(const char *name, const struct stat *st)
{
	return json_pack("{s:s, s:s, s:I, s:i, s:I, s:i, s:i}", "name", name, "type",
			 mode_type(st->st_mode), "size", (json_int_t)st->st_size, "mode",
			 (int)(st->st_mode & 07777), "mtime",
			 (json_int_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000,
			 "uid", (int)st->st_uid, "gid", (int)st->st_gid);
}

/* The common start of every request: its user and where its path leads,
 * as that user. Returns 0 (fs_become in effect) or -1 after replying. */
static int request_begin(json_t *msg, uint64_t gen, const char *key, struct agent_user *u,
			 struct loc *l)
{
	char why[FILES_PATH_MAX + 256];
	int r;

	l->dirfd = -1;
	if (agent_user_of(msg, u, why, sizeof(why))) {
		reply_errno(gen, msg, EINVAL, why);
		return -1;
	}
	fs_become(u);
	if ((r = path_resolve(u, json_object_get(msg, key), l, why, sizeof(why)))) {
		fs_unbecome(u);
		reply_errno(gen, msg, -r, why);
		return -1;
	}
	return 0;
}

static void request_fail(json_t *msg, uint64_t gen, const char *what, int e)
{
	char why[FILES_PATH_MAX + 256];

	snprintf(why, sizeof(why), "%s %s: %s", what,
		 json_string_value(json_object_get(msg, "path")) ?: "", strerror(e));
	reply_errno(gen, msg, e, why);
}

void files_stat_request(json_t *msg, uint64_t gen)
{
	struct agent_user u;
	struct loc l;
	struct stat st;
	json_t *j;
	char target[PATH_MAX];
	ssize_t tl;
	int r;

	if (request_begin(msg, gen, "path", &u, &l))
		return;
	r = fstatat(l.dirfd, l.is_root ? "" : l.name, &st,
		    AT_SYMLINK_NOFOLLOW | (l.is_root ? AT_EMPTY_PATH : 0))
		? errno
		: 0;
	tl = !r && S_ISLNK(st.st_mode) ? readlinkat(l.dirfd, l.name, target, sizeof(target) - 1)
				       : -1;
	fs_unbecome(&u);
	loc_release(&l);
	if (r) {
		request_fail(msg, gen, "stat", r);
		return;
	}
	j = stat_json(json_string_value(json_object_get(msg, "path")), &st);
	json_object_set_new(j, "path",
			    json_string(json_string_value(json_object_get(msg, "path"))));
	json_object_del(j, "name");
	if (tl >= 0) {
		target[tl] = '\0';
		json_object_set_new(j, "target", json_stringn(target, (size_t)tl));
	}
	/* Nested: the entry's own "type" is not the message's. */
	reply_ok(gen, msg, "file.stat.result", json_pack("{s:o}", "stat", j));
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
		      json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

/* Reads the directory's entries, sorted by name, at most FILES_LIST_MAX. */
static int list_read(int dfd, json_t *entries, int *truncated)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	struct stat st;
	json_t **v = NULL;
	size_t n = 0, i;

	if (!d) {
		close(dfd);
		return errno;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n >= FILES_LIST_MAX) {
			*truncated = 1;
			break;
		}
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue; /* gone meanwhile */
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = stat_json(e->d_name, &st);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), name_cmp);
	for (i = 0; i < n; i++)
		json_array_append_new(entries, v[i]);
	free(v);
	return 0;
}

void files_list_request(json_t *msg, uint64_t gen)
{
	struct agent_user u;
	struct loc l;
	json_t *entries = json_array(), *j;
	int truncated = 0, dfd, r;
	char *s;

	if (request_begin(msg, gen, "path", &u, &l)) {
		json_decref(entries);
		return;
	}
	dfd = openat(l.dirfd, l.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	r = dfd < 0 ? errno : list_read(dfd, entries, &truncated);
	fs_unbecome(&u);
	loc_release(&l);
	if (r) {
		json_decref(entries);
		request_fail(msg, gen, "list", r == ELOOP ? ENOTDIR : r);
		return;
	}
	/* The answer must fit in one frame: drop entries from the end. */
	for (;;) {
		j = json_pack("{s:O, s:O, s:b}", "path", json_object_get(msg, "path"), "entries",
			      entries, "truncated", truncated);
		s = json_dumps(j, JSON_COMPACT);
		if (!s || strlen(s) <= FILES_LIST_BYTES || !json_array_size(entries))
			break;
		free(s);
		json_decref(j);
		json_array_remove(entries, json_array_size(entries) - 1);
		truncated = 1;
	}
	free(s);
	json_decref(entries);
	reply_ok(gen, msg, "file.list.result", j);
}

static int mode_of(json_t *msg, int def, int *mode)
{
	json_t *j = json_object_get(msg, "mode");

	if (!j) {
		*mode = def;
		return 0;
	}
	if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > 07777)
		return -1;
	*mode = (int)json_integer_value(j);
	return 0;
}

/* mkdir -p below the area: each missing component is created and entered
 * without following links. */
static int mkdir_parents(const struct agent_user *u, int dirfd, const char *name, int mode)
{
	if (mkdirat(dirfd, name, (mode_t)mode) && errno != EEXIST)
		return errno;
	return 0;
}

void files_mkdir_request(json_t *msg, uint64_t gen)
{
	json_t *jp = json_object_get(msg, "parents");
	struct agent_user u;
	struct loc l;
	struct stat st;
	int mode, r = 0;

	if (mode_of(msg, 0755, &mode) || (jp && !json_is_boolean(jp))) {
		reply_errno(gen, msg, EINVAL, "\"mode\" must be 0..07777, \"parents\" a boolean");
		return;
	}
	if (json_is_true(jp)) {
		/* Create each ancestor in turn; each call resolves afresh. */
		const char *path = json_string_value(json_object_get(msg, "path"));
		char prefix[FILES_PATH_MAX + 1], why[256];
		const char *c;

		if (path && path_check(json_object_get(msg, "path"), why, sizeof(why)) == 0)
			for (c = strchr(path + 1, '/'); c; c = strchr(c + 1, '/')) {
				json_t *sub = json_object(), *jsub;
				struct loc pl;

				snprintf(prefix, sizeof(prefix), "%.*s", (int)(c - path), path);
				jsub = json_string(prefix);
				json_object_set(sub, "user", json_object_get(msg, "user"));
				if (agent_user_of(sub, &u, why, sizeof(why)) == 0) {
					fs_become(&u);
					if (path_resolve(&u, jsub, &pl, why, sizeof(why)) == 0) {
						if (!pl.is_root)
							mkdir_parents(&u, pl.dirfd, pl.name, mode);
						loc_release(&pl);
					}
					fs_unbecome(&u);
				}
				json_decref(jsub);
				json_decref(sub);
			}
	}
	if (request_begin(msg, gen, "path", &u, &l))
		return;
	if (l.is_root || mkdirat(l.dirfd, l.name, (mode_t)mode))
		r = l.is_root ? EEXIST : errno;
	if (r == EEXIST && json_is_true(jp) &&
	    !fstatat(l.dirfd, l.name, &st, AT_SYMLINK_NOFOLLOW) && S_ISDIR(st.st_mode))
		r = 0;
	fs_unbecome(&u);
	loc_release(&l);
	if (r) {
		request_fail(msg, gen, "mkdir", r);
		return;
	}
	reply_ok(gen, msg, "file.mkdir.result",
		 json_pack("{s:O}", "path", json_object_get(msg, "path")));
}

void files_move_request(json_t *msg, uint64_t gen)
{
	json_t *jo = json_object_get(msg, "overwrite");
	struct agent_user u;
	struct loc from, to;
	char why[FILES_PATH_MAX + 256];
	int r;

	if (jo && !json_is_boolean(jo)) {
		reply_errno(gen, msg, EINVAL, "\"overwrite\" must be a boolean");
		return;
	}
	if (request_begin(msg, gen, "path", &u, &from))
		return;
	if ((r = path_resolve(&u, json_object_get(msg, "to"), &to, why, sizeof(why)))) {
		fs_unbecome(&u);
		loc_release(&from);
		reply_errno(gen, msg, -r, why);
		return;
	}
	r = 0;
	if (from.is_root || to.is_root)
		r = EBUSY;
	else if (renameat2(from.dirfd, from.name, to.dirfd, to.name,
			   json_is_true(jo) ? 0 : RENAME_NOREPLACE))
		r = errno;
	fs_unbecome(&u);
	loc_release(&from);
	loc_release(&to);
	if (r) {
		request_fail(msg, gen, "move", r);
		return;
	}
	reply_ok(gen, msg, "file.move.result",
		 json_pack("{s:O, s:O}", "path", json_object_get(msg, "path"), "to",
			   json_object_get(msg, "to")));
}

/* Removes name below dirfd and, for a directory, everything in it,
 * without following links. Returns 0 or an errno. */
static int delete_tree(int parent, const char *name, int depth)
{
	DIR *d;
	struct dirent *e;
	int fd, r = 0;

	if (!unlinkat(parent, name, 0))
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return errno;
	if (depth >= FILES_DELETE_DEPTH)
		return ELOOP;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? EPERM : errno;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return errno;
	}
	while (!r && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			r = delete_tree(dirfd(d), e->d_name, depth + 1);
	closedir(d);
	if (!r && unlinkat(parent, name, AT_REMOVEDIR))
		r = errno;
	return r;
}

void files_delete_request(json_t *msg, uint64_t gen)
{
	json_t *jr = json_object_get(msg, "recursive");
	struct agent_user u;
	struct loc l;
	int r = 0;

	if (jr && !json_is_boolean(jr)) {
		reply_errno(gen, msg, EINVAL, "\"recursive\" must be a boolean");
		return;
	}
	if (request_begin(msg, gen, "path", &u, &l))
		return;
	if (l.is_root)
		r = EBUSY;
	else if (json_is_true(jr))
		r = delete_tree(l.dirfd, l.name, 0);
	else if (unlinkat(l.dirfd, l.name, 0))
		r = (errno == EISDIR || errno == EPERM) && !unlinkat(l.dirfd, l.name, AT_REMOVEDIR)
			? 0
			: errno;
	fs_unbecome(&u);
	loc_release(&l);
	if (r) {
		request_fail(msg, gen, "delete", r);
		return;
	}
	reply_ok(gen, msg, "file.delete.result",
		 json_pack("{s:O}", "path", json_object_get(msg, "path")));
}

/* ---- download: the "file.read" stream ---- */

struct fread {
	int fd;
	uint64_t sent;
};

static int stream_begin(struct astream *s, json_t *msg, json_t *opened, struct agent_user *u,
			struct loc *l, char *why, size_t n)
{
	int r;

	if (agent_user_of(msg, u, why, n)) {
		json_object_set_new(opened, "errno", json_string("EINVAL"));
		return -1;
	}
	fs_become(u);
	r = path_resolve(u, json_object_get(msg, "path"), l, why, n);
	if (r) {
		fs_unbecome(u);
		json_object_set_new(opened, "errno", json_string(errno_name(-r)));
		return -1;
	}
	return 0;
}

static int fread_open(struct astream *s, json_t *msg, json_t *opened, char *why, size_t n)
{
	struct agent_user u;
	struct loc l;
	struct stat st;
	struct fread *f;
	int fd, e = 0;

	if (stream_begin(s, msg, opened, &u, &l, why, n))
		return -1;
	fd = openat(l.dirfd, l.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		e = errno == ELOOP ? EXDEV : errno;
	else if (fstat(fd, &st))
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	else if (!S_ISREG(st.st_mode))
		e = EINVAL;
	fs_unbecome(&u);
	loc_release(&l);
	if (e) {
		if (fd >= 0)
			close(fd);
		snprintf(why, n, "read %s: %s", json_string_value(json_object_get(msg, "path")),
			 e == EXDEV    ? "it is a symbolic link"
			 : e == EINVAL ? "not a regular file"
				       : strerror(e));
		json_object_set_new(opened, "errno", json_string(errno_name(e)));
		return -1;
	}
	f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	s->impl = f;
	json_object_set_new(opened, "size", json_integer((json_int_t)st.st_size));
	json_object_set_new(opened, "mode", json_integer(st.st_mode & 07777));
	json_object_set_new(
	    opened, "mtime",
	    json_integer((json_int_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000));
	return 0;
}

/* Regular files are always readable: read as long as credit lasts. */
static void fread_poll(struct astream *s, struct agent_poll *p)
{
	struct fread *f = s->impl;
	char tmp[CH_MAX_PAYLOAD];
	size_t room, burst = 0;
	ssize_t r;
	json_t *res;

	while (burst < FILES_READ_BURST && (room = stream_room(s, sizeof(tmp)))) {
		r = read(f->fd, tmp, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			stream_fail(s, strerror(errno));
			return;
		}
		if (r == 0) {
			res = json_pack("{s:I}", "size", (json_int_t)f->sent);
			stream_finish(s, res);
			json_decref(res);
			return;
		}
		stream_send(s, tmp, (size_t)r);
		f->sent += (uint64_t)r;
		burst += (size_t)r;
	}
	if (burst >= FILES_READ_BURST)
		agent_poll_wake(p, agent_now_ms());
}

static void fread_free(struct astream *s, int aborted)
{
	struct fread *f = s->impl;

	if (!f)
		return;
	close(f->fd);
	free(f);
}

const struct stream_kind stream_kind_file_read = {
    .name = "file.read",
    .open = fread_open,
    .poll = fread_poll,
    .free = fread_free,
};

/* ---- upload: the "file.write" stream ---- */

struct fwrite {
	struct agent_user u;
	struct loc l;
	char tmp[NAME_MAX + 1];
	int fd, mode;
	uint64_t written;
};

static int fwrite_open(struct astream *s, json_t *msg, json_t *opened, char *why, size_t n)
{
	struct fwrite *w = xcalloc(1, sizeof(*w));
	struct stat st;
	uint32_t rnd;
	int e = 0, mode, exists;

	if (mode_of(msg, -1, &mode)) {
		snprintf(why, n, "\"mode\" must be 0..07777");
		json_object_set_new(opened, "errno", json_string("EINVAL"));
		free(w);
		return -1;
	}
	if (stream_begin(s, msg, opened, &w->u, &w->l, why, n)) {
		free(w);
		return -1;
	}
	w->fd = -1;
	exists = !w->l.is_root && !fstatat(w->l.dirfd, w->l.name, &st, AT_SYMLINK_NOFOLLOW);
	if (w->l.is_root || (exists && S_ISDIR(st.st_mode)))
		e = EISDIR;
	/* A replaced file keeps its mode unless the request names one. */
	w->mode = mode >= 0			  ? mode
		  : exists && S_ISREG(st.st_mode) ? (int)(st.st_mode & 07777)
						  : 0644;
	if (!e) {
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint32_t)agent_now_ms();
		/* The temporary sits beside the target so the rename is atomic. */
		snprintf(w->tmp, sizeof(w->tmp), ".%.200s.bureau-%08x", w->l.name, rnd);
		w->fd = openat(w->l.dirfd, w->tmp,
			       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (w->fd < 0)
			e = errno;
	}
	fs_unbecome(&w->u);
	if (e) {
		snprintf(why, n, "write %s: %s", json_string_value(json_object_get(msg, "path")),
			 strerror(e));
		json_object_set_new(opened, "errno", json_string(errno_name(e)));
		loc_release(&w->l);
		free(w);
		return -1;
	}
	s->impl = w;
	return 0;
}

/* The end of the upload: into place, atomically, as the user. */
static void fwrite_commit(struct astream *s, struct fwrite *w)
{
	json_t *res;
	int e = 0;

	if (fchmod(w->fd, (mode_t)w->mode) || fsync(w->fd))
		e = errno;
	close(w->fd);
	w->fd = -1;
	fs_become(&w->u);
	if (!e && renameat(w->l.dirfd, w->tmp, w->l.dirfd, w->l.name))
		e = errno;
	fs_unbecome(&w->u);
	if (e) {
		stream_fail(s, strerror(e));
		return;
	}
	w->tmp[0] = '\0';
	res = json_pack("{s:I}", "size", (json_int_t)w->written);
	stream_finish(s, res);
	json_decref(res);
}

static void fwrite_data(struct astream *s, const uint8_t *p, size_t len)
{
	struct fwrite *w = s->impl;
	ssize_t r;
	size_t off = 0;

	if (!len) {
		fwrite_commit(s, w);
		return;
	}
	while (off < len) {
		r = write(w->fd, p + off, len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			char why[128];

			snprintf(why, sizeof(why), "write: %s (%s)", strerror(errno),
				 errno_name(errno));
			stream_fail(s, why);
			return;
		}
		off += (size_t)r;
	}
	w->written += len;
	stream_consumed(s, len);
}

static void fwrite_free(struct astream *s, int aborted)
{
	struct fwrite *w = s->impl;

	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	/* Unfinished: the target was never touched; drop the partial copy. */
	if (w->tmp[0] && unlinkat(w->l.dirfd, w->tmp, 0))
		log_warn("unlink %s", w->tmp);
	loc_release(&w->l);
	free(w);
}

const struct stream_kind stream_kind_file_write = {
    .name = "file.write",
    .open = fwrite_open,
    .data = fwrite_data,
    .free = fwrite_free,
};
