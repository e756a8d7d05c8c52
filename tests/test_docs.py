"""The README documents every setting and the install and test commands; its contents, docs/ and
the changelog hold together (headings, summaries, no references a reader cannot open)."""

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


ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / 'docs').glob('*.md'))


def headings(text):
    """The GitHub anchors of a Markdown text's headings (outside code blocks)."""
    anchors, fenced = set(), False
    for line in text.splitlines():
        if line.startswith('```'):
            fenced = not fenced
        elif not fenced and line.startswith('#'):
            title = line.lstrip('#').strip().lower()
            anchors.add(re.sub(r'[^\w\- ]', '', title).replace(' ', '-'))
    return anchors


def test_the_readme_contents_point_at_its_headings():
    anchors = headings(README)
    missing = [link for link in re.findall(r'\]\(#([^)]+)\)', README) if link not in anchors]
    assert not missing, f'README links to headings it does not have: {missing}'


def test_each_doc_opens_with_a_title_and_a_summary():
    for path in DOCS:
        lines = path.read_text().splitlines()
        assert lines[0].startswith('# ') and lines[1] == '' and lines[2].strip(), path.name


def test_the_docs_refer_to_nothing_a_reader_cannot_open():
    texts = {'README.md': README, 'CHANGELOG.md': (ROOT / 'CHANGELOG.md').read_text()}
    texts.update({f'docs/{path.name}': path.read_text() for path in DOCS})
    for name, text in texts.items():
        for pattern in (r'\bissue [0-9]', r'\bissue #[0-9]', 'workplace', r'\.\./shared'):
            assert not re.search(pattern, text, re.I), f'{name} mentions {pattern}'


def test_the_changelog_opens_with_this_version():
    from proliferate import __version__
    first = re.search(r'^## (\S+)', (ROOT / 'CHANGELOG.md').read_text(), re.M)
    assert first and first.group(1) == __version__
