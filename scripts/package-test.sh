#!/usr/bin/env bash
# Builds the wssignd .deb and .rpm (make deb rpm) and tests them by installing
# them on this machine, as root: files, owners and modes, users and groups,
# the shipped config as checked by the daemon itself, conffile handling on
# reinstall, the units as systemd-analyze sees them once installed, removal
# and purge. The .rpm is installed with rpm --nodeps too (rpm's own database,
# beside dpkg's), which runs the maintainer scripts with rpm's arguments.
#
# It refuses to run where wssignd is installed or its users exist: it would
# purge them. Usage: scripts/package-test.sh   (make test-package)
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
pass=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
quiet() { "$@" >/dev/null; }
die() {
	echo "package-test: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs and purges the package)"
for tool in dpkg dpkg-deb rpm systemd-analyze getent runuser objdump nsenter; do
	command -v "$tool" >/dev/null || die "$tool not found: apt-get install -y dpkg rpm systemd util-linux binutils"
done
if dpkg-query -W -f='${Status}' wssignd 2>/dev/null | grep -q 'installed'; then
	die "the wssignd .deb is installed here; not touching it"
fi
if rpm -q wssignd >/dev/null 2>&1; then
	die "the wssignd .rpm is installed here; not touching it"
fi
for name in wssignd wssignd-clients; do
	if getent passwd "$name" >/dev/null || getent group "$name" >/dev/null; then
		die "user or group $name exists already; not touching it"
	fi
done

rm -f dist/wssignd_*.deb dist/wssignd-*.rpm
make --no-print-directory deb rpm
deb=$(ls dist/wssignd_*.deb)
rpmfile=$(ls dist/wssignd-*.rpm)

cleanup() {
	dpkg --purge wssignd >/dev/null 2>&1 || true
	rpm -e --nodeps wssignd >/dev/null 2>&1 || true
	userdel wssignd >/dev/null 2>&1 || true
	groupdel wssignd >/dev/null 2>&1 || true
	groupdel wssignd-clients >/dev/null 2>&1 || true
	rm -rf /etc/wssignd /var/lib/wssignd
}
trap cleanup EXIT

# stat_is PATH OWNER:GROUP MODE
stat_is() {
	local got
	got=$(stat -c '%U:%G %a' "$1" 2>&1) || {
		echo "     $1: $got"
		return 1
	}
	[ "$got" = "$2 $3" ] || {
		echo "     $1: $got, want $2 $3"
		return 1
	}
}

# The layout both packages must install: path owner:group mode.
layout=(
	"/usr/bin/wssignd root:root 755"
	"/usr/lib/systemd/system/wssignd.service root:root 644"
	"/usr/lib/systemd/system/wssignd.socket root:root 644"
	"/usr/lib/sysusers.d/wssignd.conf root:root 644"
	"/usr/lib/tmpfiles.d/wssignd.conf root:root 644"
	"/etc/wssignd root:wssignd 750"
	"/etc/wssignd/wssignd.toml root:wssignd 640"
	"/var/lib/wssignd wssignd:wssignd 700"
	"/usr/share/doc/wssignd/README.md root:root 644"
	"/usr/share/doc/wssignd/examples/pcscd-smartcard.conf root:root 644"
	"/usr/share/doc/wssignd/examples/60-wssignd-pcscd.rules root:root 644"
	"/usr/share/doc/wssignd/examples/network-hsm.conf root:root 644"
	"/usr/share/doc/wssignd/examples/usb-hsm.conf root:root 644"
	"/usr/share/doc/wssignd/examples/softhsm2.conf root:root 644"
)

check_installed() { # check_installed LABEL
	local l
	for l in "${layout[@]}"; do
		set -- $l
		check "$label: $1 is $2 $3" stat_is "$1" "$2" "$3"
	done
	local pw
	pw=$(getent passwd wssignd || true)
	check "$label: user wssignd exists" test -n "$pw"
	check "$label: wssignd is a system user with no login shell and home /var/lib/wssignd" \
		bash -c '[[ $(echo "$0" | cut -d: -f3) -lt 1000 && $0 == *:/var/lib/wssignd:*nologin ]]' "$pw"
	check "$label: group wssignd exists" quiet getent group wssignd
	check "$label: group wssignd-clients exists" quiet getent group wssignd-clients
	check "$label: wssignd.socket is enabled (systemctl is-enabled, and the sockets.target.wants link)" bash -c \
		'[ "$(systemctl is-enabled wssignd.socket)" = enabled ] && [ "$(readlink -f /etc/systemd/system/sockets.target.wants/wssignd.socket)" = "$(readlink -f /usr/lib/systemd/system/wssignd.socket)" ]'

	# The shipped config passes -check-config when the service user reads it
	# through its group (pin_credential is checked when the token opens).
	local out
	out=$(runuser -u wssignd -- /usr/bin/wssignd -check-config -config /etc/wssignd/wssignd.toml 2>&1) && rc=0 || rc=$?
	echo "     wssignd -check-config (as wssignd): $out"
	check "$label: shipped config passes wssignd -check-config as user wssignd" test "$rc" -eq 0
	out=$(runuser -u nobody -- /usr/bin/wssignd -check-config -config /etc/wssignd/wssignd.toml 2>&1) && rc=0 || rc=$?
	check "$label: user nobody cannot read /etc/wssignd (exit 78: $out)" test "$rc" -eq 78

	# The installed units, with the real binary in place.
	out=$(systemd-analyze verify /usr/lib/systemd/system/wssignd.socket /usr/lib/systemd/system/wssignd.service 2>&1) && rc=0 || rc=$?
	local unexpected
	unexpected=$(echo "$out" | grep -v "Unknown key 'ImportCredential'" | grep -v '^$' || true)
	check "$label: systemd-analyze verify on the installed units (rc $rc${unexpected:+: $unexpected})" \
		test "$rc" -eq 0 -a -z "$unexpected"
	out=$(systemd-analyze security --offline=true --no-pager wssignd.service 2>&1 | grep 'Overall exposure level' || true)
	echo "     $out"
	check "$label: systemd-analyze security exposure <= 2.0" \
		awk -v s="$(echo "$out" | grep -o '[0-9]*\.[0-9]*' | head -1)" 'BEGIN { exit !(s != "" && s <= 2.0) }'
}

check_removed() { # check_removed LABEL USERS-REMAIN(yes|no)
	local l users_remain=$2
	for l in "${layout[@]}"; do
		set -- $l
		case $1 in /etc/wssignd* | /var/lib/wssignd) continue ;; esac
		check "$label: $1 removed" test ! -e "$1"
	done
	check "$label: wssignd.socket no longer enabled" test ! -e /etc/systemd/system/sockets.target.wants/wssignd.socket
	if [ "$users_remain" = no ]; then
		check "$label: /etc/wssignd removed" test ! -e /etc/wssignd
		check "$label: /var/lib/wssignd removed" test ! -e /var/lib/wssignd
		check "$label: user wssignd removed" bash -c '! getent passwd wssignd'
		check "$label: group wssignd removed" bash -c '! getent group wssignd'
		check "$label: group wssignd-clients removed" bash -c '! getent group wssignd-clients'
	else
		check "$label: user wssignd kept" quiet getent passwd wssignd
		check "$label: group wssignd-clients kept" quiet getent group wssignd-clients
	fi
}

