"""Options shared by every command, and the helpers that apply them.

Command modules declare their parameters with these ``Annotated`` aliases, so the same long
option means the same thing everywhere::

    @app.command(epilog=examples("osvkit run usr.img --memory 512M --json"))
    def run(image: ..., memory: MemoryOpt = None, cpus: CpusOpt = None, timeout: TimeoutOpt = None,
            json_output: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False):
        setup_output(verbose, quiet)
        opts = resolve(config=None, memory=memory, cpus=cpus, timeout=timeout)
        ...

Option values default to ``None`` ("not given"), so :func:`resolve` can apply the one
precedence rule (:func:`osvkit.config.resolve_options`): flag > ``OSVKIT_*`` environment
variable > build file > built-in default.  ``-v``/``-q`` work before the command
(``osvkit -v verify``) and after it (``osvkit verify -v``); logs and progress bars go to
stderr, never stdout, so ``--json`` output always parses.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import progress
from ..config import OPTIONS, ResolvedOptions, find_build_file, load_build_file, resolve_options
from ._app import JsonOpt, setup_logging  # noqa: F401  (re-exported)


def _help(name: str, text: str) -> str:
    spec = OPTIONS[name]
    default = "" if spec.default is None else f" [default: {spec.default}]"
    return f"{text} [env: {spec.env}]{default}"


VerboseOpt = Annotated[int, typer.Option("-v", "--verbose", count=True, show_default=False,
                                         help="More log output on stderr (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet",
                                        help="Only errors on stderr; no progress bar.")]
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "-c", "--config", metavar="FILE",
    help="Build file (osvkit.toml) [env: OSVKIT_CONFIG].")]
MemoryOpt = Annotated[Optional[str], typer.Option(
    "--memory", "-m", metavar="SIZE", help=_help("memory", "Guest memory, MiB or <n>K/M/G."),
    show_default=False)]
CpusOpt = Annotated[Optional[str], typer.Option(
    "--cpus", metavar="N", help=_help("cpus", "Virtual CPUs."), show_default=False)]
TimeoutOpt = Annotated[Optional[str], typer.Option(
    "--timeout", metavar="SECONDS", help=_help("timeout", "Seconds a boot may take."),
    show_default=False)]
ImageFormatOpt = Annotated[Optional[str], typer.Option(
    "--image-format", metavar="raw|qcow2", help=_help("image-format", "usr.img container format."),
    show_default=False)]
AccelOpt = Annotated[Optional[str], typer.Option(
    "--accel", metavar="tcg|kvm", help=_help("accel", "QEMU accelerator."), show_default=False)]
CmdlineOpt = Annotated[Optional[str], typer.Option(
    "--cmdline", metavar="TEXT", help=_help("cmdline", "Guest command line."),
    show_default=False)]
OutDirOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", metavar="DIR", help="Output directory (default: the build file's).")]


def setup_output(verbose: int = 0, quiet: bool = False) -> None:
    """Apply a command's own ``-v``/``-q`` (the root options were applied already; a
    command-level flag only ever adds to them)."""
    log = logging.getLogger("osvkit")
    if quiet:
        setup_logging(logging.ERROR)
    elif verbose:
        level = (logging.INFO, logging.DEBUG)[min(verbose, 2) - 1]
        setup_logging(min(level, log.level or logging.WARNING))
    elif not log.handlers:
        setup_logging(logging.WARNING)
    if quiet or log.level >= logging.ERROR:
        progress.set_enabled(False)


def flags(**values: Any) -> dict[str, Any]:
    """Command-line option values keyed by option name (``image_format`` -> ``image-format``),
    ``None`` meaning not given."""
    return {k.replace("_", "-"): v for k, v in values.items()}


def resolve(config: Path | None = None, **values: Any) -> ResolvedOptions:
    """Resolve the options a command takes: its flags over ``OSVKIT_*`` over the build file's
    ``[options]`` (``config``, or ``OSVKIT_CONFIG``) over the defaults."""
    path = find_build_file(config)
    file_values, file_sources = ({}, {})
    if path is not None:
        file_values, file_sources = load_build_file(path).file_options(None)
    given = flags(**values)
    return resolve_options(given, file_values, names=list(given), file_sources=file_sources)


def examples(*lines: str) -> str:
    """An ``--help`` epilog listing example invocations (one per line)."""
    body = "\n".join(f"  $ {line}" for line in lines)
    return "\b\nExamples:\n" + textwrap.dedent(body)


def build_file_command(config: Path, out_dir: Path | None, json_output: bool, *,
                       kernel: Path | None = None, **values: Any) -> None:
    """``osvkit build -c FILE [-o DIR]``: build every image of a build file, print the
    manifest (``--json``) or one line per output.  ``values`` are the build command's own
    option values (None = not given), resolved against OSVKIT_* and the file."""
    from ..buildfile import build_from_file, format_result
    from ..errors import UsageError
    from ._app import emit

    if kernel is not None:
        raise UsageError("a KERNEL argument and -c BUILD_FILE", expected="one of them")
    result = build_from_file(config, out_dir=out_dir, flags=flags(**values))
    emit(result, json_output, format_result)


def _verbosity_callback(ctx, param, value):
    if param.opts and "-v" in param.opts and value:
        setup_output(verbose=value)
    elif param.opts and "-q" in param.opts and value:
        setup_output(quiet=True)
    return value


def _templates(group) -> dict:
    """The -v and -q parameters of a command declared with VerboseOpt/QuietOpt."""
    for cmd in getattr(group, "commands", {}).values():
        found = {p.opts[0]: p for p in cmd.params if getattr(p, "opts", None)
                 and p.opts[0] in ("-v", "-q")}
        if len(found) == 2:
            return found
    return {}


def ensure_common_options(group, templates: dict | None = None) -> None:
    """Give every command of the click ``group`` (recursively) ``-v/--verbose`` and
    ``-q/--quiet`` when its module did not declare them (with :data:`VerboseOpt` /
    :data:`QuietOpt`), so ``osvkit COMMAND -q`` works everywhere.  The added options are
    copies of a declared pair that are not passed to the command function
    (``expose_value=False``); they set up logging and the progress bar when parsed."""
    import copy

    if templates is None:
        add_examples(group)
    templates = templates if templates is not None else _templates(group)
    if not templates:
        return
    for cmd in list(getattr(group, "commands", {}).values()):
        if hasattr(cmd, "commands"):
            ensure_common_options(cmd, templates)
            continue
        _option_sources(cmd)
        guard_outputs(cmd)
        names = {opt for p in cmd.params for opt in (getattr(p, "opts", None) or ())}
        for flag, template in templates.items():
            if flag in names or template.opts[-1] in names:
                continue
            param = copy.copy(template)
            param.expose_value = False
            param.callback = _verbosity_callback
            param.name = f"osvkit_common_{flag[1]}"
            cmd.params.append(param)


#: parameter names that name what a command writes (a file or a directory); every other
#: path-valued parameter, and the OSVKIT_CONFIG build file, is an input of the command
OUTPUT_PARAMS = ("output", "out", "out_dir", "directory", "plot")


def _param_label(p) -> str:
    opts = [o for o in getattr(p, "opts", None) or () if o.startswith("-")]
    return max(opts, key=len) if opts else p.name.upper()


def guard_outputs(cmd) -> None:
    """Make ``cmd`` refuse (usage error, 64) an output path that is one of its own inputs
    (the same file directly, through a symbolic link or a hard link: one shared check,
    :func:`osvkit.fileio.check_not_input`).  Inputs the command finds while it runs (the
    host files of a manifest, a build file's kernels) are checked by the library too."""
    import functools
    import os

    callback = cmd.callback
    if callback is None or getattr(callback, "osvkit_guarded", False):
        return
    labels = {p.name: _param_label(p) for p in cmd.params}

    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        outputs = [v for n, v in kwargs.items() if n in OUTPUT_PARAMS and v is not None]
        if outputs:
            from ..fileio import check_not_input

            inputs = [("OSVKIT_CONFIG", os.environ.get("OSVKIT_CONFIG") or None)]
            for name, value in kwargs.items():
                values = value if isinstance(value, (list, tuple)) else [value]
                inputs += [(labels.get(name, name), v) for v in values
                           if name not in OUTPUT_PARAMS and isinstance(v, os.PathLike)]
            for out in outputs:
                check_not_input(out, inputs)
        return callback(*args, **kwargs)

    guarded.osvkit_guarded = True
    cmd.callback = guarded


def _option_sources(cmd) -> None:
    """A command that declares a shared long option (``--memory``, ``--cpus``,
    ``--timeout``, ``--image-format``, ``--cmdline``, ``--accel``) with its own typer default
    still gets the environment level: click reads ``OSVKIT_<NAME>`` when the flag is absent.
    (Commands using the aliases above resolve flag > env > file themselves.)"""
    for p in cmd.params:
        if "[env: " in (getattr(p, "help", None) or "") or getattr(p, "envvar", None):
            continue
        for opt in getattr(p, "opts", None) or ():
            if opt.startswith("--") and opt[2:] in OPTIONS:
                p.envvar = OPTIONS[opt[2:]].env
                p.show_envvar = True
                if p.callback is None:
                    p.callback = _check_shared_option(opt[2:])
                break


def _check_shared_option(name: str):
    """A click callback checking a shared option's value with the same parser the other
    commands use (so ``run --timeout nan`` or ``--cpus 0`` is refused as ``verify`` refuses
    it), naming where the value came from; the value itself is passed on unchanged."""
    def check(ctx, param, value):
        if value is None:
            return value
        try:
            from typer._click.core import ParameterSource
        except ImportError:  # pragma: no cover
            from click.core import ParameterSource
        source = ctx.get_parameter_source(param.name)
        label = {ParameterSource.COMMANDLINE: f"--{name}",
                 ParameterSource.ENVIRONMENT: OPTIONS[name].env,
                 ParameterSource.DEFAULT_MAP: "OSVKIT_CONFIG [options]"}.get(source)
        if label is None:
            return value            # the command's own default
        from ..errors import UsageError
        try:
            OPTIONS[name].parse(value)
        except UsageError as exc:
            raise UsageError(f"{label}: {exc.what}", expected=exc.expected) from None
        return value
    return check


def file_default_map(group, env=None, args=None) -> dict:
    """``default_map`` for click: the ``[options]`` of the build file named by
    ``OSVKIT_CONFIG``, for every command that has those options (the file level of the
    precedence; click itself applies flag > env var > default_map > default)."""
    import os

    env = os.environ if env is None else env
    path = env.get("OSVKIT_CONFIG")
    if not path:
        return {}
    try:
        values = load_build_file(path).options
    except Exception:
        import sys
        words = sys.argv[1:] if args is None else list(args)
        if {"-h", "--help", "--version"} & set(words) or not words:
            return {}         # help stays readable with a broken OSVKIT_CONFIG
        raise

    def walk(g) -> dict:
        out: dict = {}
        for name, cmd in getattr(g, "commands", {}).items():
            if hasattr(cmd, "commands"):
                sub = walk(cmd)
                if sub:
                    out[name] = sub
                continue
            entry = {}
            for p in cmd.params:
                if "[env: " in (getattr(p, "help", None) or ""):
                    continue     # resolves the file itself
                for opt in getattr(p, "opts", None) or ():
                    if opt.startswith("--") and opt[2:] in values and not isinstance(
                            values[opt[2:]], dict):
                        entry[p.name] = values[opt[2:]]
            if entry:
                out[name] = entry
        return out

    return walk(group)


#: ``--help`` examples for commands whose module declares no epilog (applied by
#: :func:`ensure_common_options`; a module's own ``epilog=`` always wins)
EXAMPLES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("build",): (
        "osvkit build -c osvkit.toml                     # every image the file declares",
        "osvkit build loader-stripped.elf -o usr.img --cmdline '--rootfs=rofs /hello'",
        "osvkit build loader-stripped.elf -o app.img --manifest usr.manifest -D arch=x64",
        "osvkit build loader-stripped.elf --format vmlinux -o vmlinux.elf --json",
        "osvkit build loader-stripped.elf -o py.img --app /usr/bin/python3.11 "
        "--add /usr/lib/python3.11 --exclude test --env PYTHONHOME=/usr",
    ),
    ("cmdline", "check"): ("osvkit cmdline check --target firecracker -- '--nopci /hello'",),
    ("cmdline", "get"): ("osvkit cmdline get usr.img", "osvkit cmdline get usr.qcow2 --json"),
    ("cmdline", "set"): ("osvkit cmdline set usr.img -- '--rootfs=rofs --verbose /hello'",),
    ("decode", "boot-params"): ("osvkit decode boot-params zero-page.bin --json",),
    ("decode", "bootinfo"): ("osvkit decode bootinfo mem.dump --offset 0x1000 --base 0",),
    ("decode", "mbr"): ("osvkit decode mbr usr.img",),
    ("decode", "mptable"): ("osvkit decode mptable low-memory.dump --base 0 --json",),
    ("decode", "pvh"): ("osvkit decode pvh start_info.bin",),
    ("firecracker-config",): (
        "osvkit firecracker-config vmlinux.elf -o vm.json --disk usr.img --cmdline /hello",),
    ("inspect",): ("osvkit inspect usr.img", "osvkit inspect vmlinux.elf --json"),
    ("mmio", "decode"): ("osvkit mmio decode 'virtio_mmio.device=4K@0xc0001000:5'",),
    ("mmio", "encode"): ("osvkit mmio encode --size 4K --base 0xc0001000 --irq 5",),
    ("mmio", "strip"): ("osvkit mmio strip -- '--nopci /hello virtio_mmio.device=4K@0xd0000000:5'",),
    ("probe",): ("osvkit probe -o probe.elf", "osvkit probe -o probe6m.elf --size 6M --json"),
    ("rofs", "build"): ("osvkit rofs build usr.manifest -o rofs.img -D libdir=/usr/lib",),
    ("rofs", "extract"): ("osvkit rofs extract usr.img tree/ --partition 1",),
    ("rofs", "ls"): ("osvkit rofs ls rofs.img", "osvkit rofs ls usr.img -p 1 --json"),
    ("run",): (
        "osvkit run usr.img --expect 'Hello' --timeout 30",
        "osvkit run vmlinux.elf --vmm qemu-fc --cmdline '--nopci /hello' --json",
        "OSVKIT_MEMORY=512M osvkit run usr.img --dry-run",
    ),
}


