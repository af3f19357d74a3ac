#!/bin/sh
# wssignd prerm (deb: remove | upgrade new-version | deconfigure |
# failed-upgrade) / %preun (rpm: $1 = 0 removal, 1 upgrade). Stops and
# disables the units only when the package goes away, never on upgrade.
set -e

case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop wssignd.socket wssignd.service || true
	fi
	systemctl disable wssignd.socket wssignd.service >/dev/null 2>&1 || true
	;;
esac
exit 0
