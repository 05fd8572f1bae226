/* Readiness. "boot": the agent runs, which its init system starts once the
 * filesystems are mounted. "desktop" (desktop image): the X server is up and
 * the screen is really drawn. Xorg draws with the fbdev driver straight into
 * /dev/fb0, so the agent reads the framebuffer itself: a text console has
 * at most 16 colours, a drawn XFCE session (wallpaper, panel, anti-aliased
 * text, icons) has many. Windows that are mapped but not yet painted (the
 * panel, for seconds under emulation) show as pure black, which the session
 * otherwise does not use: the screen must also be almost free of it, and
 * unchanged between two checks. A screen that stays drawn and still for
 * READY_SETTLED_CHECKS counts as ready whatever its colours. */
#include "agent/agent.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define READY_CHECK_MS 1000
#define READY_SETTLED_CHECKS 10
#define READY_MAX_BLACK_PERMILLE 5 /* unpainted windows are pure black */
#define READY_MIN_COLOURS 24	   /* a VGA text console has 16 */
#define READY_SAMPLE_STEP 3	   /* every 3rd pixel of every 3rd row */
#define READY_X_SOCKET "/tmp/.X11-unix/X0"
#define READY_FB "/dev/fb0"

static const char *stage;
static int want_desktop;
static int still_checks; /* consecutive identical drawn frames, minus one */
static uint64_t last_hash;
static int64_t next_check;

void ready_init(int desktop)
{
	want_desktop = desktop;
	stage = "boot";
	log_info("event=ready stage=boot");
}

const char *ready_stage(void)
{
	return stage;
}

int ready_pixels_drawn(const uint8_t *px, size_t count, size_t bpp)
{
	uint32_t seen[READY_MIN_COLOURS];
	size_t i, j, nseen = 0;

	for (i = 0; i < count; i++) {
		uint32_t v = 0;

		memcpy(&v, px + i * bpp, bpp > 4 ? 4 : bpp);
		if (bpp == 4)
			v &= 0x00FFFFFF; /* ignore the padding / alpha byte */
		for (j = 0; j < nseen && seen[j] != v; j++)
			;
		if (j < nseen)
			continue;
		seen[nseen++] = v;
		if (nseen == READY_MIN_COLOURS)
			return 1;
	}
	return 0;
}

struct screen {
	int drawn;
	unsigned black_permille;
	uint64_t hash;
};

static void screen_stats(struct screen *sc, const uint8_t *px, size_t n, size_t bpp)
{
	size_t i, black = 0;

	sc->hash = 1469598103934665603ULL;
	for (i = 0; i < n * bpp; i++)
		sc->hash = (sc->hash ^ px[i]) * 1099511628211ULL;
	for (i = 0; i < n; i++) {
		uint32_t v = 0;

		memcpy(&v, px + i * bpp, bpp > 4 ? 4 : bpp);
		if (bpp == 4)
			v &= 0x00FFFFFF;
		black += v == 0;
	}
	sc->black_permille = n ? (unsigned)(black * 1000 / n) : 1000;
	sc->drawn = ready_pixels_drawn(px, n, bpp);
}

/* Samples the visible part of the framebuffer. Returns 0 when read. */
static int screen_sample(struct screen *sc)
{
	struct fb_var_screeninfo var;
	struct fb_fix_screeninfo fix;
	uint8_t *row = NULL, *samples = NULL;
	size_t bpp, n = 0, x, y, w;
	int fd, r = -1;

	fd = open(READY_FB, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ioctl(fd, FBIOGET_VSCREENINFO, &var) || ioctl(fd, FBIOGET_FSCREENINFO, &fix) ||
	    var.bits_per_pixel < 8 || var.bits_per_pixel % 8)
		goto out;
	bpp = var.bits_per_pixel / 8;
	w = (size_t)var.xres * bpp;
	if (w > fix.line_length)
		goto out;
	row = malloc(fix.line_length);
	samples =
	    malloc((var.xres / READY_SAMPLE_STEP + 1) * (var.yres / READY_SAMPLE_STEP + 1) * bpp);
	if (!row || !samples)
		goto out;
	for (y = 0; y < var.yres; y += READY_SAMPLE_STEP) {
		off_t off = (off_t)(y + var.yoffset) * fix.line_length + (off_t)var.xoffset * bpp;

		if (pread(fd, row, w, off) != (ssize_t)w)
			goto out;
		for (x = 0; x < var.xres; x += READY_SAMPLE_STEP)
			memcpy(samples + bpp * n++, row + x * bpp, bpp);
	}
	screen_stats(sc, samples, n, bpp);
	r = 0;
out:
	free(row);
	free(samples);
	close(fd);
	return r;
}

static void ready_announce(const char *s)
{
	json_t *m = json_pack("{s:s, s:s}", "type", "ready", "stage", s);

	stage = s;
	log_info("event=ready stage=%s", s);
	agent_send(agent_session(), m);
	json_decref(m);
}

void ready_poll(struct agent_poll *p)
{
	int64_t now = agent_now_ms();
	struct stat st;

	if (!want_desktop || strcmp(stage, "desktop") == 0)
		return;
	if (now >= next_check) {
		struct screen sc;

		next_check = now + READY_CHECK_MS;
		/* Before X listens, fb0 shows the console. */
		if (stat(READY_X_SOCKET, &st) == 0 && screen_sample(&sc) == 0 && sc.drawn) {
			still_checks = sc.hash == last_hash ? still_checks + 1 : 0;
			last_hash = sc.hash;
			log_debug("event=screen black=%u still=%d", sc.black_permille,
				  still_checks);
			if ((still_checks >= 1 && sc.black_permille <= READY_MAX_BLACK_PERMILLE) ||
			    still_checks >= READY_SETTLED_CHECKS) {
				ready_announce("desktop");
				return;
			}
		} else {
			still_checks = 0;
			last_hash = 0;
		}
	}
	agent_poll_wake(p, next_check);
}
