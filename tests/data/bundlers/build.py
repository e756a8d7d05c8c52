"""Build a tiny app with webpack, Vite, esbuild and Parcel and record the file names they emit.

Run from anywhere: python tests/data/bundlers/build.py (needs node and npm, and the npm registry).
The bundlers are installed under /tmp/proliferate-bundlers, never into the repository; only
names.json is written here. Each emitted name is paired with its stable name, taken from what
the bundler itself reports (webpack's asset hashes, Rollup/Rolldown's chunk name, esbuild's entry
point, Parcel's display name), so the pairs do not depend on the code under test.
"""

import collections
import json
import pathlib
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
WORK = pathlib.Path('/tmp/proliferate-bundlers')
VARIANTS = 4
PACKAGES = ('webpack', 'webpack-cli', 'vite', 'esbuild', 'parcel', 'nanoid@3')

# The app: an entry, a helper module, a lazily loaded module and one third-party dependency,
# so every bundler emits an entry, a split chunk and a vendor/shared chunk.
APP = {
    'src/index.js': """\
import { nanoid } from 'nanoid/non-secure';
import { processData } from './utils.js';

export function handleClick(event) {
  return processData(event.detail) + nanoid(4).length;
}

document.getElementById('buy').addEventListener('click', async function onClick() {
  const { renderReport } = await import('./report.js');
  renderReport(handleClick({ detail: { items: [] } }));
});
""",
    'src/utils.js': """\
export function processData(data) {
  const rows = data.items;
  return rows.length + VARIANT;
}
""",
    'src/report.js': """\
import { nanoid } from 'nanoid/non-secure';

export function renderReport(count) {
  document.getElementById('out').textContent = `${count} rows (${nanoid(6)}) vVARIANT`;
}
""",
    'index.html': """\
<!doctype html>
<html><body><button id="buy">Buy</button><pre id="out"></pre>
<script type="module" src="./src/index.js"></script></body></html>
""",
}

# Each build prints one JSON list of [emitted path, stable path] pairs on stdout.
WEBPACK = """\
const path = require('path');
const webpack = require('webpack');
const configs = {
  // webpack's documented caching set-up.
  contenthash: {
    output: { filename: '[name].[contenthash].js', chunkFilename: '[id].[contenthash].chunk.js' },
    optimization: { splitChunks: { chunks: 'all', minSize: 0 } },
  },
  // create-react-app's names: runtime and vendor chunks, 8-character hashes.
  cra: {
    output: {
      filename: 'static/js/[name].[contenthash:8].js',
      chunkFilename: 'static/js/[name].[contenthash:8].chunk.js',
    },
    optimization: {
      runtimeChunk: 'single',
      splitChunks: { minSize: 0, cacheGroups: { vendor: {
        test: /node_modules/, name: 'vendor', chunks: 'all' } } },
    },
  },
  // The full compilation hash, as old set-ups wrote [hash].
  fullhash: {
    output: { filename: '[name].[fullhash].js', chunkFilename: '[id].[fullhash].chunk.js' },
    optimization: { splitChunks: { chunks: 'all', minSize: 0 } },
  },
  // Without hashes (development): every name is real and must stay whole.
  plain: {
    mode: 'development', devtool: false,
    output: { filename: '[name].js', chunkFilename: '[name].js' },
    optimization: { splitChunks: { chunks: 'all', minSize: 0 } },
  },
};
const name = process.argv[2];
const config = Object.assign(
  { mode: 'production', context: process.cwd(), entry: { main: './src/index.js' } },
  configs[name]);
config.output.path = path.resolve('dist/webpack-' + name);
webpack(config, (err, stats) => {
  if (err || stats.hasErrors()) { console.error(err || stats.toString()); process.exit(1); }
  const pairs = [];
  for (const asset of stats.toJson({ assets: true }).assets) {
    let stable = asset.name;
    for (const key of ['contenthash', 'chunkhash', 'fullhash']) {
      for (const hash of [].concat(asset.info[key] || [])) {
        stable = stable.replace('.' + hash, '').replace('-' + hash, '');
      }
    }
    pairs.push([asset.name, stable]);
  }
  process.stdout.write(JSON.stringify(pairs));
});
"""

VITE = """\
import { build } from 'vite';
const pairs = [];
await build({
  logLevel: 'silent',
  build: { outDir: 'dist/vite', emptyOutDir: true },
  plugins: [{
    name: 'record-names',
    generateBundle(options, bundle) {
      for (const item of Object.values(bundle)) {
        if (item.type === 'chunk') {
          pairs.push([item.fileName, item.fileName.replace(/[^/]*$/, item.name + '.js')]);
        }
      }
    },
  }],
});
process.stdout.write(JSON.stringify(pairs));
"""

