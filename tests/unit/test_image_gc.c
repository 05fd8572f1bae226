/* The image sweep (vm/image_gc.h): the qcow2 backing file reader on real
 * images made by qemu-img, and what the sweep decides and removes on a
 * made-up IMAGE_DIR and STATE in a temporary folder. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "tap.h"
#include "vm/image_gc.h"

#define HOUR 3600

static char root[] = "/tmp/bureau-gc-XXXXXX";

static char *at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* root/<fmt>, in one of a few rotating buffers: valid for the next
 * seven calls. */
static char *at(const char *fmt, ...)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *out = bufs[next++ % 8];
	int len = snprintf(out, PATH_MAX, "%s/", root);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out + len, PATH_MAX - (size_t)len, fmt, ap);
	va_end(ap);
	return out;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void mkdirs(const char *path)
{
	struct err err = ERR_INIT;

	if (mkdir_p(path, &err))
		fprintf(stderr, "# mkdir %s: %s\n", path, err.msg);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* A qcow2 image at path, backed by backing (NULL: none) as named. */
static int qcow2(const char *path, const char *backing)
{
	if (!backing)
		return sh("qemu-img create -q -f qcow2 '%s' 1M", path);
	return sh("qemu-img create -q -f qcow2 -u -b '%s' -F qcow2 '%s' 1M", backing, path);
}

static void age(const char *path, int64_t seconds)
{
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - seconds;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- the qcow2 reader ---- */

static void patch_u32(const char *path, off_t off, uint32_t v)
{
	unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
	int fd = open(path, O_WRONLY);

	if (fd >= 0) {
		if (pwrite(fd, b, 4, off) != 4)
			fprintf(stderr, "# pwrite %s failed\n", path);
		close(fd);
	}
}

static void test_reader(void)
{
	char name[VM_QCOW2_BACKING_MAX + 1], small[8];
	int r;
	char base[PATH_MAX], over[PATH_MAX];

	snprintf(base, sizeof(base), "%s", at("q/base.qcow2"));
	snprintf(over, sizeof(over), "%s", at("q/over.qcow2"));

	mkdirs(at("q"));
	ok(qcow2(base, NULL) == 0 && qcow2(over, base) == 0, "qemu-img made two images");
	ok(vm_qcow2_backing(base, name, sizeof(name)) == 0, "an image without backing file: 0");
	ok(vm_qcow2_backing(over, name, sizeof(name)) == 1 && !strcmp(name, base),
	   "an overlay: 1 and its backing file's name (%s)", name);

	ok(qcow2(at("q/rel.qcow2"), "base.qcow2") == 0 &&
	       vm_qcow2_backing(at("q/rel.qcow2"), name, sizeof(name)) == 1 &&
	       !strcmp(name, "base.qcow2"),
	   "a relative backing name is given as stored");
	ok(sh("qemu-img create -q -f qcow2 -o compat=0.10 -u -b '%s' -F qcow2 '%s' 1M", base,
	      at("q/v2.qcow2")) == 0 &&
	       vm_qcow2_backing(at("q/v2.qcow2"), name, sizeof(name)) == 1 && !strcmp(name, base),
	   "a version 2 image is read too");

	ok(vm_qcow2_backing(over, small, sizeof(small)) == -ENAMETOOLONG,
	   "a name longer than the caller's buffer: -ENAMETOOLONG");
	sh("cp '%s' '%s'", over, at("q/long.qcow2"));
	patch_u32(at("q/long.qcow2"), 16, VM_QCOW2_BACKING_MAX + 1);
	ok(vm_qcow2_backing(at("q/long.qcow2"), name, sizeof(name)) == -ENAMETOOLONG,
	   "a backing name longer than QEMU allows: -ENAMETOOLONG");
	sh("cp '%s' '%s'", over, at("q/zero.qcow2"));
	patch_u32(at("q/zero.qcow2"), 16, 0);
	ok(vm_qcow2_backing(at("q/zero.qcow2"), name, sizeof(name)) == -EBADMSG,
	   "a backing offset with an empty name: -EBADMSG");

	sh("head -c 40 '%s' > '%s'", over, at("q/short.qcow2"));
	ok(vm_qcow2_backing(at("q/short.qcow2"), name, sizeof(name)) == -EBADMSG,
	   "a header cut short: -EBADMSG");
	sh("head -c 112 '%s' > '%s'", over, at("q/noname.qcow2"));
	r = vm_qcow2_backing(at("q/noname.qcow2"), name, sizeof(name));
	ok(r == -EBADMSG, "a file that ends before its backing name: -EBADMSG (%d)", r);
	write_file(at("q/text.qcow2"), "not an image at all\n");
	ok(vm_qcow2_backing(at("q/text.qcow2"), name, sizeof(name)) == -EINVAL,
	   "a file that is no qcow2: -EINVAL");
	write_file(at("q/empty"), "");
	ok(vm_qcow2_backing(at("q/empty"), name, sizeof(name)) == -EINVAL,
	   "an empty file: -EINVAL");
	ok(vm_qcow2_backing(at("q"), name, sizeof(name)) == -EINVAL, "a folder: -EINVAL");
	ok(vm_qcow2_backing(at("q/missing"), name, sizeof(name)) == -ENOENT,
	   "a missing file: -ENOENT");
	ok(sh("qemu-img create -q -f qcow2 -o data_file='%s' '%s' 1M", at("q/data.raw"),
	      at("q/data.qcow2")) == 0 &&
	       vm_qcow2_backing(at("q/data.qcow2"), name, sizeof(name)) == -ENOTSUP,
	   "an image with an external data file: -ENOTSUP");
}

/* ---- the sweep ---- */

/* IMAGE_DIR/<image>/<version>/ with a manifest and a real golden disk,
 * `hours` old. */
static void version(const char *image, const char *v, int hours)
{
	char text[256];

	mkdirs(at("images/%s/%s", image, v));
	snprintf(text, sizeof(text), "{\"name\": \"%s\", \"version\": \"%s\"}\n", image, v);
	write_file(at("images/%s/%s/manifest.json", image, v), text);
	qcow2(at("images/%s/%s/disk.qcow2", image, v), NULL);
	write_file(at("images/%s/%s/vmlinuz", image, v), "kernel");
	age(at("images/%s/%s", image, v), (int64_t)hours * HOUR);
}

static void current(const char *image, const char *target, int hours)
{
	unlink(at("images/%s/current", image));
	if (symlink(target, at("images/%s/current", image)))
		fprintf(stderr, "# symlink failed\n");
	age(at("images/%s/current", image), (int64_t)hours * HOUR);
}

/* STATE/templates/tiny/<v>/1c-2048m-20g/ as template.c publishes it. */
static void template(const char *v, const char *size)
{
	mkdirs(at("state/templates/tiny/%s/%s", v, size));
	qcow2(at("state/templates/tiny/%s/%s/disk.qcow2", v, size),
	      at("images/tiny/%s/disk.qcow2", v));
	write_file(at("state/templates/tiny/%s/%s/memory", v, size), "memory");
	write_file(at("state/templates/tiny/%s/%s/saved.json", v, size), "{}");
	age(at("state/templates/tiny/%s/%s", v, size), 2 * HOUR);
}

static struct vm_image_use uses[4];
static struct vm_image_use builds[1];

static struct vm_image_gc_config config(size_t n_uses, size_t n_builds)
{
	static char images[PATH_MAX], state[PATH_MAX];
	struct vm_image_gc_config c = {0};

	snprintf(images, sizeof(images), "%s/images", root);
	snprintf(state, sizeof(state), "%s/state", root);
	c.image_dir = images;
	c.state_dir = state;
	c.uses = uses;
	c.n_uses = n_uses;
	c.building = builds;
	c.n_building = n_builds;
	c.now = time(NULL);
	c.grace_s = VM_IMAGE_GC_GRACE_S;
	return c;
}

static void use(int i, const char *id, const char *image, const char *v)
{
	snprintf(uses[i].desktop_id, sizeof(uses[i].desktop_id), "%s", id);
	snprintf(uses[i].image, sizeof(uses[i].image), "%s", image);
	snprintf(uses[i].version, sizeof(uses[i].version), "%s", v);
}

static int planned(const struct vm_image_gc_plan *p, const char *what)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->items[i].what, what))
			return 1;
	return 0;
}

