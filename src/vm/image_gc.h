/* The image sweep: golden image versions and warm templates that nothing
 * uses any more are removed. It reads directories and qcow2 headers and
 * removes folders, so everything here blocks: call it on a worker thread.
 *
 * A version IMAGE_DIR/<image>/<version>/ goes when all of these hold:
 *  - the image's `current` is a link to one of its version folders, and
 *    has not moved for the grace period (a build that just landed, or a
 *    desktop created from the version current named a moment ago, is
 *    not raced);
 *  - the version is not the one `current` names;
 *  - no use (a live desktop's row, or a snapshot of one) names it;
 *  - no qcow2 file under STATE/desktops/, nor of a template that stays,
 *    has a file of the folder in its backing chain;
 *  - the folder is older than the grace period (its mtime).
 * A warm template STATE/templates/<image>/<version>/<size>/ goes when its
 * version is not current (and `current` has not moved for the grace
 * period), no template of that version is being built, no live desktop
 * of that version still waits for its disk (it may be provisioned from
 * the template), no qcow2 under STATE/desktops/ has it in its backing
 * chain, and it is older than the grace period.
 * Whatever cannot be read for sure keeps what it might protect: an
 * unreadable qcow2 under STATE keeps everything, a broken `current` every
 * version of its image, an unknown entry itself. Symlinks are never
 * followed out of IMAGE_DIR and never removed. */
#ifndef BUREAU_IMAGE_GC_H
#define BUREAU_IMAGE_GC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

#define VM_QCOW2_BACKING_MAX 1023 /* QEMU's limit on a backing file name */
#define VM_IMAGE_GC_GRACE_S 600	  /* a folder or a moved `current` this young stays */

/* The backing file name of a qcow2 image, as stored in its header (not
 * resolved). Returns 1 with name filled (NUL-terminated), 0 when it has no
 * backing file; -EINVAL when path is not a qcow2 file, -EBADMSG when its
 * header is truncated or inconsistent, -ENAMETOOLONG when the name is
 * longer than VM_QCOW2_BACKING_MAX or than n - 1, -ENOTSUP for an image
 * with an external data file, or -errno from open/read. */
int vm_qcow2_backing(const char *path, char *name, size_t n);

/* Something that needs a version of an image: a live desktop's row or a
 * snapshot of one, from the store. */
struct vm_image_use {
	char desktop_id[ID_MAX];
	char image[32];
	char version[64]; /* "": unknown, so every version of the image stays */
};

/* What a sweep looks at; the caller owns every pointer. */
struct vm_image_gc_config {
	const char *image_dir;
	const char *state_dir;
	const struct vm_image_use *uses;
	size_t n_uses;
	const struct vm_image_use *building; /* templates being built (image, version) */
	size_t n_building;
	int64_t now;	 /* seconds since the epoch */
	int64_t grace_s; /* VM_IMAGE_GC_GRACE_S */
};

struct vm_image_gc_item {
	char path[PATH_MAX]; /* the folder that goes */
	char what[320];	     /* for the log: "tiny/<version>", "template tiny/<version>/<size>" */
	char image[32];
	char version[NAME_MAX_LEN + 1];
	int is_template;
	int64_t bytes; /* its size on disk */
};

struct vm_image_gc_plan {
	struct vm_image_gc_item *items; /* templates first, then versions */
	size_t n;
	int kept_versions;  /* version folders that stay (current ones included) */
	int kept_templates; /* template folders that stay */
};

/* Decides what goes; removes nothing. Returns 0, or -1 with err when a
 * file under STATE/desktops/ or STATE/templates/ cannot be read for sure
 * (plan then empty). Trouble within one image is logged as a warning and
 * keeps what it concerns. Release the plan with vm_image_gc_plan_release. */
int vm_image_gc_plan(const struct vm_image_gc_config *cfg, struct vm_image_gc_plan *plan,
		     struct err *err);
void vm_image_gc_plan_release(struct vm_image_gc_plan *plan);

/* Removes the plan's folders, each first renamed to a hidden ".gc-" name
 * beside it (a version or template folder that exists is complete; a
 * removal cut short is finished by the next sweep). A version whose
 * image's `current` names it by now stays. Logs one line per folder
 * removed ("image gc removed tiny/<version> (41 MB)"). Returns the
 * number of folders removed and adds their bytes to *bytes. */
size_t vm_image_gc_apply(const struct vm_image_gc_config *cfg, const struct vm_image_gc_plan *plan,
			 int64_t *bytes);

#endif