ESBUILD = """\
import * as esbuild from 'esbuild';
import path from 'path';
const result = await esbuild.build({
  entryPoints: ['src/index.js', 'src/report.js'], bundle: true, splitting: true, format: 'esm',
  minify: true, outdir: 'dist/esbuild', entryNames: '[name]-[hash]', metafile: true,
});
const pairs = [];
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  // esbuild names a shared chunk 'chunk', an entry after its source file.
  const name = output.entryPoint ? path.parse(output.entryPoint).name : 'chunk';
  pairs.push([file, path.join(path.dirname(file), name + '.js')]);
}
process.stdout.write(JSON.stringify(pairs));
"""

PARCEL = """\
import { Parcel } from '@parcel/core';
import path from 'path';
const bundler = new Parcel({
  entries: 'index.html', defaultConfig: '@parcel/config-default', mode: 'production',
  shouldDisableCache: true, defaultTargetOptions: { distDir: 'dist/parcel' },
});
const { bundleGraph } = await bundler.run();
const pairs = [];
for (const bundle of bundleGraph.getBundles()) {
  const file = path.basename(bundle.filePath);
  // displayName is the name with its hash written as '[hash]'.
  pairs.push([file, bundle.displayName.replace('.[hash]', '')]);
}
process.stdout.write(JSON.stringify(pairs));
"""


def run(args):
    done = subprocess.run(args, cwd=WORK, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f'{args} failed:\n{done.stdout}\n{done.stderr}')
    return done.stdout


def install():
    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / 'package.json').exists():
        (WORK / 'package.json').write_text('{"name": "bundler-names", "private": true}\n')
    if not (WORK / 'node_modules' / 'parcel').exists():
        run(['npm', 'install', '--no-audit', '--no-fund', '--loglevel=error', *PACKAGES])
    for rel, text in APP.items():
        (WORK / rel).parent.mkdir(parents=True, exist_ok=True)
        (WORK / rel).write_text(text)
    (WORK / 'build-webpack.cjs').write_text(WEBPACK)
    (WORK / 'build-vite.mjs').write_text(VITE)
    (WORK / 'build-esbuild.mjs').write_text(ESBUILD)
    (WORK / 'build-parcel.mjs').write_text(PARCEL)


def version(package):
    return json.loads((WORK / 'node_modules' / package / 'package.json').read_text())['version']


def js_pairs(output):
    pairs = []
    for emitted, stable in json.loads(output):
        if emitted.endswith('.js'):
            pairs.append([emitted.rpartition('/')[2], stable.rpartition('/')[2]])
    return sorted(pairs)


def published_names():
    # The file names inside the installed packages, as published on npm: real names to keep
    # whole (a few are themselves bundler output with hashes; the tests list those).
    names = set()
    for path in (WORK / 'node_modules').rglob('*'):
        if path.suffix in ('.js', '.mjs', '.cjs') and path.is_file():
            names.add(path.name)
    return sorted(names)


def main():
    install()
    builds = collections.defaultdict(list)
    # Each variant changes the code of two modules, so every build emits new hashes.
    for variant in range(VARIANTS):
        for rel in ('src/utils.js', 'src/report.js'):
            (WORK / rel).write_text(APP[rel].replace('VARIANT', str(variant)))
        for name in ('contenthash', 'cra', 'fullhash', 'plain'):
            builds[f'webpack-{name}'] += js_pairs(run(['node', 'build-webpack.cjs', name]))
        builds['vite'] += js_pairs(run(['node', 'build-vite.mjs']))
        builds['esbuild'] += js_pairs(run(['node', 'build-esbuild.mjs']))
        builds['parcel'] += js_pairs(run(['node', 'build-parcel.mjs']))
    builds = {name: sorted(set(map(tuple, pairs))) for name, pairs in builds.items()}
    names = {
        'note': 'Written by build.py: [emitted file name, stable name] per build (the stable '
        'name comes from the bundler: its hashes, chunk names or display names), and the '
        'JavaScript file names of the packages the build installed, as published.',
        'versions': {p: version(p) for p in ('webpack', 'vite', 'esbuild', 'parcel')},
        'builds': builds,
        'published': published_names(),
    }
    (HERE / 'names.json').write_text(json.dumps(names, indent=1) + '\n')
    print(json.dumps(builds, indent=1))


if __name__ == '__main__':
    main()
