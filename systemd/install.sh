#!/bin/sh
# Install or remove zaas-edge as a systemd service (what `make install` and
# `make uninstall` run). systemd/README.md says what each file is for.
#
#   systemd/install.sh install      # as root, on the Pi (Debian 12 / Raspberry Pi OS bookworm)
#   systemd/install.sh uninstall    # PURGE=1 also removes the configuration and the store
#
# Settings, from the environment (make passes its variables of the same names):
#   DESTDIR    lay the files out under this root instead of / (no root needed):
#              nothing on the running system is touched, the user and the
#              group of /etc/zaas-edge come at the first boot of that root
#              (systemd-sysusers, systemd-tmpfiles), and the service is only
#              enabled (systemctl --root). The venv's scripts name their
#              DESTDIR path, so a root laid out this way is for checking the
#              layout (CI) or to be copied back to the same path.
#   WHEEL      the zaas_edge wheel to install; default: built from this
#              checkout (pip fetches setuptools for the build from the index).
#   PIP_ARGS   more options for pip, e.g. "--no-index --find-links /srv/wheelhouse"
#              on a box without the package index (a wheelhouse made with
#              `pip download -c constraints.txt ...`).
#   CONSTRAINTS  the pins (default: constraints.txt beside this folder).
#   PYTHON     the interpreter the venv is made from (default python3, 3.11+).
#   PURGE=1    uninstall only: also remove /etc/zaas-edge and /var/lib/zaas-edge,
#              and the zaas-edge user.
#
# The unit files and the example configuration are taken from the installed
# wheel (python -m zaas_edge.shipped), so the service matches the program.
# An install over an existing one is an upgrade: the venv is kept and the
# package replaced, /etc/zaas-edge/config.toml is never overwritten, and a
# running service is restarted.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
PYTHON=${PYTHON:-python3}
WHEEL=${WHEEL:-}
PIP_ARGS=${PIP_ARGS:-}
PURGE=${PURGE:-}
CONSTRAINTS=${CONSTRAINTS:-$SRC/constraints.txt}
UNIT=zaas-edge.service

say() { printf 'zaas-edge %s: %s\n' "$ACTION" "$*"; }
die() { printf 'zaas-edge %s: %s\n' "$ACTION" "$*" >&2; exit 1; }

usage() {
	echo "usage: [DESTDIR=root] [WHEEL=file.whl] [PIP_ARGS=...] $0 install" >&2
	echo "       [DESTDIR=root] [PURGE=1] $0 uninstall" >&2
	exit 2
}

[ $# -eq 1 ] || usage
ACTION=$1
case $ACTION in install | uninstall) ;; *) usage ;; esac

# The root everything goes under: "" is the running system.
D=${DESTDIR:-}
if [ -n "$D" ]; then
	mkdir -p "$D"
	D=$(cd "$D" && pwd)
	[ "$D" = / ] && D=
fi
if [ -z "$D" ] && [ "$(id -u)" != 0 ]; then
	die "run as root (sudo make $ACTION), or set DESTDIR= to lay the files out in a scratch root"
fi

OPT=$D/opt/zaas-edge
VENV=$OPT/venv
ETC=$D/etc/zaas-edge
STATE=$D/var/lib/zaas-edge
UNIT_PATH=$D/etc/systemd/system/$UNIT
WANTS=$D/etc/systemd/system/multi-user.target.wants/$UNIT
SYSUSERS=$D/etc/sysusers.d/zaas-edge.conf
TMPFILES=$D/etc/tmpfiles.d/zaas-edge.conf

# systemd is running this system (sd_booted()): false in a container, a chroot or CI.
systemd_runs() { [ -z "$D" ] && [ -d /run/systemd/system ]; }

install_venv() {
	"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null ||
		die "$PYTHON is missing or older than 3.11 (Debian 12 / Raspberry Pi OS bookworm has 3.11)"
	[ -f "$CONSTRAINTS" ] || die "no constraints file at $CONSTRAINTS: set CONSTRAINTS= (it pins the tested versions)"
	[ -z "$WHEEL" ] || [ -f "$WHEEL" ] || die "no wheel at $WHEEL"
	if [ -x "$VENV/bin/python" ]; then
		say "upgrading the venv $VENV"
	else
		say "creating the venv $VENV"
		mkdir -p "$OPT"
		"$PYTHON" -m venv "$VENV" ||
			die "could not create a virtual environment: run 'apt-get install python3-venv'"
	fi
	pip="$VENV/bin/python -m pip --disable-pip-version-check --quiet"
	if [ -z "$WHEEL" ]; then
		[ -f "$SRC/setup.cfg" ] || die "no checkout around $HERE to build from: set WHEEL= to a zaas_edge wheel"
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		# Build from a copy: neither .venv nor anyone's build/ leftovers end up in the wheel,
		# and the checkout gets no root-owned files.
		(cd "$SRC" && tar -cf - --exclude=.git --exclude=.venv --exclude=build --exclude=dist --exclude=.demo \
			--exclude='*.egg-info' --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache .) |
			(mkdir "$tmp/src" && cd "$tmp/src" && tar -xf -)
		say "building the wheel from $SRC"
		# shellcheck disable=SC2086  # PIP_ARGS is a list of options
		$pip wheel --no-deps $PIP_ARGS -w "$tmp/dist" "$tmp/src" || die "could not build the wheel"
		WHEEL=$(ls "$tmp"/dist/zaas_edge-*.whl)
	fi
	# Replace the package even at the same version; the libraries at the versions of the constraints file.
	$pip uninstall --yes zaas-edge >/dev/null 2>&1 || true
	say "installing $(basename "$WHEEL") with $(basename "$CONSTRAINTS")"
	# shellcheck disable=SC2086
	$pip install -c "$CONSTRAINTS" $PIP_ARGS "$WHEEL" || die "pip could not install $WHEEL"
}

