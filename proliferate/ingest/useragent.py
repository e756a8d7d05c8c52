"""Pure: a user agent string -> (browser, os) names for the issue distributions.

Deliberately small: the issue page needs family and major version, not a device database.
Order matters: Edge and Opera also say Chrome, Chrome also says Safari.
"""

import functools
import re

_BROWSERS = (
    ('Edge', re.compile(r'Edg(?:e|A|iOS)?/(\d+)')),
    ('Opera', re.compile(r'(?:OPR|Opera)/(\d+)')),
    ('Samsung Internet', re.compile(r'SamsungBrowser/(\d+)')),
    ('Firefox', re.compile(r'(?:Firefox|FxiOS)/(\d+)')),
    ('Chrome', re.compile(r'(?:Chrome|CriOS)/(\d+)')),
    ('Safari', re.compile(r'Version/(\d+)[\d.]* (?:Mobile/\S+ )?Safari/')),
    ('Node.js', re.compile(r'Node\.js/v?(\d+)')),
    ('python-httpx', re.compile(r'python-httpx/(\d+)')),
    ('python-requests', re.compile(r'python-requests/(\d+)')),
    ('Python-urllib', re.compile(r'Python-urllib/(\d+)')),
    ('curl', re.compile(r'curl/(\d+)')),
)

_SYSTEMS = (
    ('iOS', re.compile(r'(?:iPhone|iPad|iPod).*? OS (\d+)')),
    ('Android', re.compile(r'Android (\d+)')),
    ('ChromeOS', re.compile(r'CrOS \S+ (\d+)')),
    ('Windows', re.compile(r'Windows NT (\d+\.\d+)')),
    ('macOS', re.compile(r'Mac OS X (\d+)[_.](\d+)')),
    ('Linux', re.compile(r'Linux|X11')),
)

_WINDOWS = {'10.0': '10', '6.3': '8.1', '6.2': '8', '6.1': '7'}


# A few browsers send most events: their answers are kept (at most this many 512-character keys).
CACHE_ENTRIES = 1024


def parse_user_agent(user_agent):
    """('Chrome 120', 'Windows 10'); None for what cannot be told."""
    if not user_agent:
        return None, None
    return _parse(user_agent[:512])


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _parse(text):
    browser = None
    for name, pattern in _BROWSERS:
        match = pattern.search(text)
        if match:
            browser = f'{name} {match.group(1)}'
            break
    system = None
    for name, pattern in _SYSTEMS:
        match = pattern.search(text)
        if not match:
            continue
        if name == 'Windows':
            system = f'Windows {_WINDOWS.get(match.group(1), match.group(1))}'
        elif name == 'macOS':
            system = f'macOS {match.group(1)}' if match.group(1) != '10' else f'macOS 10.{match.group(2)}'
        elif name == 'Linux':
            system = 'Linux'
        else:
            system = f'{name} {match.group(1)}'
        break
    return browser, system
