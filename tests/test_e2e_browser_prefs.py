"""The reader's preferences and the rest of the keyboard in Debian's Chromium: the account's dark
theme wins over a light system (and light over dark) and passes axe-core; the browser's time zone
reaches the pages through app.js; an issue page's j/k walk its events and the list's a assigns to
me, never while typing; chart bars tell their counts on focus; long tag keys and unbroken titles
stay inside their boxes at desktop and phone widths."""

import pytest
from factories import event
from factories import make_project
from factories import make_user
from test_e2e_browser_ui import COLOURS
from test_e2e_browser_ui import LONG
from test_e2e_browser_ui import VIEWPORTS
from test_e2e_browser_ui import Watch
from test_e2e_browser_ui import axe_source
from test_e2e_browser_ui import post
from test_e2e_browser_ui import seed
from test_e2e_browser_ui import serious_violations
from test_e2e_browser_ui import sign_in
from test_e2e_browser_ui import wait_for_issues

from proliferate import db
from proliferate.models import User

pytestmark = pytest.mark.browser


def set_prefs(email, **prefs):
    with db.database.connection_context():
        User.update(**prefs).where(User.email == email).execute()


def open_page(chromium_browser, viewport='desktop', **options):
    context = chromium_browser.new_context(viewport=VIEWPORTS[viewport], **options)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


@pytest.mark.network
@pytest.mark.parametrize(('theme', 'system'), [('dark', 'light'), ('light', 'dark')])
def test_the_accounts_theme_wins_over_the_system_and_passes_axe(chromium_browser, live_server,
                                                                 theme, system):
    source = axe_source()
    project = make_project('web')
    make_user('owner@example.com')
    set_prefs('owner@example.com', theme=theme)
    context, page = open_page(chromium_browser, bypass_csp=True, color_scheme=system)
    try:
        sign_in(page, live_server, 'owner@example.com')
        seed(live_server, project)
        wait_for_issues(page, live_server, 3)
        issue_url = page.locator('a.issue-title', has_text='TypeError').get_attribute('href')
        found = []
        for path in ('/orgs/acme/issues', issue_url, '/account'):
            page.goto(live_server + path)
            assert page.locator('html').get_attribute('data-theme') == theme
            background, text = page.evaluate(COLOURS)
            assert (background < 0.2 and text > 0.6) if theme == 'dark' else (
                background > 0.8 and text < 0.3), (path, theme, background, text)
            found += [(path, *v) for v in serious_violations(page, source)]
        assert found == [], '\n'.join(map(str, found))
        # Back to the system's choice: the page follows the browser again.
        page.goto(live_server + '/account')
        page.check('input[name=theme][value=system]')
        page.click('#display button[type=submit]')
        page.wait_for_url('**notice=display_saved')
        assert page.locator('html').get_attribute('data-theme') is None
        background, _text = page.evaluate(COLOURS)
        assert background < 0.2 if system == 'dark' else background > 0.8
    finally:
        context.close()


def test_the_browsers_zone_reaches_the_pages_and_the_account_can_override_it(
        chromium_browser, live_server):
    project = make_project('web')
    make_user('owner@example.com')
    context, page = open_page(chromium_browser, timezone_id='Asia/Tokyo')
    watch = Watch(page)
    try:
        # The login page's script already told the server the zone: the first page shows it.
        sign_in(page, live_server, 'owner@example.com')
        assert any(c['name'] == 'proliferate_tz' and c['value'] == 'Asia/Tokyo'
                   for c in context.cookies())
        seed(live_server, project)
        wait_for_issues(page, live_server, 3)
        assert page.locator('footer a').text_content() == 'Asia/Tokyo'
        title = page.locator('td.time time').first.get_attribute('title')
        assert title.endswith(' JST'), title
        # The account's zone wins; the form shows it.
        page.goto(live_server + '/account')
        page.fill('input[name=timezone]', 'America/New_York')
        page.click('#display button[type=submit]')
        page.wait_for_url('**notice=display_saved')
        page.goto(live_server + '/orgs/acme/issues')
        assert page.locator('footer a').text_content() == 'America/New_York'
        title = page.locator('td.time time').first.get_attribute('title')
        assert title.endswith((' EST', ' EDT')), title
        assert watch.problems == []
        # A zone that is none is refused (a 400), on the page, with nothing changed.
        page.goto(live_server + '/account')
        page.fill('input[name=timezone]', 'Mars/Base')
        page.click('#display button[type=submit]')
        assert 'Unknown time zone: Mars/Base' in page.locator('p.error').text_content()
        page.goto(live_server + '/account')
        assert page.input_value('input[name=timezone]') == 'America/New_York'
    finally:
        context.close()


