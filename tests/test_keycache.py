"""The ingest key cache: trusted for its lifetime, revocation seen after it, one reload at a time."""

import threading

from factories import FakeClock

from proliferate import db
from proliferate import times
from proliferate.ingest.admission import KeyCache
from proliferate.models import ProjectKey


def test_a_revoked_key_stops_working_after_the_cache_lifetime(services, project):
    clock = FakeClock(0.0)  # the cache's monotonic seconds
    keys = KeyCache(2.0, clock=clock)
    assert keys.lookup(project.key)[0] == project.id
    assert keys.lookup('pk_unknown') is None
    with db.database.connection_context():
        ProjectKey.update(revoked_at=times.utcnow()).where(ProjectKey.key == project.key).execute()
    clock.now = 1.9
    assert keys.lookup(project.key)[0] == project.id  # still trusted, as documented
    clock.now = 2.1
    assert keys.lookup(project.key) is None
    assert keys.lookup(['not', 'a', 'key']) is None


def test_an_expired_key_is_read_again_by_one_thread_while_the_others_use_it(services, project):
    clock = FakeClock(0.0)  # the cache's monotonic seconds
    started = threading.Event()
    release = threading.Event()
    loads = []

    class SlowKeys(KeyCache):
        def _load(self, key):
            loads.append(key)
            if len(loads) > 1:
                started.set()
                release.wait(5)
            return super()._load(key)

    keys = SlowKeys(2.0, clock=clock)
    first = keys.lookup(project.key)
    clock.now = 3.0
    reloader = threading.Thread(target=keys.lookup, args=(project.key,))
    reloader.start()
    assert started.wait(5)
    assert [keys.lookup(project.key) for _ in range(10)] == [first] * 10
    release.set()
    reloader.join(5)
    assert len(loads) == 2