# --- the .deb --------------------------------------------------------------
label=deb
echo "== dpkg -i $deb"
dpkg -i "$deb"
check "deb: dpkg status installed" bash -c "dpkg-query -W -f='\${Status}' wssignd | grep -qx 'install ok installed'"
check "deb: /etc/wssignd/wssignd.toml is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' wssignd | grep -q '^ /etc/wssignd/wssignd.toml '"
check "deb: Recommends pcscd, opensc-pkcs11; Suggests softhsm2" bash -c \
	"dpkg-deb -f '$deb' Recommends | grep -qx 'pcscd, opensc-pkcs11' && dpkg-deb -f '$deb' Suggests | grep -qx softhsm2"
need=$(objdump -T /usr/bin/wssignd | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -1)
dep=$(dpkg-deb -f "$deb" Depends | sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p')
check "deb: binary is dynamically linked to glibc, needs GLIBC_$need <= Depends libc6 (>= $dep)" \
	bash -c "[ -n '$dep' ] && [ \"\$(printf '%s\n' '$need' '$dep' | sort -V | tail -1)\" = '$dep' ]"
check_installed

echo "== dpkg -i again (upgrade path) with an edited conffile"
echo '# local edit kept across upgrades' >>/etc/wssignd/wssignd.toml
dpkg -i --force-confold "$deb"
check "deb: reinstall keeps the edited conffile" grep -q '^# local edit kept across upgrades' /etc/wssignd/wssignd.toml
check "deb: reinstall keeps /etc/wssignd/wssignd.toml root:wssignd 640" stat_is /etc/wssignd/wssignd.toml root:wssignd 640

echo "== dpkg --remove (config and users stay)"
dpkg --remove wssignd
label="deb remove"
check "deb remove: /usr/bin/wssignd removed" test ! -e /usr/bin/wssignd
check "deb remove: /etc/wssignd/wssignd.toml kept" test -f /etc/wssignd/wssignd.toml
check "deb remove: wssignd.socket no longer enabled" test ! -e /etc/systemd/system/sockets.target.wants/wssignd.socket
check "deb remove: user wssignd kept" quiet getent passwd wssignd

echo "== dpkg --purge"
dpkg --purge wssignd
label="deb purge"
check_removed "deb purge" no
check "deb purge: dpkg knows no wssignd" bash -c "! dpkg-query -W wssignd 2>/dev/null | grep -q ."

# --- the .rpm --------------------------------------------------------------
echo "== rpm -qlp $rpmfile"
# Same files, owners and modes as the .deb (directories but /etc/wssignd
# left out: the two formats list parents differently).
deb_list=$(dpkg-deb -c "$deb" | awk '{ p = substr($6, 2); sub(/\/$/, "", p); if ($1 !~ /^d/ || p == "/etc/wssignd") print p, substr($1, 2), $2 }' | sort)
rpm_list=$(rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME}\n]' "$rpmfile" | awk '{ if ($2 !~ /^d/ || $1 == "/etc/wssignd") print $1, substr($2, 2), $3 }' | sort)
if [ "$deb_list" = "$rpm_list" ]; then
	ok "rpm: rpm -qlp lists the .deb's files, owners and modes ($(echo "$rpm_list" | wc -l) entries)"
