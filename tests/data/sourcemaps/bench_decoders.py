"""Measure source-map decoders on one map: parse time, lookup time, memory.

Usage: PYTHONPATH=../../.. python bench_decoders.py MAP MINIFIED_JS [LIB ...]
Each LIB runs in its own process; LIB 'proliferate' is our parse_sourcemap around symbolic.
Not a test: it produced the figures in README.md; rerun it after changing the decoder.
"""
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

LIBS = ('symbolic', 'sourcemap', 'libsourcemap', 'py_sourcemap')
PARSE_RUNS = 5
LOOKUPS = 20000


def rss_kib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def positions(minified_path):
    # Random (0-based line, 0-based column) points inside the minified file; seeded so every
    # library gets the same points.
    with open(minified_path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    rng = random.Random(42)
    weighted = [i for i, line in enumerate(lines) for _ in range(max(1, len(line) // 1000))]
    out = []
    for _ in range(LOOKUPS):
        line = rng.choice(weighted)
        out.append((line, rng.randrange(max(1, len(lines[line])))))
    return out


def make(lib, map_path):
    if lib == 'symbolic':
        import symbolic
        data = Path(map_path).read_bytes()
        parse = lambda: symbolic.SourceMapView.from_json_bytes(data)
        def look(m, line, col):
            t = m.lookup(line, col)
            return t and (t.src, t.src_line, t.src_col, t.name)
    elif lib == 'proliferate':
        # our wrapper: orjson shape/version check + symbolic parse
        from proliferate.sourcemaps import decode
        data = Path(map_path).read_bytes()
        parse = lambda: decode.parse_sourcemap(data)
        def look(m, line, col):
            p = m.lookup(line + 1, col + 1)
            return p and (p.source, p.lineno - 1, p.colno - 1, p.name)
    elif lib == 'sourcemap':
        import sourcemap
        text = Path(map_path).read_text(encoding='utf-8')
        parse = lambda: sourcemap.loads(text)
        def look(m, line, col):
            try:
                t = m.lookup(line, col)
            except IndexError:
                return None
            return (t.src, t.src_line, t.src_col, t.name)
    elif lib == 'libsourcemap':
        import libsourcemap
        data = Path(map_path).read_bytes()
        parse = lambda: libsourcemap.from_json(data)
        def look(m, line, col):
            t = m.lookup_token(line, col)
            return t and (t.src, t.src_line, t.src_col, t.name)
    elif lib == 'py_sourcemap':
        import py_sourcemap
        parse = lambda: py_sourcemap.SourcemapParser(map_path)
        def look(m, line, col):
            t = m.lookup(line, col)
            return (t.source, t.src_line, t.src_col, t.name)
    else:
        raise SystemExit(f'unknown lib {lib}')
    return parse, look


def run_one(lib, map_path, minified_path):
    points = positions(minified_path)
    parse, look = make(lib, map_path)
    before = rss_kib()
    kept = parse()
    after = rss_kib()
    times = []
    for _ in range(PARSE_RUNS):
        t0 = time.perf_counter()
        parse()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    results = [look(kept, line, col) for line, col in points]
    lookup_s = time.perf_counter() - t0
    found = [r for r in results if r]
    print(json.dumps({
        'lib': lib,
        'parse_ms_median': round(statistics.median(times) * 1000, 1),
        'lookup_us_per_frame': round(lookup_s / len(points) * 1e6, 2),
        'rss_growth_mib': round((after - before) / 1024, 1),
        'found': len(found),
        # a digest of the answers so the libraries can be checked against each other
        'answers_sample': results[:3],
    }))


def main():
    map_path, minified_path, *libs = sys.argv[1:]
    if os.environ.get('BENCH_CHILD'):
        run_one(libs[0], map_path, minified_path)
        return
    size = os.path.getsize(map_path)
    print(f'map {map_path}: {size / 1e6:.2f} MB')
    for lib in libs or LIBS:
        env = dict(os.environ, BENCH_CHILD='1')
        proc = subprocess.run([sys.executable, __file__, map_path, minified_path, lib],
                              env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        failed = f'{lib}: failed (exit {proc.returncode}) {proc.stderr.strip()[-300:]}'
        print(proc.stdout.strip() or failed)


if __name__ == '__main__':
    main()
