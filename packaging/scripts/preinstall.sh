#!/bin/sh
# wssignd preinst (deb: install|upgrade [old-version]) / %pre (rpm: $1 = 1
# install, 2 upgrade). Creates the users before the files are unpacked, so
# that /etc/wssignd unpacks as root:wssignd.
set -e

create_users() {
	if command -v systemd-sysusers >/dev/null 2>&1; then
		# The same lines as /usr/lib/sysusers.d/wssignd.conf, which is not
		# unpacked yet; --replace makes them count as that file.
		systemd-sysusers --replace=/usr/lib/sysusers.d/wssignd.conf - <<'SYSUSERS'
u wssignd - "wssignd WS-Security signing daemon" /var/lib/wssignd /usr/sbin/nologin
g wssignd-clients -
SYSUSERS
		return
	fi
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	if ! getent group wssignd >/dev/null; then
		groupadd --system wssignd
	fi
	if ! getent passwd wssignd >/dev/null; then
		useradd --system --gid wssignd --home-dir /var/lib/wssignd --no-create-home \
			--shell "$nologin" --comment "wssignd WS-Security signing daemon" wssignd
	fi
	if ! getent group wssignd-clients >/dev/null; then
		groupadd --system wssignd-clients
	fi
}

case "$1" in
install | upgrade | 1 | 2)
	create_users
	;;
abort-upgrade) ;;
esac
exit 0
