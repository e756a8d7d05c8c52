"""Issue search: the query parser (pure), and key:value over tags the writer really stored
(custom SDK tags, the browser parsed from a User-Agent, environment, release), !key:value,
quoted values with spaces, unknown terms (a 400 in the API, a message on the page), and the
API's total."""

import pytest
from factories import event
from factories import make_project
from factories import make_token
from pageclient import send

from proliferate import db
from proliferate import search
from proliferate.models import Issue
from proliferate.web import urls

CHROME = ('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
          'Chrome/124.0.0.0 Safari/537.36')
FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0'


def test_parse_query_reads_terms_negations_quotes_and_text():
    parsed = search.parse_query(
        'TypeError plan:"enterprise plus" !browser:Chrome ENV:prod "two words" '
        'Level:error is:resolved https://x.example/a TypeError: "unclosed')
    assert parsed['terms'] == [(False, 'plan', 'enterprise plus'), (True, 'browser', 'Chrome'),
                               (False, 'environment', 'prod'), (False, 'level', 'error'),
                               (False, 'is', 'resolved')]
    assert parsed['text'] == ['TypeError', 'two words', 'https://x.example/a', 'TypeError:',
                              'unclosed']
    # Custom tag keys keep their case (tags are stored as sent) and may hold dots and dashes.
    assert search.parse_query('Server.Name:a-1 !x-y:"b c"')['terms'] == [
        (False, 'Server.Name', 'a-1'), (True, 'x-y', 'b c')]
    assert search.parse_query('') == {'text': [], 'terms': []}
    assert search.parse_query('user:' + 'x' * 500)['terms'][0][2] == 'x' * search.MAX_VALUE


def test_check_terms_refuses_unknown_is_values():
    search.check_terms([(False, 'is', 'Escalating'), (True, 'is', 'assigned')])
    with pytest.raises(search.UnknownTerm, match='unknown search term `is:broken`'):
        search.check_terms([(False, 'is', 'broken')])


@pytest.fixture
def api(client, project):
    token = make_token(project.org_id)

    def get(**params):
        return client.simulate_get(f'/api/v1/projects/{project.id}/issues', params=params,
                                   headers={'Authorization': f'Bearer {token}'})
    return get


def seed(client, project):
    """Three issues: A (Chrome, plan "enterprise plus", production), B (Firefox, plan free,
    staging), C (no browser, no tags, release v2.0.0)."""
    def one(name, **fields):
        return event(project.key, exception={
            'type': name, 'message': name, 'stack': f'{name}: x\n    at f{name} (a.js:1:1)'},
            **fields)
    send(client, one('A', user_agent=CHROME, tags={'plan': 'enterprise plus', 'region': 'eu'}),
         one('B', user_agent=FIREFOX, tags={'plan': 'free'}, environment='staging'),
         one('C', release='v2.0.0'))


def titles(result):
    assert result.status_code == 200, result.text
    return sorted(i['type'] for i in result.json['issues'])


def test_tag_terms_over_stored_tags(client, project, api):
    seed(client, project)
    assert titles(api(query='plan:"enterprise plus"')) == ['A']
    assert titles(api(query='plan:free')) == ['B']
    assert titles(api(query='plan:enterprise')) == []
    assert titles(api(query='!plan:free')) == ['A', 'C']
    assert titles(api(query='browser:"Chrome 124"')) == ['A']
    assert titles(api(query='!browser:"Chrome 124"')) == ['B', 'C']
    assert titles(api(query='env:staging')) == ['B']
    assert titles(api(query='!environment:staging release:v1.0.0')) == ['A']
    assert titles(api(query='!release:v1.0.0')) == ['C']
    assert titles(api(query='region:eu !level:error')) == []
    assert titles(api(query='region:eu level:error', sort='events')) == ['A']
    assert titles(api(query='!is:assigned')) == ['A', 'B', 'C']
    assert titles(api(query='!is:unresolved', status='all')) == []


def test_is_all_is_every_status(client, project, api):
    seed(client, project)
    with db.database.connection_context():
        Issue.update(status='resolved').where(Issue.type == 'A').execute()
    assert titles(api()) == ['B', 'C']
    assert titles(api(query='is:all')) == ['A', 'B', 'C']
    assert titles(api(query='is:all plan:enterprise')) == []
    assert titles(api(query='is:all plan:"enterprise plus"')) == ['A']
    refused = api(query='!is:all')
    assert refused.status_code == 400 and '!is:all' in refused.json['detail']


def test_total_counts_every_page_of_matches(client, project, api):
    seed(client, project)
    result = api(limit=1)
    assert len(result.json['issues']) == 1 and result.json['next']
    assert result.json['total'] == 3
    assert api(query='!plan:free', limit=1).json['total'] == 2
    assert api(query='plan:nothing').json['total'] == 0


def test_unknown_terms_are_a_400_in_the_api_and_a_message_on_the_page(client, project, api,
                                                                       browser, owner):
    seed(client, project)
    for query, detail in (('foo:bar', 'query: unknown search term `foo:`'),
                          ('!foo:bar', 'query: unknown search term `foo:`'),
                          ('is:sleeping', 'query: unknown search term `is:sleeping`')):
        result = api(query=query)
        assert result.status_code == 400 and result.json['detail'].startswith(detail), query
    page = browser.get(urls.project_issues(project.id, query='foo:bar')).text
    assert '<p class="error" role="alert">unknown search term `foo:`</p>' in page
    assert 'class="issue-title"' not in page
    # A tag key of another organization's project is no key here.
    send(client, event(make_project('theirs', org_slug='other').key, tags={'secret': 'x'}))
    assert api(query='secret:x').status_code == 400