static void plan_print(const struct vm_image_gc_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		printf("#   plan: %s (%lld bytes)\n", p->items[i].what,
		       (long long)p->items[i].bytes);
}

/* The main tree: every reason to keep a version or a template, and what
 * has none. Current is v6. */
static void tree_build(void)
{
	static const char *const old[] = {"v1", "v2", "v3", "v4", "v6", "v7", "v8", "v9", "v10"};

	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++)
		version("tiny", old[i], 2);
	version("tiny", "v5", 0); /* just built */
	current("tiny", "v6", 2);
	/* v3: only a desktop's disk names it (absolute, as provisioning does). */
	mkdirs(at("state/desktops/dsk_chain"));
	qcow2(at("state/desktops/dsk_chain/disk.qcow2"), at("images/tiny/v3/disk.qcow2"));
	write_file(at("state/desktops/dsk_chain/memory"), "a saved machine");
	/* v4: only a snapshot's disk names it, by a relative name. */
	mkdirs(at("state/desktops/dsk_chain/snapshots/snp_1"));
	qcow2(at("state/desktops/dsk_chain/snapshots/snp_1/disk.qcow2"),
	      "../../../../../images/tiny/v4/disk.qcow2");
	/* v7: a desktop made from v7's template (the template stays for it,
	 * and v7 for the template). */
	template("v7", "1c-2048m-20g");
	mkdirs(at("state/desktops/dsk_tpl"));
	qcow2(at("state/desktops/dsk_tpl/disk.qcow2"),
	      at("state/templates/tiny/v7/1c-2048m-20g/disk.qcow2"));
	/* v8: an unused template of an unused version: both go. */
	template("v8", "1c-2048m-20g");
	/* v9: a template build is under way: it stays, and v9 with it. */
	template("v9", "1c-2048m-20g");
	/* v10: a desktop of it waits for its disk: its template stays. */
	template("v10", "1c-2048m-20g");
	/* The current version's template stays. */
	template("v6", "1c-2048m-20g");
	/* What an interrupted removal left; an entry the sweep does not know. */
	mkdirs(at("images/tiny/.gc-v0"));
	write_file(at("images/tiny/.gc-v0/disk.qcow2"), "half removed");
	write_file(at("images/tiny/README"), "notes");
	if (symlink("v1", at("images/tiny/vlink")))
		fprintf(stderr, "# symlink failed\n");
}

