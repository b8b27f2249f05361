"""The shape of the code base (CONTRIBUTING.md): layers, imports, leftovers, function size.

Every check collects *all* violations, as ``file:line: what``, so one run lists everything to
sweep.  The layer order is read from CONTRIBUTING.md's ``layers`` block, so the document and
the test cannot disagree.  Text checks skip this file (it spells the patterns it looks for).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "osvkit"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
SELF = Path(__file__).resolve()
MAX_FUNCTION_LINES = 150
SKIP_DIRS = {".git", "__pycache__", ".hypothesis", ".pytest_cache", "build", "dist", ".eggs",
             "node_modules"}
TEXT_SUFFIXES = {".py", ".md", ".cfg", ".toml", ".sh", ".yml", ".yaml", ".json", ".txt", ".in"}


def _report(violations: list[str], what: str) -> None:
    if violations:
        pytest.fail(f"{len(violations)} {what}:\n" + "\n".join(sorted(violations)),
                    pytrace=False)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@lru_cache(maxsize=None)
def _package_files() -> tuple[Path, ...]:
    return tuple(sorted(p for p in PKG.rglob("*.py") if not SKIP_DIRS & set(p.parts)))


@lru_cache(maxsize=None)
def _python_files() -> tuple[Path, ...]:
    """Every Python file of the project (package, tests, benchmarks, examples)."""
    out = list(_package_files())
    for sub in ("tests", "bench", "examples"):
        out += [p for p in (ROOT / sub).rglob("*.py") if not SKIP_DIRS & set(p.parts)]
    return tuple(sorted(set(out)))


@lru_cache(maxsize=None)
def _text_files() -> tuple[Path, ...]:
    """Every text file of the project but this one."""
    out = []
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT)
        if SKIP_DIRS & set(rel.parts) or not p.is_file() or p.resolve() == SELF:
            continue
        if p.suffix in TEXT_SUFFIXES or p.name in ("run", "README"):
            out.append(p)
    return tuple(sorted(out))


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ------------------------------------------------------------------------------- imports
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in _package_files()}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The osvkit modules an import statement loads (a name imported from a package is
    that package's submodule when one exists, else the package itself)."""
    mods = _modules()
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == "osvkit" or a.name.startswith("osvkit.")]
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not (target == "osvkit" or target.startswith("osvkit.")):
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in mods else target)
    return out


@lru_cache(maxsize=None)
def _import_edges() -> tuple[tuple[str, str, str], ...]:
    """(importer, imported, "file:line") for every import of an osvkit module, at any depth
    (function-level imports included)."""
    edges = []
    for name, path in _modules().items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(name, is_package, node):
                    if target != name:
                        edges.append((name, target, f"{_rel(path)}:{node.lineno}"))
    return tuple(edges)


