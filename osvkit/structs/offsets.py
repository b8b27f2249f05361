"""The field offsets and sizes generated boot code refers to, read off the schemas.

One table per structure the entry stubs and the qemu-fc loader fill or read (boot_params,
its e820 entry, OSv's boot-info block and e820 record, PVH ``hvm_start_info`` and its memmap
and module-list entries); each table also has the structure's ``"sizeof"``.  No offset is typed
into assembly text: every value comes from :mod:`.bootparams`, :mod:`.bootinfo` and :mod:`.pvh`.
"""

from __future__ import annotations

from . import bootinfo as _bi
from . import bootparams as _bp
from . import pvh as _pvh
from .base import field_offsets


def _with_size(offsets: dict[str, int], struct) -> dict[str, int]:
    d = dict(offsets)
    d["sizeof"] = struct.sizeof()
    return d


BOOT_PARAMS = _with_size(_bp.BOOT_PARAMS_OFFSETS, _bp.BootParams)
BOOT_E820_ENTRY = _with_size(field_offsets(_bp.BootE820Entry), _bp.BootE820Entry)
E820_MAX_ENTRIES_ZEROPAGE = _bp.E820_MAX_ENTRIES_ZEROPAGE

BOOTINFO = _with_size(_bi.BOOTINFO_OFFSETS, _bi.OsvMultibootInfo)
BOOTINFO_FLAG_BOOT_LOADER_NAME = _bi.BOOTINFO_FLAG_BOOT_LOADER_NAME
E820ENT = _with_size(_bi.OSV_E820_OFFSETS, _bi.OsvE820Entry)

START_INFO = _with_size(_pvh.HVM_START_INFO_OFFSETS, _pvh.HvmStartInfo)
HVM_MEMMAP_ENTRY = _with_size(_pvh.HVM_MEMMAP_ENTRY_OFFSETS, _pvh.HvmMemmapTableEntry)
HVM_MODLIST_ENTRY = _with_size(_pvh.HVM_MODLIST_ENTRY_OFFSETS, _pvh.HvmModlistEntry)
