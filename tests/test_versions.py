"""Release order: semantic versions with prerelease tags, PEP 440, calendar versions, backports
and names that parse as no version (ordered by first-seen time)."""

import datetime

import pytest

from proliferate import versions

T0 = datetime.datetime(2025, 1, 1)


@pytest.mark.parametrize(('older', 'newer'), [
    # semantic versions
    ('1.2.3', '1.2.4'),
    ('1.2.9', '1.10.0'),
    ('v1.9.0', 'v1.10.0'),
    ('1.0.0-alpha', '1.0.0'),
    ('1.0.0-alpha', '1.0.0-alpha.1'),
    ('1.0.0-alpha.1', '1.0.0-alpha.beta'),
    ('1.0.0-alpha.beta', '1.0.0-beta'),
    ('1.0.0-beta', '1.0.0-beta.2'),
    ('1.0.0-beta.2', '1.0.0-beta.11'),
    ('1.0.0-beta.11', '1.0.0-rc.1'),
    ('1.0.0-rc.1', '1.0.0'),
    ('1.0.0-rc.1+build.5', '1.0.0'),
    ('0.9.9', '1.0.0-alpha'),
    ('app@1.2.3', 'app@1.3.0'),
    # PEP 440
    ('1.0a1', '1.0b1'),
    ('1.0rc1', '1.0'),
    ('1.0', '1.0.post1'),
    ('1.0.dev3', '1.0a1'),
    ('1.2', '1.2.1'),
    ('1!0.1', '1!0.2'),
    ('2.0', '1!0.1'),
    # calendar versions
    ('2024.01.15', '2024.02.01'),
    ('2024.9.1', '2024.10.1'),
    ('24.04', '24.10'),
    ('2024-01-15', '2024-02-01'),
    ('2024-12-31', '2025-01-01.1'),
    # backports: a fix in 2.3.5, shipped after 2.4.0 existed, is still older than 2.4.0
    ('2.3.5', '2.4.0'),
    ('2.3.5', '2.4.0-rc.1'),
])
def test_version_order(older, newer):
    late = {older: T0 + datetime.timedelta(days=30), newer: T0}  # first seen the other way round
    assert versions.compare(older, newer, late) == -1
    assert versions.compare(newer, older, late) == 1
    assert versions.is_newer(newer, older, late)
    assert not versions.is_newer(older, newer, late)


@pytest.mark.parametrize(('a', 'b'), [('1.0.0', '1.0.0'), ('1.0', '1.0.0'), ('v2.1', '2.1.0'),
                                      ('1.0.0+build.1', '1.0.0+build.1')])
def test_same_version(a, b):
    assert versions.compare(a, b) == 0 == versions.compare(b, a)
    assert not versions.is_newer(a, b) and not versions.is_newer(b, a)


def test_unparsable_names_compare_by_first_seen():
    seen = {'blue-whale': T0, 'abc123f': T0 + datetime.timedelta(hours=1)}
    assert versions.compare('blue-whale', 'abc123f', seen) == -1
    assert versions.compare('abc123f', 'blue-whale', seen) == 1
    # A name never seen is the newer one: it arrives after everything stored.
    assert versions.is_newer('fresh-name', 'abc123f', seen)
    assert not versions.is_newer('abc123f', 'fresh-name', seen)
    # A version against a name: by first-seen time too.
    assert versions.compare('1.0.0', 'abc123f', {'1.0.0': T0 + datetime.timedelta(days=1),
                                                 'abc123f': T0}) == 1


def test_newest_and_parses():
    assert versions.newest(['1.2.0', '1.10.0', '1.9.9', None, '']) == '1.10.0'
    assert versions.newest(['2.0.0-rc.1', '2.0.0-beta.3']) == '2.0.0-rc.1'
    assert versions.newest([]) is None
    assert versions.parses('2024-01-15') and versions.parses('1.0rc1') and versions.parses('v3.2.1')
    assert not versions.parses('deadbeef')


def test_newest_first():
    assert versions.newest_first(['2.9', '2.10', '1.0.0', '2.10.1-rc.1', 'v2.10.1']) == [
        'v2.10.1', '2.10.1-rc.1', '2.10', '2.9', '1.0.0']
    # A name that is no version goes where its first sighting puts it among the others.
    seen = {'2.9': T0, 'blue-whale': T0 + datetime.timedelta(hours=1),
            '2.10': T0 + datetime.timedelta(hours=2)}
    assert versions.newest_first(['2.9', '2.10', 'blue-whale'], seen) == ['2.10', 'blue-whale', '2.9']
    assert versions.newest_first([]) == []
