"""OSv's read-only filesystem (ROFS): manifests, a streaming writer and a checking reader.

* :func:`parse_manifest` reads an OSv ``usr.manifest`` into a :class:`GuestTree`.
* :func:`build_rofs` writes a ROFS image from a manifest or a tree.
* :func:`inspect_rofs` / :class:`RofsImage` read and check an image; :func:`extract_rofs`
  writes its tree back out.
"""

from .manifest import (Dir, File, FileSource, GuestTree, Symlink, parse_manifest,  # noqa: F401
                       read_manifest)
from .reader import (ExtractResult, RofsEntry, RofsImage, RofsListing, extract_rofs,  # noqa: F401
                     describe_rofs, detect_rofs_head, format_listing, inspect_rofs,
                     inspect_rofs_details,
                     is_rofs, list_rofs)
from .writer import RofsBuildResult, add_osv_defaults, build_rofs  # noqa: F401
