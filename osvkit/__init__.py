"""osvkit: build, patch, inspect and boot-verify OSv unikernel images.

The public Python API.  Names are imported lazily, so ``import osvkit`` stays cheap and
pulls in Keystone, LIEF or QEMU helpers only when they are used::

    import osvkit
    kernel = osvkit.load_kernel("loader-stripped.elf")

Every error is an :class:`osvkit.OsvkitError` whose ``str()`` is a one-line message naming
the file and the problem.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "OsvkitError": "osvkit.errors",
    "FormatError": "osvkit.errors",
    "KernelError": "osvkit.errors",
    "CmdlineError": "osvkit.errors",
    "UsageError": "osvkit.errors",
    "load_kernel": "osvkit.image.kernel",
    "check_kernel": "osvkit.image.kernel",
    "Kernel": "osvkit.image.kernel",
    # [fcpath] Firecracker path: vmlinux patching, qemu-fc / qemu-pvh, Firecracker config
    "build_vmlinux": "osvkit.image.vmlinux",
    "patch_vmlinux": "osvkit.image.vmlinux",
    "inspect_kernel_elf": "osvkit.image.vmlinux",
    "VmlinuxResult": "osvkit.image.vmlinux",
    "build_firecracker_config": "osvkit.firecracker.config",
    "write_firecracker_config": "osvkit.firecracker.config",
    "run_qemu_fc": "osvkit.run.fcloader",
    "build_fc_loader": "osvkit.run.fcloader",
    "run_qemu_pvh": "osvkit.run.pvh",
    "run_firecracker": "osvkit.run.firecracker",
    # [/fcpath]
    # [bios]
    "build_usr_image": "osvkit.image.usrimg",
    "inspect_file": "osvkit.inspect",
    # [/bios]
    # -- cli part: build files, verify, demo --
    "load_build_file": "osvkit.config",
    "resolve_options": "osvkit.config",
    "build_from_file": "osvkit.buildfile",
    "verify_images": "osvkit.verify",
    "verify_build_file": "osvkit.verify",
    "parse_bootchart": "osvkit.verify",
    "scan_failures": "osvkit.verify",
    "plot_timeline": "osvkit.plot",
    "run_demo": "osvkit.demo",
    # -- end cli part --
    # --- probe helper: conformance kernel and guest runner ---
    "build_probe": "osvkit.probe",
    "write_probe": "osvkit.probe",
    "parse_report": "osvkit.probe",
    "ProbeReport": "osvkit.probe",
    "run_image": "osvkit.run",
    "run_qemu": "osvkit.run.qemu",
    "RunResult": "osvkit.run.result",
    # --- end probe helper ---
    # [schemas]
    "MBR": "osvkit.structs.mbr",
    "parse_mbr": "osvkit.boot.mbr",
    "partition_entry_osv": "osvkit.boot.mbr",
    "lba_to_chs": "osvkit.boot.mbr",
    "BootParams": "osvkit.structs.bootparams",
    "BOOT_PARAMS_OFFSETS": "osvkit.structs.bootparams",
    "build_boot_params": "osvkit.boot.bootparams",
    "parse_boot_params": "osvkit.boot.bootparams",
    "OsvMultibootInfo": "osvkit.structs.bootinfo",
    "BOOTINFO_OFFSETS": "osvkit.structs.bootinfo",
    "parse_bootinfo": "osvkit.boot.bootinfo",
    "HvmStartInfo": "osvkit.structs.pvh",
    "HVM_START_INFO_OFFSETS": "osvkit.structs.pvh",
    "parse_start_info": "osvkit.boot.pvh",
    "MpTable": "osvkit.boot.mptable",
    "build_mp_table": "osvkit.boot.mptable",
    "parse_mp_table": "osvkit.boot.mptable",
    "find_mp_table": "osvkit.boot.mptable",
    "scan_mp_table": "osvkit.boot.mptable",
    "firecracker_e820": "osvkit.boot.firecracker",
    "firecracker_mptable": "osvkit.boot.firecracker",
    "firecracker_boot_params": "osvkit.boot.firecracker",
    "firecracker_pvh_start_info": "osvkit.boot.firecracker",
    "firecracker_gdt": "osvkit.boot.firecracker",
    "firecracker_page_tables": "osvkit.boot.firecracker",
    "gdt_entry": "osvkit.boot.firecracker",
    "decode_file": "osvkit.boot.decode",
    # [/schemas]
    # --- cmdline part: command lines, virtio-mmio entries, raw/qcow2 disk access ---
    "MmioDevice": "osvkit.cmdline",
    "encode_mmio": "osvkit.cmdline",
    "decode_mmio": "osvkit.cmdline",
    "find_mmio": "osvkit.cmdline",
    "strip_mmio": "osvkit.cmdline",
    "Cmdline": "osvkit.cmdline",
    "split_cmdline": "osvkit.cmdline",
    "render_cmdline": "osvkit.cmdline",
    "check_cmdline": "osvkit.cmdline",
    "unfit_targets": "osvkit.cmdline",
    "open_disk": "osvkit.disk",
    "get_cmdline": "osvkit.image.cmdline_io",
    "read_cmdline": "osvkit.image.cmdline_io",
    "set_cmdline": "osvkit.image.cmdline_io",
    # --- end cmdline part ---
    # --- rofs part ---
    "ManifestError": "osvkit.errors",
    "ManifestInputError": "osvkit.errors",
    "parse_manifest": "osvkit.rofs",
    "GuestTree": "osvkit.rofs",
    "build_rofs": "osvkit.rofs",
    "RofsImage": "osvkit.rofs",
    "inspect_rofs": "osvkit.rofs",
    "extract_rofs": "osvkit.rofs",
    # host programs -> images
    "resolve_closure": "osvkit.apps",
    "build_app_tree": "osvkit.apps",
    "build_host_app_image": "osvkit.apps",
    "write_usr_manifest": "osvkit.apps",
    "supplied_sonames": "osvkit.apps",
    "read_elf_info": "osvkit.apps",
    "load_ld_cache": "osvkit.apps",
    "MissingLibraryError": "osvkit.apps",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'osvkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
