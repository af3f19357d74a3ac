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
need openssl        command -v openssl
# The second, real token: a TPM 2.0 through tpm2-pkcs11, over swtpm in tests
# (tpm2-abrmd is its resource manager, on a private D-Bus bus).
need swtpm          command -v swtpm
need swtpm-tools    command -v swtpm_setup
need tpm2-abrmd     test -x /usr/sbin/tpm2-abrmd
need libtss2-tcti-tabrmd0 test -e /usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0 -o -e /usr/lib/aarch64-linux-gnu/libtss2-tcti-tabrmd.so.0
need tpm2-tools     command -v tpm2_startup
need libtpm2-pkcs11-1 test -e /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so -o -e /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so
need libtpm2-pkcs11-tools command -v tpm2_ptool
need dbus           command -v dbus-daemon
# The SOAP-stack adapters in clients/ and the SOAP service they are tested against.
need python3-zeep   /usr/bin/python3 -c 'import zeep'
need python3-spyne  /usr/bin/python3 -c 'import spyne'
need php-cli        command -v php
need php-soap       php -r 'exit(class_exists("SoapClient") ? 0 : 1);'
need php-curl       php -r 'exit(function_exists("curl_init") ? 0 : 1);'
need php-xml        php -r 'exit(class_exists("DOMDocument") ? 0 : 1);'
need nodejs         command -v node
need npm            command -v npm
# The interop test against Apache WSS4J (wss/wss4j_test.go): a JDK, WSS4J
# with Santuario, and BouncyCastle, where Santuario finds RSA-PSS.
need default-jdk-headless command -v javac
need libwss4j-java  test -e /usr/share/java/wss4j.jar
need libbcprov-java test -e /usr/share/java/bcprov.jar

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