else
	bad "rpm: file lists differ (< deb, > rpm):"
	diff <(echo "$deb_list") <(echo "$rpm_list") || true
fi
check "rpm: /etc/wssignd/wssignd.toml is %config(noreplace)" bash -c "rpm -qpc '$rpmfile' | grep -qx /etc/wssignd/wssignd.toml"
check "rpm: Recommends pcsc-lite and opensc, Suggests softhsm" bash -c \
	"rpm -qp --recommends '$rpmfile' | grep -qx pcsc-lite && rpm -qp --recommends '$rpmfile' | grep -qx opensc && rpm -qp --suggests '$rpmfile' | grep -qx softhsm"
check "rpm: Requires glibc >= 2.34" bash -c "rpm -qp --requires '$rpmfile' | grep -qx 'glibc >= 2.34'"

echo "== rpm -i --nodeps (rpm's script arguments: \$1 = 1)"
label=rpm
rpm -i --nodeps "$rpmfile"
check_installed
echo "== rpm -U --replacepkgs (upgrade: \$1 = 2, then 1 for the old one's removal scripts)"
echo '# local edit kept across upgrades' >>/etc/wssignd/wssignd.toml
rpm -U --nodeps --replacepkgs "$rpmfile"
check "rpm: upgrade keeps the edited config" grep -q '^# local edit kept across upgrades' /etc/wssignd/wssignd.toml
check "rpm: upgrade keeps the socket enabled" test -L /etc/systemd/system/sockets.target.wants/wssignd.socket
check "rpm: upgrade keeps the binary" test -x /usr/bin/wssignd
echo "== rpm -e (\$1 = 0; rpm never removes users)"
rpm -e --nodeps wssignd
label="rpm erase"
check_removed "rpm erase" yes

