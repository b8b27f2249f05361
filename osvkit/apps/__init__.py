"""Host programs -> OSv images: the ``DT_NEEDED`` closure of Linux programs, resolved as the
host's dynamic linker would, placed where OSv's linker looks, without the libraries OSv's
kernel supplies.

* :func:`resolve_closure` -- the files (programs and libraries) to copy, with where each was
  found and which object needs it;
* :func:`build_app_tree` -- the guest tree (``--app``, ``--add``, ``--deb``, skeleton);
* :func:`build_host_app_image` -- a usr.img, or a vmlinux ELF plus its ROFS disk;
* :func:`write_usr_manifest` -- an OSv ``usr.manifest`` of the closure;
* :func:`supplied_sonames`, :func:`read_elf_info`, :func:`load_ld_cache` -- the parts.
"""

from .builder import AppTree, build_app_tree, compose_cmdline, parse_env  # noqa: F401
from .closure import (AppSpec, Closure, ClosureEntry, MissingLibraryError,  # noqa: F401
                      resolve_closure)
from .elfinfo import ElfInfo, read_elf_info  # noqa: F401
from .image import AppImageResult, build_host_app_image, write_usr_manifest  # noqa: F401
from .ldcache import LdCache, load_ld_cache, parse_ld_cache  # noqa: F401
from .supplied import DEFAULT_SUPPLIED, Supplied, supplied_sonames  # noqa: F401
