"""Crash durability: kill -9 the real `python -m proliferate serve` under load at a
random moment, restart it on the same database: every event_id that got a 202 is stored, once,
and PRAGMA integrity_check says ok. CI runs 3 rounds; bench/crash_rounds.py runs 20.
"""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / 'bench'
sys.path.insert(0, str(BENCH))

import crash_rounds  # noqa: E402

pytestmark = pytest.mark.slow

ROUNDS = 3


def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path):
    summary = crash_rounds.run_rounds(ROUNDS, tmp_path)
    print(f'crash rounds: {summary["rounds"]}, acknowledged: {summary["acked"]}, '
          f'lost: {summary["lost"]}')
    for result in summary['results']:
        # Each kill hit a server that was acknowledging events, and left a sound database.
        assert result['acked'] > 0, result
        assert result['exit'] == -9, result
        assert result['integrity'] == 'ok', result
        assert result['missing'] == 0, result
        assert result['duplicated'] == 0, result
    # The database of the last crash starts, serves and stops cleanly (SIGTERM -> exit 0).
    assert summary['final_exit'] == 0
