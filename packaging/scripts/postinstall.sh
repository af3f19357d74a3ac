#!/bin/sh
# wssignd postinst (deb: configure [old-version] | abort-*) / %post (rpm:
# $1 = 1 install, 2 upgrade).
set -e

first_install=no
upgrade=no
case "$1" in
configure)
	if [ -z "$2" ]; then first_install=yes; else upgrade=yes; fi
	;;
1) first_install=yes ;;
2) upgrade=yes ;;
abort-upgrade | abort-remove | abort-deconfigure) upgrade=yes ;;
*) exit 0 ;;
esac

# Users again (the sysusers.d file is in place now), then the directories:
# the file modes in the package are kept, the group is set here in case the
# users were made only now (dpkg and rpm fall back to root then).
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers /usr/lib/sysusers.d/wssignd.conf
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/wssignd.conf || true
else
	install -d -m 0700 -o wssignd -g wssignd /var/lib/wssignd
fi
chown root:wssignd /etc/wssignd
chmod 0750 /etc/wssignd
if [ -f /etc/wssignd/wssignd.toml ]; then
	chown root:wssignd /etc/wssignd/wssignd.toml
	chmod 0640 /etc/wssignd/wssignd.toml
fi

systemd_running() { [ -d /run/systemd/system ]; }

if systemd_running; then
	systemctl daemon-reload || true
fi
if [ "$first_install" = yes ]; then
	# Enabling only writes symlinks: it works without a running systemd
	# (chroot, image build) too.
	systemctl enable wssignd.socket >/dev/null 2>&1 || true
	if systemd_running; then
		systemctl start wssignd.socket || true
	fi
elif [ "$upgrade" = yes ] && systemd_running; then
	# A running daemon gets the new binary; a stopped one stays stopped.
	systemctl try-restart wssignd.service || true
fi
exit 0
