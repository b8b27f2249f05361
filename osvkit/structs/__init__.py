"""Every binary format osvkit reads or writes, as construct schemas and nothing else.

Code outside this package never packs or slices a known structure by hand: it parses and
builds through :func:`osvkit.structs.base.parse` / :func:`~osvkit.structs.base.build` (the one
place construct's errors become osvkit's one-line errors) and takes byte offsets from
:func:`~osvkit.structs.base.field_offsets` or the ``*_OFFSETS`` tables below.

* :mod:`.base` -- ``parse``, ``build``, ``field_offsets``, ``plain``, ``format_error``.
* :mod:`.elf` -- ELF64: ``Elf64_Ehdr``, ``Elf64_Phdr``, ``Elf64_Shdr``, ``Elf64_Nhdr``,
  ``Elf64_Note``, ``Elf64_Dyn``, ``Elf64_Sym``, ``Elf64_Rela`` and their constants.
* :mod:`.qcow2` -- the qcow2 header (versions 2 and 3), header extensions, table entries.
"""
