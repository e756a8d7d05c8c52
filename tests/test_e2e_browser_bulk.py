"""The issue list's "Select all N matching" and its Undo in headless Chromium against the live
server: hidden until the whole page is selected (the stylesheet alone), then every match
resolves and Undo reopens them; no Content-Security-Policy violation."""


import pytest
from browser import post
from browser import sign_in
from factories import STACK
from factories import event

from proliferate import db
from proliferate.models import Issue
from proliferate.web import issues as issue_pages

pytestmark = pytest.mark.browser


def test_select_all_matching_and_undo(chromium_browser, live_server, owner, web,
                                      monkeypatch):
    monkeypatch.setattr(issue_pages, 'PAGE_SIZE', 2)
    for kind in ('A', 'B', 'C', 'D'):
        post(live_server + '/api/v1/errors',
             event(web.key, exception={'type': kind, 'message': 'boom', 'stack': STACK}))
    context = chromium_browser.new_context()
    violations = []
    try:
        page = context.new_page()
        page.on('console', lambda message: violations.append(message.text)
                if 'Content Security Policy' in message.text else None)
        sign_in(page, live_server, owner.email)
        page.goto(f'{live_server}/projects/{web.id}/issues')
        assert not page.is_visible('.select-matching')
        page.check('[data-select-all]')
        assert page.is_visible('.select-matching:has-text("Select all 4 matching")')
        page.check('input[name=all_matching]')
        page.click('button[value=resolve]')
        page.wait_for_url('**notice=bulk')
        assert page.text_content('.bulk-undo span').strip() == '4 issues changed.'
        with db.database.connection_context():
            assert {i.status for i in Issue.select()} == {'resolved'}
        page.click('.bulk-undo button')
        page.wait_for_url('**notice=bulk_undone')
        assert page.locator('.bulk-undo').count() == 0
        with db.database.connection_context():
            assert {i.status for i in Issue.select()} == {'unresolved'}
    finally:
        context.close()
    assert violations == []
