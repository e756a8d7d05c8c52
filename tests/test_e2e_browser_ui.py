"""The issue browser's layout, accessibility and keyboard in Debian's Chromium: every page at a
desktop and a phone size, in light and dark, fits its viewport (nothing scrolls sideways), logs no
console error and has no serious or critical axe-core violation; the list's shortcuts work."""

import os
import shutil
from pathlib import Path

import pytest
from browser import post
from browser import sign_in as sign_in_until
from factories import event
from factories import make_project
from factories import make_user
from test_sdk_sentry import cached_install
from test_sdk_sentry import run

from proliferate import auth
from proliferate import db
from proliferate.models import Issue
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.models import User

pytestmark = pytest.mark.browser

VIEWPORTS = {'desktop': {'width': 1440, 'height': 900}, 'phone': {'width': 390, 'height': 844}}
# The layout check also takes the narrowest phone in common use.
LAYOUT_VIEWPORTS = {**VIEWPORTS, 'narrow phone': {'width': 360, 'height': 740}}
# A directory to keep a full-page screenshot of every page checked (to look at the layout).
SHOTS = os.environ.get('PROLIFERATE_UI_SCREENSHOTS')
AXE_VERSION = '4.10.2'
# A word no line can hold: titles, culprits, tag keys and values must break it, not widen the page.
LONG = 'Supercalifragilistic' * 6


def frames_stack():
    return 'TypeError: boom\n' + ''.join(
        f'    at handler{n}{LONG[:30]} (https://app.example.com/static/js/{LONG}/chunk{n}.js:{n}:{n * 7})\n'
        for n in range(1, 6))


def long_event(key):
    """An event with every field as wide as a careless SDK makes it."""
    return event(
        key, release='v2.0.0', url=f'https://app.example.com/{LONG}?q={LONG}',
        exception={'type': 'TypeError' + LONG, 'message': f'Cannot read {LONG} of undefined',
                   'stack': frames_stack()},
        tags={f'tag.key.{LONG}': f'value-{LONG}', 'browser': 'Chrome 124'},
        user={'id': 'user-1', 'email': f'{LONG}@example.com'},
        account={'id': 'acct-1', 'name': 'Acme Corp'},
        extra={'payload': {LONG: [LONG] * 3}},
        contexts={'device': {'model': LONG, 'family': 'Desktop'}},
        breadcrumbs=[{'timestamp': 1_700_000_000_000 + n, 'category': 'fetch', 'level': 'info',
                      'message': f'GET /api/{LONG} [200]',
                      'data': {'url': f'https://api.example.com/{LONG}', 'status_code': 200}}
                     for n in range(3)])


def make_release(project, version):
    with db.database.connection_context():
        release = Release.create(project=project.id, version=version)
        # A source map, so the release's page has its table of maps (seven columns).
        SourceMap.create(release=release, url=f'https://cdn.example.com/{LONG}/app.min.js',
                         map_data=b'{}', size=2, sha256='0' * 64)


def make_tokens(project, email):
    """A read and an upload token of the signed-in owner, long-named: both token tables."""
    with db.database.connection_context():
        user = User.get(User.email == email)
        auth.create_token(user, project.org_id, name='export ' + LONG[:60])
        auth.create_token(user, project.org_id, kind='upload', project=project.id,
                          name='deploy ' + LONG[:60])


def seed(base, project):
    make_release(project, 'v2.0.0-' + LONG[:40])
    make_tokens(project, 'owner@example.com')
    post(base + '/api/v1/errors/batch', [
        long_event(project.key),
        event(project.key, exception={'type': 'RangeError', 'message': 'Invalid time value',
                                      'stack': 'RangeError: Invalid time value\n    at f (d.js:3:9)'},
              level='warning'),
        event(project.key, exception={'type': 'SyntaxError', 'message': 'Unexpected token',
                                      'stack': 'SyntaxError: Unexpected token\n    at p (p.js:1:1)'},
              level='info'),
    ])


