"""Age terms of the search: first_seen:-24h (within the last 24 hours), last_seen:+1h (longer
ago), units m, h, d, negation, and the message for a bad age; parsed purely, then over issues
stored on the test clock."""

import datetime

import pytest
from factories import STACK
from factories import event
from factories import iso
from pageclient import send

from proliferate import db
from proliferate import search
from proliferate.models import Issue


@pytest.mark.parametrize(('value', 'expected'), [
    ('-24h', (True, datetime.timedelta(hours=24))),
    ('+7d', (False, datetime.timedelta(days=7))),
    ('-90m', (True, datetime.timedelta(minutes=90))),
    ('-2H', (True, datetime.timedelta(hours=2))),
])
def test_parse_age(value, expected):
    assert search.parse_age('first_seen', value) == expected


@pytest.mark.parametrize('value', ['24h', '-24', '-1w', '-h', 'yesterday', '-99999d'])
def test_bad_ages_are_reported_with_the_key(value):
    with pytest.raises(search.UnknownTerm, match='first_seen:'):
        search.check_terms(search.parse_query(f'first_seen:{value}')['terms'])


def test_age_keys_are_known_in_any_case():
    assert search.parse_query('First_Seen:-1h !last_seen:+2d')['terms'] == [
        (False, 'first_seen', '-1h'), (True, 'last_seen', '+2d')]


def test_ages_over_stored_issues(clock, client, project):
    def ingest(kind):
        send(client, event(project.key, timestamp=iso(clock()),
                           exception={'type': kind, 'message': 'boom', 'stack': STACK}))

    ingest('Old')
    clock.advance(hours=2)
    ingest('New')
    clock.advance(minutes=30)
    now = clock()

    def found(query):
        with db.database.connection_context():
            issues = search.filter_issues([project.id], status='all', query=query, now=now)
            return sorted(i.type for i in issues.select(Issue.type))

    assert found('first_seen:-1h') == ['New']
    assert found('first_seen:+1h') == ['Old']
    assert found('!first_seen:-1h') == ['Old']
    assert found('first_seen:-3h') == ['New', 'Old']
    assert found('last_seen:-20m') == []
    assert found('last_seen:-40m') == ['New']
    assert found('last_seen:-1d first_seen:+90m') == ['Old']
