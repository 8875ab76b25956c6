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