def snooze_and_regress():
    """The header's longest state: regressed in a long release and ignored until more events
    (every badge at once must wrap on a phone, not widen the page)."""
    with db.database.connection_context():
        changed = Issue.update(status='ignored', snooze_kind='events', snooze_target=1000,
                               is_regressed=True, regressed_release='v2.0.0-' + LONG[:40]).where(
            Issue.type.startswith('TypeError')).execute()
    assert changed == 1


def sign_in(page, base, email):
    """Signed in, on the organization's issue list (where every test here starts)."""
    sign_in_until(page, base, email, lands_on='**/orgs/acme/issues**')


def wait_for_issues(page, base, count):
    for _ in range(100):
        page.goto(base + '/orgs/acme/issues')
        if page.locator('a.issue-title').count() >= count:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f'fewer than {count} issues appeared')


def page_paths(page, base, project):
    """(name, path) of every signed-in page, the issue and release ids read off the pages."""
    page.goto(base + '/orgs/acme/issues')
    issue_url = page.locator('a.issue-title', has_text='TypeError').get_attribute('href')
    page.goto(base + f'/projects/{project.id}/releases')
    # The long-named release with a source map: the widest release page.
    release_url = page.locator('main a[href*="/releases/"]', has_text='v2.0.0-').first.get_attribute(
        'href')
    return [
        ('issue list (organization)', '/orgs/acme/issues'),
        ('issue list (project)', f'/projects/{project.id}/issues'),
        ('issue detail', issue_url),
        ('events', issue_url + '/events'),
        ('users', issue_url + '/users'),
        ('accounts', issue_url + '/accounts'),
        ('releases', f'/projects/{project.id}/releases'),
        ('release', release_url),
        ('project settings and keys', f'/projects/{project.id}/settings'),
        ('projects', '/orgs/acme/projects'),
        ('members', '/orgs/acme/members'),
        ('tokens', '/tokens'),
        ('notifications', '/orgs/acme/notifications'),
        ('deliveries', '/orgs/acme/deliveries'),
        ('account', '/account'),
        ('404', '/orgs/acme/no-such-page'),
    ]


def overflow(page):
    """How far the page scrolls sideways (0: it fits its viewport)."""
    return page.evaluate('document.documentElement.scrollWidth - window.innerWidth')


WIDEST = '''() => {
  const wide = () => document.documentElement.scrollWidth > window.innerWidth;
  const path = [];
  let node = document.body;
  descend: while (node) {
    for (const child of node.children) {
      const before = child.style.display;
      child.style.display = 'none';
      const fixed = !wide();
      child.style.display = before;
      if (fixed) {
        path.push(child.tagName.toLowerCase() + '.' + [...child.classList].join('.'));
        node = child;
        continue descend;
      }
    }
    break;
  }
  return path.slice(-4).join(' > ') + ' ' + (node ? node.outerHTML.slice(0, 80) : '');
}'''


def widest(page):
    """The innermost elements that reach past the viewport's right edge (what to fix)."""
    return page.evaluate(WIDEST)


class Watch:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page):
        self.problems = []
        page.on('console', lambda m: m.type == 'error' and self.problems.append(m.text))
        page.on('pageerror', lambda e: self.problems.append(str(e)))


def check_layout(page, base, paths, label):
    """Every path fits the viewport with no console error: a list of what failed."""
    watch = Watch(page)
    failures = []
    for name, path in paths:
        watch.problems.clear()
        page.goto(base + path)
        wide = overflow(page)
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOTS) / f'{label}-{name}.png'), full_page=True)
            page.screenshot(path=str(Path(SHOTS) / f'{label}-{name}-first-screen.png'))
        if wide > 0:
            failures.append(f'{label} {name}: {wide}px sideways, {widest(page)}')
        # 404 is expected as the page's own status, logged by Chromium as a failed resource.
        errors = [p for p in watch.problems if not (name == '404' and '404' in p)]
        if errors:
            failures.append(f'{label} {name}: console {errors}')
    return failures


