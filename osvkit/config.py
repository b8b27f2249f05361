"""The build file (``osvkit.toml``) and the precedence of options.

A build file declares the images to build and how to verify them::

    spec = 1

    [options]                       # defaults for every image and command
    memory = "256M"
    timeout = 30

    [[image]]
    name = "hello"
    kernel = "probe:6M"             # a path, or the built-in conformance kernel
    cmdline.options = ["--rootfs=rofs", "--verbose"]
    cmdline.app = ["/hello", "arg"]
    outputs = { usr = "hello.img", vmlinux = "hello.elf" }
    verify = { expect = "^probe: image ok" }

Its JSON Schema is published as ``osvkit/schema/osvkit-build.schema.json``
(:func:`schema`); :func:`load_build_file` validates a file against it and reports each
problem with the line it is on (``osvkit.toml:7: image[0].cpus: 0 is less than 1``).

Every option (:data:`OPTIONS`) can come from four places; :func:`resolve_options` is the one
implementation of their precedence, used by every command::

    command-line flag  >  OSVKIT_* environment variable  >  build file  >  built-in default

In the build file, a key in an ``[[image]]`` table overrides the same key in ``[options]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

from .cmdline.model import Cmdline
from .errors import CmdlineError, FormatError, MissingInputError, UsageError
from .run.backends import VMMS  # noqa: F401  (re-exported: the one list of VMMs)
from .units import memory_mib, parse_size
from .units import shown as _shown

SPEC_VERSION = 1
SCHEMA_FILE = "osvkit-build.schema.json"
DEFAULT_NAME = "osvkit.toml"
MANIFEST_NAME = "osvkit-manifest.json"

OUTPUT_KINDS = ("usr", "vmlinux", "rofs", "firecracker-config", "vmdk", "vdi", "gce")


# --------------------------------------------------------------------------------------
# Options and their precedence
# --------------------------------------------------------------------------------------



def _parse_memory(v: Any) -> str:
    if isinstance(v, bool):
        raise UsageError(f"bad memory size {v!r}", expected="a number of MiB or <n>K/M/G")
    text = str(v).strip()
    memory_mib(text)
    return text if text[-1] in "KMG" else f"{text}M"


def _parse_int_min1(v: Any) -> int:
    text = str(v).strip()
    n = int(text) if not isinstance(v, bool) and re.fullmatch(r"[0-9]{1,6}", text) else None
    if n is None or n < 1 or n > 255:
        raise UsageError(f"bad CPU count {_shown(v)}", expected="an integer from 1 to 255")
    return n


def _parse_timeout(v: Any) -> float:
    try:
        text = str(v).strip()
        t = float(text) if not isinstance(v, bool) and len(text) <= 32 else -1.0
    except ValueError:
        t = -1.0
    if not 0 < t < float("inf"):
        raise UsageError(f"bad timeout {_shown(v)}", expected="a number of seconds above 0")
    return t


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        text = str(v).strip()
        if text not in choices:
            raise UsageError(f"bad value {v!r}", expected=" or ".join(choices))
        return text
    return parse


def _parse_cmdline(v: Any) -> str:
    """A command line as written, or a build file's ``{options, app}`` table rendered; checked
    by :class:`osvkit.cmdline.Cmdline` (the one model) so a bad line is refused here, naming
    the flag, variable or file line it came from."""
    from .cmdline import Cmdline
    from .errors import CmdlineError

    try:
        return str(Cmdline.from_value(v if isinstance(v, Mapping) else str(v)))
    except CmdlineError as exc:
        raise UsageError(f"bad command line: {exc.what}", expected=exc.expected) from None


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag, environment variable, parser and default."""
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def env(self) -> str:
        return "OSVKIT_" + self.name.upper().replace("-", "_")


OPTIONS: dict[str, OptionSpec] = {o.name: o for o in (
    OptionSpec("memory", _parse_memory, "256M", "guest memory (MiB, or <n>K/M/G)"),
    OptionSpec("cpus", _parse_int_min1, 1, "virtual CPUs"),
    OptionSpec("timeout", _parse_timeout, 60.0, "seconds a boot may take"),
    OptionSpec("image-format", _choice("raw", "qcow2"), "raw", "usr.img container format"),
    OptionSpec("accel", _choice("tcg", "kvm"), "tcg", "QEMU accelerator"),
    OptionSpec("cmdline", _parse_cmdline, None, "guest command line"),
)}

