/* The ACPI power button (QMP system_powerdown) as seen by the kernel: an
 * input device that reports KEY_POWER. On a press the agent runs poweroff,
 * which on the tiny image asks busybox init to run /etc/init.d/rcK (stop
 * processes, unmount /data) and power off. */
#include "agent/agent.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define POWER_MAX_DEVS 8
#define POWER_RESCAN_MS 5000

static int enabled;
static int fds[POWER_MAX_DEVS];
static int nfds;
static int64_t next_scan;
static int powering_off;

#define BITS_PER_LONG (sizeof(unsigned long) * 8)
#define TEST_BIT(bit, arr) ((arr[(bit) / BITS_PER_LONG] >> ((bit) % BITS_PER_LONG)) & 1UL)

static int has_power_key(int fd)
{
	unsigned long keys[KEY_MAX / (sizeof(unsigned long) * 8) + 1];

	memset(keys, 0, sizeof(keys));
	if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys) < 0)
		return 0;
	return TEST_BIT(KEY_POWER, keys);
}

static void power_scan(void)
{
	DIR *d = opendir("/dev/input");
	struct dirent *e;
	char path[300];

	if (!d)
		return;
	while (nfds < POWER_MAX_DEVS && (e = readdir(d))) {
		int fd;

		if (strncmp(e->d_name, "event", 5))
			continue;
		snprintf(path, sizeof(path), "/dev/input/%s", e->d_name);
		fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!has_power_key(fd)) {
			close(fd);
			continue;
		}
		fds[nfds++] = fd;
		log_info("event=power-button device=%s", path);
	}
	closedir(d);
}

void power_init(void)
{
	enabled = 1;
	power_scan();
	next_scan = agent_now_ms() + POWER_RESCAN_MS;
}

static void power_off(void)
{
	pid_t pid;

	if (powering_off++)
		return;
	log_info("event=power-button action=poweroff");
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/sbin/poweroff", "poweroff", (char *)NULL);
		execlp("poweroff", "poweroff", (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		log_warn("fork poweroff");
		powering_off = 0;
	}
}

static void power_cb(void *obj, int fd, short revents)
{
	struct input_event ev[16];
	ssize_t n;
	size_t i;
	int k;

	n = read(fd, ev, sizeof(ev));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The device went away: forget it, a rescan may find it. */
		for (k = 0; k < nfds; k++)
			if (fds[k] == fd) {
				fds[k] = fds[--nfds];
				break;
			}
		close(fd);
		return;
	}
	for (i = 0; i < (size_t)n / sizeof(ev[0]); i++)
		if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
			power_off();
}

void power_poll(struct agent_poll *p)
{
	int i;

	if (!enabled)
		return;
	if (!nfds) {
		int64_t now = agent_now_ms();

		if (now >= next_scan) {
			power_scan();
			next_scan = now + POWER_RESCAN_MS;
		}
		if (!nfds)
			agent_poll_wake(p, next_scan);
	}
	for (i = 0; i < nfds; i++)
		agent_poll_add(p, fds[i], POLLIN, power_cb, NULL);
}
