"""Each process keeps its own sent journal; a dead process's journal is found and recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.outbox.sent_journal import SentJournal, Taken
from tests.conftest import ROOT
from tests.ops.daemon import wait_until

AT = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_clearing_one_journal_keeps_another_process_lines(tmp_path: Path) -> None:
    """The daemon and an ingest beside it write separate files: one clearing its own after a
    record leaves the other's lines (a shared file lost them, and those sends went out twice)."""
    daemon, ingest = SentJournal.of_process(tmp_path), SentJournal.of_process(tmp_path)
    assert daemon.path != ingest.path
    daemon.append(Taken(1, "acknowledgement", 10, AT))
    ingest.append(Taken(2, "acknowledgement", 20, AT))
    daemon.clear()
    assert ingest.entries() == [Taken(2, "acknowledgement", 20, AT)]
    # A live process's journal is nobody's orphan.
    assert list(daemon.orphans()) == []
    daemon.close()
    ingest.close()


def test_a_dead_process_journal_is_an_orphan_until_forgotten(tmp_path: Path) -> None:
    """A journal whose process ended with lines left is found by the next outbox, with its
    lines, exactly once; forgotten, the file is gone; let go, it is found again."""
    survivor = SentJournal.of_process(tmp_path)
    dead = SentJournal.of_process(tmp_path)
    dead.append(Taken(7, "acknowledgement", 3, AT))
    dead.append(Taken(8, "notice", None, AT))
    dead.close()
    (orphan,) = survivor.orphans()
    assert orphan.path == dead.path
    assert [t.outbox_id for t in orphan.entries] == [7, 8]
    # Locked while we hold it: a third process looking meanwhile does not take it too.
    third = SentJournal.of_process(tmp_path)
    assert list(third.orphans()) == []
    orphan.let_go()
    (again,) = third.orphans()
    again.forget()
    assert not dead.path.exists()
    assert list(survivor.orphans()) == []
    survivor.close()
    third.close()


def test_the_shared_file_of_earlier_versions_is_recorded_as_an_orphan(tmp_path: Path) -> None:
    (tmp_path / "outbox-sent.journal").write_text(f"5 acknowledgement 9 {AT.isoformat()}\n")
    journal = SentJournal.of_process(tmp_path)
    (orphan,) = journal.orphans()
    assert [t.outbox_id for t in orphan.entries] == [5]
    orphan.forget()
    journal.close()


def test_a_killed_process_journal_is_found(tmp_path: Path) -> None:
    """SIGKILL leaves the file and frees its lock: the next outbox finds the lines."""
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from datetime import datetime, UTC\n"
         "from gateway.outbox.sent_journal import SentJournal, Taken\n"
         "j = SentJournal.of_process(Path(sys.argv[1]))\n"
         "j.append(Taken(42, 'acknowledgement', 1, datetime(2026, 11, 25, tzinfo=UTC)))\n"
         "print(j.path, flush=True); time.sleep(600)", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        path = Path(child.stdout.readline().strip())
        journal = SentJournal.of_process(tmp_path)
        assert list(journal.orphans()) == []  # alive: its own
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        found: list[int] = []

        def look() -> bool:
            for orphan in journal.orphans():
                found.extend(t.outbox_id for t in orphan.entries)
                orphan.forget()
            return bool(found)

        wait_until(look, 30)
        assert found == [42] and not path.exists()
        journal.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
