"""schemathesis against the served /api/openapi.json on the real server: generated
requests (valid and invalid) for every operation get no 5xx, and every response matches the
document (status codes, content types, headers, bodies).
"""

import collections
import os
import uuid

import pytest
import schemathesis
from factories import make_project
from factories import make_token
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

pytestmark = pytest.mark.slow

# CI runs 40 a mode and operation (~20 s); SCHEMATHESIS_EXAMPLES=500 makes a deeper local run.
SEEN = collections.Counter()


@schemathesis.check
def record_status(ctx, response, case):
    """Not a check: counts (operation, status) so the test can tell that auth was applied."""
    SEEN[case.operation.label, response.status_code] += 1


EXAMPLES = int(os.environ.get('SCHEMATHESIS_EXAMPLES', '40'))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.unsupported_method,
    record_status,
]


def seed(http, project):
    """Events in two issues, so that ids 1 and 2 exist for the generated paths to find."""
    events = []
    for kind in ('TypeError', 'RangeError'):
        events.append({'api_key': project.key, 'event_id': uuid.uuid4().hex,
                       'timestamp': '2025-01-15T10:30:00Z', 'type': 'exception',
                       'user': {'id': 'u1'}, 'account': {'id': 'a1'},
                       'exception': {'type': kind, 'message': 'boom'}})
    status, _headers, _body = http.post('/api/v1/errors/batch', events)
    assert status == 202


def run_operation(operation, base_url):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE)))
    def check(case):
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

    check()


def test_every_operation_matches_the_document(live_server, http, project):
    seed(http, project)
    # Another organization's project: the token must never see it (404, as documented).
    make_project('elsewhere', org_slug='other-org')
    # The token goes through the document's own `bearer` scheme, so that the negative cases
    # that drop it stay without it (and must get 401).
    config = SchemathesisConfig.from_dict(
        {'auth': {'openapi': {'bearer': {'bearer': make_token(project.org_id)}}}})
    schema = schemathesis.openapi.from_url(f'{live_server}/api/openapi.json', config=config)
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            run_operation(operation, live_server)
        except (Exception, BaseExceptionGroup) as error:  # every operation is tried; all failures listed
            failures.append(f'{operation.label}: {type(error).__name__}: {str(error)[:2000]}')
    print(f'schemathesis: {operations} operations, up to {EXAMPLES} examples each, '
          f'{len(failures)} failing')
    assert operations >= 10
    # The token was applied: authorised reads succeeded, and the cases without it got 401.
    for label in ('GET /api/v1/projects', 'GET /api/v1/projects/{project_id}/issues',
                  'GET /api/v1/issues/{issue_id}/events'):
        assert SEEN[label, 200] > 0, (label, SEEN)
    assert SEEN['GET /api/v1/projects', 401] > 0, SEEN
    assert failures == [], '\n\n'.join(failures)
    status, _headers, _body = http.request('GET', '/healthz')
    assert status == 200