def _component(module: str) -> str:
    """``osvkit.probe.layout`` -> ``probe``; ``osvkit.layout`` -> ``layout``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@lru_cache(maxsize=None)
def _layers() -> dict[str, int]:
    """Component -> layer number (0 = bottom) from CONTRIBUTING.md's ``layers`` block:
    one layer per line, top layer first, components separated by commas."""
    text = CONTRIBUTING.read_text(encoding="utf-8")
    m = re.search(r"^```layers\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert m, "CONTRIBUTING.md has no ```layers block"
    lines = [ln.split("#", 1)[0].strip() for ln in m.group(1).splitlines()]
    lines = [ln for ln in lines if ln]
    out = {}
    for depth, line in enumerate(reversed(lines)):
        for name in re.split(r"[,\s]+", line):
            if name:
                assert name not in out, f"{name} is in two layers of CONTRIBUTING.md"
                out[name] = depth
    return out


def _package_components() -> set[str]:
    return {_component(m) for m in _modules() if m != "osvkit"}


def test_every_component_has_a_layer():
    layers = _layers()
    missing = sorted(_package_components() - set(layers))
    assert not missing, f"osvkit components missing from CONTRIBUTING.md's layers: {missing}"


def test_no_upward_imports():
    layers = _layers()
    layers.setdefault("__init__", max(layers.values()))
    bad = []
    for src, dst, where in _import_edges():
        if dst == "osvkit":      # the package façade, imported before any module anyway
            continue
        a, b = _component(src), _component(dst)
        if a != b and a in layers and b in layers and layers[b] > layers[a]:
            bad.append(f"{where}: {src} (layer {a}) imports {dst} (layer {b}, above it)")
    _report(bad, "upward imports")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycles():
    modules: dict[str, set[str]] = {}
    components: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for src, dst, at in _import_edges():
        # a submodule's package is imported first anyway: that is not an edge back
        if src.startswith(dst + "."):
            continue
        modules.setdefault(src, set()).add(dst)
        where.setdefault((src, dst), at)
        a, b = _component(src), _component(dst)
        if a != b:
            components.setdefault(a, set()).add(b)
            where.setdefault((a, b), at)
    bad = []
    for comp in _cycles(components):
        links = [f"{where[a, b]} ({a} -> {b})" for a in comp for b in components.get(a, ())
                 if b in comp]
        bad.append("components " + " <-> ".join(comp) + ": " + "; ".join(sorted(links)))
    for comp in _cycles(modules):
        links = [f"{where[a, b]}" for a in comp for b in modules.get(a, ()) if b in comp]
        bad.append("modules " + " <-> ".join(comp) + ": " + "; ".join(sorted(links)))
    _report(bad, "import cycles")


# ------------------------------------------------------------------------------ leftovers
def test_no_struct_module_outside_structs():
    """Byte layouts are construct schemas in osvkit/structs/ (assembly ``.byte``/``.quad``
    directives inside generated code are text, not this)."""
    bad = []
    for path in _package_files():
        if (PKG / "structs") in path.parents:
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Import) and any(a.name == "struct" for a in node.names):
                bad.append(f"{_rel(path)}:{node.lineno}: import struct")
            elif isinstance(node, ast.ImportFrom) and node.module == "struct" and not node.level:
                bad.append(f"{_rel(path)}:{node.lineno}: from struct import ...")
    _report(bad, "uses of the struct module outside osvkit/structs/")


def test_construct_is_imported_only_in_structs():
    """Schemas live in one layer, and construct is imported through it (osvkit.structs imports
    it once, with its unused debugger deferred: osvkit/structs/_construct.py)."""
    bad = []
    for path in _package_files():
        if (PKG / "structs") in path.parents:
            continue
        for node in ast.walk(_tree(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            if any(n.split(".")[0] == "construct" for n in names):
                bad.append(f"{_rel(path)}:{node.lineno}: imports construct")
    _report(bad, "construct imported outside osvkit/structs/")


WORKSTREAMS = ("fcpath", "bios", "schemas", "cli", "probe", "cmdline", "rofs", "structs",
               "disk", "apps", "harden", "linux", "run", "mmio")
_MARKER = re.compile(r"\[/?(?:%s)\]|\b(?:%s)\s+(?:part|helper)\b" % ("|".join(WORKSTREAMS),
                                                                      "|".join(WORKSTREAMS)),
                     re.IGNORECASE)


def _comments(path: Path):
    src = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def test_no_workstream_markers():
    """Comments such as ``# [fcpath]`` or ``# --- probe helper ---`` name who wrote the code,
    not what it does."""
    bad = []
    for path in _python_files():
        if path.resolve() == SELF:
            continue
        for line, text in _comments(path):
            if _MARKER.search(text):
                bad.append(f"{_rel(path)}:{line}: {text.strip()}")
    for path in _text_files():
        if path.suffix in (".sh", ".cfg", ".toml", ".yml", ".yaml") or path.name == "run":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "#" in line and _MARKER.search(line.split("#", 1)[1]):
                    bad.append(f"{_rel(path)}:{n}: {line.strip()}")
    _report(bad, "workstream markers")


def _imports_own_module(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.ImportFrom) and \
                (sub.level or (sub.module or "").startswith("osvkit")):
            return True
        if isinstance(sub, ast.Import) and any(a.name.startswith("osvkit") for a in sub.names):
            return True
    return False


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = []
    t = handler.type
    for n in (t.elts if isinstance(t, ast.Tuple) else [t] if t is not None else []):
        names.append(n.id if isinstance(n, ast.Name) else getattr(n, "attr", ""))
    return bool({"ImportError", "ModuleNotFoundError"} & set(names))


def test_no_import_error_guards_between_own_modules():
    """``try: from .x import y except ImportError`` hides a broken module (or turns it into
    a test skip); osvkit's own modules are always there."""
    bad = []
    for path in _python_files():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
                if any(_imports_own_module(stmt) for stmt in node.body):
                    bad.append(f"{_rel(path)}:{node.lineno}: ImportError guard around an "
                               f"osvkit import")
    _report(bad, "ImportError guards")


