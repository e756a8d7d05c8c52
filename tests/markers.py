"""What the `browser` and `network` markers need, and what to do when it is missing: skip with
the reason on a developer's machine, fail under CI=true (CI must never pass by skipping). The
decision is pure; the probes are bounded and asked once per session."""

import functools
import os
import urllib.error
import urllib.request

PROBE_SECONDS = 3.0


def chromium_path(environ=os.environ):
    return environ.get('PROLIFERATE_CHROMIUM', '/usr/bin/chromium')


def registries(environ=os.environ):
    """The registries the network tests install from: pip's index and npm's, as configured."""
    return (
        ('PyPI', environ.get('PIP_INDEX_URL') or 'https://pypi.org/simple/'),
        ('npm', environ.get('NPM_CONFIG_REGISTRY') or environ.get('npm_config_registry')
         or 'https://registry.npmjs.org/'),
    )


def chromium_problem(path):
    """Why Chromium at path cannot run, or None."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return None
    return (f'Chromium not found at {path}: install it (apt-get install chromium) or set '
            'PROLIFERATE_CHROMIUM to a Chromium executable')


@functools.cache
def registry_problem(name, url, timeout=PROBE_SECONDS):
    """Why the registry at url cannot be reached, or None. Any HTTP answer counts as reachable:
    the question is whether an install could start, not whether this URL has a page."""
    request = urllib.request.Request(url, method='HEAD', headers={'User-Agent': 'proliferate-tests'})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as error:
        reason = getattr(error, 'reason', error)
        return f'{name} registry unreachable ({url}: {reason}); these tests install SDKs from it'
    return None


def decide(markers, *, ci, chromium, registry, urls):
    """('skip' | 'fail', reason) for a test carrying `markers`, or None to run it. chromium() and
    registry(name, url) return a problem or None; they are asked only about what a marker needs,
    registry once for each (name, url) of urls."""
    problems = []
    if 'browser' in markers:
        problems.append(chromium())
    if 'network' in markers:
        problems.extend(registry(name, url) for name, url in urls)
    problems = [problem for problem in problems if problem]
    if not problems:
        return None
    if ci:
        return 'fail', '; '.join(problems) + ' (CI=true: a missing piece fails, never skips)'
    return 'skip', '; '.join(problems)


def is_ci(environ=os.environ):
    return environ.get('CI', '').strip().lower() in ('1', 'true', 'yes')
