"""Every binary format osvkit reads or writes, as construct schemas and nothing else.

Code outside this package never packs or slices a known structure by hand: it parses and
builds through :func:`osvkit.structs.base.parse` / :func:`~osvkit.structs.base.build` (the one
place construct's errors become osvkit's one-line errors) and takes byte offsets from
:func:`~osvkit.structs.base.field_offsets` or the ``*_OFFSETS`` tables below.

* :mod:`.base` -- ``parse``, ``build``, ``field_offsets``, ``plain``, ``format_error``.
* :mod:`.elf` -- ELF64: ``Elf64_Ehdr``, ``Elf64_Phdr``, ``Elf64_Shdr``, ``Elf64_Nhdr``,
  ``Elf64_Note``, ``Elf64_Dyn``, ``Elf64_Sym``, ``Elf64_Rela`` and their constants.
* :mod:`.qcow2` -- the qcow2 header (versions 2 and 3), header extensions, table entries.
* :mod:`.mbr` -- the MBR with OSv's fields; CHS addresses in OSv's and the standard packing
  (adapters ``OsvChs``/``StandardChs``); partition entries and table.
* :mod:`.boot16` -- osvkit's boot sector: its data header and the whole 512-byte sector.
* :mod:`.lzdecomp` -- the header of osvkit's compressed boot payload.
* :mod:`.lzloader` -- OSv's lzloader segment format (info offset, segment table).
* :mod:`.bootparams` -- Linux ``boot_params`` / ``setup_header`` and its e820 entry.
* :mod:`.bootinfo` -- OSv's boot-info block ``osv_multiboot_info_type`` and e820 records.
* :mod:`.pvh` -- Xen PVH ``hvm_start_info``, memmap and module-list entries.
* :mod:`.mptable` -- Intel MP spec 1.4 floating pointer, configuration table and entries.
* :mod:`.rofs` -- OSv's read-only filesystem: superblock, inodes, directory entries.
* :mod:`.ldcache` -- glibc's ``/etc/ld.so.cache`` (``glibc-ld.so.cache1.1``).
* :mod:`.x86` -- GDT entries, the ``lgdt`` operand, paging tables.
* :mod:`.probe` -- the conformance kernel's info block and descriptors.
* :mod:`.fcloader` -- the qemu-fc loader's op table, variables and descriptor pointers.
* :mod:`.png` -- PNG signature, chunks (CRC checked) and IHDR, for the boot-timeline plot.
* :mod:`.vmdisk` -- VMDK sparse and VDI headers, the gzip trailer (build-file exports).
* :mod:`.offsets` -- the field offsets generated boot code uses, read off the schemas above.
"""

from ._construct import import_construct

import_construct()   # before any schema module imports from construct

