"""Size of the browser SDK as a page downloads it: minified (esbuild) and gzipped.

Budget from the issue: 6 KB minified + gzipped. Installs esbuild from npm into bench/out/
on first use; without node/npm it reports the gzip of the raw file (an upper bound).
Usage: python bench/sdk_size.py [--check]   (--check exits 1 when over budget)
"""
import argparse
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / 'static' / 'proliferate.js'
TOOLS = ROOT / 'bench' / 'out' / 'node'
ESBUILD = TOOLS / 'node_modules' / '.bin' / 'esbuild'
ESBUILD_VERSION = '0.28.2'
BUDGET = 6 * 1024


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def find_esbuild() -> Path | None:
    if ESBUILD.exists():
        return ESBUILD
    npm = shutil.which('npm')
    if npm is None:
        return None
    TOOLS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, 'install', '--prefix', str(TOOLS), '--no-save', '--no-audit', '--no-fund',
         f'esbuild@{ESBUILD_VERSION}'],
        check=True, capture_output=True, timeout=300,
    )
    return ESBUILD if ESBUILD.exists() else None


def minify(esbuild: Path, source: Path) -> bytes:
    # --legal-comments=none: the /*! banner is documentation, not a licence to keep.
    result = subprocess.run(
        [str(esbuild), str(source), '--minify', '--target=es2017', '--legal-comments=none'],
        check=True, capture_output=True, timeout=60,
    )
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='exit 1 when over budget')
    args = parser.parse_args()
    raw = SDK.read_bytes()
    print(f'raw           {len(raw):6d} B')
    print(f'raw+gzip      {gzip_size(raw):6d} B')
    esbuild = find_esbuild()
    if esbuild is None:
        print('esbuild unavailable (no npm): budget judged on raw+gzip')
        size = gzip_size(raw)
    else:
        minified = minify(esbuild, SDK)
        size = gzip_size(minified)
        print(f'minified      {len(minified):6d} B  (esbuild {ESBUILD_VERSION})')
        print(f'minified+gzip {size:6d} B')
    verdict = 'within' if size <= BUDGET else 'OVER'
    print(f'budget        {BUDGET:6d} B  {verdict} ({size / BUDGET:.0%})')
    return 1 if args.check and size > BUDGET else 0


if __name__ == '__main__':
    sys.exit(main())
