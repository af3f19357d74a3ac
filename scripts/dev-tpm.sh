#!/usr/bin/env bash
# The TPM that `make run TOKEN=tpm` serves from, and the environment tpm2-pkcs11 needs.
#
#   scripts/dev-tpm.sh DIR        start it if it is not running; write DIR/env
#   scripts/dev-tpm.sh DIR stop   stop what this script started
#
# With a host TPM (/dev/tpmrm0, the kernel's resource manager) nothing is started: the TCTI is
# device:/dev/tpmrm0. Without one, a software TPM (swtpm, state in DIR/swtpm) and its resource
# manager (tpm2-abrmd, on a private D-Bus session bus whose socket is DIR/bus) run in the
# background until `make distclean` or `scripts/dev-tpm.sh DIR stop`. DIR/env holds the
# variables to export: TPM2_PKCS11_TCTI, TPM2TOOLS_TCTI, TPM2_PKCS11_STORE (DIR/store) and, for
# the software TPM, DBUS_SESSION_BUS_ADDRESS.
set -euo pipefail

dir=$(realpath -m "${1:?usage: dev-tpm.sh DIR [stop]}")
mkdir -p "$dir/store" "$dir/swtpm"
chmod 700 "$dir"

alive() { [ -s "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

stop() {
	for p in abrmd swtpm dbus; do
		if alive "$p"; then kill "$(cat "$dir/$p.pid")"; fi
		rm -f "$dir/$p.pid"
	done
}

if [ "${2:-}" = stop ]; then
	stop
	exit 0
fi

if [ -c /dev/tpmrm0 ] && [ -z "${WSSIGND_DEV_SWTPM:-}" ]; then
	tcti="device:/dev/tpmrm0"
	cat >"$dir/env" <<EOF
export TPM2_PKCS11_TCTI='$tcti'
export TPM2TOOLS_TCTI='$tcti'
export TPM2_PKCS11_STORE='$dir/store'
EOF
	echo "dev-tpm: using the host TPM ($tcti)"
	exit 0
fi

port=${WSSIGND_DEV_SWTPM_PORT:-2321} # the control channel is port+1 (the swtpm TCTI's rule)
if ! alive swtpm || ! alive abrmd || ! alive dbus; then
	stop
	rm -f "$dir/bus"
	dbus-daemon --session --fork --nopidfile --print-pid=3 --print-address=4 \
		--address="unix:path=$dir/bus" 3>"$dir/dbus.pid" 4>"$dir/bus.address"
	swtpm socket --tpm2 --tpmstate "dir=$dir/swtpm" \
		--server "type=tcp,bindaddr=127.0.0.1,port=$port" \
		--ctrl "type=tcp,bindaddr=127.0.0.1,port=$((port + 1))" \
		--flags not-need-init,startup-clear -d --pid "file=$dir/swtpm.pid" --log "file=$dir/swtpm.log"
	for _ in $(seq 100); do [ -s "$dir/swtpm.pid" ] && break; sleep 0.05; done
	DBUS_SESSION_BUS_ADDRESS=$(head -1 "$dir/bus.address") setsid /usr/sbin/tpm2-abrmd --session --allow-root \
		--tcti="swtpm:host=127.0.0.1,port=$port" >"$dir/abrmd.log" 2>&1 </dev/null &
	echo $! >"$dir/abrmd.pid"
	echo "dev-tpm: software TPM (swtpm, state in $dir/swtpm) with tpm2-abrmd on a private D-Bus bus"
fi
tcti="tabrmd:bus_type=session"
cat >"$dir/env" <<EOF
export DBUS_SESSION_BUS_ADDRESS='$(head -1 "$dir/bus.address")'
export TPM2_PKCS11_TCTI='$tcti'
export TPM2TOOLS_TCTI='$tcti'
export TPM2_PKCS11_STORE='$dir/store'
EOF
# shellcheck source=/dev/null
. "$dir/env"
for _ in $(seq 100); do
	if tpm2_getcap properties-fixed >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.1
done
echo "dev-tpm: the TPM does not answer through tpm2-abrmd; see $dir/abrmd.log and $dir/swtpm.log" >&2
exit 1
