"""The installable package: what the wheel ships, the public API, the command, and the layering of
its subpackages (image -> model zoo -> products / faces -> evaluation -> training -> cli)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: For each package, the project packages it must never import (directly, at any depth of function).
FORBIDDEN = {
    "lookalike.images": ("model_zoo", "lookalike.products", "lookalike.faces", "lookalike.evaluation",
                         "lookalike.training", "lookalike.cli"),
    "model_zoo": ("lookalike",),  # a leaf: lookalike imports model_zoo, never the other way
    "lookalike.vectors": ("model_zoo", "lookalike.products", "lookalike.faces", "lookalike.evaluation",
                          "lookalike.training", "lookalike.cli"),
    "lookalike.products": ("lookalike.faces", "lookalike.evaluation", "lookalike.training", "lookalike.cli"),
    "lookalike.faces": ("lookalike.products", "lookalike.evaluation", "lookalike.training", "lookalike.cli"),
    "lookalike.evaluation": ("lookalike.training", "lookalike.cli"),
    "lookalike.training": ("lookalike.cli",),
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_imports_flow_one_way() -> None:
    problems = []
    for path in sorted([*ROOT.glob("lookalike/**/*.py"), *ROOT.glob("model_zoo/**/*.py")]):
        module = _module_name(path)
        for package, forbidden in FORBIDDEN.items():
            if module == package or module.startswith(package + "."):
                problems += [
                    f"{module} imports {name}"
                    for name in _imports(path)
                    if any(name == f or name.startswith(f + ".") for f in forbidden)
                ]
    assert not problems, "\n".join(problems)


#: The packages whose modules may form no import circle among themselves.
PACKAGES = ("lookalike", "model_zoo")
#: The most lines a module of the product engine may hold (issue 36: one cue, one file).
MAX_PRODUCT_MODULE_LINES = 300


def _project_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module under root/<package>/, by dotted name (a package by its `__init__`)."""
    return {".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): path
            for package in packages for path in sorted((root / package).rglob("*.py"))}


