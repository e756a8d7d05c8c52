"""Headless Debian Chromium for browser tests, driven by Playwright for Python.

Owns the launch (binary, flags) and the `chromium_browser` session fixture; a test module
brings the fixture in with `from browser import chromium_browser  # noqa: F401`.
"""
import json
import os
import urllib.request
from pathlib import Path

import pytest
from factories import PASSWORD
from playwright.sync_api import Browser
from playwright.sync_api import Playwright
from playwright.sync_api import sync_playwright

# Debian's package (`apt-get install chromium`): Playwright never downloads a browser here.
CHROMIUM_PATH = os.environ.get('PROLIFERATE_CHROMIUM', '/usr/bin/chromium')

LAUNCH_ARGS = (
    '--headless',  # no display on CI or a developer's shell
    '--no-sandbox',  # tests run as root in containers, where the setuid/user-ns sandbox fails
    '--disable-gpu',  # no GPU; avoids the GPU process and its warnings
    '--disable-quic',  # plain HTTP/1.1 on loopback: what the tests observe is what the server sees
    '--no-first-run',  # no first-run dialogs or default-browser checks
    '--disable-background-networking',  # no update checks, safe-browsing or DNS prefetch traffic
    '--disable-component-update',  # no component downloads (the machine reaches no such host)
    '--disable-sync',  # no account sync attempts
)


def launch_chromium(playwright: Playwright, **options) -> Browser:
    """Launch headless Chromium with LAUNCH_ARGS; extra `options` go to `chromium.launch`."""
    if not Path(CHROMIUM_PATH).exists():
        raise RuntimeError(f'{CHROMIUM_PATH} missing: apt-get install -y chromium')
    return playwright.chromium.launch(
        executable_path=CHROMIUM_PATH,
        headless=True,
        args=list(LAUNCH_ARGS),
        timeout=30_000,
        **options,
    )


@pytest.fixture(scope='session')
def chromium_browser():
    """One browser for the whole session; give each test its own `new_context()`."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def post(url, body):
    """JSON to the live server's ingest, acknowledged (202): its answer."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return json.loads(response.read())


def sign_in(page, base, email, lands_on='**/issues**'):
    """The login form, as a person fills it, until the page it leads to (lands_on)."""
    page.goto(base + '/login')
    page.fill('input[name=email]', email)
    page.fill('input[name=password]', PASSWORD)
    page.click('form button[type=submit]')
    page.wait_for_url(lands_on)