do_install() {
	install_venv
	share=$("$VENV/bin/python" -m zaas_edge.shipped systemd)
	examples=$("$VENV/bin/python" -m zaas_edge.shipped config)

	say "installing the unit, the sysusers and the tmpfiles files"
	install -d -m 0755 "$D/etc/systemd/system" "$D/etc/sysusers.d" "$D/etc/tmpfiles.d" "$OPT/systemd"
	install -m 0644 "$share/zaas-edge.sysusers" "$SYSUSERS"
	install -m 0644 "$share/zaas-edge.tmpfiles" "$TMPFILES"
	install -m 0644 "$share/$UNIT" "$UNIT_PATH"
	install -m 0644 "$share/README.md" "$OPT/systemd/README.md" # the unit's Documentation=

	if [ -z "$D" ]; then
		# The user (in dialout and bluetooth) before anything is given its group.
		systemd-sysusers zaas-edge.conf || die "systemd-sysusers failed (Debian package systemd)"
		systemd-tmpfiles --create zaas-edge.conf || die "systemd-tmpfiles failed"
	else
		install -d -m 0750 "$ETC"
		say "DESTDIR: the zaas-edge user, and the group of /etc/zaas-edge and its config.toml," \
			"come at that root's first boot (systemd-sysusers, systemd-tmpfiles)"
	fi

	if [ -e "$ETC/config.toml" ]; then
		say "kept the existing $ETC/config.toml"
	else
		install -m 0640 "$examples/example.toml" "$ETC/config.toml"
		[ -z "$D" ] && chgrp zaas-edge "$ETC/config.toml"
		say "wrote $ETC/config.toml from the example: set [gateway] id and site and add the drivers"
	fi
	config_ok=1
	if [ -z "$D" ] && ! "$VENV/bin/zaas-edge" -c "$ETC/config.toml" config check; then
		config_ok=
	fi

	if systemd_runs; then
		systemctl daemon-reload
		systemctl enable "$UNIT"
		if [ -n "$config_ok" ]; then
			# restart: starts it, or moves a running one (an upgrade) onto the new program.
			systemctl restart "$UNIT"
			say "zaas-edge is enabled and running: systemctl status zaas-edge"
		else
			# Started now it would only fail and restart every few seconds.
			say "zaas-edge is enabled but not (re)started: $ETC/config.toml has the errors above;" \
				"fix them, then systemctl restart zaas-edge"
		fi
	elif [ -n "$D" ] && command -v systemctl >/dev/null 2>&1; then
		if systemctl --root="$D" --quiet enable "$UNIT" 2>/dev/null; then
			say "DESTDIR: zaas-edge is enabled in $D (it starts at that root's boot)"
		else
			say "DESTDIR: could not enable zaas-edge in $D: run systemctl --root=$D enable $UNIT"
		fi
	else
		say "systemd is not running here (not PID 1): not enabled, not started;" \
			"on a systemd host run: systemctl enable --now zaas-edge"
	fi
}

do_uninstall() {
	if systemd_runs; then
		systemctl disable --now "$UNIT" 2>/dev/null || true
	elif [ -n "$D" ] && [ -L "$WANTS" ] && command -v systemctl >/dev/null 2>&1; then
		systemctl --root="$D" --quiet disable "$UNIT" 2>/dev/null || true
	fi
	rm -f "$WANTS" "$UNIT_PATH" "$SYSUSERS" "$TMPFILES"
	rm -rf "$OPT"
	systemd_runs && systemctl daemon-reload
	say "removed the service, its unit files and $OPT"

	if [ "$PURGE" = 1 ]; then
		rm -rf "$ETC" "$STATE"
		say "PURGE=1: removed $ETC (configuration, secrets) and $STATE (the store, the device key)"
		if [ -z "$D" ] && getent passwd zaas-edge >/dev/null; then
			if userdel zaas-edge; then say "removed the zaas-edge user"; else say "could not remove the zaas-edge user"; fi
			if getent group zaas-edge >/dev/null && ! groupdel zaas-edge; then
				say "the zaas-edge group stays (still some account's primary group)"
			fi
		fi
	else
		say "kept $ETC (configuration, secrets) and $STATE (the store: readings not yet synced," \
			"the device key) and the zaas-edge user; PURGE=1 removes them"
	fi
}

"do_$ACTION"
