"""Build every image a build file declares, reproducibly, and write ``osvkit-manifest.json``.

:func:`build_from_file` is what ``osvkit build -c osvkit.toml`` runs.  For each ``[[image]]``
it gets the kernel (a file, or the built-in conformance kernel ``probe:<size>``), renders the
command line from its loader options and application command, builds the ROFS from a
manifest with ``-D`` values (adding ``--rootfs=rofs`` unless the command line names a root
filesystem, as OSv's ``scripts/build`` does) or takes a prebuilt partition, and writes the
declared outputs:

=====================  =================================================================
``usr``                usr.img, raw or qcow2 (``image-format``)
``vmlinux``            the vmlinux-style ELF for Firecracker / PVH
``rofs``               the ROFS image on its own
``firecracker-config`` a Firecracker ``--config-file`` JSON (paths relative to the file)
``vmdk`` / ``vdi``     ``qemu-img convert`` of the raw usr.img; the random CID / UUIDs
                       qemu-img writes are replaced by values derived from the source's
                       SHA-256, so the files are reproducible (noted in the manifest)
``gce``                a GCE image: ``disk.raw`` (zero-padded to a whole GiB, as GCE
                       requires) in a deterministic tar.gz (GNU format, mtime
                       ``SOURCE_DATE_EPOCH`` or 0, uid/gid 0, no names, gzip mtime 0)
=====================  =================================================================

Everything is written into a staging directory next to the outputs and moved into place only
when every image has been built, so a failed build leaves no output behind.  The manifest
lists every output with its size, SHA-256, format and the inputs (paths relative to the build
file, with their SHA-256) it came from; it contains no time and no absolute path, so two
builds of the same inputs -- in two directories -- are byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__
from .cmdline import Cmdline
from .structs import base as schema
from .structs import vmdisk
from .config import (APP_SOURCE_KEYS, MANIFEST_NAME, BuildFile, ImageSpec, load_build_file,
                     memory_mib, parse_probe_spec)
from .errors import (FormatError, MissingInputError, OutputError, ToolError,
                     UsageError)
from .fileio import atomic_output, check_not_input, remove_stale_temporaries, write_atomic
from .progress import progress
from .units import parse_int
from .log import log


GIB = 1 << 30
CHUNK = 1 << 20

#: output kind -> the ``format`` the manifest records (usr is raw or qcow2)
OUTPUT_FORMATS = {"vmlinux": "elf", "rofs": "rofs", "firecracker-config": "json",
                  "vmdk": "vmdk", "vdi": "vdi", "gce": "tar.gz"}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def source_date_epoch(env: Mapping[str, str] | None = None) -> int:
    """``SOURCE_DATE_EPOCH`` as an int (0 when unset); a bad value is a usage error."""
    env = os.environ if env is None else env
    raw = env.get("SOURCE_DATE_EPOCH", "")
    if raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()):        # str.isdigit alone takes "²"
        raise UsageError(f"SOURCE_DATE_EPOCH={raw!r} is not a number",
                         expected="seconds since 1970 (digits only)")
    return parse_int(raw, "SOURCE_DATE_EPOCH", base=10)


# --------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------

def qemu_img_version() -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise ToolError("qemu-img is not installed", expected="qemu-img (Debian qemu-utils)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"version (\S+)", out.stdout)
    return m.group(1) if m else "unknown"


def _derived(source_sha256: str, label: str, n: int) -> bytes:
    return hashlib.sha256(f"osvkit:{label}:{source_sha256}".encode()).digest()[:n]


def _uuid_bytes(source_sha256: str, label: str) -> bytes:
    """A name-based (version 5 style) UUID from the source hash, in VDI's byte order."""
    b = bytearray(_derived(source_sha256, label, 16))
    b[6] = (b[6] & 0x0F) | 0x50
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