#: the build file to read when no ``-c`` is given
CONFIG_ENV = "OSVKIT_CONFIG"


@dataclass
class ResolvedOptions:
    """Option values and where each came from (``flag``, ``env:OSVKIT_X``,
    ``file:<path>:<line>`` or ``default``)."""
    values: dict[str, Any]
    sources: dict[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def given(self) -> dict[str, Any]:
        """The values someone set (flag, environment or build file), keyed by Python name
        (``image_format``): what a command passes on when its library function has its own
        defaults."""
        return {k.replace("-", "_"): v for k, v in self.values.items()
                if self.sources[k] != "default"}

    def to_dict(self) -> dict:
        return {k: {"value": self.values[k], "source": self.sources[k]} for k in self.values}


def resolve_options(flags: Mapping[str, Any] | None = None,
                    file_options: Mapping[str, Any] | None = None, *,
                    env: Mapping[str, str] | None = None,
                    names: list[str] | tuple[str, ...] | None = None,
                    file_sources: Mapping[str, str] | None = None) -> ResolvedOptions:
    """Resolve ``names`` (default: all :data:`OPTIONS`) by flag > env > file > default.

    ``flags`` maps option names to the command-line value, ``None`` meaning "not given".
    ``file_options`` maps names to build-file values (already merged image > [options]);
    ``file_sources`` optionally names where each file value was (``file:osvkit.toml:4``).
    A bad value raises :class:`UsageError` naming the flag, variable or file line.
    """
    flags = flags or {}
    file_options = file_options or {}
    file_sources = file_sources or {}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in (names or tuple(OPTIONS)):
        spec = OPTIONS[name]
        candidates = (
            (flags.get(name), "flag", spec.flag),
            (env.get(spec.env) if env.get(spec.env, "") != "" else None, f"env:{spec.env}",
             spec.env),
            (file_options.get(name), file_sources.get(name, "file"),
             file_sources.get(name, "build file").removeprefix("file:")),
        )
        for raw, source, label in candidates:
            if raw is None:
                continue
            try:
                values[name] = spec.parse(raw)
            except UsageError as exc:
                raise UsageError(f"{label}: {exc.what}", expected=exc.expected) from None
            sources[name] = source
            break
        else:
            values[name] = spec.default
            sources[name] = "default"
    return ResolvedOptions(values, sources)


# --------------------------------------------------------------------------------------
# The JSON Schema and a validator for the subset it uses
# --------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def schema() -> dict:
    """The published JSON Schema of the build file (a dict)."""
    text = resources.files("osvkit.schema").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


def schema_path() -> Path:
    """Where the schema file is installed."""
    return Path(str(resources.files("osvkit.schema").joinpath(SCHEMA_FILE)))


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _typename(v: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](v):
            return {"object": "table", "boolean": "boolean"}.get(name, name)
    return type(v).__name__


def _validate(value: Any, node: dict, path: tuple, root: dict, errors: list) -> None:
    """Append ``(path, what, expected)`` for every way ``value`` breaks ``node``."""
    if "$ref" in node:
        ref = node["$ref"]
        target = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        _validate(value, merged, path, root, errors)
        return
    if "oneOf" in node:
        matches = []
        for alt in node["oneOf"]:
            sub: list = []
            _validate(value, alt, path, root, sub)
            if not sub:
                matches.append(alt)
        if len(matches) != 1:
            # report the errors of the alternative whose type fits, if any
            for alt in node["oneOf"]:
                if "type" in alt and _TYPES[alt["type"]](value):
                    _validate(value, alt, path, root, errors)
                    return
            errors.append((path, f"{_typename(value)} {_show(value)}",
                           node.get("description", "one of the allowed forms")))
        return
    if "enum" in node and value not in node["enum"]:
        errors.append((path, f"{_show(value)} is not allowed",
                       " or ".join(_show(e) for e in node["enum"])))
        return
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_TYPES[t](value) for t in types):
            want = " or ".join("table" if t == "object" else t for t in types)
            errors.append((path, f"{_typename(value)} {_show(value)}", want))
            return
    if isinstance(value, str):
        if "minLength" in node and len(value) < node["minLength"]:
            errors.append((path, "empty string", node.get("description", "a non-empty string")))
        elif "pattern" in node and not re.search(node["pattern"], value):
            errors.append((path, f"{_show(value)} has the wrong form",
                           node.get("description", f"a string matching {node['pattern']}")))
    if _TYPES["number"](value):
        if "minimum" in node and value < node["minimum"]:
            errors.append((path, f"{value} is less than {node['minimum']}",
                           f"at least {node['minimum']}"))
        if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
            errors.append((path, f"{value} is not above {node['exclusiveMinimum']}",
                           f"more than {node['exclusiveMinimum']}"))
        if "maximum" in node and value > node["maximum"]:
            errors.append((path, f"{value} is more than {node['maximum']}",
                           f"at most {node['maximum']}"))
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            errors.append((path, "empty array", node.get("description", "at least one item")))
        if "items" in node:
            for i, item in enumerate(value):
                _validate(item, node["items"], path + (i,), root, errors)
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key in node.get("required", ()):
            if key not in value:
                errors.append((path, f"missing key {key!r}",
                               props.get(key, {}).get("description", f"a {key!r} key")))
        if len(value) < node.get("minProperties", 0):
            errors.append((path, "empty table", node.get("description", "at least one key")))
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                _validate(item, props[key], path + (key,), root, errors)
            elif extra is False:
                known = ", ".join(sorted(props))
                errors.append((path + (key,), f"unknown key {key!r}", f"one of {known}"))
            elif isinstance(extra, dict):
                _validate(item, extra, path + (key,), root, errors)


