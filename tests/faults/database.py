"""Faults inside PostgreSQL: a table locked by another session, and the connections of one
process terminated by the server (`pg_terminate_backend`), found by their local ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of process `pid`'s sockets, read from /proc (Linux)."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def _admin_url(db_url: str) -> str:
    return db_url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def table_locked(db_url: str, table: str) -> Iterator[None]:
    """Hold an exclusive lock on `table` (as a long migration or `VACUUM FULL` would): anyone
    who reads or writes it waits, inside the database, until the block ends."""
    with psycopg.connect(_admin_url(db_url)) as conn:
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def waiting_on_locks(db_url: str) -> list[int]:
    """The server pids of this database's connections waiting for a lock."""
    with psycopg.connect(_admin_url(db_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchall()
    return [pid for (pid,) in rows]


def terminate_backends(db_url: str, pid: int) -> int:
    """`pg_terminate_backend` every connection process `pid` holds to the database; returns how
    many were terminated."""
    ports = sorted(local_ports(pid))
    if not ports:
        return 0
    with psycopg.connect(_admin_url(db_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND client_port = ANY(%s)"
            " AND pid <> pg_backend_pid()",
            (ports,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)
