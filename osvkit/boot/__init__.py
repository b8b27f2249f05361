"""Boot structures: construct schemas, parsers, builders and human descriptions.

* :mod:`.schema` -- ``parse``/``build`` (the one place construct errors are translated),
  ``field_offsets``.
* :mod:`.mbr` -- MBR with OSv's fields and both CHS packings.
* :mod:`.bootparams` -- Linux ``boot_params``/``setup_header`` (+ ``BOOT_PARAMS_OFFSETS``).
* :mod:`.mptable` -- Intel MP spec 1.4 tables: schemas, checksums, parser, scanner.
* :mod:`.bootinfo` -- OSv's ``osv_multiboot_info_type`` (+ ``BOOTINFO_OFFSETS``) and e820.
* :mod:`.pvh` -- PVH ``hvm_start_info`` and its memmap / module list.
* :mod:`.firecracker` -- pure builders reproducing Firecracker's boot data.
* :mod:`.decode` -- ``decode_file(kind, path, ...)`` used by ``osvkit decode``.
"""