#: extra ``--help`` text after the examples
NOTES: dict[tuple[str, ...], str] = {
    ("build",): """

\b
With -c, -o names the output directory (default: the build file's) and --json prints
the manifest written to osvkit-manifest.json: {manifest_path, osvkit_manifest,
osvkit_version, build_file: {path, sha256}, source_date_epoch, images: [{name, kernel,
cmdline, options, outputs: [{image, kind, path, format, size, sha256, inputs, notes}]}]}.
Nothing is written unless every image builds.""",
    ("rofs", "build"): """

\b
--json prints {output, size, structure_info_first_block, structure_info_blocks_count,
directory_entries_count, symlinks_count, inodes_count, files, data_bytes}. Nothing is
written when the manifest or a host file is bad (the error names file:line).""",
    ("rofs", "ls"): """

\b
--json prints {format, path, offset, partition, superblock: {magic, version, block_size,
structure_info_first_block, structure_info_blocks_count, directory_entries_count,
symlinks_count, inodes_count}, entries: [{path, type, inode, size, target}]} (type: dir,
file or symlink; target only for symlinks).""",
    ("rofs", "extract"): """

\b
--json prints {image, directory, entries, files, bytes}. The tree is extracted beside
DIRECTORY and renamed into place at the end: on failure nothing is written.""",
}


def add_examples(group, prefix: tuple[str, ...] = ()) -> None:
    """Give commands without an epilog their :data:`EXAMPLES` (and :data:`NOTES`)."""
    for name, cmd in getattr(group, "commands", {}).items():
        path = prefix + (name,)
        if hasattr(cmd, "commands"):
            add_examples(cmd, path)
        elif not cmd.epilog and path in EXAMPLES:
            cmd.epilog = examples(*EXAMPLES[path]) + NOTES.get(path, "")
