/* Golden images: IMAGE_DIR/<name>/<version>/{disk.qcow2, vmlinuz,
 * initrd.img, manifest.json} and IMAGE_DIR/<name>/current -> <version>. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "vm/qemu_priv.h"

#define VM_MANIFEST_MAX (64 * 1024)

/* The images bureau builds; another name is accepted only when an operator
 * has put a folder for it in IMAGE_DIR. */
static const char *const vm_images_known[] = {"desktop", "tiny", NULL};

static int vm__image_name_check(struct vm_driver *d, const char *name, struct err *err)
{
	char path[PATH_MAX];
	struct stat st;

	if (name_check("image", name, err))
		return -1;
	for (const char *const *k = vm_images_known; *k; k++)
		if (!strcmp(*k, name))
			return 0;
	snprintf(path, sizeof(path), "%s/%s", d->image_dir, name);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return err_set(err, 400, "invalid_request", "unknown image %s", name);
}

int vm_image_current(struct vm_driver *d, const char *name, char *version, size_t n,
		     struct err *err)
{
	char link[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t len;

	if (vm__image_name_check(d, name, err))
		return -1;
	snprintf(link, sizeof(link), "%s/%s/current", d->image_dir, name);
	len = readlink(link, target, sizeof(target) - 1);
	if (len < 0)
		return err_set(err, 503, "image_missing", "image %s is not built (no %s)", name,
			       link);
	target[len] = '\0';
	while (len > 1 && target[len - 1] == '/')
		target[--len] = '\0';
	base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	if (name_check("image version", base, NULL) || strlen(base) >= n)
		return err_set(err, 503, "image_missing", "image %s: bad current link %s", name,
			       target);
	snprintf(version, n, "%s", base);
	return 0;
}

/* The version folder of an image; an empty version means the current one. */
int vm__image_version_dir(struct vm_driver *d, const char *name, const char *version, char *out,
			  size_t n, struct err *err)
{
	char cur[64];
	struct stat st;

	if (!version || !*version) {
		if (vm_image_current(d, name, cur, sizeof(cur), err))
			return -1;
		version = cur;
	} else if (vm__image_name_check(d, name, err) ||
		   name_check("image version", version, err)) {
		return -1;
	}
	snprintf(out, n, "%s/%s/%s", d->image_dir, name, version);
	if (stat(out, &st) || !S_ISDIR(st.st_mode))
		return err_set(err, 503, "image_missing", "image %s version %s is not built", name,
			       version);
	return 0;
}

/* A manifest path is relative to the version folder unless absolute. */
static int vm__manifest_path(json_t *j, const char *key, const char *def, const char *dir,
			     char *out, size_t n, struct err *err)
{
	const char *v = json_string_value(json_object_get(j, key));

	if (!v)
		v = def;
	if (!v)
		return err_set(err, 503, "image_missing", "%s/manifest.json has no \"%s\"", dir,
			       key);
	if (v[0] == '/')
		snprintf(out, n, "%s", v);
	else
		snprintf(out, n, "%s/%s", dir, v);
	if (access(out, R_OK))
		return err_set(err, 503, "image_missing", "image file %s: %s", out,
			       strerror(errno));
	return 0;
}

int vm__manifest_read(const char *version_dir, struct vm_manifest *m, struct err *err)
{
	char path[PATH_MAX];
	json_error_t jerr;
	json_t *j;
	const char *cmdline;
	int r = -1;

	vm__path(path, version_dir, "manifest.json");
	if (!(j = json_load_file(path, 0, &jerr)) || !json_is_object(j)) {
		json_decref(j);
		return err_set(err, 503, "image_missing", "%s: %s", path, jerr.text);
	}
	cmdline = json_string_value(json_object_get(j, "cmdline"));
	snprintf(m->cmdline, sizeof(m->cmdline), "%s", cmdline ? cmdline : "console=ttyS0");
	if (!vm__manifest_path(j, "kernel", "vmlinuz", version_dir, m->kernel, sizeof(m->kernel),
			       err) &&
	    !vm__manifest_path(j, "initrd", "initrd.img", version_dir, m->initrd, sizeof(m->initrd),
			       err) &&
	    !vm__manifest_path(j, "disk", "disk.qcow2", version_dir, m->disk, sizeof(m->disk), err))
		r = 0;
	json_decref(j);
	return r;
}
