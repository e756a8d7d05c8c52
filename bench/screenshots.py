"""The README's screenshots, made from a seeded database so they never go stale: a temporary SQLite
database with a day and a fortnight of realistic events, the app on a loopback port, Debian's
Chromium driven by Playwright (never a downloaded browser), and each page at a desktop and a phone
width in light and dark.

    python bench/screenshots.py                    # writes docs/screenshots/*.png
    python bench/screenshots.py --out /tmp/shots   # somewhere else

PROLIFERATE_CHROMIUM names the Chromium executable (default /usr/bin/chromium).
"""

import argparse
import datetime
import json
import os
import random
import sys
import tempfile
import threading
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import waitress  # noqa: E402

from proliferate import db  # noqa: E402
from proliferate import orgs  # noqa: E402
from proliferate.app import create_app  # noqa: E402
from proliferate.config import Config  # noqa: E402
from proliferate.models import ProjectKey  # noqa: E402
from proliferate.server import build_services  # noqa: E402
from proliferate.times import utcnow  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get('PROLIFERATE_CHROMIUM', '/usr/bin/chromium')
VIEWPORTS = {'desktop': (1440, 900), 'phone': (390, 844)}
SCHEMES = ('light', 'dark')
EMAIL, PASSWORD = 'maya@example.com', 'screenshots only'
# (file name stem, page): what the README shows.
PAGES = (('issue-list', 'list'), ('issue-detail', 'issue'))

# The issues of a small web shop: (type, message, function, file, level, weight).
ISSUES = (
    ('TypeError', "Cannot read properties of undefined (reading 'total')", 'renderInvoice',
     'invoices.js', 'error', 40),
    ('ChunkLoadError', 'Loading chunk 7 failed.', 'loadChunk', 'runtime.js', 'error', 14),
    ('RangeError', 'Invalid time value', 'formatDate', 'dates.js', 'warning', 9),
    ('Error', 'Request failed with status code 502', 'fetchCart', 'cart.js', 'error', 22),
    ('SyntaxError', 'Unexpected token < in JSON at position 0', 'parseReply', 'api.js', 'error',
     6),
    ('ReferenceError', 'analytics is not defined', 'trackClick', 'tracking.js', 'info', 3),
    ('TypeError', 'Failed to fetch', 'syncProfile', 'profile.js', 'warning', 11),
)
AGENTS = (
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
    'Chrome/124.0.0.0 Safari/537.36',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) '
    'Version/17.4 Safari/605.1.15',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like '
    'Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
    'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
)


def events(key, now, rng):
    """About 500 events over 14 days, most of them in the last day, of the ISSUES above."""
    out = []
    for kind, message, function, filename, level, weight in ISSUES:
        for n in range(weight * 4):
            hours = rng.expovariate(1 / 20) if n % 3 else rng.uniform(0, 24 * 14)
            stamp = now - datetime.timedelta(hours=min(hours, 24 * 14 - 1),
                                             minutes=rng.uniform(0, 59))
            user = rng.randrange(1, 60)
            stack = (f'{kind}: {message}\n'
                     f'    at {function} (https://shop.example.com/static/js/{filename}:{12 + n % 3}:{17 + n % 5})\n'
                     f'    at HTMLButtonElement.onClick (https://shop.example.com/static/js/app.js:88:9)')
            out.append({
                'api_key': key, 'event_id': uuid.uuid4().hex, 'level': level,
                'timestamp': stamp.isoformat(timespec='milliseconds') + 'Z',
                'release': rng.choice(('2.3.0', '2.4.0', '2.4.1')),
                'environment': 'production' if n % 7 else 'staging',
                'url': f'https://shop.example.com/{rng.choice(("cart", "checkout", "account"))}',
                'user_agent': rng.choice(AGENTS),
                'exception': {'type': kind, 'message': message, 'stack': stack},
                'user': {'id': f'u{user}', 'email': f'customer{user}@example.net'},
                'account': {'id': f'acct_{user % 9}', 'name': f'Customer {user % 9}'},
                'breadcrumbs': [
                    {'timestamp': int(stamp.timestamp() * 1000) - 4000, 'category': 'navigation',
                     'message': 'Navigated to /checkout', 'level': 'info'},
                    {'timestamp': int(stamp.timestamp() * 1000) - 900, 'category': 'xhr',
                     'message': 'POST /api/cart [502]', 'level': 'error'}],
                'tags': {'plan': rng.choice(('free', 'team', 'business'))},
            })
    return out


def seed(base, key, now, seed_value=7):
    rng = random.Random(seed_value)
    batch = events(key, now, rng)
    for start in range(0, len(batch), 100):
        request = urllib.request.Request(
            base + '/api/v1/errors/batch', data=json.dumps(batch[start:start + 100]).encode(),
            headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 202:
                raise RuntimeError(f'ingest answered {response.status}')
    return len(batch)


def first_data(directory):
    """The database's organization, project, key and user."""
    with db.database.connection_context():
        with db.database.atomic():
            org = orgs.create_organization('Acme Shop')
            project = orgs.create_project(org, 'storefront')
            user = orgs.create_user(EMAIL, PASSWORD, name='Maya')
            orgs.add_member(org, user, 'owner')
            key = ProjectKey.get(ProjectKey.project == project.id).key
    return org.slug, key


def serve(app):
    server = waitress.create_server(app, host='127.0.0.1', port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread, f'http://127.0.0.1:{server.effective_port}'


def shoot(base, org_slug, out, log=print):
    """Every PAGES x VIEWPORTS x SCHEMES picture into out: [paths]."""
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update'])
        try:
            for viewport, (width, height) in VIEWPORTS.items():
                for scheme in SCHEMES:
                    context = browser.new_context(viewport={'width': width, 'height': height},
                                                  color_scheme=scheme, timezone_id='UTC')
                    page = context.new_page()
                    page.set_default_timeout(20_000)
                    page.goto(base + '/login')
                    page.fill('input[name=email]', EMAIL)
                    page.fill('input[name=password]', PASSWORD)
                    page.click('form button[type=submit]')
                    page.wait_for_url('**/issues**')
                    urls = {'list': base + f'/orgs/{org_slug}/issues'}
                    page.goto(urls['list'])
                    urls['issue'] = base + page.locator('a.issue-title').first.get_attribute('href')
                    for stem, name in PAGES:
                        page.goto(urls[name])
                        suffix = ('' if viewport == 'desktop' else '-phone') + (
                            '' if scheme == 'light' else '-dark')
                        path = Path(out) / f'{stem}{suffix}.png'
                        page.screenshot(path=str(path))
                        written.append(path)
                        log(f'{path} ({width}x{height}, {scheme})')
                    context.close()
        finally:
            browser.close()
    return written


def make(out, log=print):
    """Seed a temporary database, serve it, take the pictures: [paths written]."""
    Path(out).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='proliferate-shots-') as tmp:
        config = Config(database_url=f'sqlite:///{tmp}/shots.db')
        writer, drops, _store = build_services(config)
        server = None
        try:
            org_slug, key = first_data(tmp)
            app = create_app(config, writer=writer, drops=drops)
            server, thread, base = serve(app)
            log(f'{seed(base, key, utcnow())} events seeded')
            return shoot(base, org_slug, out, log)
        finally:
            if server is not None:
                server.task_dispatcher.shutdown()
                server.close()
            writer.stop()
            if not db.database.is_closed():
                db.database.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=str(ROOT / 'docs' / 'screenshots'),
                        help='where the PNG files go (default: docs/screenshots)')
    args = parser.parse_args(argv)
    make(args.out)


if __name__ == '__main__':
    main()