_MD = re.compile(r"(?<![\w/.-])((?:\.\.?/)?[\w./-]*[\w-]\.md)\b")


def test_no_citation_of_documents_not_in_the_repository():
    """Comments and docs may point only at documents the repository has."""
    names = {p.name for p in _text_files()} | {SELF.name, CONTRIBUTING.name}
    bad = []
    for path in _text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in _MD.finditer(line):
                cited = m.group(1)
                if "/" in cited:
                    ok = (ROOT / cited).is_file() or (path.parent / cited).is_file()
                else:
                    ok = cited in names
                if not ok:
                    bad.append(f"{_rel(path)}:{n}: cites {cited}")
    _report(bad, "citations of documents that are not in the repository")


# ------------------------------------------------------------------------ function size
_ASM_LINE = re.compile(r"^\s*(?:[a-z][a-z0-9]*\s+[$%(\w-]|[a-z_][\w]*:|\.(?:byte|word|long|quad)\b|"
                       r"(?:ret|cli|sti|hlt|cld|nop|rdtsc|rdmsr|wrmsr|int3|lretq?|pushfq|"
                       r"popfq|rep\s+\w+)\s*$)", re.MULTILINE)


def _longest_string(func: ast.AST) -> ast.AST | None:
    """The string literal (an f-string counts as one) spanning most lines of ``func``."""
    best = None
    for node in ast.walk(func):
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant)
                                                and isinstance(node.value, str)):
            if best is None or node.end_lineno - node.lineno > best.end_lineno - best.lineno:
                best = node
    return best


def _is_assembly_template(func: ast.AST, source_lines: list[str]) -> bool:
    """A generated-assembly template: one string literal spans at least 3/4 of the
    function's lines, and at least half of its lines are instructions, labels or data
    directives."""
    n = func.end_lineno - func.lineno + 1
    text = _longest_string(func)
    if text is None or text.end_lineno - text.lineno + 1 < 0.75 * n:
        return False
    lines = source_lines[text.lineno - 1:text.end_lineno]
    return len(_ASM_LINE.findall("\n".join(lines))) >= 0.5 * len(lines)


def test_no_function_longer_than_150_lines():
    """Outside generated-assembly templates (see :func:`_is_assembly_template` and
    CONTRIBUTING.md), a function fits on a few screens."""
    bad = []
    for path in _python_files():
        source_lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and not _is_assembly_template(node, source_lines):
                    bad.append(f"{_rel(path)}:{node.lineno}: {node.name} is {n} lines")
    _report(bad, f"functions longer than {MAX_FUNCTION_LINES} lines")


def test_the_checks_find_what_they_look_for(tmp_path):
    """The detectors themselves, on small samples (a check that cannot fail is no check)."""
    assert _MARKER.search("# [fcpath] qemu-fc loader") and _MARKER.search("# --- rofs part ---")
    assert _MARKER.search("# -- end cli part --") and not _MARKER.search("# [0] inode 3")
    assert _MD.search("see ../notes/boot-notes.md 1.2").group(1) == "../notes/boot-notes.md"
    assert _MD.search("(interfaces.md)").group(1) == "interfaces.md"
    tree = ast.parse("try:\n    from .x import y\nexcept ImportError:\n    y = None\n")
    assert _imports_own_module(tree.body[0]) and _catches_import_error(tree.body[0].handlers[0])
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    template = "def t(x):\n    return f'''\n" + "        movl $0x10, %eax\n" * 200 + "    '''\n"
    code = "def c(x):\n" + "    x += 1\n" * 200
    # the probe's old 645-line method: a dozen templates, none of them three quarters of it
    block = "    emit(f'''\n" + "        movl $0x10, %eax\n" * 20 + "    ''')\n"
    many = "def m(x):\n" + block * 10
    for src, expected in ((template, True), (code, False), (many, False)):
        func = ast.parse(src).body[0]
        assert _is_assembly_template(func, src.splitlines()) is expected
    imp = ast.parse("from ..boot import mbr").body[0]
    assert _resolve("osvkit.probe.layout", False, imp) == (
        ["osvkit.boot.mbr"] if "osvkit.boot.mbr" in _modules() else ["osvkit.boot"])
