"""`pip install .` puts one package into site-packages, `temporal_automations`, with its layers
as subpackages (the folders stay at the top of the repository: setuptools `package-dir`), and
the `worker.py` entry still runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a checkout has beyond the sources: environments, caches, the tests.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".prefect-venv", ".typecheck", "tests", "build", "*.egg-info", "__pycache__"
)


def install(tmp_path: Path) -> Path:
    """`pip install .` of a copy of the checkout (pip builds in the tree it is given) into a
    folder of its own; returns that folder."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    target = tmp_path / "site"
    # --no-deps: what *our* distribution installs (its dependencies are other projects').
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
        + [str(source)],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    return target


def test_pip_install_puts_only_temporal_automations_into_site_packages(tmp_path: Path) -> None:
    target = install(tmp_path)
    top_level = {
        path.name
        for path in target.iterdir()
        if not path.name.endswith((".dist-info", ".egg-info")) and path.name != "bin"
    }
    assert top_level == {"temporal_automations"}
    package = target / "temporal_automations"
    for layer in ("domain", "workflows", "activities", "api"):
        assert (package / layer / "__init__.py").is_file(), layer
    assert (package / "worker.py").is_file() and (package / "cli.py").is_file()


def test_the_worker_py_entry_runs(tmp_path: Path) -> None:
    answer = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert answer.returncode == 0, answer.stderr
    assert "--log-json" in answer.stdout and "worker" in answer.stdout


def test_the_installed_package_imports_without_the_checkout(tmp_path: Path) -> None:
    """The installed copy imports from outside the checkout (its dependencies from the test
    environment) — no `pythonpath = ["."]`, no top-level `api` or `domain`."""
    target = install(tmp_path)
    probe = (
        "import temporal_automations.domain.events, temporal_automations.workflows.automation, "
        "temporal_automations.api.app, temporal_automations.cli; "
        "import temporal_automations, importlib.util; print(temporal_automations.__file__); "
        "assert not any(importlib.util.find_spec(name) for name in ('api', 'domain'))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip().startswith(str(target))
