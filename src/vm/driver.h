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
	/* The screen QEMU's VGA offers the guest (its EDID preferred mode);
	 * 0: QEMU's default, 1280x800. */
	int screen_width;
	int screen_height;
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

/* A PNG of the screen (QMP screendump). max_width > 0 asks for one at
 * most that wide (aspect kept, never enlarged), scaled from QEMU's PPM on
 * the thread pool; 0 gives QEMU's own PNG. png is valid during the
 * callback. */
void vm_screenshot(struct vm *vm, int max_width,
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

/* ---- channel streams (src/guest/channel.h) ----
 * A stream carries one exec, file transfer or terminal. The driver keeps
 * its flow control: what the agent sends is bounded by the credit we
 * grant (none while paused), what we send waits in the stream's queue
 * until the agent grants credit. When the agent connection drops every
 * stream ends with on_close(err "agent connection lost …"); nothing is
 * resumed on the next connection. All on the loop thread. */
struct vm_stream;

#define VM_STREAM_HIGH_WATER (1024 * 1024) /* vm_stream_write reports 1 above this */
#define VM_STREAM_LOW_WATER (256 * 1024)   /* on_drain once the queue is back below */

struct vm_stream_callbacks {
	/* The agent accepted the open; info is its "opened" message (a
	 * file's "size", a command's "pid"); borrowed. May be NULL. */
	void (*on_open)(struct vm_stream *s, json_t *info, void *arg);
	/* Bytes from the agent (for "exec": a tag byte, 1 stdout or 2 stderr,
	 * then the output). They count as consumed when the callback returns;
	 * a consumer that cannot keep up calls vm_stream_pause. */
	void (*on_data)(struct vm_stream *s, const uint8_t *data, size_t len, void *arg);
	/* The queue fell below VM_STREAM_LOW_WATER after vm_stream_write
	 * returned 1. May be NULL. */
	void (*on_drain)(struct vm_stream *s, void *arg);
	/* Exactly once, unless vm_stream_close came first: result is the
	 * agent's CLOSE ({"exitCode":0}, {"size":N}, or {"error":…,"errno":…}
	 * when it refused or failed) and err NULL; or result NULL and err
	 * says why the stream ended without one (connection lost: status 502,
	 * code "agent_unavailable"). The stream is freed when it returns. */
	void (*on_close)(struct vm_stream *s, json_t *result, const struct err *err, void *arg);
};

/* Opens a stream: open is the kind's message ({"kind":"file.read",
 * "path":…}); the driver adds "type" and "stream". Returns NULL with err
 * (no callback) when the agent is not connected or has too many streams. */
struct vm_stream *vm_stream_open(struct vm *vm, json_t *open, const struct vm_stream_callbacks *cbs,
				 void *arg, struct err *err);
/* Queues bytes for the agent. Returns 0; 1 when the queue is now over
 * VM_STREAM_HIGH_WATER (stop until on_drain); -1 when the stream ended. */
int vm_stream_write(struct vm_stream *s, const void *data, size_t len);
/* End of our data (stdin closed, upload complete), after what is queued. */
void vm_stream_end(struct vm_stream *s);
size_t vm_stream_pending(const struct vm_stream *s);
/* Stops and restarts granting credit: the agent stops sending soon after. */
void vm_stream_pause(struct vm_stream *s);
void vm_stream_resume(struct vm_stream *s);
/* A terminal's size ("pty" streams). Returns -1 when not sent. */
int vm_stream_resize(struct vm_stream *s, int cols, int rows);
/* Abandons the stream: tells the agent (which kills the command, drops a
 * partial upload) and frees it now; no callback runs after. */
void vm_stream_close(struct vm_stream *s, const char *why);
uint32_t vm_stream_id(const struct vm_stream *s);

const char *vm_id(const struct vm *vm);
int vm_pid(const struct vm *vm);
/* The VNC unix socket path (for the console bridges). */
const char *vm_vnc_path(const struct vm *vm);
/* In on_exit: QEMU's exit status as its launcher recorded it (128 + N:
 * killed by signal N), or -1 when unknown. */
int vm_exit_status(const struct vm *vm);
/* Whether an exit status is QEMU's own crash (SIGSEGV, SIGBUS, SIGABRT,
 * SIGILL, SIGFPE), not a signal sent to it (kill -9, the OOM killer). A
 * boot that ends so fails with err->code "qemu_crashed". */
int vm_exit_crashed(int status);

/* ---- saved machines, warm templates, snapshots ----
 * A desktop folder may hold a saved machine: `memory` (QEMU's migration
 * stream, raw or zstd) and `saved.json` (the disk it belongs to, by size
 * and mtime, and the machine's size). saved.json is written last and
 * removed first; without a valid one the desktop cold-boots. */
struct vm_saved {
	char source[16]; /* hibernation, template, snapshot */
	char format[8];	 /* none, zstd */
	int64_t memory_bytes;
	int64_t saved_at;
};
/* 1 with *out filled when the desktop has a usable saved machine; 0 with
 * why (may be NULL) when not ("the last save did not complete", ...). */
int vm_saved_get(struct vm_driver *d, const char *id, struct vm_saved *out, char *why, size_t n);
/* Removes the desktop's saved machine (before a cold boot of its disk). */
void vm_saved_discard(struct vm_driver *d, const char *id);
/* Memory images written from now on: "none" (raw) or "zstd". */
void vm_driver_set_compress(struct vm_driver *d, const char *how);
/* Free page reporting of the guests' virtio-balloon (on by default). VMs
 * resume only with the setting they were saved with. */
void vm_driver_set_free_page_reporting(struct vm_driver *d, int on);

/* Hibernation: pauses the guest (its disk flushed), saves memory and
 * device state into the desktop folder and ends QEMU. cb(0) once QEMU is
 * gone and the saved machine committed; on failure (-1) the guest runs
 * on, unless QEMU died meanwhile (on_exit then tells). */
void vm_hibernate(struct vm *vm, vm_status_cb cb, void *arg);
/* Boots the desktop from its saved machine: -incoming defer, QMP
 * migrate-incoming, then cont once the saved machine is removed (it is
 * consumed before the guest runs on). cb gets vm NULL when that fails;
 * the disk is untouched and may be cold-booted. */
void vm_resume(struct vm_driver *d, const struct vm_spec *spec, const struct vm_callbacks *cbs,
	       vm_done_cb cb, void *arg);

/* Warm templates, one per image version and machine size, in
 * STATE/templates/<image>/<version>/<vcpus>c-<memory>m-<disk>g/: a
 * read-only disk (an overlay on the golden image) and the memory of the
 * booted, drawn guest. */
enum vm_template_state {
	VM_TEMPLATE_NONE,
	VM_TEMPLATE_BUILDING,
	VM_TEMPLATE_READY,
	VM_TEMPLATE_FAILED
};
enum vm_template_state vm_template_state(struct vm_driver *d, const struct vm_spec *spec);
/* Starts building spec's template unless it is ready or building. The
 * build boots a VM of its own and takes as long as a cold boot. */
void vm_template_build(struct vm_driver *d, const struct vm_spec *spec, int ready_timeout_ms);
/* Every template on disk or building: [{image, version, vcpus, memoryMb,
 * diskGb, state, error?, memoryBytes?, builtAt?, buildMs?}]. */
json_t *vm_templates_json(struct vm_driver *d);
/* Provisions spec->id as an overlay on its ready template, with the
 * template's memory as the desktop's saved machine (source "template"). */
void vm_provision_template(struct vm_driver *d, const struct vm_spec *spec, vm_status_cb cb,
			   void *arg);

/* Snapshots: STATE/desktops/<id>/snapshots/<sid>/ holds a copy of the
 * disk and, for a running or hibernated desktop, a saved machine. cb gets
 * the bytes it takes (or -1 with err) and whether it holds memory. */
typedef void (*vm_size_cb)(int64_t bytes, int with_memory, struct err *err, void *arg);
/* vm: the running desktop's VM (paused for the save, then continued), or
 * NULL for a stopped desktop. */
void vm_snapshot_save(struct vm_driver *d, struct vm *vm, const char *id, const char *sid,
		      vm_size_cb cb, void *arg);
/* The desktop must have no VM: its disk and saved machine are replaced by
 * the snapshot's; its next boot resumes the snapshot (or cold-boots a
 * disk-only one). */
void vm_snapshot_restore(struct vm_driver *d, const char *id, const char *sid, vm_status_cb cb,
			 void *arg);
void vm_snapshot_delete(struct vm_driver *d, const char *id, const char *sid, vm_status_cb cb,
			void *arg);
/* Provisions spec->id (a fork) as a copy of another desktop's snapshot. */
void vm_provision_snapshot(struct vm_driver *d, const struct vm_spec *spec, const char *src_id,
			   const char *sid, vm_status_cb cb, void *arg);

#endif
