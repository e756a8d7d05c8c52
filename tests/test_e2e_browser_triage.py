"""Triage in headless Chromium against the live server: the Ignore menu's "until N more events"
and a comment, with JavaScript off (plain forms), and the issue page with JavaScript on raising
no Content-Security-Policy violation."""


import pytest
from browser import post
from browser import sign_in
from factories import event

from proliferate import db
from proliferate.models import Issue

pytestmark = pytest.mark.browser
HOSTILE = '<img src=x onerror=alert(1)>'


def test_snooze_and_comment_without_javascript(chromium_browser, live_server, owner, web):
    post(live_server + '/api/v1/errors', event(web.key))
    with db.database.connection_context():
        issue_id = Issue.select().first().id
    context = chromium_browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, live_server, owner.email)
        page.goto(f'{live_server}/issues/{issue_id}')
        page.click('summary:has-text("until…")')
        page.fill('input[name=count]', '1')
        page.select_option('select[name=snooze]', 'events')
        page.click('button:has-text("Snooze") >> nth=1')
        page.wait_for_url('**notice=ignored')
        assert page.text_content('.triage-snooze').strip() == 'ignored until 1 more events'
        page.fill('textarea[name=text]', HOSTILE + ' https://example.com/x')
        page.click('.triage-comment-form button')
        page.wait_for_url('**notice=commented')
        assert page.text_content('.triage-comment-text').strip() == (
            HOSTILE + ' https://example.com/x')
        assert page.locator('.triage-comment-text img').count() == 0
        assert page.get_attribute('.triage-comment-text a', 'href') == 'https://example.com/x'
        # The author as written (an e-mail address is not capitalized like an activity's kind).
        author = page.locator('.triage-comment .comment-author')
        assert author.inner_text() == author.text_content() == 'owner@example.com'
        post(live_server + '/api/v1/errors', event(web.key))
        page.reload()
        assert page.text_content('.status').strip() == 'unresolved'
        assert page.is_visible('.issue-badges .badge-regressed:has-text("escalating")')
    finally:
        context.close()


def test_issue_page_raises_no_csp_violation(chromium_browser, live_server, owner, web):
    post(live_server + '/api/v1/errors', event(web.key))
    with db.database.connection_context():
        issue_id = Issue.select().first().id
    context = chromium_browser.new_context()
    try:
        page = context.new_page()
        messages = []
        page.on('console', lambda message: messages.append(message.text))
        sign_in(page, live_server, owner.email)
        page.goto(f'{live_server}/issues/{issue_id}')
        page.click('summary:has-text("in…")')
        assert page.is_visible('button:has-text("Resolve in the next release")')
        page.click('button:has-text("Resolve in the next release")')
        page.wait_for_url('**notice=resolved')
        assert 'resolved in the next release' in page.text_content('.issue-badges')
        assert not [m for m in messages if 'Content Security Policy' in m], messages
    finally:
        context.close()
