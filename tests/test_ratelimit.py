"""Per-project rate limits on the real server: twice the limit gives exactly the allowed number of
202s, the rest 429 with Retry-After; other projects are unaffected; batches say rate_limited.

The limiter's clock is injected and stands still, so "exactly" holds on a slow machine too.
"""

import concurrent.futures
import time

import pytest
from factories import FakeClock
from factories import make_project
from factories import make_token
from factories import message_event
from pageclient import HttpClient
from pageclient import start_server
from pageclient import stop_server

from proliferate import db
from proliferate.app import create_app
from proliferate.ingest.admission import RateLimiter
from proliferate.models import Project

LIMIT = 10


@pytest.fixture
def limiter_clock():
    """The limiter's monotonic seconds, standing still until the test moves them."""
    return FakeClock(1000.0)


@pytest.fixture
def limited(config, services, limiter_clock):
    """A real server whose limiter runs on `limiter_clock`; project a limited, b on the default (off)."""
    a = make_project('limited')
    b = make_project('other')
    c = make_project('batched')
    with db.database.connection_context():
        Project.update(rate_limit_per_minute=LIMIT).where(Project.id.in_([a.id, c.id])).execute()
    app = create_app(config, writer=services.writer, drops=services.drops,
                     limiter=RateLimiter(config.rate_limit_per_minute, clock=limiter_clock))
    server, thread = start_server(app)
    base_url = f'http://127.0.0.1:{server.effective_port}'
    yield HttpClient(base_url), a, b, c, HttpClient(base_url, make_token(a.org_id))
    stop_server(server, thread)


def test_twice_the_limit_gives_exactly_the_limit_of_202s(limited):
    http, a, b, _c, read_api = limited

    def send(_n):
        return http.post('/api/v1/errors', message_event(a.key))

    # Concurrent requests: the bucket's lock must not hand out a token twice.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(2 * LIMIT)))
    statuses = sorted(status for status, _headers, _body in answers)
    assert statuses == [202] * LIMIT + [429] * LIMIT
    for status, headers, body in answers:
        assert headers['X-RateLimit-Limit'] == str(LIMIT)
        if status == 429:
            # 10 a minute: the next token comes in 6 seconds.
            assert headers['Retry-After'] == '6'
            assert headers['X-RateLimit-Remaining'] == '0'
            assert 'rate limit' in body['detail']
    # Another project is not affected.
    for _ in range(2 * LIMIT):
        status, headers, _body = http.post('/api/v1/errors', message_event(b.key))
        assert status == 202
        assert 'X-RateLimit-Limit' not in headers
    # Refused events are counted per project and reason.
    project = read_api.get(f'/api/v1/projects/{a.id}')
    assert project['rate_limit_per_minute'] == LIMIT
    assert wait_for_dropped(read_api, a.id, 'rate_limited', LIMIT)


def wait_for_dropped(read_api, project_id, reason, expected, tries=50):
    """Drop counts reach the database with the writer's next commit (or its idle flush)."""
    for _ in range(tries):
        dropped = read_api.get(f'/api/v1/projects/{project_id}')['dropped']
        if dropped.get(reason) == expected:
            return True
        time.sleep(0.1)
    return False


def test_the_bucket_refills_at_the_limit_rate(limited, limiter_clock):
    http, a, _b, _c, _read_api = limited
    assert [http.post('/api/v1/errors', message_event(a.key))[0] for _ in range(LIMIT + 1)] == \
        [202] * LIMIT + [429]
    limiter_clock.now += 5.9
    assert http.post('/api/v1/errors', message_event(a.key))[0] == 429
    limiter_clock.now += 0.2  # 6.1 s: one token
    status, headers, _body = http.post('/api/v1/errors', message_event(a.key))
    assert status == 202
    assert headers['X-RateLimit-Remaining'] == '0'
    assert http.post('/api/v1/errors', message_event(a.key))[0] == 429
    limiter_clock.now += 60  # a full minute fills the bucket, and no further
    assert [http.post('/api/v1/errors', message_event(a.key))[0] for _ in range(LIMIT + 1)] == \
        [202] * LIMIT + [429]


def test_a_batch_over_the_limit_says_rate_limited_per_event(limited):
    http, a, b, c, _read_api = limited
    events = ([message_event(c.key) for _ in range(LIMIT + 5)]
              + [message_event(b.key) for _ in range(3)])
    status, headers, body = http.post('/api/v1/errors/batch', events)
    assert status == 202
    statuses = [result['status'] for result in body['results']]
    assert statuses == ['ok'] * LIMIT + ['rate_limited'] * 5 + ['ok'] * 3
    assert all('rate limit' in r['reason'] for r in body['results'] if r['status'] == 'rate_limited')
    assert int(headers['Retry-After']) >= 1
    # The next single event of the batched project is refused too.
    status, headers, _body = http.post('/api/v1/errors', message_event(c.key))
    assert status == 429 and headers['Retry-After'] == '6'
