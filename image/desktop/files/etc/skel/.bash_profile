[ -f ~/.bashrc ] && . ~/.bashrc
# The desktop: autologin on tty1 starts XFCE on :0.
if [ -z "$DISPLAY" ] && [ "$(tty)" = /dev/tty1 ]; then
	exec startx /usr/bin/startxfce4 -- :0 vt1 -keeptty >"$HOME/.xsession-errors" 2>&1
fi