static void test_sweep(void)
{
	struct vm_image_gc_plan plan;
	struct vm_image_gc_config c;
	struct err err = ERR_INIT;
	int64_t bytes = 0;
	size_t removed;

	tree_build();
	/* v2: only a row names it. v3's desktop has a row too, left out here
	 * so that its disk alone keeps v3. */
	use(0, "dsk_row", "tiny", "v2");
	use(1, "dsk_waiting", "tiny", "v10"); /* no disk yet */
	snprintf(builds[0].image, sizeof(builds[0].image), "tiny");
	snprintf(builds[0].version, sizeof(builds[0].version), "v9");
	c = config(2, 1);
	ok(vm_image_gc_plan(&c, &plan, &err) == 0, "the sweep makes a plan (%s)", err.msg);
	ok(planned(&plan, "tiny/v1"), "an old version nothing uses goes");
	ok(!planned(&plan, "tiny/v6"), "the current version stays");
	ok(!planned(&plan, "tiny/v2"), "a version a desktop's row names stays");
	ok(!planned(&plan, "tiny/v3"), "a version only a desktop's disk is backed by stays");
	ok(!planned(&plan, "tiny/v4"),
	   "a version only a snapshot's disk is backed by (relative name) stays");
	ok(!planned(&plan, "tiny/v5"), "a version younger than the grace period stays");
	ok(!planned(&plan, "template tiny/v7/1c-2048m-20g") && !planned(&plan, "tiny/v7"),
	   "a template a desktop is backed by stays, and its version");
	ok(planned(&plan, "template tiny/v8/1c-2048m-20g") && planned(&plan, "tiny/v8"),
	   "an unused template of an unused version goes, and the version");
	ok(!planned(&plan, "template tiny/v9/1c-2048m-20g") && !planned(&plan, "tiny/v9"),
	   "a template being built stays, and the version it is backed by");
	ok(!planned(&plan, "template tiny/v10/1c-2048m-20g"),
	   "the template of a desktop still waiting for its disk stays");
	ok(!planned(&plan, "template tiny/v6/1c-2048m-20g"),
	   "the current version's template stays");
	ok(planned(&plan, "tiny/.gc-v0"), "what an interrupted removal left goes");
	ok(!planned(&plan, "tiny/README") && !planned(&plan, "tiny/vlink"),
	   "an unknown file and a symlinked version stay");
	if (!ok(plan.n == 4, "nothing else is planned (%zu items)", plan.n))
		plan_print(&plan);
	ok(plan.n > 0 && plan.items[0].is_template, "templates come before versions");
	for (size_t i = 0; i < plan.n; i++)
		if (!strcmp(plan.items[i].what, "tiny/v1"))
			ok(plan.items[i].bytes > 0, "an item has its size on disk (%lld)",
			   (long long)plan.items[i].bytes);

	removed = vm_image_gc_apply(&c, &plan, &bytes);
	ok(removed == 4 && bytes > 0, "apply removed the four folders (%zu, %lld bytes)", removed,
	   (long long)bytes);
	ok(!exists(at("images/tiny/v1")) && !exists(at("images/tiny/v8")) &&
	       !exists(at("images/tiny/.gc-v0")) && !exists(at("images/tiny/.gc-v1")),
	   "the removed versions are gone, hidden names included");
	ok(!exists(at("state/templates/tiny/v8")), "a template's version folder goes with it");
	ok(exists(at("images/tiny/v2/disk.qcow2")) && exists(at("images/tiny/v3/disk.qcow2")) &&
	       exists(at("images/tiny/v6/disk.qcow2")) && exists(at("images/tiny/v7/disk.qcow2")) &&
	       exists(at("state/templates/tiny/v7/1c-2048m-20g/memory")),
	   "what stays is untouched");
	ok(exists(at("images/tiny/vlink")) && exists(at("images/tiny/README")),
	   "the symlink and the unknown file are still there");
	vm_image_gc_plan_release(&plan);

	ok(vm_image_gc_plan(&c, &plan, &err) == 0 && plan.n == 0,
	   "a second sweep finds nothing more (%zu)", plan.n);
	vm_image_gc_plan_release(&plan);
}

