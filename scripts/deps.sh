#!/usr/bin/env bash
# Installs, through apt-get, the tools that make run and make test need, when
# they are missing. As root it installs them; otherwise it prints the exact
# command to run and fails.
set -euo pipefail

missing=()
need() { # need PACKAGE CHECK-COMMAND...
	local pkg=$1; shift
	"$@" >/dev/null 2>&1 || missing+=("$pkg")
}
need softhsm2       command -v softhsm2-util
need opensc         command -v pkcs11-tool
need xmlsec1        command -v xmlsec1
need libxml2-utils  command -v xmllint
need python3-lxml   /usr/bin/python3 -c 'import lxml.etree'
need p11-kit        command -v p11-kit
need p11-kit-modules test -e /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so -o -e /usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so
need gcc            command -v gcc
need make           command -v make
need curl           command -v curl
need rpm            command -v rpm
need systemd        command -v systemd-socket-activate
need systemd-container command -v systemd-nspawn
need binutils       command -v objdump

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "wssignd needs: ${missing[*]}" >&2
	echo "run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
