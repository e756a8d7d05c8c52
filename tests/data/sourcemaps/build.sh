#!/bin/sh
# Regenerates the minified fixtures in min/ and the V8 stacks in stacks/ from src/.
# Needs node + npm (the npm registry); node_modules/ stays here, uncommitted (gitignored).
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund
BASE_URL='https://cdn.example.com/static/js/'
rm -rf min stacks .work
mkdir -p min stacks .work

# Build 1: esbuild bundles and minifies in one step.
npx esbuild src/main1.js --bundle --minify --format=iife --target=es2020 \
  --sourcemap --sources-content=true --outfile=min/app1.min.js --log-level=warning

# Build 2: esbuild only bundles (one extra module), then terser compresses + mangles and
# chains the bundle's map, so names and columns differ from build 1.
npx esbuild src/main2.js --bundle --format=iife --target=es2020 \
  --sourcemap --sources-content=true --outfile=.work/app2.bundle.js --log-level=warning
npx terser .work/app2.bundle.js --compress --mangle \
  --source-map "content='.work/app2.bundle.js.map',includeSources,url='app2.min.js.map'" \
  --output min/app2.min.js

# Run each build in Node with source-map support OFF, so the stacks stay minified, then put
# the file where a browser would have fetched it (only the path prefix changes).
for n in 1 2; do
  env -u NODE_OPTIONS node min/app$n.min.js > .work/app$n.json
  sed "s#$PWD/min/#$BASE_URL#g" .work/app$n.json > stacks/app$n.json
done
rm -rf .work
node --version > stacks/node-version.txt
