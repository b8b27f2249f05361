"""Field offsets the fcpath stubs and the qemu-fc loader use, taken from the schemas.

One place that names every boot_params / boot-info / hvm_start_info offset the generated
assembly refers to, so no offset is typed into assembly text: every value below is read off
the construct schemas in :mod:`osvkit.boot.bootparams`, :mod:`osvkit.boot.bootinfo` and
:mod:`osvkit.boot.pvh`.  ``tests/test_stub_offsets.py`` checks them against the facts
(osv-boot.md 1.4, firecracker-boot.md 3, 5.4) written out by hand.
"""

from __future__ import annotations

from . import bootinfo as _bi
from . import bootparams as _bp
from . import pvh as _pvh
from ..structs import base as _schema


def _with_size(offsets: dict[str, int], struct) -> dict[str, int]:
    d = dict(offsets)
    d["sizeof"] = struct.sizeof()
    return d


BOOT_PARAMS = _with_size(_bp.BOOT_PARAMS_OFFSETS, _bp.BootParams)
BOOT_E820_ENTRY = _with_size(_schema.field_offsets(_bp.BootE820Entry), _bp.BootE820Entry)
E820_MAX_ENTRIES_ZEROPAGE = _bp.E820_MAX_ENTRIES_ZEROPAGE

BOOTINFO = _with_size(_bi.BOOTINFO_OFFSETS, _bi.OsvMultibootInfo)
BOOTINFO_FLAG_BOOT_LOADER_NAME = _bi.BOOTINFO_FLAG_BOOT_LOADER_NAME
E820ENT = _with_size(_bi.OSV_E820_OFFSETS, _bi.OsvE820Entry)

START_INFO = _with_size(_pvh.HVM_START_INFO_OFFSETS, _pvh.HvmStartInfo)
HVM_MEMMAP_ENTRY = _with_size(_pvh.HVM_MEMMAP_ENTRY_OFFSETS, _pvh.HvmMemmapTableEntry)
HVM_MODLIST_ENTRY = _with_size(_pvh.HVM_MODLIST_ENTRY_OFFSETS, _pvh.HvmModlistEntry)
