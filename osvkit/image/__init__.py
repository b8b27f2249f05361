"""Image builders, readers and patchers (usr.img, lzloader, vmlinux ELF, disks)."""