VMDK_CID_RE = re.compile(rb"(?<![A-Za-z])CID=([0-9a-f]{1,8})\n")
VDI_SIGNATURE = vmdisk.VDI_SIGNATURE
VDI_SIGNATURE_OFFSET = vmdisk.VDI_OFFSETS["signature"]
VDI_UUID_IMAGE_OFFSET = vmdisk.VDI_OFFSETS["uuid_create"]
VDI_UUID_LAST_SNAP_OFFSET = vmdisk.VDI_OFFSETS["uuid_modify"]


def normalise_vmdk(path: str | os.PathLike, source_sha256: str) -> str:
    """Replace the random ``CID=`` qemu-img writes into a sparse VMDK's embedded descriptor
    with one derived from the source image's SHA-256.  qemu-img prints the CID with ``%x``
    (1 to 8 digits), so the descriptor text is rewritten and NUL-padded to its region
    (``descriptorOffset``/``descriptorSize`` sectors of the ``KDMV`` header)."""
    with open(path, "r+b") as f:
        head = f.read(512)
        try:
            header = schema.parse(vmdisk.VmdkSparseHeader, head, what="VMDK header")
        except FormatError:
            raise FormatError("no CID= in the VMDK descriptor (no KDMV header)", path=path,
                              expected="a qemu-img monolithicSparse VMDK") from None
        desc_off, desc_size = header.descriptor_offset, header.descriptor_size
        f.seek(desc_off * 512)
        region = f.read(desc_size * 512)
        text = region.split(b"\0", 1)[0]
        m = VMDK_CID_RE.search(text)
        if m is None or desc_size == 0:
            raise FormatError("no CID= in the VMDK descriptor", path=path,
                              expected="a qemu-img monolithicSparse VMDK")
        cid = _derived(source_sha256, "vmdk-cid", 4).hex()
        if cid in ("ffffffff", "fffffffe"):
            cid = "00000001"
        new = text[:m.start(1)] + cid.encode() + text[m.end(1):]
        if len(new) >= len(region):
            raise FormatError("the VMDK descriptor has no room for the new CID", path=path,
                              expected="a descriptor region with free space")
        f.seek(desc_off * 512)
        f.write(new + bytes(len(region) - len(new)))
    return f"CID set to {cid} (from the source's SHA-256; qemu-img writes a random one)"


def normalise_vdi(path: str | os.PathLike, source_sha256: str) -> str:
    """Replace the random image and last-snapshot UUIDs of a VDI header with UUIDs derived
    from the source image's SHA-256."""
    with open(path, "r+b") as f:
        head = f.read(0x200)
        try:
            schema.parse(vmdisk.VdiHeader, head, what="VDI header")
        except FormatError:
            raise FormatError("not a VDI header", path=path,
                              expected=f"signature {VDI_SIGNATURE:#x} at {VDI_SIGNATURE_OFFSET:#x}"
                              ) from None
        f.seek(VDI_UUID_IMAGE_OFFSET)
        f.write(_uuid_bytes(source_sha256, "vdi-image"))
        f.seek(VDI_UUID_LAST_SNAP_OFFSET)
        f.write(_uuid_bytes(source_sha256, "vdi-last-snap"))
    return ("uuid_image and uuid_last_snap set from the source's SHA-256 "
            "(qemu-img writes random ones)")


