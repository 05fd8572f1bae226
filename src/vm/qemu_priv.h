/* Private to src/vm/: the driver's and the vm's insides, shared by qemu.c
 * (lifecycle), agent.c (the control channel), probe.c (accelerator),
 * image.c (golden images) and files.c (small files and child processes). */
#ifndef BUREAU_QEMU_PRIV_H
#define BUREAU_QEMU_PRIV_H

#include <limits.h>
#include <stdint.h>
#include <sys/un.h>

#include "common/buf.h"
#include "guest/channel.h"
#include "vm/driver.h"
#include "vm/qmp.h"

#define VM_DIR_MAX (PATH_MAX - 256) /* state and image dirs; room for names */
#define VM_SOCK_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path))
#define VM_BOOT_TIMEOUT_MS 30000    /* launch to QMP handshake */
#define VM_WATCH_MS 2000	    /* liveness check of a running QEMU */
#define VM_STOP_WATCH_MS 200	    /* the same while a stop is under way */
#define VM_QUIT_GRACE_MS 3000	    /* QMP quit, then SIGKILL after this */
#define VM_EXIT_STATUS_WAIT_MS 2000 /* for the launcher to write exit-status */
#define VM_SERIAL_TAIL_LINES 10
#define VM_AGENT_BACKOFF_MIN_MS 100
#define VM_AGENT_BACKOFF_MAX_MS 2000
#define VM_AGENT_MAX_QUEUE (4 * 1024 * 1024) /* unsent bytes before sends fail */
#define VM_STREAM_PIPE_HIGH (1024 * 1024) /* unsent bytes before stream DATA waits */
#define VM_SCREENSHOT_TIMEOUT_MS 10000
#define VM_SCREENSHOT_MAX (64 * 1024 * 1024)

enum vm_state { VM_BOOTING, VM_RUNNING, VM_EXITING, VM_GONE };
enum vm_agent_state { AG_IDLE, AG_CONNECTING, AG_OPEN, AG_CLOSING };

struct vm_launcher;
struct vm_probe;
struct vm_save;
struct vm_template;

struct vm_agent_req {
	struct vm_agent_req *next;
	long long id;
	uint64_t deadline;
	struct err fail; /* set: deliver this failure when the timer fires */
	void (*cb)(json_t *reply, struct err *err, void *arg);
	void *arg;
};

struct vm_waiter {
	struct vm_waiter *next;
	vm_status_cb cb;
	void *arg;
};

struct vm_driver {
	uv_loop_t *loop;
	char *state_dir, *image_dir, *qemu;
	char accel_cfg[8];
	char accel[8]; /* "kvm" or "tcg" once decided */
	int stop_timeout_ms;
	struct vm *vms;
	struct vm_launcher *launchers;
	struct vm_probe *probe;
	struct vm_template *templates; /* template.c: builds known this run */
	char save_compress[8];	       /* "none" or "zstd": memory images written */
	int no_free_page_reporting;    /* the balloon's free page reporting off */
	int refs; /* vms, launchers and a probe that still point here */
	int freeing;
};

struct vm {
	struct vm *next;
	struct vm_driver *d;
	struct vm_spec spec;
	char dir[PATH_MAX];
	int dirfd; /* O_PATH, for socket paths when dir is too long */
	char qmp_path[VM_SOCK_MAX], agent_path[VM_SOCK_MAX], vnc_path[VM_SOCK_MAX];
	struct vm_callbacks cbs;
	enum vm_state state;
	int pid;
	int attaching;
	struct vm_launcher *launcher;
	int launcher_done;
	struct qmp *qmp;
	uint64_t deadline;
	vm_done_cb done_cb;
	void *done_arg;

	int stop_requested, stop_phase, guest_shutdown;
	int exit_status; /* the launcher's record once QEMU ended, -1 unknown */
	struct vm_waiter *waiters;
	uint64_t exit_since;

	enum vm_agent_state agent_state;
	uv_pipe_t agent;
	uv_connect_t agent_connect;
	struct ch_decoder dec;
	int agent_hello, hello_sent, agent_backoff_ms;
	char agent_chunk[16384];
	struct vm_agent_req *reqs;
	long long next_req_id;
	struct ch_session streams; /* agent.c: channel streams of the session */

	uv_timer_t tick, stop_timer, agent_timer, req_timer;
	int handles;

	/* save.c: a memory image being written or read */
	uv_timer_t save_timer;
	struct vm_save *save;  /* a save under way */
	int incoming;	       /* booted with -incoming defer: restore first */
	uint64_t save_deadline;
};

