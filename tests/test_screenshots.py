"""bench/screenshots.py, the README's pictures: run as the README says (its own process, its own
Chromium), into a temporary directory, it writes a PNG per page, width and scheme, each of the
viewport's size."""

import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIZES = {'': (1440, 900), '-phone': (390, 844)}


def png_size(path):
    data = path.read_bytes()[:24]
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR', path
    return struct.unpack('>II', data[16:24])


@pytest.mark.browser
def test_the_screenshot_script_writes_every_picture_at_its_size(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / 'bench' / 'screenshots.py'),
                             '--out', str(tmp_path)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {f'{stem}{width}{scheme}.png': size
                for stem in ('issue-list', 'issue-detail')
                for width, size in SIZES.items() for scheme in ('', '-dark')}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    for name, size in expected.items():
        assert png_size(tmp_path / name) == size, name
        # A picture of a page, not of an empty tab: light and dark differ in their bytes.
        assert (tmp_path / name).stat().st_size > 20_000, name
    assert (tmp_path / 'issue-list.png').read_bytes() != (tmp_path / 'issue-list-dark.png').read_bytes()


def test_the_docs_show_the_pictures_the_script_makes():
    shots = ROOT / 'docs' / 'screenshots'
    readme = (ROOT / 'README.md').read_text()
    browser_doc = (ROOT / 'docs' / 'issue-browser.md').read_text()
    for name in ('issue-list.png', 'issue-detail-dark.png', 'issue-detail-phone.png',
                 'issue-list-phone-dark.png'):
        assert (shots / name).exists(), name
        assert f'screenshots/{name}' in readme + browser_doc, name
    assert 'bench/screenshots.py' in browser_doc
