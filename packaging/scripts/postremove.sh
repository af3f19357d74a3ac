#!/bin/sh
# wssignd postrm (deb: remove | purge | upgrade | failed-upgrade |
# abort-install | abort-upgrade | disappear) / %postun (rpm: $1 = 0 removal,
# 1 upgrade).
#
# deb purge removes the configuration, the state and the users. rpm has no
# purge: following Fedora's packaging guidelines, users are never removed
# there, and rpm itself keeps an edited config as wssignd.toml.rpmsave.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi

case "$1" in
remove | purge | 0)
	# wssignd.socket removed the socket when it stopped (RemoveOnStop=);
	# its directory stays behind until the next boot otherwise.
	rmdir /run/wssignd 2>/dev/null || true
	;;
esac

case "$1" in
purge)
	rm -rf /var/lib/wssignd /etc/wssignd
	# Unit symlinks that `systemctl disable` could not remove (no systemctl).
	rm -f /etc/systemd/system/sockets.target.wants/wssignd.socket \
		/etc/systemd/system/multi-user.target.wants/wssignd.service
	if getent passwd wssignd >/dev/null; then
		userdel wssignd 2>/dev/null || deluser --system --quiet wssignd || true
	fi
	for g in wssignd wssignd-clients; do
		if getent group "$g" >/dev/null; then
			groupdel "$g" 2>/dev/null || delgroup --system --quiet "$g" || true
		fi
	done
	;;
esac
exit 0
