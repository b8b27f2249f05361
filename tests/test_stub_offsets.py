"""The offsets the stubs use (read off the schemas) against the facts, written out."""

from osvkit.structs import offsets as off


def test_boot_params_offsets():
    # Linux's bootparam.h (linux-loader bootparam.rs)
    assert off.BOOT_PARAMS["e820_entries"] == 0x1E8
    assert off.BOOT_PARAMS["boot_flag"] == 0x1FE
    assert off.BOOT_PARAMS["header"] == 0x202
    assert off.BOOT_PARAMS["cmd_line_ptr"] == 0x228
    assert off.BOOT_PARAMS["cmdline_size"] == 0x238
    assert off.BOOT_PARAMS["e820_table"] == 0x2D0
    assert off.BOOT_PARAMS["sizeof"] == 4096
    assert off.BOOT_E820_ENTRY == {"addr": 0, "size": 8, "type": 16, "sizeof": 20}
    assert off.E820_MAX_ENTRIES_ZEROPAGE == 128


def test_bootinfo_offsets():
    # OSv's arch-setup.hh
    bi = off.BOOTINFO
    assert (bi["flags"], bi["cmdline"], bi["mmap_length"], bi["mmap_addr"],
            bi["boot_loader_name"]) == (0, 16, 44, 48, 64)
    assert (bi["tsc_init"], bi["tsc_disk_done"], bi["tsc_uncompress_done"]) == (88, 96, 104)
    assert (bi["disk_err"], bi["pvh_rsdp"], bi["sizeof"]) == (112, 113, 121)
    assert off.BOOTINFO_FLAG_BOOT_LOADER_NAME == 0x200
    assert off.E820ENT == {"ent_size": 0, "addr": 4, "size": 12, "type": 20, "sizeof": 24}


def test_start_info_offsets():
    # Xen's start_info.h
    si = off.START_INFO
    assert (si["magic"], si["version"], si["flags"], si["nr_modules"], si["modlist_paddr"],
            si["cmdline_paddr"], si["rsdp_paddr"], si["memmap_paddr"], si["memmap_entries"],
            si["sizeof"]) == (0, 4, 8, 12, 16, 24, 32, 40, 48, 56)
    assert (off.HVM_MEMMAP_ENTRY["addr"], off.HVM_MEMMAP_ENTRY["size"],
            off.HVM_MEMMAP_ENTRY["type"], off.HVM_MEMMAP_ENTRY["sizeof"]) == (0, 8, 16, 24)
    assert (off.HVM_MODLIST_ENTRY["paddr"], off.HVM_MODLIST_ENTRY["size"],
            off.HVM_MODLIST_ENTRY["sizeof"]) == (0, 8, 32)