# --- the maintainer scripts where systemd-sysusers is missing --------------
echo "== preinstall/postremove without systemd-sysusers (groupadd/useradd fallback)"
userdel wssignd && groupdel wssignd-clients && rm -rf /etc/wssignd
nosys=$(mktemp -d)
for tool in sh getent groupadd useradd userdel groupdel deluser delgroup rm; do
	p=$(command -v "$tool") && ln -s "$p" "$nosys/$tool"
done
PATH=$nosys sh packaging/scripts/preinstall.sh install
pw=$(getent passwd wssignd || true)
check "fallback: user wssignd is a system user, home /var/lib/wssignd, no login shell" \
	bash -c '[[ -n $0 && $(echo "$0" | cut -d: -f3) -lt 1000 && $0 == *:/var/lib/wssignd:*nologin ]]' "$pw"
check "fallback: primary group wssignd" bash -c '[ "$(id -gn wssignd)" = wssignd ]'
check "fallback: group wssignd-clients exists" quiet getent group wssignd-clients
PATH=$nosys sh packaging/scripts/preinstall.sh upgrade 0.1
check "fallback: running it again changes nothing" bash -c '[ "$(getent passwd wssignd)" = "$0" ]' "$pw"
PATH=$nosys sh packaging/scripts/postremove.sh purge
check "fallback: purge removes user wssignd" bash -c '! getent passwd wssignd'
check "fallback: purge removes groups wssignd and wssignd-clients" bash -c '! getent group wssignd && ! getent group wssignd-clients'
rm -rf "$nosys"

# --- under a running systemd ----------------------------------------------
# The .deb in a container booted with systemd-nspawn on a throw-away overlay
# of this machine's root (nothing is written to the host): socket
# activation, Type=notify and STATUS=, the PIN as an encrypted credential,
# the whole sandbox around a real signing request on a SoftHSM2 token,
# reload, a wrong PIN (exit 78, no restart), try-restart on upgrade, purge.
e2e_base=
e2e_nspawn=
e2e_cleanup() {
	if [ -n "$e2e_nspawn" ]; then
		kill "$e2e_nspawn" 2>/dev/null || true
		wait "$e2e_nspawn" 2>/dev/null || true
		e2e_nspawn=
	fi
	if [ -n "$e2e_base" ]; then
		umount "$e2e_base/root" 2>/dev/null || true
		umount "$e2e_base" 2>/dev/null || true
		rmdir "$e2e_base" 2>/dev/null || true
		e2e_base=
	fi
}
trap 'e2e_cleanup; cleanup' EXIT

e2e_config='modules = ["/usr/lib/softhsm/libsofthsm2.so"]
[tokens.dev]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "wssignd-dev"
pin_credential = "wssignd.pin"
[keys.rsa]
token = "dev"
label = "dev-rsa"
[profiles.default]
key = "rsa"
allow_users = ["root"]
'

