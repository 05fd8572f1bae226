/* Small files of a desktop folder (pid, status, logs) and short-lived
 * helper processes (qemu-img). The files are a few bytes to a few KB, so
 * reading them on the loop costs less than a trip to the thread pool. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vm/qemu_priv.h"

#define VM_TAIL_BYTES 8192
#define VM_RUN_MAX_OUTPUT (64 * 1024)

char *vm__path(char *out, const char *dir, const char *name)
{
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		out[0] = '\0'; /* never with the lengths vm_driver_new accepts */
	return out;
}

char *vm__file_read(const char *path, size_t max, size_t *len)
{
	struct buf b = BUF_INIT;
	char chunk[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 && b.len < max)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	if (n < 0 || b.len > max) {
		buf_release(&b);
		errno = n < 0 ? errno : EFBIG;
		return NULL;
	}
	buf_append(&b, "", 0); /* a NUL-terminated "" for an empty file */
	return buf_detach(&b, len);
}

/* Written beside and renamed, so a reader never sees half a file. */
int vm__file_write(const char *path, const char *data, size_t len)
{
	char tmp[PATH_MAX];
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		r = -EIO;
	if (close(fd) && !r)
		r = -errno;
	if (!r && rename(tmp, path))
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

/* Keeps printable text; drops terminal escapes ("\e[0m") and carriage returns. */
static void vm__text_clean(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0x1b) {
			while (i + 1 < len && !((s[i + 1] >= 'A' && s[i + 1] <= 'Z') ||
						(s[i + 1] >= 'a' && s[i + 1] <= 'z')))
				i++;
			i++;
		} else if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) {
			buf_append(out, c == '\t' ? " " : (const char *)&s[i], 1);
		}
	}
}

char *vm__file_tail(const char *path, int lines)
{
	struct buf text = BUF_INIT, out = BUF_INIT;
	char raw[VM_TAIL_BYTES];
	int fd = open(path, O_RDONLY | O_CLOEXEC), nl = 0;
	off_t size;
	ssize_t n = 0;
	size_t i;

	if (fd >= 0) {
		size = lseek(fd, 0, SEEK_END);
		n = pread(fd, raw, sizeof(raw),
			  size > (off_t)sizeof(raw) ? size - (off_t)sizeof(raw) : 0);
		close(fd);
	}
	vm__text_clean(&text, raw, n > 0 ? (size_t)n : 0);
	while (text.len && text.data[text.len - 1] == '\n')
		text.data[--text.len] = '\0';
	for (i = text.len; i > 0 && nl < lines; i--)
		if (text.data[i - 1] == '\n' && ++nl == lines)
			break;
	for (size_t j = i; j < text.len; j++) {
		if (text.data[j] == '\n') {
			if (out.len)
				buf_puts(&out, " | ");
		} else {
			buf_append(&out, &text.data[j], 1);
		}
	}
	buf_release(&text);
	buf_append(&out, "", 0);
	return buf_detach(&out, NULL);
}

int vm__pid_read(const char *dir)
{
	char path[PATH_MAX], *s;
	long pid;

	vm__path(path, dir, "qemu.pid");
	if (!(s = vm__file_read(path, 64, NULL)))
		return 0;
	pid = strtol(s, NULL, 10);
	free(s);
	return pid > 1 && pid < INT_MAX ? (int)pid : 0;
}

int vm__pid_alive(int pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* A pid file can outlive its process and the pid be reused: only trust a
 * QEMU whose command line names this desktop (-name <id>). */
int vm__pid_is_qemu_of(int pid, const char *id)
{
	char path[64], *cmd;
	size_t len, idlen = strlen(id);
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if (!(cmd = vm__file_read(path, 1 << 20, &len)))
		return 0;
	for (size_t i = 0; i + 6 + idlen < len && !found; i += strlen(cmd + i) + 1)
		found = !strcmp(cmd + i, "-name") && !strcmp(cmd + i + 6, id);
	free(cmd);
	return found;
}

/* ---- a helper process with its stderr collected ---- */

struct vm_run {
	uv_process_t proc;
	uv_pipe_t err;
	struct buf out;
	int handles, exited, eof;
	int status;
	vm_run_cb cb;
	void *arg;
};

static void vm__run_closed(uv_handle_t *h)
{
	struct vm_run *r = h->data;

	if (--r->handles)
		return;
	buf_release(&r->out);
	free(r);
}

static void vm__run_maybe_done(struct vm_run *r)
{
	if (!r->exited || !r->eof)
		return;
	r->cb(r->status, r->out.data ? r->out.data : "", r->arg);
	uv_close((uv_handle_t *)&r->proc, vm__run_closed);
	uv_close((uv_handle_t *)&r->err, vm__run_closed);
}

static void vm__run_exited(uv_process_t *p, int64_t status, int sig)
{
	struct vm_run *r = p->data;

	r->exited = 1;
	r->status = sig ? 128 + sig : (int)status;
	vm__run_maybe_done(r);
}

static void vm__run_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	static char chunk[4096];

	*b = uv_buf_init(chunk, sizeof(chunk));
}

static void vm__run_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct vm_run *r = s->data;

	if (n < 0) {
		r->eof = 1;
		uv_read_stop(s);
		vm__run_maybe_done(r);
	} else if (r->out.len + (size_t)n <= VM_RUN_MAX_OUTPUT) {
		buf_append(&r->out, b->base, (size_t)n);
	}
}

int vm__run(uv_loop_t *loop, char *const argv[], const char *cwd, vm_run_cb cb, void *arg,
	    struct err *err)
{
	struct vm_run *r = xcalloc(1, sizeof(*r));
	uv_stdio_container_t stdio[3] = {{UV_IGNORE}, {UV_IGNORE}, {UV_IGNORE}};
	uv_process_options_t o = {0};
	int rc;

	r->cb = cb;
	r->arg = arg;
	uv_pipe_init(loop, &r->err, 0);
	r->proc.data = r->err.data = r;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&r->err;
	o.file = argv[0];
	o.args = (char **)argv;
	o.cwd = cwd;
	o.stdio = stdio;
	o.stdio_count = 3;
	o.exit_cb = vm__run_exited;
	if ((rc = uv_spawn(loop, &r->proc, &o)) < 0) {
		r->handles = 2; /* libuv wants a failed process handle closed too */
		uv_close((uv_handle_t *)&r->proc, vm__run_closed);
		uv_close((uv_handle_t *)&r->err, vm__run_closed);
		return err_set(err, 500, "internal", "run %s: %s", argv[0], uv_strerror(rc));
	}
	r->handles = 2;
	uv_read_start((uv_stream_t *)&r->err, vm__run_alloc, vm__run_read);
	return 0;
}