/* The number of items of a fresh plan, or -1. */
static int plan_count(struct vm_image_gc_config *c, struct err *err)
{
	struct vm_image_gc_plan plan;
	int n;

	if (vm_image_gc_plan(c, &plan, err))
		return -1;
	n = (int)plan.n;
	vm_image_gc_plan_release(&plan);
	return n;
}

static void test_keep_all(void)
{
	struct vm_image_gc_config c = config(0, 0);
	struct vm_image_gc_plan plan;
	struct err err = ERR_INIT;
	int64_t bytes = 0;

	sh("rm -rf '%s' '%s'", at("images"), at("state"));
	version("tiny", "a1", 2);
	version("tiny", "a2", 2);
	current("tiny", "a2", 2);
	ok(plan_count(&c, &err) == 1, "the base case: one old unused version goes");

	current("tiny", "missing", 2);
	ok(plan_count(&c, &err) == 0, "a broken current link: nothing goes");
	current("tiny", "../tiny/a2", 2);
	ok(plan_count(&c, &err) == 0, "a current link that leaves its folder: nothing goes");
	unlink(at("images/tiny/current"));
	ok(plan_count(&c, &err) == 0, "no current link: nothing goes");
	current("tiny", "a2", 0);
	ok(plan_count(&c, &err) == 0, "a current link that just moved: nothing goes");
	current("tiny", "a2", 2);

	use(0, "dsk_old", "tiny", "");
	c.n_uses = 1;
	ok(plan_count(&c, &err) == 0, "a desktop that does not say its version: nothing goes");
	c.n_uses = 0;

	mkdirs(at("state/desktops/dsk_bad"));
	write_file(at("state/desktops/dsk_bad/disk.qcow2"), "garbage");
	ok(plan_count(&c, &err) == -1 && strstr(err.msg, "not a qcow2"),
	   "a desktop disk that is no qcow2: no plan (%s)", err.msg);
	unlink(at("state/desktops/dsk_bad/disk.qcow2"));
	qcow2(at("state/desktops/dsk_bad/disk.qcow2"), NULL);
	sh("qemu-img create -q -f qcow2 -u -b 'nbd:127.0.0.1:1' -F raw '%s' 1M",
	   at("state/desktops/dsk_bad/disk.qcow2.tmp"));
	err_clear(&err);
	ok(plan_count(&c, &err) == -1 && strstr(err.msg, "not a path"),
	   "a backing file that is a protocol: no plan (%s)", err.msg);
	unlink(at("state/desktops/dsk_bad/disk.qcow2.tmp"));
	if (symlink("nowhere", at("state/desktops/dsk_bad/disk.qcow2.link")))
		fprintf(stderr, "# symlink failed\n");
	err_clear(&err);
	ok(plan_count(&c, &err) == -1, "a broken symlink under desktops: no plan (%s)", err.msg);
	unlink(at("state/desktops/dsk_bad/disk.qcow2.link"));

	unlink(at("images/tiny/a1/manifest.json"));
	ok(plan_count(&c, &err) == 0, "a version whose manifest cannot be read stays");
	version("tiny", "a1", 2);

	/* The last look: current moved to the planned version meanwhile. */
	ok(vm_image_gc_plan(&c, &plan, &err) == 0 && plan.n == 1, "a1 is planned");
	current("tiny", "a1", 2);
	ok(vm_image_gc_apply(&c, &plan, &bytes) == 0 && exists(at("images/tiny/a1/disk.qcow2")),
	   "a version current names by the time of removal stays");
	vm_image_gc_plan_release(&plan);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(LOG_LEVEL_WARN);
	if (system("qemu-img --version >/dev/null 2>&1")) {
		printf("1..0 # SKIP qemu-img not found\n");
		return 0;
	}
	test_reader();
	test_sweep();
	test_keep_all();
	sh("rm -rf '%s'", root);
	return tap_done();
}
