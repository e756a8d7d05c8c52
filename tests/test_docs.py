"""The README documents every setting, and the two commands the issue asks for."""

import re
from pathlib import Path

from proliferate.config import SETTINGS
from proliferate.config import settings_markdown

README = (Path(__file__).resolve().parent.parent / 'README.md').read_text()


def test_readme_settings_table_is_current():
    match = re.search(r'<!-- settings:start[^>]*-->\n(.*?)\n<!-- settings:end -->', README, re.S)
    assert match, 'README lost its settings markers'
    assert match.group(1) == settings_markdown(), 'regenerate it: python -m proliferate.config'
    for name, *_rest in SETTINGS:
        assert f'PROLIFERATE_{name.upper()}' in README


def test_readme_gives_the_two_commands():
    assert "pip install . && proliferate serve" in README
    assert "pip install -e '.[test]' && pytest" in README
    assert "pip install -e '.[test]' && pytest" in (Path(__file__).resolve().parent.parent / '.ci' / 'run').read_text()
