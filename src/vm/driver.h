/* The VM driver: everything bureaud knows about running desktops as local
 * QEMU processes. It lives on the loop thread; every call that waits on a
 * process or a socket reports through a callback on the loop.
 *
 * A desktop's files are in STATE/desktops/<id>/:
 *   disk.qcow2   linked clone of IMAGE_DIR/<image>/<version>/disk.qcow2
 *   spec.json    what the VM was booted with (image, version, vcpus, ...)
 *   qmp.sock     QMP (unix socket, QEMU is the server)
 *   vnc.sock     the screen (RFB on a unix socket)
 *   agent.sock   virtio-serial port "org.bureau.agent" (src/guest/channel.h)
 *   serial.log   the guest's console
 *   qemu.log     QEMU's own stdout/stderr
 *   qemu.pid     pid of the running QEMU
 *   exit-status  written by the launcher when QEMU ends ("137")
 * QEMU runs detached from bureaud (own session) so VMs outlive it. */
#ifndef BUREAU_DRIVER_H
#define BUREAU_DRIVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/util.h"

struct vm_driver;
struct vm;

struct vm_driver_config {
	const char *state_dir;   /* desktops in STATE/desktops/<id>/ */
	const char *image_dir;   /* golden images in IMAGE_DIR/<name>/<version>/ */
	const char *accel;       /* "auto" (probe), "kvm" or "tcg" */
	const char *qemu_binary; /* NULL: "qemu-system-x86_64" */
	int stop_timeout_ms;     /* graceful powerdown wait before quit; 0: 30000 */
};

/* What a desktop's VM is made of; copied by the driver. */
struct vm_spec {
	char id[ID_MAX];
	char image[32];         /* "desktop" or "tiny" */
	char image_version[64]; /* a version folder name under IMAGE_DIR/<image>/ */
	int vcpus;
	int memory_mb;
	int disk_gb;
};

struct vm_callbacks {
	/* Every JSON object the agent sends on the control stream; a HELLO
	 * arrives as {"type":"hello",...}. msg is borrowed. */
	void (*on_agent_msg)(struct vm *vm, json_t *msg, void *arg);
	/* The VM process is gone. reason is NULL after a stop the driver was
	 * asked for, else says why ("qemu exited with status 137 (killed by
	 * signal 9); serial: <last lines>"). The vm is released after the
	 * callback returns. */
	void (*on_exit)(struct vm *vm, const char *reason, void *arg);
	void *arg;
};

typedef void (*vm_done_cb)(struct vm *vm, struct err *err, void *arg);
typedef void (*vm_status_cb)(int status, struct err *err, void *arg);

int vm_driver_new(uv_loop_t *loop, const struct vm_driver_config *cfg, struct vm_driver **out,
		  struct err *err);
/* Closes connections and frees the driver; running VMs keep running. */
void vm_driver_free(struct vm_driver *d);

/* Decides the accelerator once: the config's choice, or "auto": KVM only if
 * a tiny guest really boots with it within a timeout, else TCG. The answer
 * is remembered in STATE/accel. cb gets "kvm" or "tcg". */
void vm_driver_probe(struct vm_driver *d, void (*cb)(const char *accel, void *arg), void *arg);
const char *vm_driver_accel(struct vm_driver *d);

/* The current version of a golden image (the IMAGE_DIR/<name>/current
 * link). Fills err (status 400 for an unknown image, 503 when not built). */
int vm_image_current(struct vm_driver *d, const char *name, char *version, size_t n,
		     struct err *err);

/* Creates STATE/desktops/<id>/ and the linked clone of the golden image,
 * sized to spec->disk_gb. */
void vm_provision(struct vm_driver *d, const struct vm_spec *spec, vm_status_cb cb, void *arg);

/* Boots a provisioned desktop. cb runs once QEMU is up and its QMP
 * connected (err NULL) or has failed (vm NULL). The vm belongs to the
 * driver until on_exit. */
void vm_boot(struct vm_driver *d, const struct vm_spec *spec, const struct vm_callbacks *cbs,
	     vm_done_cb cb, void *arg);
/* Re-attaches to a VM an earlier bureaud left running (pid file, QMP,
 * agent socket). cb gets vm NULL and err->errnum ESRCH when none runs. */
void vm_attach(struct vm_driver *d, const char *id, const struct vm_callbacks *cbs, vm_done_cb cb,
	       void *arg);

/* Graceful stop: ACPI powerdown, bounded wait, then QMP quit, then
 * SIGKILL. force skips the powerdown. cb once the process is gone; the vm
 * is released after on_exit (reason NULL). */
void vm_stop(struct vm *vm, int force, vm_status_cb cb, void *arg);
/* Ends the VM if one runs and removes STATE/desktops/<id>/. */
void vm_destroy(struct vm_driver *d, const char *id, vm_status_cb cb, void *arg);

/* Whether the desktop's VM ended while nobody watched (its launcher
 * recorded an exit status). Returns 1 and fills reason ("qemu exited with
 * status 137 (killed by signal 9); serial: …") when it did, 0 when there
 * is no record (never booted, or the host went down with it). */
int vm_last_exit(struct vm_driver *d, const char *id, char *reason, size_t n);

/* A PNG of the screen (QMP screendump). png is valid during the callback. */
void vm_screenshot(struct vm *vm,
		   void (*cb)(const uint8_t *png, size_t len, struct err *err, void *arg),
		   void *arg);

/* Sends one JSON object to the agent on the control stream. Returns -1
 * when the agent is not connected. */
int vm_agent_send(struct vm *vm, const json_t *msg);
/* Sends a request (the driver sets its "id") and calls cb with the reply
 * carrying the same "id", or with err on timeout/disconnect. */
void vm_agent_request(struct vm *vm, json_t *msg, int timeout_ms,
		      void (*cb)(json_t *reply, struct err *err, void *arg), void *arg);
int vm_agent_connected(const struct vm *vm);

const char *vm_id(const struct vm *vm);
int vm_pid(const struct vm *vm);
/* The VNC unix socket path (for the console bridges). */
const char *vm_vnc_path(const struct vm *vm);

#endif
