"""The single-file appliance: .ci/build-binary makes dist/proliferate and .ci/smoke-binary runs it
alone in an empty directory. About a minute of both cores: it runs in CI (CI=true) and when
asked (PROLIFERATE_TEST_BINARY=1), and says how to ask when it skips."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get('PROLIFERATE_TEST_BINARY') != '1'
                    and os.environ.get('CI') != 'true',
                    reason='builds the single file (about a minute): set PROLIFERATE_TEST_BINARY=1')
def test_single_file_builds_serves_and_stops():
    env = {key: value for key, value in os.environ.items() if not key.startswith('PROLIFERATE_')}
    build = subprocess.run(['bash', str(ROOT / '.ci' / 'build-binary')], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    smoke = subprocess.run([sys.executable, str(ROOT / '.ci' / 'smoke-binary')], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=300, check=False)
    assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
    print(build.stdout.splitlines()[-1])
    print(smoke.stdout.splitlines()[-1])