def _show(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (str, int, float, bool)) else _typename(v)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def validate(data: Any) -> list[tuple[tuple, str, str]]:
    """Validate a parsed build file against :func:`schema`.

    Returns ``[(key_path, what, expected), ...]``, empty when the file is valid."""
    errors: list = []
    root = schema()
    _validate(data, root, (), root, errors)
    return errors


def format_key_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# --------------------------------------------------------------------------------------
# Finding the line of a key (tomllib keeps no positions)
# --------------------------------------------------------------------------------------

_KEY = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER_RE = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN_RE = re.compile(rf"^\s*({_DOTTED})\s*=")
_INLINE_KEY_RE = re.compile(rf"[{{,]\s*({_DOTTED})\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(_KEY, text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[tuple, int]:
    """Map every key path the TOML ``text`` spells out to its 1-based line number.

    Array-of-tables headers (``[[image]]``) get their index in the path
    (``("image", 1, "outputs", "usr")``); keys inside one-line inline tables are found too.
    Array elements are not located (callers fall back to the array's line).
    """
    lines: dict[tuple, int] = {}
    arrays: dict[tuple, int] = {}      # array-of-tables key -> current index
    current: tuple = ()
    in_multiline = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if in_multiline:
            if in_multiline in line:
                in_multiline = None
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _HEADER_RE.match(line)
        if m and not _ASSIGN_RE.match(line):
            keys = _split_key(m.group(2))
            resolved: tuple = ()
            for i, k in enumerate(keys):
                resolved += (k,)
                prefix = keys[: i + 1]
                if m.group(1) == "[[" and i == len(keys) - 1:
                    arrays[prefix] = arrays.get(prefix, -1) + 1
                if prefix in arrays:
                    resolved += (arrays[prefix],)
            current = resolved
            lines.setdefault(current, lineno)
            if m.group(1) == "[[":
                lines.setdefault(current[:-1], lineno)
            continue
        m = _ASSIGN_RE.match(line)
        if m:
            full = current + _split_key(m.group(1))
            for i in range(len(current) + 1, len(full) + 1):
                lines.setdefault(full[:i], lineno)
            rest = line[m.end():]
            for im in _INLINE_KEY_RE.finditer(rest):
                lines.setdefault(full + _split_key(im.group(1)), lineno)
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote
    return lines


def line_of(lines: Mapping[tuple, int], path: tuple) -> int | None:
    """The line of ``path``, or of its nearest located ancestor."""
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


class BuildFileError(FormatError):
    """An invalid build file.  ``errors`` lists every ``(line, key_path, what, expected)``;
    the message puts them all on one line, each as ``<file>:<line>: <key>: <what>``."""

    def __init__(self, path: str | os.PathLike, errors: list[tuple[int | None, str, str, str]]):
        self.errors = errors
        self.file = os.fspath(path)
        parts = []
        for line, key, what, expected in errors:
            where = f"{self.file}:{line}" if line else self.file
            parts.append(f"{where}: {key}: {what}, expected {expected}")
        FormatError.__init__(self, "; ".join(parts))

    def to_dict(self) -> dict:
        return {"file": self.file, "errors": [
            {"line": l, "key": k, "what": w, "expected": e} for l, k, w, e in self.errors]}


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------

@dataclass
class VerifySpec:
    expect: str | None = None
    timeout: float | None = None
    vmms: list[str] | None = None
    fail_patterns: list[str] = field(default_factory=list)
    skip: bool = False

    def to_dict(self) -> dict:
        return {"expect": self.expect, "timeout": self.timeout, "vmms": self.vmms,
                "fail_patterns": list(self.fail_patterns), "skip": self.skip}


@dataclass
class ImageSpec:
    """One ``[[image]]`` of a build file."""
    index: int
    name: str
    kernel: str
    cmdline: Cmdline
    """The ``cmdline`` key (a string kept as written, or options and app arguments); empty
    when the image has none."""
    outputs: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)      # per-image option keys
    partition: str | None = None
    rofs_manifest: str | None = None
    rofs_defines: dict[str, str] = field(default_factory=dict)
    verify: VerifySpec = field(default_factory=VerifySpec)
    line: int | None = None
    apps: dict[str, Any] = field(default_factory=dict)
    """Host programs and files for the ROFS (:data:`APP_KEYS`: app, add, exclude, deb,
    library_path, env, cwd, bare, allow_missing, follow_symlinks_anywhere)."""

    has_cmdline: bool = False
    """Whether the build file gives this image a ``cmdline`` (possibly an empty one)."""

    @property
    def probe_size(self) -> int | None | bool:
        """For ``probe`` / ``probe:<size>`` kernels: the size in bytes (None = default);
        False for a kernel file."""
        return parse_probe_spec(self.kernel)

    def to_dict(self) -> dict:
        return {"name": self.name, "kernel": self.kernel, "cmdline": str(self.cmdline),
                "outputs": dict(self.outputs), "options": dict(self.options),
                "partition": self.partition, "rofs_manifest": self.rofs_manifest,
                "rofs_defines": dict(self.rofs_defines), "verify": self.verify.to_dict(),
                "apps": dict(self.apps)}


