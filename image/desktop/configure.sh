#!/bin/sh
# Runs inside the desktop root filesystem (chroot) after the cached packages
# and image/desktop/files/ are in place.
set -eu
echo bureau >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbureau\n::1\tlocalhost ip6-localhost ip6-loopback\n' >/etc/hosts
id agent >/dev/null 2>&1 ||
	useradd -m -u 1000 -U -s /bin/bash -G sudo,video,audio,input,tty agent
passwd -l agent >/dev/null
chmod 0440 /etc/sudoers.d/agent
# Skip the panel's first-run question: use the distribution's default layout.
if [ -f /etc/xdg/xfce4/panel/default.xml ]; then
	cp /etc/xdg/xfce4/panel/default.xml /etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml
fi
systemctl enable bureau-agent.service bureau-resize-root.service >/dev/null 2>&1
# The network reaches only the egress proxy (issue 6).
systemctl enable systemd-networkd.service >/dev/null 2>&1
systemctl set-default multi-user.target >/dev/null 2>&1
for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
	e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service; do
	systemctl mask "$u" >/dev/null 2>&1 || true
done
# Guests have no network: do not wait for one.
rm -f /etc/machine-id /var/lib/dbus/machine-id
: >/etc/machine-id
