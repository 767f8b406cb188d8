#!/bin/bash
# Builds the test VM's image from Debian's archive: a bookworm root filesystem
# (debootstrap minbase + systemd, udev, python3), Debian's own kernel and initrd, the
# kernel's gpio-sim module built out of tree (Debian leaves CONFIG_GPIO_SIM unset), and
# a Python environment for the tests and for `make install`, installed offline from
# wheels made on the host (pip inside the chroot cannot do TLS here).
#
#   build_image.sh OUT_DIR PROJECT_DIR HOST_PYTHON
#
# Writes OUT_DIR/{rootfs.ext4,vmlinuz,initrd.img,kernel-version,build.log}. Needs root
# (debootstrap, chroot) and network access to deb.debian.org and PyPI. tests/vm/image.py
# runs this into a cache directory keyed by this file's hash (and the project's
# dependency lists); edit this file and the next run rebuilds.
set -euo pipefail

OUT=$1
PROJECT=$2
HOST_PY=$3
MIRROR=${CHECKIN_VM_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
WORK=$OUT/work
ROOT=$WORK/rootfs

say() { printf '[build %s] %s\n' "$(date +%T)" "$*"; }

cleanup() {
	for m in dev/pts dev proc sys; do
		mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"
	done
	return 0
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK"

# --- 1. wheels, on the host ------------------------------------------------------
# The project's runtime dependencies (and the gpio extra), setuptools for building the
# project itself inside the guest, the test tools, and evdev for uinput devices
# (source-only on PyPI: compiled here, against the same glibc as bookworm's).
say "wheels"
WHEELS=$WORK/wheels
mkdir -p "$WHEELS"
"$HOST_PY" - "$PROJECT/pyproject.toml" "$WORK" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
runtime = project["dependencies"] + project["optional-dependencies"]["gpio"]
tools = ["pytest", "pytest-asyncio", "pytest-timeout", "evdev", "setuptools", "wheel"]
open(f"{sys.argv[2]}/runtime.txt", "w").write("\n".join(runtime) + "\n")
open(f"{sys.argv[2]}/requirements.txt", "w").write("\n".join(runtime + tools) + "\n")
EOF
"$HOST_PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELS" \
	-r "$WORK/requirements.txt" 2>&1 | { grep -v 'is ignored: it is neither a file' || true; }

# --- 2. the root filesystem -----------------------------------------------------
say "debootstrap $SUITE"
debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,udev,kmod,procps,iproute2,python3,python3-venv,make,initramfs-tools,linux-image-amd64 \
	"$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
	{ tail -30 "$WORK/debootstrap.log"; exit 1; }

mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }

# debootstrap takes the kernel from bookworm main: build against exactly that version.
KVER=$(basename "$(ls -d "$ROOT"/lib/modules/*)")
KDEB=$(in_root dpkg-query -W -f='${Version}' "linux-image-$KVER")
say "kernel $KVER ($KDEB)"
echo "$KVER" >"$WORK/kernel-version"

# --- 3. gpio-sim, out of tree ---------------------------------------------------
say "gpio-sim module"
MAJMIN=$(echo "$KVER" | cut -d. -f1,2)
in_root apt-get install -y -qq --no-install-recommends \
	"linux-source-$MAJMIN=$KDEB" "linux-headers-$KVER" gcc make xz-utils \
	>"$WORK/apt-build.log" 2>&1 || { tail -30 "$WORK/apt-build.log"; exit 1; }
SRC_TAR=$(ls "$ROOT"/usr/src/linux-source-*.tar.xz)
SRC_DEB=$(in_root dpkg-query -W -f='${Version}' "linux-source-$MAJMIN")
[ "$SRC_DEB" = "$KDEB" ] || { echo "linux-source $SRC_DEB does not match the kernel $KDEB"; exit 1; }
MOD=$ROOT/usr/src/gpio-sim
mkdir -p "$MOD"
top=$(basename "$SRC_TAR" .tar.xz)
tar -xJf "$SRC_TAR" -C "$MOD" --strip-components=1 \
	"$top/drivers/gpio/gpio-sim.c" "$top/drivers/gpio/gpiolib.h" "$top/kernel/irq/irq_sim.c"
cp "$MOD/drivers/gpio/gpio-sim.c" "$MOD/drivers/gpio/gpiolib.h" "$MOD/"
objs="gpio-sim.o"
if ! grep -q '^CONFIG_IRQ_SIM=y' "$ROOT/boot/config-$KVER"; then
	# irq_to_desc() is not exported to modules; generic_handle_irq() does the same here.
	sed 's/handle_simple_irq(irq_to_desc(\([a-z_]*\)))/generic_handle_irq(\1)/' \
		"$MOD/kernel/irq/irq_sim.c" >"$MOD/irq_sim.c"
	grep -q 'generic_handle_irq' "$MOD/irq_sim.c" || { echo "irq_sim.c: patch did not apply"; exit 1; }
	# Built in when a kernel has it: as a module it must say its licence (GPL symbols).
	printf '\nMODULE_LICENSE("GPL");\nMODULE_DESCRIPTION("interrupt simulator");\n' >>"$MOD/irq_sim.c"
	objs="$objs irq_sim.o"
fi
printf 'obj-m := %s\nccflags-y := -I$(src)\n' "$objs" >"$MOD/Kbuild"
in_root make -s -C "/lib/modules/$KVER/build" M=/usr/src/gpio-sim modules \
	>"$WORK/module.log" 2>&1 || { tail -30 "$WORK/module.log"; exit 1; }
install -d "$ROOT/lib/modules/$KVER/extra"
install -m 0644 "$MOD"/*.ko "$ROOT/lib/modules/$KVER/extra/"
in_root depmod -a "$KVER"
in_root apt-get purge -y -qq --auto-remove "linux-source-$MAJMIN" "linux-headers-$KVER" >/dev/null 2>&1
rm -rf "$MOD"

# --- 4. Python: the tests' environment, and pip offline for `make install` ---------
say "python environment"
install -d "$ROOT/opt/wheelhouse"
cp "$WHEELS"/*.whl "$ROOT/opt/wheelhouse/"
# Every pip in the guest (the tests' venv, `make install`'s venv) installs from here:
# the VM has no network device.
cat >"$ROOT/etc/pip.conf" <<'EOF'
[global]
no-index = true
find-links = /opt/wheelhouse
disable-pip-version-check = true
EOF
in_root python3 -m venv /opt/vmtest
cp "$WORK/requirements.txt" "$WORK/runtime.txt" "$ROOT/opt/wheelhouse/"
in_root /opt/vmtest/bin/pip install --quiet -r /opt/wheelhouse/requirements.txt
# The gateway's own virtualenv with its dependencies in place, as an earlier
# `make install` leaves it: the tests' `make install` then installs the project itself
# into it (an upgrade), instead of unpacking and byte-compiling scapy and aiohttp under
# software emulation for minutes.
in_root python3 -m venv /opt/checkin-gateway/venv
in_root /opt/checkin-gateway/venv/bin/pip install --quiet -r /opt/wheelhouse/runtime.txt

# --- 5. the guest's configuration -----------------------------------------------
say "configuration"
echo checkin-vm >"$ROOT/etc/hostname"
cat >"$ROOT/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,noatime 0 1
# The project, shared read-only by the host (qemu -virtfs ... readonly=on).
project /mnt/project 9p trans=virtio,version=9p2000.L,msize=524288,ro,nofail 0 0
EOF
install -d "$ROOT/mnt/project"
printf 'virtio_console\n9p\n9pnet_virtio\nconfigfs\n' >"$ROOT/etc/modules-load.d/checkin-vm.conf"
# initramfs: the root is on virtio-blk; only what mounts it (a small initrd unpacks
# in a fraction of the time under software emulation).
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$ROOT/etc/initramfs-tools/modules"
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOT/etc/initramfs-tools/initramfs.conf"
# The guest agent (tests/vm/agent.py, read from the share so editing it needs no
# rebuild) on the virtio-serial port named "agent"; nothing else listens anywhere.
cat >"$ROOT/etc/systemd/system/checkin-vm-agent.service" <<'EOF'
[Unit]
Description=checkin-gateway test agent (virtio-serial)
DefaultDependencies=no
RequiresMountsFor=/mnt/project
After=systemd-modules-load.service
[Service]
# -I -S: the standard library only, no site-packages scan (seconds under emulation).
ExecStart=/usr/bin/python3 -I -S /mnt/project/tests/vm/agent.py
Restart=always
RestartSec=1
[Install]
WantedBy=sysinit.target
EOF
ln -sf /etc/systemd/system/checkin-vm-agent.service \
	"$ROOT/etc/systemd/system/sysinit.target.wants/checkin-vm-agent.service"
# Nothing in the guest waits for a network, a terminal or a login; no periodic jobs.
for unit in getty@tty1.service serial-getty@ttyS0.service systemd-networkd-wait-online.service \
	apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
	fstrim.timer man-db.timer dpkg-db-backup.timer systemd-timesyncd.service \
	systemd-logind.service systemd-user-sessions.service systemd-binfmt.service \
	proc-sys-fs-binfmt_misc.automount; do
	ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
install -d "$ROOT/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$ROOT/etc/systemd/journald.conf.d/volatile.conf"
in_root passwd -d root >/dev/null
in_root update-initramfs -u -k "$KVER" >"$WORK/initramfs.log" 2>&1 ||
	{ tail -30 "$WORK/initramfs.log"; exit 1; }

in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
	"$ROOT"/var/cache/debconf/*-old
cleanup

# --- 6. the image -----------------------------------------------------------------
say "image"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
chmod 0644 "$WORK/vmlinuz" "$WORK/initrd.img"
# Room for `make install`'s virtualenv and the tests' files: the image is booted with
# -snapshot, so writes never reach this file.
size_mb=$(($(du -sm "$ROOT" | cut -f1) + 768))
mkfs.ext4 -q -F -L root -d "$ROOT" "$WORK/rootfs.ext4" "${size_mb}M"
mv "$WORK/rootfs.ext4" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/kernel-version" "$OUT/"
rm -rf "$WORK"
say "done"