#: [[image]] keys that put host programs and files in the ROFS (osvkit.apps)
APP_KEYS = ("app", "add", "exclude", "deb", "library_path", "env", "cwd", "bare",
            "allow_missing", "follow_symlinks_anywhere")
#: of those, the ones that add files (the others only qualify them)
APP_SOURCE_KEYS = ("app", "add", "deb")


_SIZE_RE = re.compile(r"^([0-9]{1,24})([KMG]?)$")


def parse_probe_spec(kernel: str) -> int | None | bool:
    """``"probe"`` -> None (default size), ``"probe:6M"`` -> 6 MiB in bytes, a path -> False."""
    if kernel == "probe":
        return None
    if not kernel.startswith("probe:"):
        return False
    m = _SIZE_RE.match(kernel[6:])
    if not m:
        raise UsageError(f"bad probe size in {_shown(kernel)}", expected="probe:<n>[K|M|G]")
    return parse_size(kernel[6:], "probe size", units="KMG")


@dataclass
class BuildFile:
    """A loaded, validated build file."""
    path: Path
    text: str
    sha256: str
    spec: int
    options: dict[str, Any]
    images: list[ImageSpec]
    lines: dict[tuple, int]

    @property
    def directory(self) -> Path:
        return self.path.parent

    def file_options(self, image: ImageSpec | None = None) -> tuple[dict, dict]:
        """Build-file option values for ``image`` ([[image]] keys over [options]) and the
        ``file:<path>:<line>`` each came from, for :func:`resolve_options`."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name in OPTIONS:
            if image is not None and name in image.options:
                values[name] = image.options[name]
                key = ("image", image.index, name)
            elif name in self.options:
                values[name] = self.options[name]
                key = ("options", name)
            else:
                continue
            line = line_of(self.lines, key)
            sources[name] = f"file:{self.path.name}:{line}" if line else f"file:{self.path.name}"
        return values, sources

    def resolve(self, image: ImageSpec | None = None, flags: Mapping[str, Any] | None = None,
                env: Mapping[str, str] | None = None) -> ResolvedOptions:
        values, sources = self.file_options(image)
        if image is not None and image.has_cmdline:
            values["cmdline"] = str(image.cmdline)
            line = line_of(self.lines, ("image", image.index, "cmdline"))
            sources["cmdline"] = f"file:{self.path.name}:{line}"
        return resolve_options(flags, values, env=env, file_sources=sources)

    def relpath(self, path: str | os.PathLike) -> str:
        """``path`` relative to the build file's directory (POSIX separators)."""
        p = Path(path)
        if not p.is_absolute():
            p = self.directory / p
        try:
            return Path(os.path.relpath(p, self.directory)).as_posix()
        except ValueError:
            return p.as_posix()

    def input_path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.directory / p

    def to_dict(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "spec": self.spec,
                "options": dict(self.options), "images": [i.to_dict() for i in self.images]}


