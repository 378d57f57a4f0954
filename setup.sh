#!/usr/bin/env bash
# Sets up a fresh Debian machine for vmbkp: the Debian packages the build, tests and
# benchmarks use, then the npm dependencies and the build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

PACKAGES=(
  build-essential python3   # zstd-napi and better-sqlite3 (the server's database) build their native addons with node-gyp
  restic borgbackup time    # benchmark peers and peak-RSS measurement (npm run bench)
  nbdkit qemu-utils openssl # real NBD servers (nbdkit, qemu-nbd with dirty bitmaps), certificates for NBD TLS tests
  libnbd-bin                # nbdinfo / nbdcopy, independent NBD clients used by tests
  zsh                       # the zsh completion script is parsed and loaded by zsh (completion.test)
  golang-go golang-github-vmware-govmomi-dev  # the vSphere lab: govmomi's simulator, built offline in GOPATH mode
  ceph-mon ceph-osd radosgw ceph-common       # a real S3 server for the tests and benchmarks (npm run s3)
  libguestfs-tools linux-image-amd64         # vmbkp files: guestfish/guestmount read a generation's filesystems; the appliance needs a kernel
  fuse3                                       # vmbkp files mount (guestmount is FUSE; fusermount unmounts), ntfs-3g in the test images
  fdisk e2fsprogs xfsprogs dosfstools mtools  # test disk images (test/fs-images.ts): sfdisk, mke2fs -d, mkfs.xfs -p + xfs_db, mkfs.fat + mcopy
  ntfs-3g lvm2 btrfs-progs                    # NTFS (mkntfs + ntfs-3g) in the test images; LVM and btrfs in the appliance, which copies them from this machine
  chromium fonts-dejavu-core                  # the dashboard's browser test (playwright-core drives Debian's chromium; no browser download)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: vmbkp needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

npm ci --no-audit --no-fund   # also builds dist/ (the prepare script)
node scripts/lab.mjs --build-only >/dev/null   # builds the vSphere lab now, not in the first test