def convert_image(source: str | os.PathLike, output: str | os.PathLike, fmt: str) -> str:
    """``qemu-img convert`` a raw image to ``vmdk`` or ``vdi`` at ``output`` (atomically) and
    make the result reproducible.  Returns a note for the manifest."""
    if fmt not in ("vmdk", "vdi"):
        raise UsageError(f"cannot convert to {fmt!r}", expected="vmdk or vdi")
    exe = shutil.which("qemu-img")
    if exe is None:
        raise ToolError("qemu-img is not installed", expected="qemu-img (Debian qemu-utils)")
    version = qemu_img_version()
    src_sha = sha256_file(source)
    output = Path(output)
    # qemu-img writes the file name into a VMDK descriptor: convert under the final name
    with tempfile.TemporaryDirectory(prefix=".osvkit-conv-", dir=output.parent) as tmp:
        target = Path(tmp) / output.name
        proc = subprocess.run([exe, "convert", "-q", "-f", "raw", "-O", fmt, os.fspath(source),
                               os.fspath(target)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ToolError(f"qemu-img convert -O {fmt} failed: {proc.stderr.strip()}",
                            path=source)
        note = (normalise_vmdk if fmt == "vmdk" else normalise_vdi)(target, src_sha)
        os.replace(target, output)
    return f"qemu-img {version} convert -O {fmt}; {note}"


def _gzip_header() -> bytes:
    # magic, CM=8 (deflate), FLG=0 (no name), MTIME=0, XFL=2 (max compression), OS=3 (Unix)
    return b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\x03"


def write_gce_tarball(raw_image: str | os.PathLike, output: str | os.PathLike, *,
                      mtime: int = 0, pad_to: int = GIB, level: int = 9) -> dict:
    """Write a GCE image archive: ``disk.raw`` (``raw_image`` zero-padded to a multiple of
    ``pad_to`` bytes) in a GNU tar, gzip-compressed, with every variable field fixed:
    tar mtime ``mtime``, uid/gid 0, empty user/group names, mode 0644; gzip mtime 0 and no
    file name.  Returns ``{"disk_size": ..., "note": ...}``."""
    size = os.path.getsize(raw_image)
    disk_size = -(-size // pad_to) * pad_to if pad_to else size
    info = tarfile.TarInfo("disk.raw")
    info.size = disk_size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    header = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")
    data_pad = (-disk_size) % tarfile.BLOCKSIZE
    end = bytes(2 * tarfile.BLOCKSIZE)
    total = len(header) + disk_size + data_pad + len(end)
    record_pad = (-total) % tarfile.RECORDSIZE

    comp = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    # a zero chunk compressed on its own after a full flush: reused for the padding, which is
    # valid deflate (no back-references across a full flush) and much faster than deflating
    # up to a GiB of zeros
    zero = bytes(CHUNK)
    zc = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    zero_block = zc.compress(zero) + zc.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    n_in = 0
    with atomic_output(output) as out, open(raw_image, "rb") as src, \
            progress(disk_size, f"writing {os.path.basename(os.fspath(output))}") as bar:
        out.write(_gzip_header())

        def feed(data: bytes) -> None:
            nonlocal crc, n_in
            crc = zlib.crc32(data, crc)
            n_in += len(data)
            out.write(comp.compress(data))

        feed(header)
        for block in iter(lambda: src.read(CHUNK), b""):
            feed(block)
            bar.update(len(block))
        remaining = disk_size - size
        # align to the chunk grid with normal deflate, then reuse the zero block
        first = min(remaining, (-size) % CHUNK)
        if first:
            feed(bytes(first))
            remaining -= first
            bar.update(first)
        if remaining >= CHUNK:
            out.write(comp.flush(zlib.Z_FULL_FLUSH))
            while remaining >= CHUNK:
                out.write(zero_block)
                crc = zlib.crc32(zero, crc)
                n_in += CHUNK
                remaining -= CHUNK
                bar.update(CHUNK)
        if remaining:
            feed(bytes(remaining))
            bar.update(remaining)
        feed(bytes(data_pad) + end + bytes(record_pad))
        out.write(comp.flush(zlib.Z_FINISH))
        out.write(schema.build(vmdisk.GzipTrailer, dict(crc32=crc & 0xFFFFFFFF,
                                                        isize=n_in & 0xFFFFFFFF),
                               what="gzip trailer"))
    return {"disk_size": disk_size,
            "note": f"disk.raw {size} bytes zero-padded to {disk_size} (GCE needs whole GiB); "
                    f"GNU tar, mtime {mtime}, uid/gid 0; gzip mtime 0, no name"}


# --------------------------------------------------------------------------------------
# Builders of other parts, called through their interfaces
# --------------------------------------------------------------------------------------

def _probe_bytes(size: int | None) -> bytes:
    from .probe import build_probe
    return build_probe(size)


def _build_usr(kernel: Path, output: Path, *, cmdline: Cmdline, image_format: str,
               partition: Path | None) -> Any:
    from .image.usrimg import build_usr_image
    return build_usr_image(os.fspath(kernel), os.fspath(output), cmdline=cmdline,
                           image_format=image_format,
                           partition=os.fspath(partition) if partition else None)


def _build_vmlinux(kernel: Path, output: Path, *, cmdline: Cmdline) -> Any:
    from .image.vmlinux import build_vmlinux
    return build_vmlinux(os.fspath(kernel), os.fspath(output))


def _build_rofs(manifest: Path, output: Path, defines: dict[str, str],
                follow_symlinks_anywhere: bool = False,
                allow_missing: bool = False) -> list[tuple[str, str]]:
    """Build the ROFS; return ``(guest path, host path)`` of every file copied from the host."""
    from .rofs import File, build_rofs, parse_manifest
    tree = parse_manifest(os.fspath(manifest), defines=dict(defines),
                          root=os.fspath(manifest.parent),
                          follow_symlinks_anywhere=follow_symlinks_anywhere,
                          allow_missing=allow_missing)
    build_rofs(tree, os.fspath(output))
    return [(guest, node.source.path) for guest, node in tree.walk()
            if isinstance(node, File) and node.source.path is not None]


def firecracker_config(*, kernel: str, boot_args: str, memory: str, cpus: int,
                       drive: str | None) -> dict:
    """A Firecracker ``--config-file`` document:
    ``boot-source``, ``machine-config`` and, when given, one raw root drive (not the root
    device, so Firecracker adds no ``root=`` to the command line)."""
    doc: dict = {
        "boot-source": {"kernel_image_path": kernel, "boot_args": boot_args},
        "drives": [],
        "machine-config": {"vcpu_count": cpus, "mem_size_mib": memory_mib(memory)},
    }
    if drive is not None:
        doc["drives"].append({"drive_id": "rootfs", "path_on_host": drive,
                              "is_root_device": False, "is_read_only": False})
    return doc


def _firecracker_config(*, kernel_file: Path, kernel_rel: str, disk_file: Path | None,
                        disk_rel: str | None, boot_args: str, memory: str, cpus: int) -> dict:
    """The fcpath part's document (its checks: a bootable vmlinux, a raw disk, Firecracker's
    vCPU rule, ``--nopci`` and the 2047-byte limit), with the file paths made relative so the
    file is reproducible."""
    from .firecracker.config import build_firecracker_config

    doc = build_firecracker_config(kernel_file, disk=disk_file, memory=memory, cpus=cpus,
                                   boot_args=boot_args).document
    doc["boot-source"]["kernel_image_path"] = kernel_rel
    for drive in doc.get("drives", []):
        drive["path_on_host"] = disk_rel
    return doc


# --------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------

@dataclass
class OutputRecord:
    image: str
    kind: str
    path: str                  # relative to the manifest's directory, POSIX
    format: str
    size: int
    sha256: str
    inputs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {"image": self.image, "kind": self.kind, "path": self.path, "format": self.format,
             "size": self.size, "sha256": self.sha256, "inputs": list(self.inputs)}
        if self.notes:
            d["notes"] = list(self.notes)
        return d


@dataclass
class BuildFileResult:
    """What ``build_from_file`` wrote: the manifest (as written) and where."""
    manifest: dict
    manifest_path: str
    out_dir: str

    @property
    def outputs(self) -> list[dict]:
        return [o for img in self.manifest["images"] for o in img["outputs"]]

    def to_dict(self) -> dict:
        return {"manifest_path": self.manifest_path, **self.manifest}

    def describe(self) -> str:
        return format_result(self)


def format_result(result: BuildFileResult) -> str:
    """One line per output and the manifest's path (``osvkit build -c`` without --json)."""
    lines = []
    for o in result.outputs:
        lines.append(f"{o['path']}: {o['kind']} ({o['format']}), {o['size']} bytes, "
                     f"sha256 {o['sha256'][:16]}...")
    lines.append(f"manifest: {result.manifest_path}")
    return "\n".join(lines)


class _Staging:
    """Outputs are written under a hidden directory in the output directory, then moved."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.created_out = False
        if not out_dir.exists():
            try:
                out_dir.mkdir(parents=True)
            except OSError as exc:
                raise OutputError(f"cannot create the output directory: {exc.strerror}",
                                  path=out_dir) from None
            self.created_out = True
        elif not out_dir.is_dir():
            raise OutputError("is not a directory", path=out_dir, expected="an output directory")
        remove_stale_temporaries(out_dir)
        try:
            self.root = Path(tempfile.mkdtemp(prefix=".osvkit-build-", dir=out_dir))
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror}", path=out_dir) from None
        self.work = self.root / ".work"
        self.work.mkdir()
        self.staged: dict[Path, Path] = {}

    def path_for(self, rel: str) -> Path:
        target = self.out_dir / os.path.normpath(rel)
        check_target(target)
        staged = self.root / "out" / f"{len(self.staged)}" / target.name
        staged.parent.mkdir(parents=True)
        self.staged[staged] = target
        return staged

    def check_inputs(self, inputs: Iterable[Path]) -> None:
        """Refuse an output that would replace one of the build's own inputs (the build
        file, a kernel, a manifest, a host file of a ROFS)."""
        inputs = [("an input of the build", src) for src in inputs]
        for target in self.staged.values():
            check_not_input(target, inputs)

    def commit(self) -> None:
        for target in self.staged.values():
            check_target(target)        # once more: nothing was moved yet
        for staged, target in self.staged.items():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
            except OSError as exc:
                raise OutputError(f"cannot write: {exc.strerror}", path=target) from None
        shutil.rmtree(self.root, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.created_out:
            shutil.rmtree(self.out_dir, ignore_errors=True)


def check_target(target: Path) -> None:
    """An output path must name a file: not an existing directory, and no ancestor of it an
    existing non-directory (checked before anything is built, and again before the staged
    outputs are moved, so a build never stops half-way through moving them)."""
    if target.is_dir():
        raise OutputError("is a directory", path=target, expected="a file name to write")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{parent} is not a directory", path=target,
                                  expected="an output path below directories")
            break


def _rel(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:
        return path.as_posix()


def _input_file(bf: BuildFile, rel: str, role: str, key: tuple) -> tuple[Path, dict]:
    path = bf.input_path(rel)
    if not path.is_file():
        line = bf.lines.get(key)
        where = f"{bf.path}:{line}" if line else os.fspath(bf.path)
        raise MissingInputError(f"{role} {rel!r} does not exist ({path})", path=where,
                                expected="a file (paths are relative to the build file)")
    return path, {"role": role, "path": bf.relpath(path), "sha256": sha256_file(path)}


def _app_tree(bf: BuildFile, img: ImageSpec, kernel: Path, cmdline: str):
    """The guest tree of an image's app/add/deb keys, and its command line with
    --rootfs=rofs, --env, --cwd and the first app as the command."""
    from .apps import AppSpec, build_app_tree, compose_cmdline
    from .apps.builder import default_add_guest
    from .apps.closure import split_host_guest

    a = img.apps
    apps = []
    for text in a.get("app", []):
        spec = AppSpec.parse(text)
        apps.append(AppSpec(os.fspath(bf.input_path(spec.host)), spec.guest))
    adds = []
    for text in a.get("add", []):
        host, guest = split_host_guest(text)
        adds.append(f"{bf.input_path(host)}:{guest or default_add_guest(host)}")
    manifest = bf.input_path(img.rofs_manifest) if img.rofs_manifest else None
    tree = build_app_tree(
        manifest=manifest, defines=dict(img.rofs_defines),
        manifest_root=manifest.parent if manifest else None,
        apps=apps, adds=adds, excludes=a.get("exclude", []), debs=a.get("deb", []),
        library_path=[os.fspath(bf.input_path(d)) for d in a.get("library_path", [])],
        kernel=kernel, bare=a.get("bare", False), allow_missing=a.get("allow_missing", False),
        follow_symlinks_anywhere=a.get("follow_symlinks_anywhere", False))
    env = a.get("env", [])
    if isinstance(env, dict):
        env = [f"{k}={v}" for k, v in env.items()]
    return tree, compose_cmdline(cmdline, env=env, cwd=a.get("cwd"), command=tree.command)


def _apps_input(apps: dict) -> dict:
    return {k: apps[k] for k in sorted(apps)}


def _app_file_input(bf: BuildFile, f) -> dict:
    """A manifest input for one file of an app tree: host files inside the build file's
    directory by relative path, others (system libraries) by absolute path, so the manifest
    does not depend on where the build directory is."""
    d = {"role": "rofs-file", "guest": f.guest, "kind": f.kind}
    if f.source is not None:
        rel = os.path.relpath(f.source, bf.directory)
        d["path"] = Path(rel).as_posix() if not rel.startswith("..") else f.source
        d["sha256"] = sha256_file(f.source)
    if f.target is not None:
        d["target"] = f.target
    if f.needed_by:
        d["needed_by"] = list(f.needed_by)
    return d


def _key(img: ImageSpec, name: str) -> tuple:
    return ("image", img.index, name)


def _build_image(bf: BuildFile, img: ImageSpec, stage: _Staging, out_dir: Path, opts,
                 sde: int) -> list[OutputRecord]:
    records: list[OutputRecord] = []
    staged_by_kind: dict[str, Path] = {}
    cmdline = Cmdline.from_value(opts["cmdline"] or "")
    if img.rofs_manifest:
        # like OSv's scripts/build and `osvkit build --manifest`: the root is the ROFS
        from .image.appimage import with_rootfs
        cmdline = Cmdline.from_value(with_rootfs(str(cmdline)))
    work = stage.work / img.name
    work.mkdir()

    # the kernel
    probe = parse_probe_spec(img.kernel)
    if probe is False:
        kernel_path, kernel_in = _input_file(bf, img.kernel, "kernel", _key(img, "kernel"))
    else:
        data = _probe_bytes(probe)
        kernel_path = work / "probe.elf"
        kernel_path.write_bytes(data)
        kernel_in = {"role": "kernel", "path": img.kernel, "builtin": True,
                     "sha256": hashlib.sha256(data).hexdigest()}
    app_tree = None
    if any(k in img.apps for k in APP_SOURCE_KEYS):  # host programs, files, packages
        app_tree, line = _app_tree(bf, img, kernel_path, str(cmdline))
        cmdline = Cmdline.from_value(line)
    cmd_in = {"role": "cmdline", "value": str(cmdline),
              "sha256": hashlib.sha256(cmdline.as_bytes_with_nul()[:-1]).hexdigest()}

    # the filesystem for MBR partition 1 (index 1)
    part_path: Path | None = None
    part_inputs: list[dict] = []
    if app_tree is not None:
        part_path = (stage.path_for(img.outputs["rofs"]) if "rofs" in img.outputs
                     else work / "rofs.img")
        log.info("%s: building ROFS from host programs and files", img.name)
        from .rofs import build_rofs
        build_rofs(app_tree.tree, os.fspath(part_path),
                   osv_defaults=not img.apps.get("bare", False))
        part_inputs = [{"role": "apps", "value": _apps_input(img.apps)}]
        part_inputs += [_app_file_input(bf, f) for f in app_tree.files]
        if "rofs" in img.outputs:
            records.append(_record(img, "rofs", part_path, img.outputs["rofs"], "rofs",
                                   part_inputs))
    elif img.rofs_manifest:
        manifest, man_in = _input_file(bf, img.rofs_manifest, "rofs-manifest",
                                       _key(img, "rofs"))
        part_path = (stage.path_for(img.outputs["rofs"]) if "rofs" in img.outputs
                     else work / "rofs.img")
        log.info("%s: building ROFS from %s", img.name, img.rofs_manifest)
        host_files = _build_rofs(manifest, part_path, img.rofs_defines,
                                 img.apps.get("follow_symlinks_anywhere", False),
                                 img.apps.get("allow_missing", False))
        part_inputs = [man_in] + ([{"role": "rofs-defines", "value": dict(sorted(
            img.rofs_defines.items()))}] if img.rofs_defines else [])
        part_inputs += [{"role": "rofs-file", "guest": guest, "path": bf.relpath(host),
                         "sha256": sha256_file(host)} for guest, host in host_files]
        if "rofs" in img.outputs:
            records.append(_record(img, "rofs", part_path, img.outputs["rofs"], "rofs",
                                   part_inputs))
    elif img.partition:
        part_path, p_in = _input_file(bf, img.partition, "partition", _key(img, "partition"))
        part_inputs = [p_in]

    # usr.img and what is converted from it
    fmt = opts["image-format"]
    usr_inputs = [kernel_in, cmd_in, *part_inputs]
    raw_usr: Path | None = None
    if "usr" in img.outputs:
        staged = stage.path_for(img.outputs["usr"])
        log.info("%s: building usr.img (%s)", img.name, fmt)
        _build_usr(kernel_path, staged, cmdline=cmdline, image_format=fmt, partition=part_path)
        staged_by_kind["usr"] = staged
        records.append(_record(img, "usr", staged, img.outputs["usr"], fmt, usr_inputs))
        if fmt == "raw":
            raw_usr = staged
    if raw_usr is None and any(k in img.outputs for k in ("vmdk", "vdi", "gce")):
        raw_usr = work / "usr.raw"
        _build_usr(kernel_path, raw_usr, cmdline=cmdline, image_format="raw",
                   partition=part_path)
    if raw_usr is not None:
        raw_in = {"role": "source-image", "format": "raw", "sha256": sha256_file(raw_usr)}
    for kind in ("vmdk", "vdi"):
        if kind in img.outputs:
            staged = stage.path_for(img.outputs[kind])
            log.info("%s: converting to %s", img.name, kind)
            note = convert_image(raw_usr, staged, kind)
            records.append(_record(img, kind, staged, img.outputs[kind], kind,
                                   usr_inputs + [raw_in], [note]))
    if "gce" in img.outputs:
        staged = stage.path_for(img.outputs["gce"])
        log.info("%s: writing the GCE tarball", img.name)
        info = write_gce_tarball(raw_usr, staged, mtime=sde)
        records.append(_record(img, "gce", staged, img.outputs["gce"], "tar.gz",
                               usr_inputs + [raw_in], [info["note"]]))

    # the vmlinux ELF and its Firecracker config
    if "vmlinux" in img.outputs:
        staged = stage.path_for(img.outputs["vmlinux"])
        log.info("%s: building the vmlinux ELF", img.name)
        _build_vmlinux(kernel_path, staged, cmdline=cmdline)
        staged_by_kind["vmlinux"] = staged
        records.append(_record(img, "vmlinux", staged, img.outputs["vmlinux"], "elf",
                               [kernel_in]))
    if "firecracker-config" in img.outputs:
        cfg_rel = img.outputs["firecracker-config"]
        cfg_dir = (out_dir / cfg_rel).parent
        if "vmlinux" not in img.outputs:
            raise UsageError(f"{bf.path.name}: image {img.name!r} has a firecracker-config "
                             "output but no vmlinux output", expected="outputs.vmlinux")
        raw_disk = "usr" in img.outputs and fmt == "raw"
        doc = _firecracker_config(
            kernel_file=staged_by_kind["vmlinux"],
            kernel_rel=_rel(out_dir / img.outputs["vmlinux"], cfg_dir),
            disk_file=staged_by_kind["usr"] if raw_disk else None,
            disk_rel=_rel(out_dir / img.outputs["usr"], cfg_dir) if raw_disk else None,
            boot_args=str(cmdline), memory=opts["memory"], cpus=opts["cpus"])
        staged = stage.path_for(cfg_rel)
        write_atomic(staged, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
        fc_inputs = [kernel_in, cmd_in, {"role": "memory", "value": opts["memory"]},
                     {"role": "cpus", "value": opts["cpus"]}]
        notes = ["paths are relative to this file's directory: run firecracker from there"]
        if "usr" in img.outputs and fmt != "raw":
            notes.append("no drive: Firecracker cannot read the qcow2 usr.img")
        records.append(_record(img, "firecracker-config", staged, cfg_rel, "json", fc_inputs,
                               notes))
    return records


def _record(img: ImageSpec, kind: str, staged: Path, rel: str, fmt: str, inputs: list[dict],
            notes: list[str] | None = None) -> OutputRecord:
    return OutputRecord(image=img.name, kind=kind, path=Path(os.path.normpath(rel)).as_posix(),
                        format=fmt, size=staged.stat().st_size, sha256=sha256_file(staged),
                        inputs=list(inputs), notes=list(notes or []))


def build_from_file(path: str | os.PathLike, *, out_dir: str | os.PathLike | None = None,
                    flags: Mapping[str, Any] | None = None, only: Iterable[str] | None = None,
                    env: Mapping[str, str] | None = None) -> BuildFileResult:
    """Build every image declared in the build file at ``path``.

    ``out_dir`` (default: the build file's directory) receives the outputs (their paths in
    the file are relative to it) and ``osvkit-manifest.json``.  ``flags`` are command-line
    option values (``memory``, ``cpus``, ``image-format``, ``cmdline`` ...; None = not
    given), which win over ``OSVKIT_*`` variables, which win over the file.  ``only`` limits
    the build to the named images.  Nothing is written unless every image builds."""
    bf = load_build_file(path)
    env = os.environ if env is None else env
    sde = source_date_epoch(env)
    out = Path(out_dir) if out_dir is not None else bf.directory
    images = bf.images
    if only:
        wanted = set(only)
        unknown = wanted - {i.name for i in images}
        if unknown:
            raise UsageError(f"no image named {', '.join(sorted(unknown))} in {bf.path.name}",
                             expected=", ".join(i.name for i in images))
        images = [i for i in images if i.name in wanted]
    resolved = [(img, bf.resolve(img, flags, env=env)) for img in images]
    for img, _ in resolved:            # before anything is built or created
        for rel in img.outputs.values():
            check_target(out / os.path.normpath(rel))
    check_target(out / MANIFEST_NAME)
    stage = _Staging(out)
    bar = progress(sum(len(img.outputs) for img, _ in resolved), "osvkit build", unit="outputs")
    try:
        manifest_images = []
        for img, opts in resolved:
            records = _build_image(bf, img, stage, out, opts, sde)
            bar.update(len(records))
            cmd = next((i["value"] for r in records for i in r.inputs if i["role"] == "cmdline"),
                       opts["cmdline"] or "")
            manifest_images.append({
                "name": img.name, "kernel": img.kernel, "cmdline": cmd,
                "options": {k: opts[k] for k in ("memory", "cpus", "image-format")},
                "outputs": [r.to_dict() for r in records]})
        manifest = {
            "osvkit_manifest": 1,
            "osvkit_version": __version__,
            "build_file": {"path": _rel(bf.path, out.resolve()), "sha256": bf.sha256},
            "source_date_epoch": sde,
            "images": manifest_images,
        }
        manifest_path = stage.path_for(MANIFEST_NAME)
        stage.check_inputs([bf.path] + [
            bf.input_path(i["path"]) for img in manifest_images for o in img["outputs"]
            for i in o["inputs"] if "path" in i and not i.get("builtin")])
        write_atomic(manifest_path,
                     (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        stage.commit()
        bar.close()
    except BaseException:
        bar.close()
        stage.abort()
        raise
    return BuildFileResult(manifest=manifest, manifest_path=os.fspath(out / MANIFEST_NAME),
                           out_dir=os.fspath(out))
