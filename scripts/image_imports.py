"""Import every module the image ships, inside a container of the image (issue 23, item 1).

Run by ``scripts/compose_check.py`` in the stack's streamlit container, from the image's working
directory (``python - < scripts/image_imports.py``, so ``app`` is found as the dashboard finds it):

* the installed packages ``spotify_assets``, ``spotify_sandbox`` and ``spark`` and the
  dashboard's ``app`` folder are found where the image put them and walked on disk: every
  ``.py`` file is a module, so a module added later is imported without anyone listing it;
* each module is imported (``importlib.import_module``); the Streamlit page scripts
  (``app/streamlit_app.py`` and ``app/views/*.py``, which draw a page when executed) are not
  executed here but every module they import is (the browser check renders them for real);
* any failure (``ModuleNotFoundError`` for a dependency only the dev extras install, or any
  other error at import) is printed with the module's name, and the exit status is 1.

Prints one summary line: ``image imports: N modules and the imports of M page scripts, 0 failed``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

PACKAGES = ("spotify_assets", "spotify_sandbox", "spark", "app")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"image imports: package {name} is not in the image")
    return Path(next(iter(spec.submodule_search_locations)))


def modules(name: str) -> list[tuple[str, Path]]:
    """Every module of package ``name`` (the package itself included), from its files."""
    root = package_dir(name)
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [name, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def is_page_script(module: str) -> bool:
    """The files ``streamlit run`` executes as pages (importing one would draw it)."""
    return module == "app.streamlit_app" or (module.startswith("app.views.") and module != "app.views")


def imported_by(path: Path, module: str) -> list[str]:
    """The absolute module names a script imports (relative imports resolved against ``module``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, module.rpartition(".")[0])
            names.append(base)
            # ``from app import queries``: the name may be a submodule; import it if it is one.
            names += [
                f"{base}.{alias.name}"
                for alias in node.names
                if importlib.util.find_spec(base) is not None and _is_submodule(base, alias.name)
            ]
    return names


def _is_submodule(base: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{base}.{name}") is not None
    except (ImportError, ValueError):
        return False


def main() -> int:
    failed: dict[str, str] = {}
    imported = 0
    scripts = 0
    for package in PACKAGES:
        for module, path in modules(package):
            targets = [module]
            if is_page_script(module):
                scripts += 1
                try:
                    targets = imported_by(path, module)
                except Exception:
                    failed[module] = traceback.format_exc(limit=3)
                    continue
            else:
                imported += 1
            for target in targets:
                try:
                    importlib.import_module(target)
                except BaseException as exc:  # SystemExit at import counts as a failure too
                    key = module if target == module else f"{module} (imports {target})"
                    failed[key] = f"{type(exc).__name__}: {exc}"
    for module, why in sorted(failed.items()):
        print(f"image imports: FAILED {module}: {why}", file=sys.stderr)
    print(
        f"image imports: {imported} modules and the imports of {scripts} page scripts, {len(failed)} failed",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