@pytest.mark.parametrize('viewport', sorted(LAYOUT_VIEWPORTS))
def test_every_page_fits_the_viewport_without_console_errors(chromium_browser, live_server, viewport):
    project = make_project('web')
    context = chromium_browser.new_context(viewport=LAYOUT_VIEWPORTS[viewport])
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        failures = check_layout(page, live_server, [('setup', '/setup')], viewport)
        make_user('owner@example.com')
        failures += check_layout(page, live_server, [('login', '/login')], viewport)
        sign_in(page, live_server, 'owner@example.com')
        seed(live_server, project)
        wait_for_issues(page, live_server, 3)
        paths = page_paths(page, live_server, project)
        snooze_and_regress()
        failures += check_layout(page, live_server, paths, viewport)
        assert failures == [], '\n'.join(failures)
    finally:
        context.close()


def axe_source():
    """axe-core's browser bundle, installed from npm once into the test cache (not the repo)."""
    if not shutil.which('npm'):
        pytest.skip('npm is needed (.ci/run installs it from Debian)')

    def install(staging):
        (staging / 'package.json').write_text('{"private": true}')
        run(['npm', 'install', '--no-audit', '--no-fund', '--silent', f'axe-core@{AXE_VERSION}'],
            cwd=staging)
    return (cached_install(f'axe-core-{AXE_VERSION}', install)
            / 'node_modules' / 'axe-core' / 'axe.min.js').read_text()


# The relative luminance (0 black, 1 white) of the page's background and of its text.
COLOURS = '''() => [getComputedStyle(document.documentElement).backgroundColor,
                getComputedStyle(document.body).color].map(colour => {
  const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map(v => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
})'''


def serious_violations(page, source):
    """axe-core's serious and critical findings on the page: (rule, first target, help)."""
    page.add_script_tag(content=source)
    result = page.evaluate('axe.run(document, {resultTypes: ["violations"]})')
    return [(v['id'], v['nodes'][0]['target'], v['help']) for v in result['violations']
            if v['impact'] in ('serious', 'critical')]


@pytest.mark.network
@pytest.mark.parametrize('scheme', ['light', 'dark'])
@pytest.mark.parametrize('viewport', sorted(VIEWPORTS))
def test_no_serious_accessibility_violation_on_any_page(chromium_browser, live_server, viewport,
                                                        scheme):
    """axe-core injected past the CSP (bypass_csp, this context only), on every page."""
    source = axe_source()
    project = make_project('web')
    context = chromium_browser.new_context(viewport=VIEWPORTS[viewport], bypass_csp=True,
                                           color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(10_000)
    found = []
    try:
        page.goto(live_server + '/setup')
        found += [('setup', *v) for v in serious_violations(page, source)]
        make_user('owner@example.com')
        page.goto(live_server + '/login')
        found += [('login', *v) for v in serious_violations(page, source)]
        sign_in(page, live_server, 'owner@example.com')
        seed(live_server, project)
        wait_for_issues(page, live_server, 3)
        paths = page_paths(page, live_server, project)
        snooze_and_regress()
        for name, path in paths:
            page.goto(live_server + path)
            found += [(name, *v) for v in serious_violations(page, source)]
            # The scheme really applies: a dark page behind light text, or the reverse.
            background, text = page.evaluate(COLOURS)
            assert (background < 0.2 and text > 0.6) if scheme == 'dark' else (
                background > 0.8 and text < 0.3), (name, scheme, background, text)
            if SHOTS:
                page.screenshot(path=str(Path(SHOTS) / f'{viewport}-{scheme}-{name}.png'))
        assert found == [], '\n'.join(map(str, found))
    finally:
        context.close()


def test_keyboard_users_skip_to_the_content_and_a_signed_in_404_keeps_the_navigation(
        chromium_browser, live_server):
    make_user('owner@example.com')
    context = chromium_browser.new_context(viewport=VIEWPORTS['phone'])
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        sign_in(page, live_server, 'owner@example.com')
        # The first Tab reaches the skip link, shown on focus; it moves focus to <main>.
        page.keyboard.press('Tab')
        skip = page.locator('a.skip-link')
        assert skip.evaluate('e => e === document.activeElement') and skip.is_visible()
        page.keyboard.press('Enter')
        assert page.evaluate('document.activeElement.id') == 'main'
        # On a phone the navigation folds behind Menu (a <details>), and opens.
        nav = page.locator('nav[aria-label=Main]')
        assert not nav.is_visible()
        page.click('summary:has-text("Menu")')
        assert nav.locator('a', has_text='Notifications').is_visible()
        assert page.locator('.menu-right summary').is_visible()
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / 'phone-menu-open.png'))
        # A page that is not there still shows where to go.
        response = page.goto(live_server + '/orgs/acme/no-such-page')
        assert response.status == 404
        assert page.locator('h1').text_content() == '404 Not Found'
        assert page.locator('nav[aria-label=Main] a', has_text='Issues').count() == 1
        assert page.locator('header.topbar').count() == 1 and page.locator('main#main').count() == 1
    finally:
        context.close()