systemd_e2e() {
	e2e_base=$(mktemp -d /tmp/wssignd-e2e.XXXXXX)
	mount -t tmpfs -o size=2g tmpfs "$e2e_base"
	mkdir "$e2e_base/upper" "$e2e_base/work" "$e2e_base/root"
	mount -t overlay overlay -o "lowerdir=/,upperdir=$e2e_base/upper,workdir=$e2e_base/work" "$e2e_base/root"
	cp "$deb" "$e2e_base/root/root/wssignd.deb"
	cp testdata/envelope-soap11.xml "$e2e_base/root/root/envelope.xml"
	printf '%s' "$e2e_config" >"$e2e_base/root/root/wssignd.toml"
	systemd-nspawn -D "$e2e_base/root" --register=no --keep-unit --private-network --console=passive \
		-M wssignd-e2e -b systemd.firstboot=off >"$e2e_base/console.log" 2>&1 </dev/null &
	e2e_nspawn=$!
	local leader='' state='' i
	for i in $(seq 1 240); do # wait up to 2 minutes for the container's systemd
		leader=$(pgrep -P "$e2e_nspawn" -x systemd || true)
		if [ -n "$leader" ]; then
			state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
			case $state in running | degraded) break ;; esac
		fi
		kill -0 "$e2e_nspawn" 2>/dev/null || break
		sleep 0.5
	done
	case $state in
	running | degraded) ok "e2e: container booted systemd ($state)" ;;
	*)
		bad "e2e: container did not boot systemd (state '$state'):"
		tail -20 "$e2e_base/console.log"
		return
		;;
	esac
	E2E_LEADER=$leader
	export E2E_LEADER
	IN() { nsenter -t "$E2E_LEADER" -a "$@"; }
	show() { IN systemctl show wssignd.service --value -p "$1"; }
	export -f IN show

	IN dpkg -i /root/wssignd.deb >/dev/null
	check "e2e: wssignd.socket active after dpkg -i" bash -c '[ "$(IN systemctl is-active wssignd.socket)" = active ]'
	check "e2e: /run/wssignd/wssignd.sock is root:wssignd-clients 660" bash -c \
		'[ "$(IN stat -c "%U:%G %a" /run/wssignd/wssignd.sock)" = "root:wssignd-clients 660" ]'

	# A SoftHSM2 token owned by wssignd in its StateDirectory, its PIN as an
	# encrypted credential, a config that names the credential.
	IN runuser -u wssignd -- /usr/bin/wssignd dev-setup -dir /var/lib/wssignd/dev -socket /run/unused.sock >/dev/null
	IN sh -c 'install -d -m 0700 /etc/credstore.encrypted &&
		systemd-creds encrypt --name=wssignd.pin /var/lib/wssignd/dev/softhsm/user-pin /etc/credstore.encrypted/wssignd.pin 2>/dev/null &&
		cp /etc/credstore.encrypted/wssignd.pin /root/good-pin.cred &&
		cat /root/wssignd.toml >/etc/wssignd/wssignd.toml &&
		mkdir -p /etc/systemd/system/wssignd.service.d &&
		printf "[Service]\nEnvironment=SOFTHSM2_CONF=/var/lib/wssignd/dev/softhsm/softhsm2.conf\n" >/etc/systemd/system/wssignd.service.d/dev.conf &&
		systemctl daemon-reload'

	local code
	code=$(IN curl -sS -m 120 --unix-socket /run/wssignd/wssignd.sock -H 'Content-Type: text/xml' \
		--data-binary @/root/envelope.xml -o /root/signed.xml -w '%{http_code}' \
		'http://localhost/v1/soap/sign?profile=default' || true)
	check "e2e: the first request activates the sandboxed service and is signed (HTTP $code)" test "$code" = 200
	check "e2e: xmlsec1 verifies the signature" IN xmlsec1 --verify --pubkey-cert-pem /var/lib/wssignd/dev/certs/dev-rsa.pem \
		--id-attr:Id Body --id-attr:Id Timestamp --id-attr:Id BinarySecurityToken /root/signed.xml
	check "e2e: Type=notify: active with STATUS='$(show StatusText)'" bash -c \
		'[ "$(show ActiveState)" = active ] && [ "$(show StatusText)" = "serving; tokens: dev=online" ]'
	check "e2e: watchdog armed (WatchdogUSec=$(show WatchdogUSec)), no restart (NRestarts=$(show NRestarts))" bash -c \
		'[ "$(show WatchdogUSec)" = 30s ] && [ "$(show NRestarts)" = 0 ]'
	local pid
	pid=$(show MainPID)
	check "e2e: systemctl reload (SIGHUP, RELOADING=1 then READY=1) succeeds in place" bash -c \
		'IN systemctl reload wssignd.service && [ "$(show MainPID)" = "$0" ] && IN journalctl -u wssignd.service --no-pager | grep -q "configuration reloaded"' "$pid"
	local score
	score=$(IN systemd-analyze security --no-pager wssignd.service 2>/dev/null | grep -o 'Overall exposure level for wssignd.service: [0-9.]*' || true)
	echo "     running systemd: $score"
	check "e2e: systemd-analyze security (running systemd) <= 2.0" \
		awk -v s="${score##* }" 'BEGIN { exit !(s != "" && s <= 2.0) }'
	IN sh -c 'useradd -M app-in && useradd -M app-out && usermod -aG wssignd-clients app-in'
	check "e2e: a member of wssignd-clients connects" \
		IN runuser -u app-in -- curl -sS -m 30 -o /dev/null --unix-socket /run/wssignd/wssignd.sock http://localhost/v1/keys
	check "e2e: a non-member cannot connect" bash -c \
		'! IN runuser -u app-out -- curl -sS -m 30 -o /dev/null --unix-socket /run/wssignd/wssignd.sock http://localhost/v1/keys 2>/dev/null'

	# A wrong PIN: exit 78 and no restart (SubState would be auto-restart).
	IN sh -c 'printf 000000 | systemd-creds encrypt --name=wssignd.pin - /etc/credstore.encrypted/wssignd.pin 2>/dev/null'
	IN systemctl restart wssignd.service 2>/dev/null || true
	check "e2e: wrong PIN: exit $(show ExecMainStatus), $(show SubState), $(show NRestarts) restarts" bash -c \
		'[ "$(show ExecMainStatus)" = 78 ] && [ "$(show SubState)" = failed ] && [ "$(show NRestarts)" = 0 ]'

	# Upgrade while running: try-restart gives a new main process.
	IN sh -c 'cp /root/good-pin.cred /etc/credstore.encrypted/wssignd.pin && systemctl reset-failed wssignd.service && systemctl start wssignd.service'
	pid=$(show MainPID)
	IN dpkg -i /root/wssignd.deb >/dev/null
	check "e2e: upgrade restarts the running daemon (MainPID $pid -> $(show MainPID))" bash -c \
		'[ "$(show ActiveState)" = active ] && [ "$(show MainPID)" != "$0" ] && [ "$(show MainPID)" != 0 ]' "$pid"

	IN rm -rf /etc/systemd/system/wssignd.service.d
	IN dpkg --purge wssignd >/dev/null 2>&1
	check "e2e: purge stops both units" bash -c \
		'[ "$(IN systemctl is-active wssignd.socket wssignd.service | sort -u)" = inactive ]'
	check "e2e: purge removes the users, /etc/wssignd, /var/lib/wssignd and /run/wssignd" bash -c \
		'! IN sh -c "getent passwd wssignd || getent group wssignd-clients || ls -d /etc/wssignd /var/lib/wssignd /run/wssignd 2>/dev/null"'
	e2e_cleanup
}

if command -v systemd-nspawn >/dev/null; then
	echo "== under systemd (systemd-nspawn container on an overlay of /)"
	systemd_e2e
elif [ "${CI:-}" = true ]; then
	bad "e2e: systemd-nspawn not found (apt-get install -y systemd-container)"
else
	echo "skip e2e under systemd: systemd-nspawn not found (apt-get install -y systemd-container)"
fi

echo
echo "package-test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
