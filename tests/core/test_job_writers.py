"""Only `atelier/jobs/` writes a job's state: every transition is there, fenced and notifying.

The source tree is read, not imported: a module writes `jobs.state` when it builds an
`update(Job)` or `insert(Job)` statement and names `state` in a call's keywords or a dict's keys,
creates a `Job(state=...)`, assigns `<anything>.state`, or carries SQL text that updates `jobs`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("atelier", "api", "scheduler", "workers", "bench")
ALLOWED = {"atelier/jobs/holder.py", "atelier/jobs/oversight.py"}
RAW_UPDATE = re.compile(r"\bupdate\s+jobs\b", re.IGNORECASE)


def _is_job_statement(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"update", "insert"}
        and bool(node.args)
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "Job"
    )


def _names_state(node: ast.AST) -> bool:
    if isinstance(node, ast.keyword):
        return node.arg == "state"
    if isinstance(node, ast.Dict):
        return any(isinstance(k, ast.Constant) and k.value == "state" for k in node.keys)
    return False


def _is_job_created_with_state(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Job"
        and any(k.arg == "state" for k in node.keywords)
    )


def writes_job_state(source: str) -> list[str]:
    """How a module's source writes `jobs.state` (empty when it does not)."""
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    found = []
    if any(_is_job_statement(n) for n in nodes) and any(_names_state(n) for n in nodes):
        found.append("update(Job)/insert(Job) with a state")
    for node in nodes:
        if _is_job_created_with_state(node):
            found.append(f"line {node.lineno}: Job(state=...)")
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr == "state":
                found.append(f"line {node.lineno}: assigns .state")
        if isinstance(node, ast.Constant) and RAW_UPDATE.search(str(node.value)):
            found.append(f"line {node.lineno}: SQL text updating jobs")
    return found


def test_only_the_transition_module_writes_job_state():
    writers = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if "/migrations/versions/" in name:
                continue  # a migration changes the schema, not jobs
            how = writes_job_state(path.read_text())
            if how:
                writers[name] = how
    assert set(writers) == ALLOWED, f"jobs.state written outside atelier/jobs/: {writers}"


@pytest.mark.parametrize(
    "source",
    [
        "stmt = update(Job).where(Job.id == 1)\nstmt.values(**{'state': 'failed'})",
        "session.execute(update(Job).values(state=JobState.QUEUED))",
        "job = Job(kind='ping', state='succeeded')",
        "job.state = JobState.SUCCEEDED",
        "session.execute(text(\"UPDATE jobs SET state = 'failed'\"))",
    ],
)
def test_each_way_of_writing_the_state_is_seen(source: str):
    assert writes_job_state(source)


def test_reading_the_state_is_not_writing_it():
    source = (
        "rows = select(Job).where(Job.state == 'queued')\n"
        "session.execute(update(Job).where(Job.id.in_(ids)).values(celery_task_id=task_id))\n"
        "if job.state == JobState.FAILED: pass\n"
    )
    assert writes_job_state(source) == []