def _import_edges(module: str, path: Path, modules: set[str]) -> dict[str, int]:
    """The project modules `module` imports, anywhere in the file (top level, functions, TYPE_CHECKING
    blocks), each with the line of its first import. `from x import y` imports x.y when that is a module,
    else x; relative imports are resolved against the module's package. Importing a.b.c is an edge to
    a.b.c alone: the packages above it run their `__init__` too, but an `__init__` is in a circle only
    through what it imports itself (an empty or lazy one cannot be)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        if name in modules and name != module:
            found[name] = min(found.get(name, line), line)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = package[: len(package) - node.level + 1]
                base = ".".join([*above, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                add(submodule if submodule in modules else base, node.lineno)
    return found


def _module_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, dict[str, int]]:
    """module -> {imported project module: line}, for every module of `packages` under `root`."""
    modules = _project_modules(root, packages)
    return {name: _import_edges(name, path, set(modules)) for name, path in modules.items()}


def _import_circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative), each
    sorted, in order: the import circles. A module importing itself is skipped by `_import_edges`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return sorted(circles)


def _describe_circles(graph: dict[str, dict[str, int]]) -> list[str]:
    """One paragraph per circle: its modules, and each import that keeps it closed (module:line -> module)."""
    described = []
    for circle in _import_circles(graph):
        members = set(circle)
        edges = [f"    {module}:{line} imports {target}"
                 for module in circle for target, line in sorted(graph[module].items()) if target in members]
        described.append("import circle: " + " <-> ".join(circle) + "\n" + "\n".join(edges))
    return described


def test_no_import_circles() -> None:
    """No module imports one that imports it back, directly or through others, deferred imports included
    (issue 36): a circle is a design knot even where a function-level import keeps it from failing."""
    circles = _describe_circles(_module_graph(ROOT))
    assert not circles, f"{len(circles)} import circle(s):\n" + "\n".join(circles)


def test_the_circle_check_sees_deferred_and_relative_imports(tmp_path: Path) -> None:
    """The check itself, on a synthetic tree: a circle closed only by a function-level relative import is
    found and named; removing that import leaves none; a package `__init__` counts only by its imports."""
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from pkg.sub.leaf import VALUE\n",  # an __init__ that really imports
        "pkg/sub/leaf.py": "import pkg.sub.other\nVALUE = 1\n",  # runs pkg.sub's __init__: no edge to it
        "pkg/sub/other.py": "",
        "pkg/a.py": "from pkg import b\n",  # `from package import submodule`: an edge to pkg.b
        "pkg/b.py": "import pkg.sub.leaf\n\ndef late():\n    from . import c\n    return c\n",
        "pkg/c.py": "from __future__ import annotations\n\ndef later():\n    from .a import NAME\n",
        "pkg/d.py": "from pkg.sub import VALUE\n",  # a name of an __init__: an edge to pkg.sub
        "other/__init__.py": "",
        "other/x.py": "import pkg.d\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = _module_graph(tmp_path, ("pkg", "other"))
    assert graph["pkg.a"] == {"pkg.b": 1} and graph["pkg.b"] == {"pkg.sub.leaf": 1, "pkg.c": 4}
    assert graph["pkg.c"] == {"pkg.a": 4} and graph["pkg.d"] == {"pkg.sub": 1}
    assert graph["pkg.sub"] == {"pkg.sub.leaf": 1} and graph["other.x"] == {"pkg.d": 1}
    assert graph["pkg.sub.leaf"] == {"pkg.sub.other": 1}
    assert _import_circles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    (described,) = _describe_circles(graph)
    assert described.splitlines() == ["import circle: pkg.a <-> pkg.b <-> pkg.c", "    pkg.a:1 imports pkg.b",
                                      "    pkg.b:4 imports pkg.c", "    pkg.c:4 imports pkg.a"]
    leaf = "VALUE = 1\n\ndef f():\n    from pkg.sub import VALUE\n"  # a second circle, of two, through an __init__
    (tmp_path / "pkg/sub/leaf.py").write_text(leaf)
    assert _import_circles(_module_graph(tmp_path, ("pkg", "other"))) == [
        ["pkg.a", "pkg.b", "pkg.c"], ["pkg.sub", "pkg.sub.leaf"]]
    (tmp_path / "pkg/c.py").write_text("def later():\n    return 1\n")
    (tmp_path / "pkg/sub/leaf.py").write_text("VALUE = 1\n")
    assert _import_circles(_module_graph(tmp_path, ("pkg", "other"))) == []


def test_no_product_module_is_over_300_lines() -> None:
    """One cue, one file (issue 36): a product module that outgrows this holds more than one job."""
    long = {str(path.relative_to(ROOT)): lines for path in sorted((ROOT / "lookalike/products").rglob("*.py"))
            if (lines := len(path.read_text().splitlines())) > MAX_PRODUCT_MODULE_LINES}
    assert not long, f"over {MAX_PRODUCT_MODULE_LINES} lines: " + ", ".join(f"{p} ({n})" for p, n in long.items())


def test_only_the_serve_command_imports_the_app() -> None:
    """The web app sits on top: no engine, model or other command depends on it (or on Gradio)."""
    problems = [
        f"{_module_name(path)} imports {name}"
        for path in sorted([*ROOT.glob("lookalike/**/*.py"), *ROOT.glob("model_zoo/**/*.py")])
        if not _module_name(path).startswith(("lookalike.app", "lookalike.cli.serve"))
        for name in _imports(path)
        if name == "lookalike.app" or name.startswith("lookalike.app.")
    ]
    assert not problems, "\n".join(problems)


def _fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_and_import_load_no_torch() -> None:
    out = _fresh_python(
        "import sys, lookalike, model_zoo\n"
        "from lookalike.cli.main import build_parser\n"
        "help = build_parser().format_help()\n"
        "heavy = ('torch', 'timm', 'sklearn', 'matplotlib', 'gradio', 'pymilvus', 'ray')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(help)\n"
    )
    assert out.splitlines()[0] == "[]"
    for command in ("build", "search", "verify", "eval-products", "eval-faces", "train-head", "train-embedding",
                    "serve"):
        assert command in out


def test_model_zoo_loads_nothing_of_lookalike() -> None:
    """Models are built and listed without a single `lookalike` module: the zoo depends on no app code."""
    out = _fresh_python(
        "import sys, model_zoo\n"
        "model_zoo.create_embedder('efficientnet_lite0')\n"
        "model_zoo.list_face_models()\n"
        "print(sorted(m for m in sys.modules if m == 'lookalike' or m.startswith('lookalike.')))\n"
    )
    assert ast.literal_eval(out.strip()) == []


def test_public_api_is_documented() -> None:
    import lookalike

    for name in ("search", "verify", "build_index"):
        function = getattr(lookalike, name)
        assert callable(function)
        for section in ("Args:", "Returns:", "Raises:", "Example:"):
            assert section in function.__doc__, f"lookalike.{name} lacks {section}"
    for name in ("ProductSearcher", "FaceVerifier", "SearchResult", "VerifyResult", "ImageError", "NoFaceError",
                 "IndexMissingError", "IndexCorruptError", "UnknownModelError", "WeightsUnavailableError"):
        assert isinstance(getattr(lookalike, name), type), name
    with pytest.raises(AttributeError):
        _ = lookalike.no_such_name


def test_requirements_and_package_metadata_name_the_same_packages() -> None:
    import tomllib

    def names(lines) -> set[str]:
        return {re.split(r"[<>=!~ \[;]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
                for line in lines if line.strip() and not line.lstrip().startswith(("#", "-"))}

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = names(project["dependencies"]) | names(project["optional-dependencies"]["app"])
    assert names((ROOT / "requirements.txt").read_text().splitlines()) == declared


def test_wheel_ships_the_two_packages_and_the_command(tmp_path: Path) -> None:
    """Built from a copy of the tracked tree, so the build leaves nothing in the checkout."""
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("lookalike-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"lookalike", "model_zoo"}
    for module in ("lookalike/__init__.py", "lookalike/products/search.py", "lookalike/faces/verify.py",
                   "lookalike/evaluation/faces.py", "lookalike/training/head.py", "lookalike/cli/main.py",
                   "model_zoo/registry.py", "lookalike/cli/serve.py"):
        assert module in names
    app_modules = {"__init__", "uploads", "services", "products", "faces", "layout", "api", "server"}
    assert {f"lookalike/app/{module}.py" for module in app_modules} <= set(names)
    assert {"lookalike/app/examples/astronaut.jpg", "lookalike/app/examples/astronaut_variant.jpg"} <= set(names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lookalike = lookalike.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
