/* The hourly image sweep (vm/image_gc.h) in bureaud: on a worker thread,
 * with what the store says live desktops and their snapshots use and what
 * the driver is building, golden image versions and warm templates that
 * nothing uses any more are removed. The first sweep runs shortly after
 * startup; it reads the desktops' rows and disks, not the reconciler's
 * memory, so it does not wait for their re-attachment.
 *
 * A sweep knows the desktops of this bureaud only, so it runs by default
 * (--image-gc auto) only when IMAGE_DIR lies inside STATE, as it does
 * unless --image-dir says otherwise: an image folder shared by several
 * bureauds (a development checkout's var/images, used by `make run` and
 * by every test) is swept only with --image-gc on. --image-gc off turns
 * it off. */
#ifndef BUREAU_CORE_IMAGE_GC_H
#define BUREAU_CORE_IMAGE_GC_H

#include "core/app.h"

#define IMAGE_GC_FIRST_MS 10000		   /* startup to the first sweep */
#define IMAGE_GC_INTERVAL_MS (3600 * 1000) /* between sweeps */

/* Starts the sweeps (once the driver and the reconciler run), unless
 * the config says otherwise. */
void image_gc_start(struct app *app);
/* Stops them; a sweep under way finishes on its worker. */
void image_gc_stop(struct app *app);

#endif
