/* The image sweep (image_gc.h): what a qcow2 header says an image is
 * backed by, which golden image versions and warm templates nothing needs
 * any more, and their removal. Runs on a worker thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vm/image_gc.h"
#include "vm/qemu_priv.h"

#define QCOW2_MAGIC "QFI\xfb"
#define QCOW2_V2_HEADER 72  /* bytes of a version 2 header */
#define QCOW2_V3_HEADER 104 /* the smallest version 3 header */
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define GC_CHAIN_MAX 16 /* backing files followed from one image */
#define GC_DEPTH_MAX 6	/* folder levels looked into under STATE/desktops, STATE/templates */
#define GC_SIZE_DEPTH_MAX 16
#define GC_HIDDEN ".gc-" /* a folder being removed */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* dir/name into out (PATH_MAX bytes); -1 when it does not fit, and a
 * path cut short must never be looked at, let alone removed. */
static int path_join(char *out, const char *dir, const char *name)
{
	int len = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	return len < 0 || len >= PATH_MAX ? -1 : 0;
}

int vm_qcow2_backing(const char *path, char *name, size_t n)
{
	unsigned char h[QCOW2_V3_HEADER];
	struct stat st;
	uint64_t off;
	uint32_t version, len;
	ssize_t got;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return -errno;
	if (fstat(fd, &st)) {
		r = -errno;
		goto out;
	}
	r = -EINVAL;
	if (!S_ISREG(st.st_mode))
		goto out;
	if ((got = pread(fd, h, sizeof(h), 0)) < 0) {
		r = -errno;
		goto out;
	}
	if (got < 4 || memcmp(h, QCOW2_MAGIC, 4))
		goto out;
	r = -EBADMSG;
	version = be32(h + 4);
	if ((version != 2 && version != 3) || got < QCOW2_V2_HEADER ||
	    (version == 3 && got < QCOW2_V3_HEADER))
		goto out;
	if (version == 3 && (be64(h + 72) & QCOW2_INCOMPAT_DATA_FILE)) {
		r = -ENOTSUP;
		goto out;
	}
	off = be64(h + 8);
	len = be32(h + 16);
	if (!off) {
		r = 0;
		goto out;
	}
	if (len > VM_QCOW2_BACKING_MAX || len >= n) {
		r = -ENAMETOOLONG;
		goto out;
	}
	if (!len || off < QCOW2_V2_HEADER || off > (uint64_t)st.st_size ||
	    len > (uint64_t)st.st_size - off)
		goto out;
	if ((got = pread(fd, name, len, (off_t)off)) < 0) {
		r = -errno;
		goto out;
	}
	if ((size_t)got != len || memchr(name, '\0', len))
		goto out;
	name[len] = '\0';
	r = 1;
out:
	close(fd);
	return r;
}

/* ---- backing chains ---- */

/* Paths of files some image is backed by, each by the name a header gives
 * and by its real path. */
struct gc_refs {
	char **v;
	size_t n, cap;
};

static void refs_add(struct gc_refs *r, const char *path)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 32;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	r->v[r->n++] = xstrdup(path);
}

