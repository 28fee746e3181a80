"""Type-check the installed package with mypy: `python scripts/typecheck.py [mypy args]`.

The package installs through a setuptools `package-dir` mapping (`temporal_automations.domain`
lives in `domain/`, `temporal_automations.workflows` in `workflows/`, ...). mypy finds modules by
their folders and does not run the import hook of an editable install, so neither
`mypy -p temporal_automations` nor `mypy domain workflows` sees the real module names. This
script lays the mapping out as a tree of symbolic links in `.typecheck/` (read from
`pyproject.toml`, so the mapping is written once), runs `mypy -p temporal_automations` over it
with the settings of `[tool.mypy]`, and prints the errors with the repository's own paths
(`domain/events.py:12: error: ...`). Exit status is mypy's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".typecheck"
PACKAGE = "temporal_automations"


def package_dirs() -> dict[str, Path]:
    """The `[tool.setuptools.package-dir]` mapping: package name → its folder."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file)
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def build_tree(mapping: dict[str, Path]) -> None:
    """`.typecheck/temporal_automations/…`: the root package's entries linked one by one, each
    mapped subpackage linked as a folder where its dotted name puts it."""
    shutil.rmtree(TREE, ignore_errors=True)
    root = TREE / PACKAGE
    root.mkdir(parents=True)
    for entry in mapping[PACKAGE].iterdir():
        if entry.name != "__pycache__":
            (root / entry.name).symlink_to(entry)
    for name, folder in sorted(mapping.items()):
        if name == PACKAGE:
            continue
        link = TREE.joinpath(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(folder)


def source_path(line: str, mapping: dict[str, Path]) -> str:
    """A mypy output line with the tree's path replaced by the repository's."""
    # Longest names first: `temporal_automations/domain/` before `temporal_automations/`.
    for name in sorted(mapping, key=len, reverse=True):
        prefix = ".typecheck/" + name.replace(".", "/") + "/"
        if line.startswith(prefix):
            return os.path.relpath(mapping[name], ROOT) + "/" + line[len(prefix) :]
    return line


def main(argv: list[str]) -> int:
    mapping = package_dirs()
    build_tree(mapping)
    command = [sys.executable, "-m", "mypy", "-p", PACKAGE, *argv]
    env = {**os.environ, "MYPYPATH": str(TREE)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        print(source_path(line, mapping))
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