def test_j_and_k_walk_an_issues_events_and_a_assigns_from_the_list(chromium_browser,
                                                                     live_server):
    project = make_project('web')
    make_user('owner@example.com')
    context, page = open_page(chromium_browser)
    watch = Watch(page)
    try:
        sign_in(page, live_server, 'owner@example.com')
        same = {'type': 'KeyError', 'message': 'missing', 'stack': 'KeyError: missing\n    at f (k.js:1:1)'}
        post(live_server + '/api/v1/errors/batch',
             [event(project.key, exception=same, extra={'n': n}) for n in range(3)])
        seed(live_server, project)
        wait_for_issues(page, live_server, 4)
        page.click('a.issue-title:has-text("KeyError")')
        page.wait_for_selector('.event-id')
        newest = page.locator('.event-id').text_content()
        # j: the older event; k: back to the newer one.
        page.keyboard.press('j')
        page.wait_for_url('**/events/**')
        older = page.locator('.event-id').text_content()
        assert older != newest
        page.keyboard.press('j')
        page.wait_for_function(f'document.querySelector(".event-id").textContent !== "{older}"')
        oldest = page.locator('.event-id').text_content()
        assert len({newest, older, oldest}) == 3
        page.keyboard.press('k')
        page.wait_for_function(f'document.querySelector(".event-id").textContent === "{older}"')
        # Typing in a field is typing: j and k stay in the comment box.
        here = page.url
        box = page.locator('textarea').first
        box.click()
        page.keyboard.type('jk')
        assert box.input_value() == 'jk' and page.url == here
        box.fill('')
        box.blur()
        page.keyboard.press('?')
        assert 'older / newer event' in page.locator('dialog.shortcuts').text_content()
        page.keyboard.press('Escape')

        # In the list, a assigns the selected issue to me.
        page.goto(live_server + '/orgs/acme/issues')
        first = page.locator('tr.issue-row').first.locator('a.issue-title').text_content()
        page.keyboard.press('j')
        page.keyboard.press('a')
        page.wait_for_url('**notice=bulk**')
        row = page.locator('tr.issue-row', has=page.locator('a.issue-title', has_text=first))
        assert row.locator('.triage-assignee').text_content().strip().startswith('→')
        assert page.locator('.triage-assignee').count() == 1
        assert watch.problems == []
    finally:
        context.close()


def test_chart_bars_tell_their_counts_on_focus(chromium_browser, live_server):
    project = make_project('web')
    make_user('owner@example.com')
    context, page = open_page(chromium_browser)
    try:
        sign_in(page, live_server, 'owner@example.com')
        seed(live_server, project)
        wait_for_issues(page, live_server, 3)
        # The list's sparklines: a zero line and a slot per hour, each with its count.
        spark = page.locator('svg.spark').first
        assert spark.locator('line.zero-line').count() == 1
        assert spark.locator('rect.slot').count() == 24
        assert spark.bounding_box()['height'] >= 24
        page.click('a.issue-title:has-text("RangeError")')
        slots = page.locator('svg.chart rect.slot')
        assert slots.count() == 24
        # One tab stop: the current hour; arrows move along the bars.
        assert page.locator('svg.chart rect.slot[tabindex="0"]').count() == 1
        slots.last.focus()
        tip = page.locator('[data-chart-tip]')
        assert tip.is_visible() and tip.text_content().endswith(': 1 event')
        page.keyboard.press('ArrowLeft')
        assert tip.text_content().endswith(': 0 events')
        assert page.evaluate('document.activeElement.getAttribute("tabindex")') == '0'
        # Hour labels under the chart.
        labels = [t for t in page.locator('.chart-labels span').all_text_contents() if t]
        assert len(labels) == 4 and all(text.endswith(':00') for text in labels)
    finally:
        context.close()


def boxes(locator):
    return [locator.nth(i).bounding_box() for i in range(locator.count())]


def inside(inner, outer, slack=1):
    return (inner['x'] >= outer['x'] - slack
            and inner['x'] + inner['width'] <= outer['x'] + outer['width'] + slack)


def apart(one, two, slack=0.5):
    """The two boxes do not overlap (they may touch)."""
    return (one['x'] + one['width'] <= two['x'] + slack or two['x'] + two['width'] <= one['x'] + slack
            or one['y'] + one['height'] <= two['y'] + slack
            or two['y'] + two['height'] <= one['y'] + slack)


@pytest.mark.parametrize('viewport', sorted(VIEWPORTS))
def test_long_tag_keys_and_unbroken_titles_stay_in_their_boxes(chromium_browser, live_server,
                                                               viewport):
    project = make_project('web')
    make_user('owner@example.com')
    context, page = open_page(chromium_browser, viewport)
    try:
        sign_in(page, live_server, 'owner@example.com')
        seed(live_server, project)
        wait_for_issues(page, live_server, 3)
        # The list: the unbroken title stays in its cell, clear of the counts beside it.
        row = page.locator('tr.issue-row', has=page.locator('a.issue-title', has_text=LONG[:20]))
        title = row.locator('a.issue-title').bounding_box()
        cell = row.locator('td.issue-cell').bounding_box()
        assert inside(title, cell), (title, cell)
        for other in boxes(row.locator('td:not(.issue-cell):visible')):
            assert apart(cell, other), (cell, other)
        page.click('a.issue-title:has-text("TypeError")')
        page.wait_for_selector('h1.issue-h1')
        main = page.locator('main').bounding_box()
        heading = page.locator('h1.issue-h1').bounding_box()
        assert inside(heading, main), (heading, main)
        assert apart(heading, page.locator('.issue-actions').bounding_box())
        # The event's tags: each key beside (or above) its value, neither past the list's edge.
        tags = page.locator('h3:has-text("Tags") + dl.kv')
        frame = tags.bounding_box()
        keys, values = boxes(tags.locator('dt')), boxes(tags.locator('dd'))
        assert len(keys) == len(values) >= 2
        for key, value in zip(keys, values, strict=True):
            assert inside(key, frame) and inside(value, frame), (key, value, frame)
            assert apart(key, value), (key, value)
        # The side cards (the URL's value is one unbroken word): headings and values inside.
        cards = page.locator('section.tag-card')
        assert cards.count() >= 3
        for i in range(cards.count()):
            card = cards.nth(i)
            assert inside(card.locator('h3').bounding_box(), card.bounding_box())
            for value in boxes(card.locator('.share-value')):
                assert inside(value, card.bounding_box()), (value, card.bounding_box())
        assert page.evaluate('document.documentElement.scrollWidth - window.innerWidth') <= 0
    finally:
        context.close()