static void refs_release(struct gc_refs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* Whether a file of the folder dir (or dir itself) is referenced. */
static int refs_under(const struct gc_refs *r, const char *dir)
{
	size_t len = strlen(dir);

	for (size_t i = 0; len && i < r->n; i++)
		if (!strncmp(r->v[i], dir, len) && (r->v[i][len] == '/' || r->v[i][len] == '\0'))
			return 1;
	return 0;
}

/* A backing name as QEMU opens it: absolute, or relative to the folder
 * of the image that names it. A protocol ("nbd:", "json:{…}") is not a
 * file the sweep can reason about: -1. */
static int backing_resolve(const char *image, const char *name, char *out)
{
	const char *colon = strchr(name, ':'), *slash = strchr(name, '/');
	const char *base = strrchr(image, '/');
	int len;

	if (colon && (!slash || colon < slash))
		return -1;
	if (name[0] == '/' || !base)
		len = snprintf(out, PATH_MAX, "%s", name);
	else
		len = snprintf(out, PATH_MAX, "%.*s/%s", (int)(base - image), image, name);
	return len < 0 || len >= PATH_MAX ? -1 : 0;
}

/* Adds the files path is backed by, to the end of its chain. A backing
 * file that is gone or not a qcow2 ends the chain. */
static int chain_add(struct gc_refs *refs, const char *path, struct err *err)
{
	char cur[PATH_MAX], next[PATH_MAX], real[PATH_MAX], name[VM_QCOW2_BACKING_MAX + 1];
	int r;

	snprintf(cur, sizeof(cur), "%s", path);
	for (int depth = 0;; depth++) {
		r = vm_qcow2_backing(cur, name, sizeof(name));
		if (r == 0 || (depth > 0 && (r == -ENOENT || r == -EINVAL)))
			return 0;
		if (r < 0)
			return err_set(err, 500, "image_gc", "%s: %s", cur, strerror(-r));
		if (depth == GC_CHAIN_MAX)
			return err_set(err, 500, "image_gc", "%s: backing chain longer than %d",
				       path, GC_CHAIN_MAX);
		if (backing_resolve(cur, name, next))
			return err_set(err, 500, "image_gc",
				       "%s: backing file \"%s\" is not a path", cur, name);
		refs_add(refs, next);
		if (realpath(next, real))
			refs_add(refs, real);
		snprintf(cur, sizeof(cur), "%s", next);
	}
}

/* A file found under STATE: an image adds its chain; anything else that
 * claims to be one by its name cannot be read for sure. */
static int scan_file(const char *path, const char *name, struct gc_refs *refs, struct err *err)
{
	char backing[VM_QCOW2_BACKING_MAX + 1];
	int r = vm_qcow2_backing(path, backing, sizeof(backing));

	if (r == -ENOENT || (r == -EINVAL && !strstr(name, ".qcow2")))
		return 0; /* removed meanwhile; memory images, logs, json */
	if (r < 0)
		return err_set(err, 500, "image_gc", "%s: %s", path,
			       r == -EINVAL ? "not a qcow2 image" : strerror(-r));
	return r ? chain_add(refs, path, err) : 0;
}

static int plan_has(const struct vm_image_gc_plan *plan, const char *path)
{
	for (size_t i = 0; plan && i < plan->n; i++)
		if (!strcmp(plan->items[i].path, path))
			return 1;
	return 0;
}

/* Every image under dir adds its chain; folders the plan removes are not
 * looked into. Symlinks to files are read, to anything else refused. */
static int scan_tree(const char *dir, int depth, const struct vm_image_gc_plan *skip,
		     struct gc_refs *refs, struct err *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : err_sys(err, errno, "image gc: open %s", dir);
	while (!r && (e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (path_join(path, dir, e->d_name)) {
			r = err_set(err, 500, "image_gc", "%s/%s: path too long", dir, e->d_name);
			break;
		}
		if (lstat(path, &st)) {
			if (errno != ENOENT)
				r = err_sys(err, errno, "image gc: %s", path);
			continue;
		}
		if (S_ISLNK(st.st_mode) && (stat(path, &st) || !S_ISREG(st.st_mode))) {
			r = err_set(err, 500, "image_gc", "%s: a symlink to no regular file", path);
		} else if (S_ISDIR(st.st_mode)) {
			if (plan_has(skip, path))
				continue;
			if (depth + 1 >= GC_DEPTH_MAX)
				r = err_set(err, 500, "image_gc",
					    "%s: folders nested deeper than %d", path,
					    GC_DEPTH_MAX);
			else
				r = scan_tree(path, depth + 1, skip, refs, err);
		} else if (S_ISREG(st.st_mode)) {
			r = scan_file(path, e->d_name, refs, err);
		}
	}
	closedir(d);
	return r;
}

/* ---- the plan ---- */

struct gc_image {
	char name[NAME_MAX_LEN + 1];
	char current[NAME_MAX_LEN + 1]; /* "": unusable, every version stays */
	int settled;			/* current has not moved for the grace period */
};

struct gc {
	const struct vm_image_gc_config *cfg;
	char images[PATH_MAX]; /* IMAGE_DIR, absolute, no trailing '/' */
	char state[PATH_MAX];
	struct gc_image *imgs;
	size_t n_imgs;
	struct gc_refs refs;
	struct vm_image_gc_plan *plan;
};

/* p made absolute, without trailing '/'; -1 when that is longer than
 * half of PATH_MAX (the driver's limit: room for what lies below). */
static int path_abs(const char *p, char *out)
{
	char cwd[PATH_MAX];
	size_t len;

	if (strlen(p) >= PATH_MAX / 2)
		return -1;
	if (p[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		snprintf(out, PATH_MAX, "%s", p);
	else if (path_join(out, cwd, p))
		return -1;
	len = strlen(out);
	while (len > 1 && out[len - 1] == '/')
		out[--len] = '\0';
	return len >= PATH_MAX / 2 ? -1 : 0;
}

/* Whether an image is backed by a file of the folder, by the folder's
 * path as given or by its real path. */
static int dir_referenced(const struct gc *g, const char *dir)
{
	char real[PATH_MAX];

	return refs_under(&g->refs, dir) || (realpath(dir, real) && refs_under(&g->refs, real));
}

static int young(const struct gc *g, time_t mtime)
{
	return g->cfg->now - (int64_t)mtime < g->cfg->grace_s;
}

/* The size of a folder on disk, symlinks not followed. */
static int64_t tree_bytes(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int64_t sum = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    path_join(path, dir, e->d_name) || lstat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode) && depth < GC_SIZE_DEPTH_MAX)
			sum += tree_bytes(path, depth + 1);
		else if (S_ISREG(st.st_mode))
			sum += (int64_t)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

static void plan_add(struct gc *g, const char *path, const char *image, const char *version,
		     int is_template, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void plan_add(struct gc *g, const char *path, const char *image, const char *version,
		     int is_template, const char *fmt, ...)
{
	struct vm_image_gc_plan *p = g->plan;
	struct vm_image_gc_item *it;
	va_list ap;

	p->items = xrealloc(p->items, (p->n + 1) * sizeof(*p->items));
	it = memset(&p->items[p->n++], 0, sizeof(*it));
	snprintf(it->path, sizeof(it->path), "%s", path);
	snprintf(it->image, sizeof(it->image), "%s", image);
	snprintf(it->version, sizeof(it->version), "%s", version);
	it->is_template = is_template;
	it->bytes = tree_bytes(path, 0);
	va_start(ap, fmt);
	vsnprintf(it->what, sizeof(it->what), fmt, ap);
	va_end(ap);
}

/* The version `current` names, read like vm_image_current does; only a
 * plain name of a real folder beside the link counts. */
static int current_read(const char *imgdir, char *out, size_t n, struct stat *lst, char *why,
			size_t wn)
{
	char link[PATH_MAX], target[NAME_MAX_LEN * 2], dir[PATH_MAX];
	struct stat st;
	ssize_t len;

	if (path_join(link, imgdir, "current") || lstat(link, lst) || !S_ISLNK(lst->st_mode) ||
	    (len = readlink(link, target, sizeof(target) - 1)) < 0) {
		snprintf(why, wn, "current is not a symlink");
		return -1;
	}
	target[len] = '\0';
	while (len > 1 && target[len - 1] == '/')
		target[--len] = '\0';
	if (strchr(target, '/') || name_check("image version", target, NULL) || (size_t)len >= n) {
		snprintf(why, wn, "current points out of its folder (%.64s)", target);
		return -1;
	}
	if (path_join(dir, imgdir, target) || lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(why, wn, "current is broken (%s is not a folder)", target);
		return -1;
	}
	memcpy(out, target, (size_t)len + 1);
	return 0;
}

static int use_matches(const struct vm_image_use *u, const char *image, const char *version)
{
	return !strcmp(u->image, image) && (!u->version[0] || !strcmp(u->version, version));
}

static int used(const struct gc *g, const char *image, const char *version)
{
	for (size_t i = 0; i < g->cfg->n_uses; i++)
		if (use_matches(&g->cfg->uses[i], image, version))
			return 1;
	return 0;
}

static int building(const struct gc *g, const char *image, const char *version)
{
	for (size_t i = 0; i < g->cfg->n_building; i++)
		if (use_matches(&g->cfg->building[i], image, version))
			return 1;
	return 0;
}

/* A live desktop of the version without its disk yet may be provisioned
 * from the version's template at any moment. */
static int awaits_disk(const struct gc *g, const char *image, const char *version)
{
	for (size_t i = 0; i < g->cfg->n_uses; i++) {
		const struct vm_image_use *u = &g->cfg->uses[i];
		char path[PATH_MAX];
		struct stat st;

		if (!use_matches(u, image, version))
			continue;
		if (name_check("desktop id", u->desktop_id, NULL))
			return 1;
		if (snprintf(path, sizeof(path), "%s/desktops/%s/disk.qcow2", g->state,
			     u->desktop_id) >= (int)sizeof(path) ||
		    lstat(path, &st))
			return 1;
	}
	return 0;
}

static const struct gc_image *image_find(const struct gc *g, const char *name)
{
	for (size_t i = 0; i < g->n_imgs; i++)
		if (!strcmp(g->imgs[i].name, name))
			return &g->imgs[i];
	return NULL;
}

/* The images in IMAGE_DIR and what their `current` says. */
static void images_read(struct gc *g)
{
	DIR *d = opendir(g->images);
	struct dirent *e;

	if (!d) {
		if (errno != ENOENT)
			log_warn("image gc: open %s", g->images);
		return;
	}
	while ((e = readdir(d))) {
		char path[PATH_MAX], why[256];
		struct gc_image *img;
		struct stat st, lst;

		if (e->d_name[0] == '.')
			continue;
		if (path_join(path, g->images, e->d_name) || lstat(path, &st) ||
		    !S_ISDIR(st.st_mode) || strlen(e->d_name) > NAME_MAX_LEN) {
			log_warnx("image gc: %s is not an image folder; left alone", path);
			continue;
		}
		g->imgs = xrealloc(g->imgs, (g->n_imgs + 1) * sizeof(*g->imgs));
		img = memset(&g->imgs[g->n_imgs++], 0, sizeof(*img));
		snprintf(img->name, sizeof(img->name), "%s", e->d_name);
		if (current_read(path, img->current, sizeof(img->current), &lst, why,
				 sizeof(why))) {
			log_warnx("image gc: keeping every version of %s: %s/%s: %s", img->name,
				  g->images, img->name, why);
			img->current[0] = '\0';
			continue;
		}
		img->settled = !young(g, lst.st_mtime);
		for (size_t i = 0; i < g->cfg->n_uses; i++)
			if (!strcmp(g->cfg->uses[i].image, img->name) &&
			    !g->cfg->uses[i].version[0]) {
				log_warnx("image gc: keeping every version of %s: desktop %s does "
					  "not say which it uses",
					  img->name, g->cfg->uses[i].desktop_id);
				img->current[0] = '\0';
				break;
			}
	}
	closedir(d);
}

static int template_name_ok(const char *name)
{
	int c, m, gb;
	char tail[8];

	return sscanf(name, "%dc-%dm-%dg%7s", &c, &m, &gb, tail) == 3;
}

/* STATE/templates/<image>/<version>/: which of its templates go. */
static void template_version_plan(struct gc *g, const char *image, const char *vdir,
				  const char *version)
{
	const struct gc_image *img = image_find(g, image);
	int keep = !img || !img->current[0] || !img->settled || !strcmp(version, img->current) ||
		   building(g, image, version) || awaits_disk(g, image, version);
	DIR *d = opendir(vdir);
	struct dirent *e;

	if (!d) {
		log_warn("image gc: open %s", vdir);
		return;
	}
	while ((e = readdir(d))) {
		char path[PATH_MAX], base[NAME_MAX_LEN + 1];
		size_t len = strlen(e->d_name);
		struct stat st;
		int tmp = len > 4 && !strcmp(e->d_name + len - 4, ".tmp");

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (path_join(path, vdir, e->d_name) || lstat(path, &st) || !S_ISDIR(st.st_mode)) {
			log_warnx("image gc: %s/%s is not a template folder; left alone", vdir,
				  e->d_name);
			g->plan->kept_templates++;
			continue;
		}
		if (!strncmp(e->d_name, GC_HIDDEN, strlen(GC_HIDDEN))) {
			plan_add(g, path, image, version, 1, "template %s/%s/%s", image, version,
				 e->d_name);
			continue;
		}
		snprintf(base, sizeof(base), "%.*s", (int)(tmp ? len - 4 : len), e->d_name);
		if (e->d_name[0] == '.' || !template_name_ok(base)) {
			log_warnx("image gc: %s is not a template folder; left alone", path);
			g->plan->kept_templates++;
		} else if (keep || (tmp && vm__pid_alive(vm__pid_read(path))) ||
			   dir_referenced(g, path) || young(g, st.st_mtime)) {
			g->plan->kept_templates++;
		} else {
			plan_add(g, path, image, version, 1, "template %s/%s/%s", image, version,
				 e->d_name);
		}
	}
	closedir(d);
}

static void templates_plan(struct gc *g)
{
	char root[PATH_MAX];
	DIR *d, *vd;
	struct dirent *e, *v;

	if (path_join(root, g->state, "templates") || !(d = opendir(root))) {
		if (errno != ENOENT)
			log_warn("image gc: open %s", root);
		return;
	}
	while ((e = readdir(d))) {
		char idir[PATH_MAX];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (path_join(idir, root, e->d_name) || lstat(idir, &st) || !S_ISDIR(st.st_mode) ||
		    !(vd = opendir(idir))) {
			log_warnx("image gc: %s is not a templates folder; left alone", idir);
			continue;
		}
		while ((v = readdir(vd))) {
			char vdir[PATH_MAX];

			if (v->d_name[0] == '.')
				continue;
			if (path_join(vdir, idir, v->d_name) || lstat(vdir, &st) ||
			    !S_ISDIR(st.st_mode) || name_check("image version", v->d_name, NULL)) {
				log_warnx("image gc: %s is not a templates folder; left alone",
					  vdir);
				continue;
			}
			template_version_plan(g, e->d_name, vdir, v->d_name);
		}
		closedir(vd);
	}
	closedir(d);
}

/* Whether an image is backed by a file of the version folder, or by the
 * disk its manifest names elsewhere. -1: the manifest cannot be read. */
static int version_referenced(const struct gc *g, const char *vdir)
{
	char path[PATH_MAX], real[PATH_MAX];
	const char *disk;
	json_t *m = NULL;
	int r;

	if (dir_referenced(g, vdir))
		return 1;
	if (path_join(path, vdir, "manifest.json") || !(m = json_load_file(path, 0, NULL)) ||
	    !json_is_object(m)) {
		json_decref(m);
		return -1;
	}
	disk = json_string_value(json_object_get(m, "disk"));
	r = disk && disk[0] == '/' &&
	    (refs_under(&g->refs, disk) || (realpath(disk, real) && refs_under(&g->refs, real)));
	json_decref(m);
	return r;
}

static void image_versions_plan(struct gc *g, const struct gc_image *img)
{
	char idir[PATH_MAX];
	DIR *d;
	struct dirent *e;

	if (path_join(idir, g->images, img->name) || !(d = opendir(idir))) {
		log_warn("image gc: open %s", idir);
		return;
	}
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		int ref;

		if (!strcmp(e->d_name, "current") ||
		    (e->d_name[0] == '.' && strncmp(e->d_name, GC_HIDDEN, strlen(GC_HIDDEN))))
			continue; /* ".", "..", build.sh's ".current.tmp" */
		if (path_join(path, idir, e->d_name) || lstat(path, &st) || !S_ISDIR(st.st_mode)) {
			log_warnx("image gc: %s/%s is not a version folder; left alone", idir,
				  e->d_name);
			g->plan->kept_versions++;
			continue;
		}
		if (e->d_name[0] == '.') {
			plan_add(g, path, img->name, "", 0, "%s/%s", img->name, e->d_name);
			continue;
		}
		if (name_check("image version", e->d_name, NULL)) {
			log_warnx("image gc: %s is not a version folder; left alone", path);
			g->plan->kept_versions++;
			continue;
		}
		if (!img->current[0] || !img->settled || !strcmp(e->d_name, img->current) ||
		    used(g, img->name, e->d_name) || young(g, st.st_mtime)) {
			g->plan->kept_versions++;
			continue;
		}
		if ((ref = version_referenced(g, path)) < 0)
			log_warnx("image gc: %s/manifest.json cannot be read; left alone", path);
		if (ref)
			g->plan->kept_versions++;
		else
			plan_add(g, path, img->name, e->d_name, 0, "%s/%s", img->name, e->d_name);
	}
	closedir(d);
}

int vm_image_gc_plan(const struct vm_image_gc_config *cfg, struct vm_image_gc_plan *plan,
		     struct err *err)
{
	struct gc g = {.cfg = cfg, .plan = plan};
	char dir[PATH_MAX];
	int r = -1;

	memset(plan, 0, sizeof(*plan));
	if (path_abs(cfg->image_dir, g.images) || path_abs(cfg->state_dir, g.state))
		return err_set(err, 500, "image_gc", "image or state dir path too long");
	images_read(&g);
	/* Templates that stay are backed by golden images too: they count
	 * once it is known which stay. */
	if (path_join(dir, g.state, "desktops") || scan_tree(dir, 0, NULL, &g.refs, err))
		goto out;
	templates_plan(&g);
	if (path_join(dir, g.state, "templates") || scan_tree(dir, 0, plan, &g.refs, err))
		goto out;
	for (size_t i = 0; i < g.n_imgs; i++)
		image_versions_plan(&g, &g.imgs[i]);
	r = 0;
out:
	if (r)
		vm_image_gc_plan_release(plan);
	refs_release(&g.refs);
	free(g.imgs);
	return r;
}

void vm_image_gc_plan_release(struct vm_image_gc_plan *plan)
{
	free(plan->items);
	memset(plan, 0, sizeof(*plan));
}

/* ---- removal ---- */

/* The last look before a folder goes: the image's current names it now
 * (an operator moved the link back), or it is no plain folder. */
static int still_needed(const struct vm_image_gc_config *cfg, const struct vm_image_gc_item *it)
{
	char images[PATH_MAX], idir[PATH_MAX], cur[NAME_MAX_LEN + 1], why[256];
	struct stat st;

	if (lstat(it->path, &st) || !S_ISDIR(st.st_mode))
		return 1;
	if (!it->version[0])
		return 0; /* a removal cut short */
	if (path_abs(cfg->image_dir, images) || path_join(idir, images, it->image))
		return 1;
	return current_read(idir, cur, sizeof(cur), &st, why, sizeof(why)) == 0 &&
	       !strcmp(cur, it->version);
}

size_t vm_image_gc_apply(const struct vm_image_gc_config *cfg, const struct vm_image_gc_plan *plan,
			 int64_t *bytes)
{
	size_t removed = 0;

	for (size_t i = 0; i < plan->n; i++) {
		const struct vm_image_gc_item *it = &plan->items[i];
		const char *base = strrchr(it->path, '/') + 1;
		char hidden[PATH_MAX], parent[PATH_MAX], name[NAME_MAX + 8];
		int r;

		if (still_needed(cfg, it)) {
			log_warnx("image gc: %s is needed again; left alone", it->what);
			continue;
		}
		snprintf(parent, sizeof(parent), "%.*s", (int)(base - 1 - it->path), it->path);
		snprintf(name, sizeof(name), "%s%s",
			 strncmp(base, GC_HIDDEN, strlen(GC_HIDDEN)) ? GC_HIDDEN : "", base);
		if (path_join(hidden, parent, name) ||
		    (strcmp(hidden, it->path) && rename(it->path, hidden))) {
			log_warn("image gc: cannot remove %s", it->path);
			continue;
		}
		if ((r = rm_rf(hidden))) {
			log_warnx("image gc: removing %s: %s (the next sweep goes on)", hidden,
				  strerror(-r));
			continue;
		}
		/* A template's version folder goes with its last template. */
		if (it->is_template)
			rmdir(parent);
		log_info("image gc removed %s (%lld MB)", it->what,
			 (long long)((it->bytes + (1 << 19)) >> 20));
		removed++;
		*bytes += it->bytes;
	}
	return removed;
}
