#!/usr/bin/env bash
# A PyTorch 2 for the FSDP tests of `kiln scale` (tests/unit/scale-fsdp.test.ts): Debian 13's
# python3-torch (2.6) in a chroot. This project's machines run Debian 12, whose torch 1.13
# has no usable FSDP on the CPU (it does not even import on Python 3.11), and PyPI is out of
# reach here; Debian's archive is not.
#
#   bash scripts/torch2-chroot.sh        (root; about 5 minutes and 1.5 GB the first time)
#
# Installs /usr/local/bin/kiln-torch2-python3: python3 inside the chroot, with /tmp, /proc
# and /dev bound in (the tests' folders are under /tmp), in the caller's folder when that is
# under /tmp. Run again, it only checks the chroot and renews the mounts. KILN_TORCH2_ROOT
# moves the chroot (default /opt/kiln-torch2). Never `rm -rf` the chroot while its mounts are
# up (they are /tmp and /dev themselves): `umount` them first (`mount | grep kiln-torch2`).
set -euo pipefail
ROOT=${KILN_TORCH2_ROOT:-/opt/kiln-torch2}
WRAPPER=/usr/local/bin/kiln-torch2-python3
SUITE=trixie

if [ "$(id -u)" != 0 ]; then
  echo "torch2-chroot: needs root (debootstrap, chroot, mount)" >&2
  exit 1
fi
mount_binds() {
  local d
  for d in proc dev dev/shm tmp; do
    mkdir -p "$ROOT/$d"
    mountpoint -q "$ROOT/$d" || mount --bind "/$d" "$ROOT/$d"
  done
}
works() { [ -x "$ROOT/usr/bin/python3" ] && chroot "$ROOT" /usr/bin/python3 -c 'import torch, numpy' 2> /dev/null; }

mount_binds
if ! works; then
  if ! command -v debootstrap > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap > /dev/null
  fi
  # A half-made chroot (an interrupted run) is finished in place: debootstrap and apt resume.
  for d in proc dev/shm dev tmp; do mountpoint -q "$ROOT/$d" && umount "$ROOT/$d"; done
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    debootstrap --variant=minbase --include=python3-torch,python3-numpy "$SUITE" "$ROOT" > /tmp/kiln-torch2-debootstrap.log 2>&1 ||
      { tail -n 20 /tmp/kiln-torch2-debootstrap.log >&2; exit 1; }
  fi
  mount_binds
  works || chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy > /dev/null
fi

cat > "$WRAPPER" << EOF
#!/usr/bin/env bash
# Debian 13's python3 with torch 2 in the chroot $ROOT (written by scripts/torch2-chroot.sh).
case \$PWD in /tmp|/tmp/*) dir=\$PWD ;; *) dir=/tmp ;; esac
exec chroot "$ROOT" /usr/bin/env -C "\$dir" PATH=/usr/bin:/bin python3 "\$@"
EOF
chmod 755 "$WRAPPER"
echo "torch2-chroot: $("$WRAPPER" -c 'import sys, torch; print("python %d.%d, torch %s" % (sys.version_info[0], sys.version_info[1], torch.__version__))') at $WRAPPER"