/* qemu.c */
void vm__handle_closed(uv_handle_t *h);
void vm__driver_unref(struct vm_driver *d);
void vm__boot_dir(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
		  const char *accel, const struct vm_callbacks *cbs, vm_done_cb cb, void *arg);
void vm__provision_dir(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
		       vm_status_cb cb, void *arg);
void vm__rm_async(uv_loop_t *loop, const char *dir, vm_status_cb cb, void *arg);
/* Runs fn(arg) on the next loop turn: callbacks never run inside the call
 * that asked for them. */
void vm__later(uv_loop_t *loop, void (*fn)(void *arg), void *arg);
void vm__status_later(uv_loop_t *loop, vm_status_cb cb, int status, const struct err *err,
		      void *arg);

/* Boots with -incoming defer -S: vm__booted hands over to save.c, which
 * loads the desktop folder's saved machine, removes it and continues the
 * guest before cb sees the vm. */
void vm__boot_dir_incoming(struct vm_driver *d, const char *dir, const struct vm_spec *spec,
			   const char *accel, const struct vm_callbacks *cbs, vm_done_cb cb,
			   void *arg);
struct vm *vm__find(struct vm_driver *d, const char *id);
void vm__later_ms(uv_loop_t *loop, uint64_t ms, void (*fn)(void *arg), void *arg);
int vm__spec_check(const struct vm_spec *s, struct err *err);
/* Kills what was booted, releases the vm, and fails its boot callback. */
void vm__boot_fail(struct vm *vm, struct err *err);

/* save.c */
#define VM_SAVE_TIMEOUT_MS 300000     /* stop to image on disk */
#define VM_RESTORE_TIMEOUT_MS 300000  /* migrate-incoming to paused guest */
#define VM_SAVE_POLL_MS 50
#define VM_SAVE_BANDWIDTH 107374182400LL /* the default cap makes saves slow */
/* Called by qemu.c once QMP answers on a VM booted with vm->incoming. */
void vm__incoming_start(struct vm *vm);
/* The VM ended: a save or restore under way fails with why. */
void vm__save_abort(struct vm *vm, const char *why);
/* Writes dir/saved.json for the memory image dir/memory just committed:
 * the commit point of a saved machine. */
int vm__saved_commit(const char *dir, const char *source, const struct vm_spec *spec,
		     const char *format, struct err *err);

/* Hibernation's save for a template VM: memory next to its disk, QEMU ended. */
void vm__save_template(struct vm *vm, vm_status_cb cb, void *arg);
/* Provisions spec as an overlay on src/disk.qcow2 with src's memory as its
 * saved machine (a template). */
void vm__provision_saved(struct vm_driver *d, const struct vm_spec *spec, const char *src,
			 vm_status_cb cb, void *arg);

/* template.c */
void vm__templates_free(struct vm_driver *d);

/* probe.c */
void vm__probe_abort(struct vm_probe *p);

/* agent.c */
void vm__agent_start(struct vm *vm);
void vm__agent_port_changed(struct vm *vm, int open);
void vm__agent_fail_all(struct vm *vm, const char *why);
void vm__agent_release(struct vm *vm);

/* image.c */
struct vm_manifest {
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];
	char disk[PATH_MAX];
	char cmdline[2048];
};
int vm__image_version_dir(struct vm_driver *d, const char *name, const char *version, char *out,
			  size_t n, struct err *err);
int vm__manifest_read(const char *version_dir, struct vm_manifest *m, struct err *err);

/* files.c */
/* dir/name into out (PATH_MAX bytes); returns out. */
char *vm__path(char *out, const char *dir, const char *name);
char *vm__file_read(const char *path, size_t max, size_t *len);
int vm__file_write(const char *path, const char *data, size_t len);
/* The last `lines` lines of a text file on one line, joined with " | ",
 * control characters dropped. "" when the file is missing. */
char *vm__file_tail(const char *path, int lines);
int vm__pid_read(const char *dir);
int vm__pid_is_qemu_of(int pid, const char *id);
int vm__pid_alive(int pid);

typedef void (*vm_run_cb)(int status, const char *output, void *arg);
/* Runs argv in cwd; cb gets the exit status (128+signal when killed) and
 * what it wrote on stderr. */
int vm__run(uv_loop_t *loop, char *const argv[], const char *cwd, vm_run_cb cb, void *arg,
	    struct err *err);

#endif
