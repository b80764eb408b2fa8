#!/usr/bin/env python3
"""Test material for booting Debian's own Linux kernel under `emu boot`.

    python guests/linuxboot/build.py           # fetch and build what is missing
    python guests/linuxboot/build.py --print   # also print the paths

Nothing large is committed: everything is fetched with the package manager
(`apt-get download`) and built into a cache directory (EMU_LINUX_CACHE, else
$XDG_CACHE_HOME/emu/linuxboot, else ~/.cache/emu/linuxboot):

    vmlinuz          Debian's bzImage (linux-image-amd64's image package)
    vmlinux          the ELF kernel inside it (its xz payload, decompressed)
    initramfs.cpio   an uncompressed newc archive: Debian's busybox-static
                     (init is busybox init; /etc/rcS loads the modules), the
                     kernel's own virtio/ext4/vsock modules, and vsockcat
                     (guests/linuxboot/vsockcat.c: busybox has no AF_VSOCK)
    rootfs.ext4      a small ext4 image (busybox and an /sbin/init), made
                     with `mkfs.ext4 -d`
    busybox.i386     Debian's i386 busybox-static (32-bit user-mode tests)
    release          the kernel release (what `uname -r` prints)

`material()` returns the paths or raises Unavailable with the reason (no
apt-get, no network to the package archive, no mkfs.ext4): tests skip on it.
"""
from __future__ import annotations

import glob
import hashlib
import io
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile

# modules the initramfs loads, in an order their dependencies allow (the
# dependencies named in each module's .modinfo are added before it)
MODULES = [
    "virtio", "virtio_ring", "virtio_mmio", "virtio_blk", "virtio_console", "virtio-rng",
    "failover", "net_failover", "virtio_net",
    "vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport",
    "crc16", "crc32c_generic", "libcrc32c", "mbcache", "jbd2", "ext4",
]

# PID 1 is busybox init (so `poweroff` and `reboot` work as on a real system):
# rcS loads the kernel's modules and mounts the pseudo file systems, then a
# login shell runs on the serial console (respawned if it exits)
RCS = r"""#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko 2>/dev/null; done
echo "emu-init: ready"
"""

INITTAB = """::sysinit:/etc/rcS
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/bin/reboot
::shutdown:/bin/umount -a -r
"""

ROOT_INIT = r"""#!/bin/sh
export PATH=/bin:/sbin
echo "emu-rootfs: init"
exec sh
"""


HERE = os.path.dirname(os.path.abspath(__file__))
VSOCKCAT = os.path.join(HERE, "vsockcat")     # built from vsockcat.c, committed (9 KiB)


class Unavailable(Exception):
    """The material cannot be fetched or built here (the reason is the message)."""


