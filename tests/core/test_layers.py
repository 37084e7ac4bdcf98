"""The import contracts of pyproject.toml (`[tool.importlinter]`) hold, and each of them catches
the imports it forbids.

`lint-imports` reads every import statement of the packages, those inside functions too. What a
process really loads when it starts is checked beside it, in test_import_isolation.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.procs import REPO

LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("atelier", "api", "workers", "scheduler", "bench", "tests")

# Imports each contract forbids, by contract id: (module file, module it imports).
FORBIDDEN = {
    "cli-reads-the-read-model": [("api/cli/status.py", "api.http.payloads")],
    "floors": [
        ("atelier/read.py", "api.cli.status"),
        ("workers/embedded.py", "scheduler.reaper"),
        ("api/http/app.py", "api.cli.main"),
        ("scheduler/tasks.py", "workers.tasks"),
    ],
    "process-commands": [("api/cli/stylize.py", "workers.tasks")],
    "light-producers": [("scheduler/retention.py", "cv2"), ("atelier/models.py", "onnxruntime")],
    "light-nst-planning": [("workers/nst/plan.py", "tensorflow")],
    "bench-meets-tests-in-support": [("bench/nst.py", "tests.fast.conftest")],
    "tests-import-bench-to-test-it": [("tests/fast/test_fast_engine.py", "bench.fast")],
    "support-stands-alone": [("tests/support/procs.py", "tests.core.test_layers")],
}


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the tree at `root` (its packages found there first), with no cache."""
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    done = lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _python_only(folder: str, names: list[str]) -> list[str]:
    return [
        name
        for name in names
        if name == "__pycache__" or not (name.endswith(".py") or Path(folder, name).is_dir())
    ]


def test_every_contract_breaks_on_the_imports_it_forbids(tmp_path: Path):
    """In a copy of the tree (its Python files) that keeps every contract, add the imports above:
    every contract breaks, and its report names its own forbidden imports."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=_python_only)
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    assert lint(tmp_path).returncode == 0, "the copy alone should keep every contract"
    for imports in FORBIDDEN.values():
        for path, module in imports:
            with (tmp_path / path).open("a") as source:
                source.write(f"\nimport {module}  # noqa\n")

    done = lint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = {contract["id"]: " ".join(contract["name"].split()) for contract in config["contracts"]}
    assert set(names) == set(FORBIDDEN), "every contract needs an import it forbids here"
    report = " ".join(done.stdout.split()).split("Broken contracts", 1)[1]
    starts = sorted((report.index(name), key) for key, name in names.items())
    ends = [start for start, _ in starts[1:]] + [len(report)]
    sections = {key: report[start:end] for (start, key), end in zip(starts, ends, strict=True)}
    for key, imports in FORBIDDEN.items():
        for path, module in imports:
            importer = path.removesuffix(".py").replace("/", ".")
            assert f"{importer} -> {module}" in sections[key], (key, sections[key])