def test_the_issue_list_works_from_the_keyboard(chromium_browser, live_server):
    """j j o opens the second issue, e resolves it (gone from the list); x ticks, ? lists the keys,
    and letters typed into the search box stay there."""
    make_user('owner@example.com')
    project = make_project('web')
    context = chromium_browser.new_context(viewport=VIEWPORTS['desktop'])
    page = context.new_page()
    page.set_default_timeout(10_000)
    watch = Watch(page)
    try:
        sign_in(page, live_server, 'owner@example.com')
        seed(live_server, project)
        wait_for_issues(page, live_server, 3)
        titles = page.locator('a.issue-title').all_text_contents()
        second = page.locator('a.issue-title').nth(1).get_attribute('href')

        page.keyboard.press('j')
        page.keyboard.press('j')
        selected = page.locator('tr.issue-row.kbd-current')
        assert selected.count() == 1 and selected.locator('a.issue-title').text_content() == titles[1]
        page.keyboard.press('k')
        assert page.locator('tr.issue-row.kbd-current a.issue-title').text_content() == titles[0]
        page.keyboard.press('j')
        page.keyboard.press('x')
        assert selected.locator('input[name=issue]').is_checked()
        assert page.text_content('[data-selected-count]') == '1 selected'
        page.keyboard.press('x')
        assert not selected.locator('input[name=issue]').is_checked()

        page.keyboard.press('?')
        dialog = page.locator('dialog.shortcuts')
        assert dialog.is_visible() and 'resolve' in dialog.text_content()
        page.keyboard.press('Escape')
        assert not dialog.is_visible()

        # Typing in the search box is typing, not shortcuts.
        page.keyboard.press('/')
        page.keyboard.type('jjoe')
        assert page.input_value('input[type=search][name=query]') == 'jjoe'
        assert page.url.endswith('/orgs/acme/issues')
        page.locator('input[type=search][name=query]').fill('')
        page.locator('input[type=search][name=query]').blur()

        page.keyboard.press('o')
        page.wait_for_url('**' + second)
        # The issue's chart has a y-axis scale: 0 at the bottom, its one event at the top.
        assert page.locator('svg.chart-scale text').all_text_contents() == ['0', '1']
        assert page.locator('svg.chart line.grid').count() == 2
        page.keyboard.press('e')
        page.wait_for_url('**notice=resolved')
        assert page.locator('.status').text_content().strip() == 'resolved'
        page.goto(live_server + '/orgs/acme/issues')
        assert page.locator('a.issue-title').all_text_contents() == [titles[0], titles[2]]

        # In the list, e resolves the selected row through the bulk form.
        page.keyboard.press('j')
        page.keyboard.press('e')
        page.wait_for_url('**notice=bulk**')
        assert page.locator('a.issue-title').all_text_contents() == [titles[2]]
        assert watch.problems == []
    finally:
        context.close()