def cache_dir() -> str:
    d = os.environ.get("EMU_LINUX_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "emu", "linuxboot")
    os.makedirs(d, exist_ok=True)
    return d


def _run(cmd, cwd=None) -> str:
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise Unavailable("%s is not installed" % cmd[0]) from None
    if p.returncode != 0:
        raise Unavailable("%s failed: %s" % (" ".join(cmd), (p.stderr or p.stdout).strip().splitlines()[-1:]))
    return p.stdout


def _download(pkg: str, dest: str) -> str:
    """The .deb of pkg ("name" or "name:arch"), fetched with apt-get download into dest (cached)."""
    name, _, arch = pkg.partition(":")
    pattern = os.path.join(dest, "%s_*_%s.deb" % (name, arch or "amd64"))
    have = glob.glob(pattern)
    if not have:
        _run(["apt-get", "download", "-q", pkg], cwd=dest)
        have = glob.glob(pattern)
    if not have:
        raise Unavailable("apt-get download %s left no package" % pkg)
    return sorted(have)[-1]


def _image_package() -> str:
    """linux-image-amd64 is a metapackage: the image package it depends on."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"])
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split()[1]
    raise Unavailable("linux-image-amd64 names no image package (run apt-get update)")


def _extract(deb: str, dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    _run(["dpkg-deb", "-x", deb, dest])


# ---- the kernel inside a bzImage (Documentation/x86/boot.rst: payload_offset/length)

def vmlinux_from_bzimage(image: bytes) -> bytes:
    setup_sects = image[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", image, 0x248)
    pm = image[(setup_sects + 1) * 512:]
    payload = pm[payload_offset:payload_offset + payload_length]
    if payload[:6] == b"\xfd7zXZ\x00":
        # the kernel's xz stream ends with its own size appended: decode the stream only
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if payload[:2] == b"\x1f\x8b":
        import gzip
        return gzip.GzipFile(fileobj=io.BytesIO(payload)).read()
    raise Unavailable("bzImage payload is neither xz nor gzip")


# ---- modules: dependencies from .modinfo

def _modinfo_depends(path: str) -> list:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".modinfo")
        data = sec.data() if sec is not None else b""
    for field in data.split(b"\0"):
        if field.startswith(b"depends="):
            return [d for d in field[8:].decode().split(",") if d]
    return []


def _module_order(moddir: str, wanted) -> list:
    paths = {}
    for p in glob.glob(os.path.join(moddir, "**", "*.ko"), recursive=True):
        paths[os.path.basename(p)[:-3]] = p
    norm = {k.replace("-", "_"): k for k in paths}
    order, seen = [], set()

    def visit(name):
        key = norm.get(name.replace("-", "_"))
        if key is None:
            raise Unavailable("module %s not in the kernel package" % name)
        if key in seen:
            return
        seen.add(key)
        for dep in _modinfo_depends(paths[key]):
            visit(dep)
        order.append(key)

    for m in wanted:
        visit(m)
    return [(m, paths[m]) for m in order]


# ---- cpio (newc), the initramfs format (Documentation/driver-api/early-userspace)

class Cpio:
    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        nm = name.encode() + b"\0"
        hdr = b"070701" + b"".join(b"%08X" % x for x in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(nm), 0))
        self.ino += 1
        self.buf.write(hdr + nm)
        self.buf.write(b"\0" * (-(len(hdr) + len(nm)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, mode=0o100644):
        self._entry(name, mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def node(self, name, mode, major, minor):
        nm = name.encode() + b"\0"
        hdr = b"070701" + b"".join(b"%08X" % x for x in (
            self.ino, mode, 0, 0, 1, 0, 0, 0, 0, major, minor, len(nm), 0))
        self.ino += 1
        self.buf.write(hdr + nm + b"\0" * (-(len(hdr) + len(nm)) % 4))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        out = self.buf.getvalue()
        return out + b"\0" * (-len(out) % 512)


def _busybox_applets(busybox: str) -> list:
    out = _run([busybox, "--list"]) if os.access(busybox, os.X_OK) else ""
    return out.split() or ["sh", "mount", "insmod", "cat", "echo", "ls", "poweroff", "setsid", "cttyhack"]


def build_initramfs(busybox: str, modules, release: str) -> bytes:
    c = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "etc", "mnt", "tmp", "root", "lib", "lib/modules"):
        c.dir(d)
    c.node("dev/console", 0o020600, 5, 1)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o100755)
    for a in _busybox_applets(busybox):
        if a != "busybox":
            c.symlink("bin/" + a, "busybox")
    c.symlink("init", "bin/busybox")
    c.file("etc/rcS", RCS.encode(), 0o100755)
    c.file("etc/inittab", INITTAB.encode())
    c.file("etc/profile", b"export PATH=/bin:/sbin\nexport PS1='# '\n")
    c.file("etc/modules", "\n".join(m for m, _ in modules).encode() + b"\n")
    c.file("etc/release", release.encode() + b"\n")
    for m, p in modules:
        with open(p, "rb") as f:
            c.file("lib/modules/%s.ko" % m, f.read())
    with open(VSOCKCAT, "rb") as f:
        c.file("bin/vsockcat", f.read(), 0o100755)
    return c.finish()


def build_rootfs(busybox: str, out: str) -> None:
    with tempfile.TemporaryDirectory() as td:
        for d in ("bin", "sbin", "dev", "proc", "sys", "etc", "tmp", "root"):
            os.makedirs(os.path.join(td, d))
        shutil.copy(busybox, os.path.join(td, "bin", "busybox"))
        os.chmod(os.path.join(td, "bin", "busybox"), 0o755)
        for a in ("sh", "ls", "cat", "echo", "mount", "sync", "poweroff"):
            os.symlink("busybox", os.path.join(td, "bin", a))
        with open(os.path.join(td, "sbin", "init"), "w") as f:
            f.write(ROOT_INIT)
        os.chmod(os.path.join(td, "sbin", "init"), 0o755)
        with open(os.path.join(td, "etc", "hello.txt"), "w") as f:
            f.write("hello from the ext4 image\n")
        if os.path.exists(out):
            os.unlink(out)
        _run(["mkfs.ext4", "-q", "-F", "-L", "emuroot", "-d", td, out, "16M"])


def material(need_i386: bool = False) -> dict:
    """Fetch and build (cached) the boot material; a dict of paths and the release."""
    d = cache_dir()
    debs = os.path.join(d, "debs")
    os.makedirs(debs, exist_ok=True)
    paths = {k: os.path.join(d, k) for k in ("vmlinuz", "vmlinux", "initramfs.cpio", "rootfs.ext4", "release")}
    stamp = os.path.join(d, "recipe")
    h = hashlib.sha256()
    for p in (os.path.abspath(__file__), VSOCKCAT):
        with open(p, "rb") as f:
            h.update(f.read())
    recipe = h.hexdigest()
    fresh = os.path.exists(stamp) and open(stamp).read() == recipe
    if not fresh or not all(os.path.exists(p) for p in paths.values()):
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise Unavailable("apt-get/dpkg-deb not available: cannot fetch Debian's kernel")
        kdeb = _download(_image_package(), debs)
        bdeb = _download("busybox-static", debs)
        with tempfile.TemporaryDirectory(dir=d) as td:
            _extract(kdeb, os.path.join(td, "k"))
            _extract(bdeb, os.path.join(td, "b"))
            vmlinuz = glob.glob(os.path.join(td, "k", "boot", "vmlinuz-*"))
            if not vmlinuz:
                raise Unavailable("no vmlinuz in %s" % os.path.basename(kdeb))
            release = os.path.basename(vmlinuz[0])[len("vmlinuz-"):]
            with open(vmlinuz[0], "rb") as f:
                image = f.read()
            busybox = os.path.join(td, "b", "bin", "busybox")
            moddir = glob.glob(os.path.join(td, "k", "lib", "modules", "*"))[0]
            mods = _module_order(moddir, MODULES)
            cpio = build_initramfs(busybox, mods, release)
            build_rootfs(busybox, paths["rootfs.ext4"] + ".tmp")
            os.replace(paths["rootfs.ext4"] + ".tmp", paths["rootfs.ext4"])
            for name, data in (("vmlinuz", image), ("vmlinux", vmlinux_from_bzimage(image)),
                               ("initramfs.cpio", cpio), ("release", release.encode())):
                with open(paths[name] + ".tmp", "wb") as f:
                    f.write(data)
                os.replace(paths[name] + ".tmp", paths[name])
        with open(stamp, "w") as f:
            f.write(recipe)
    out = dict(paths)
    with open(paths["release"]) as f:
        out["release"] = f.read().strip()
    out["rootfs_template"] = paths["rootfs.ext4"]
    if need_i386:
        out["busybox.i386"] = busybox_i386()
    return out


def busybox_i386() -> str:
    """Debian's i386 busybox-static (a 32-bit static program)."""
    d = cache_dir()
    p = os.path.join(d, "busybox.i386")
    if not os.path.exists(p):
        debs = os.path.join(d, "debs")
        os.makedirs(debs, exist_ok=True)
        deb = _download("busybox-static:i386", debs)
        with tempfile.TemporaryDirectory(dir=d) as td:
            _extract(deb, td)
            shutil.copy(os.path.join(td, "bin", "busybox"), p + ".tmp")
            os.replace(p + ".tmp", p)
    return p


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print", action="store_true", help="print the paths")
    ap.add_argument("--i386", action="store_true", help="also fetch the i386 busybox")
    a = ap.parse_args(argv)
    try:
        m = material(need_i386=a.i386)
    except Unavailable as e:
        print("linuxboot: %s" % e, file=sys.stderr)
        return 1
    if a.print:
        for k, v in sorted(m.items()):
            print("%s=%s" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
