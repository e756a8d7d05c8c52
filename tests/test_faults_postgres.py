"""PostgreSQL restarts under load (pg_ctlcluster stop, then start): two `serve` processes on the
database answer 503 with Retry-After during the outage (never a 500), reconnect by themselves,
exactly one takes the leader lock again, and every acknowledged event is stored once. Runs when
PROLIFERATE_TEST_DATABASE_URL names a PostgreSQL database of the local Debian cluster (as
.ci/run sets up); the outage is kept to about a second, since other tests may share the cluster."""

import os
import re
import shutil
import subprocess
import time

import pytest
from factories import make_project
from faultkit import Load
from faultkit import Served
from faultkit import stored_once

from proliferate import db

pytestmark = [pytest.mark.postgres, pytest.mark.postgresql_only, pytest.mark.slow]


def local_cluster():
    """(version, name) of the Debian cluster on this machine, or a reason it cannot be used."""
    if shutil.which('pg_lsclusters') is None or shutil.which('pg_ctlcluster') is None:
        return None, 'no pg_lsclusters/pg_ctlcluster (Debian postgresql-common) on this machine'
    if os.geteuid() != 0:
        return None, 'restarting the cluster needs root'
    rows = subprocess.run(['pg_lsclusters', '-h'], capture_output=True, text=True, check=True)
    online = [line.split() for line in rows.stdout.splitlines() if 'online' in line.split()]
    if not online:
        return None, 'no PostgreSQL cluster is online'
    return (online[-1][0], online[-1][1]), None


@pytest.fixture
def cluster(config):
    if not db.is_postgresql(config.database_url):
        pytest.skip('a PostgreSQL restart: runs when PROLIFERATE_TEST_DATABASE_URL names '
                    'PostgreSQL (this run is on SQLite)')
    found, why = local_cluster()
    if found is None:
        if os.environ.get('CI') == 'true':
            pytest.fail(why)
        pytest.skip(why)
    return found


def pg_ctl(cluster, action):
    version, name = cluster
    args = ['pg_ctlcluster', version, name, action] + (['-m', 'fast'] if action == 'stop' else [])
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def test_a_postgresql_restart_under_load_loses_nothing(config, cluster, tmp_path):
    url = config.database_url
    db.open_database(url)
    db.migrate()
    project = make_project()
    db.database.close()
    servers = [Served(url, tmp_path, name, threads=8, leader_retry_seconds=1)
               for name in ('a', 'b')]
    loads = []
    try:
        for server in servers:
            server.wait_ready()
        leading = [server.health()[1]['leader'] for server in servers]
        assert sorted(leading) == [False, True], leading
        # A pause between events keeps the load light: the cluster is shared while it restarts.
        loads = [Load(server.base, project.key, threads=3, seconds=60, pause=0.01).start()
                 for server in servers]
        started = time.monotonic()
        for load in loads:
            assert load.wait_for(202, started, 10), load.statuses()
        time.sleep(1.5)
        acked_before = sum(len(load.acked) for load in loads)
        down = time.monotonic()
        pg_ctl(cluster, 'stop')
        try:
            outage_health = [server.health() for server in servers]
            time.sleep(max(0.0, 1.0 - (time.monotonic() - down)))
        finally:
            pg_ctl(cluster, 'start')
        up = time.monotonic()
        recovered = []
        for load in loads:
            when = load.wait_for(202, up, 30)
            assert when is not None, load.statuses(since=down)
            recovered.append(when - up)
        # Exactly one process leads again (the lock went with the old sessions).
        end = time.monotonic() + 20
        while True:
            leading = [server.health()[1].get('leader') for server in servers]
            if sorted(leading) == [False, True] or time.monotonic() > end:
                break
            time.sleep(0.2)
        assert sorted(leading) == [False, True], leading
        time.sleep(1.0)
    finally:
        for load in loads:
            load.stop()
        codes = [server.stop() for server in servers]
    during = sum((load.statuses(since=down, until=up + max(recovered, default=0)) for load in loads),
                 start=type(loads[0].statuses())())
    answers = sum((load.statuses() for load in loads), start=type(during)())
    acked = [event_id for load in loads for event_id in load.acked]
    errors = sum((load.errors for load in loads), start=type(loads[0].errors)())
    missing, duplicated = stored_once(url, acked)
    faults = [re.findall(r'writes succeed again after ([0-9.]+) s', server.output())
              for server in servers]
    print(f'PostgreSQL restart: stop, 1 s, start took {up - down:.1f} s; writers failed for '
          f'{faults} s; acknowledged {acked_before} before and '
          f'{len(acked) - acked_before} after, missing {len(missing)}, stored twice '
          f'{len(duplicated)}; answers during the outage: {dict(during)}; all: {dict(answers)}; '
          f'connection errors: {dict(errors)}; first 202 after the start: '
          f'{", ".join(f"{s:.2f} s" for s in recovered)}; leaders after: {leading}')
    assert not missing and not duplicated, (missing[:5], duplicated[:5])
    for status, body in outage_health:
        assert status == 503 and body['status'] == 'database_unavailable', body
    assert set(answers) <= {202, 503, 429}, answers
    assert not errors, errors
    assert not any(load.without_retry_after() for load in loads)
    assert max(recovered) < 15, recovered
    assert codes == [0, 0], [server.output()[-3000:] for server in servers]
    for server in servers:
        log = server.output()
        assert 'unexpected error' not in log and 'Traceback' not in log, log[-3000:]