#: deepest nesting of tables and arrays read (the schema needs 4)
MAX_DEPTH = 16


def _too_deep(data: Any) -> tuple | None:
    """The key path of a value nested deeper than :data:`MAX_DEPTH`, or None (iterative, so
    a hostile file cannot exhaust Python's stack)."""
    stack = [((), data)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_DEPTH:
            return path
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
    return None


def _parser_limit(text: str, exc: Exception) -> tuple:
    """The error for a file Python's TOML parser gives up on: an integer over its 4,300-digit
    limit, or nesting deeper than its recursion allows."""
    if isinstance(exc, RecursionError):
        depths = [len(re.findall(r"[\[{]", line)) for line in text.splitlines()] or [0]
        line = depths.index(max(depths)) + 1
        return (line, "(syntax)", "tables or arrays nested too deeply for the TOML parser",
                f"at most {MAX_DEPTH} levels")
    for number, line in enumerate(text.splitlines(), 1):
        m = re.search(r"[0-9_]{4000,}", line)
        if m:
            return (number, "(syntax)", f"a number of {len(m.group())} digits",
                    "an integer of at most 19 digits")
    return (None, "(syntax)", f"TOML value error: {str(exc)[:100]}", "valid TOML")


def load_build_file(path: str | os.PathLike) -> BuildFile:
    """Read, parse and validate a build file.

    Raises :class:`MissingInputError` when it cannot be read, and :class:`BuildFileError`
    (one line listing every problem with its line number) when it is not valid."""
    from .fileio import read_input

    path = Path(path)
    if not path.exists():
        raise MissingInputError("no such build file", path=path)
    raw = read_input(path, "a build file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BuildFileError(path, [(line, "(file)", "not UTF-8 text", "a TOML file")]) from None
    try:
        data = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:
        if not isinstance(exc, tomllib.TOMLDecodeError):
            raise BuildFileError(path, [_parser_limit(text, exc)]) from None
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        what = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        raise BuildFileError(path, [(line, "(syntax)", f"TOML syntax error: {what}",
                                     "valid TOML")]) from None
    lines = key_lines(text)
    deep = _too_deep(data)
    if deep is not None:
        raise BuildFileError(path, [(line_of(lines, deep), format_key_path(deep[:4]) + "...",
                                     f"tables or arrays nested more than {MAX_DEPTH} deep",
                                     "a build file as its schema describes it")])
    errors = validate(data)
    if errors:
        raise BuildFileError(path, [(line_of(lines, p), format_key_path(p), w, e)
                                    for p, w, e in errors])
    images: list[ImageSpec] = []
    problems: list[tuple] = []
    seen_names: dict[str, int] = {}
    seen_outputs: dict[str, tuple] = {}
    for i, img in enumerate(data["image"]):
        rofs = img.get("rofs") or {}
        verify = img.get("verify") or {}
        spec = ImageSpec(
            index=i, name=img["name"], kernel=img["kernel"],
            cmdline=Cmdline(),
            has_cmdline="cmdline" in img,
            outputs=dict(img["outputs"]),
            options={k: img[k] for k in OPTIONS if k in img and k != "cmdline"},
            partition=img.get("partition"),
            rofs_manifest=rofs.get("manifest"),
            rofs_defines=dict(rofs.get("defines", {})),
            verify=VerifySpec(expect=verify.get("expect"), timeout=verify.get("timeout"),
                              vmms=verify.get("vmms"),
                              fail_patterns=list(verify.get("fail-patterns", [])),
                              skip=bool(verify.get("skip", False))),
            line=line_of(lines, ("image", i)),
            apps={k: img[k] for k in APP_KEYS if k in img},
        )
        images.append(spec)
        try:
            spec.cmdline = Cmdline.from_value(img.get("cmdline"))
        except CmdlineError as exc:
            problems.append((("image", i, "cmdline"), exc.what, exc.expected))
        if spec.name in seen_names:
            problems.append((("image", i, "name"), f"duplicate image name {spec.name!r}",
                             "a name used once"))
        seen_names[spec.name] = i
        try:
            parse_probe_spec(spec.kernel)
        except UsageError as exc:
            problems.append((("image", i, "kernel"), exc.what, exc.expected))
        if spec.partition and spec.rofs_manifest:
            problems.append((("image", i, "partition"), "both partition and rofs given",
                             "at most one filesystem for partition 1"))
        if spec.verify.expect is not None:
            try:
                re.compile(spec.verify.expect)
            except re.error as exc:
                problems.append((("image", i, "verify", "expect"),
                                 f"bad regular expression: {exc}", "a Python regex"))
        for kind, out in spec.outputs.items():
            norm = os.path.normpath(out)
            if os.path.isabs(out) or norm == ".." or norm.startswith("../"):
                problems.append((("image", i, "outputs", kind),
                                 f"output {out!r} is outside the output directory",
                                 "a path relative to the output directory, inside it "
                                 "(choose the directory with -o)"))
                continue
            if norm in seen_outputs:
                problems.append((("image", i, "outputs", kind),
                                 f"output {out!r} is also written by "
                                 f"{format_key_path(seen_outputs[norm])}", "distinct outputs"))
            seen_outputs[norm] = ("image", i, "outputs", kind)
            if norm == MANIFEST_NAME:
                problems.append((("image", i, "outputs", kind),
                                 f"output {out!r} is the build manifest", "another name"))
        has_apps = any(k in spec.apps for k in APP_SOURCE_KEYS)
        with_manifest_ok = {"allow_missing", "follow_symlinks_anywhere"} if spec.rofs_manifest else set()
        stray = sorted(set(spec.apps) - with_manifest_ok)
        if stray and not has_apps:
            problems.append((("image", i, stray[0]), f"{stray[0]} without app, add or deb",
                             "app, add or deb keys in the same [[image]]"))
        env = spec.apps.get("env", {})
        for name in (env if isinstance(env, dict) else [e.partition("=")[0] for e in env]):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                problems.append((("image", i, "env"), f"bad variable name {name!r}",
                                 "NAME of letters, digits and _ (not starting with a digit)"))
        if has_apps and spec.partition:
            problems.append((("image", i, "partition"), "both partition and app/add/deb given",
                             "at most one filesystem for partition 1"))
        if "rofs" in spec.outputs and not spec.rofs_manifest and not has_apps:
            problems.append((("image", i, "outputs", "rofs"), "rofs output without [image.rofs]",
                             "an image.rofs.manifest to build it from"))
        for name, value in spec.options.items():
            try:
                OPTIONS[name].parse(value)
            except UsageError as exc:
                problems.append((("image", i, name), exc.what, exc.expected))
    for name, value in data.get("options", {}).items():
        try:
            OPTIONS[name].parse(value)
        except UsageError as exc:
            problems.append((("options", name), exc.what, exc.expected))
    if problems:
        raise BuildFileError(path, [(line_of(lines, p), format_key_path(p), w, e)
                                    for p, w, e in problems])
    return BuildFile(path=path.resolve(), text=text, sha256=hashlib.sha256(raw).hexdigest(),
                     spec=data["spec"], options=dict(data.get("options", {})), images=images,
                     lines=lines)


def find_build_file(explicit: str | os.PathLike | None = None,
                    env: Mapping[str, str] | None = None) -> Path | None:
    """The build file a command should read: ``-c`` > ``OSVKIT_CONFIG`` > none."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return None
