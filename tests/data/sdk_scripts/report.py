"""Drives one published proliferate-ai SDK against a running server, in its own process.

Usage: python -S report.py VERSION ENDPOINT API_KEY MODE, with PYTHONPATH set to the SDK's own
install target. Prints one JSON line: the SDK's API family and the event ids it returned.
MODE: handled (capture_exception, and capture_message where the SDK has it), uncaught (raise
at top level), uncaught-close (the same after atexit.register(proliferate.close)).
"""

import atexit
import importlib.metadata
import json
import os
import sys

import proliferate

import shop

ENVIRONMENT = 'staging'
RELEASE = 'shop@1.4.2'
ORDER_ID = 1042


def check_isolation(version):
    """Fail loudly unless the SDK under test is the one imported (its import name is ours)."""
    target = os.path.realpath(os.environ['PYTHONPATH'])
    loaded = os.path.realpath(proliferate.__file__)
    if not loaded.startswith(target + os.sep):
        raise SystemExit(f'isolation: proliferate imported from {loaded}, not under {target}')
    installed = importlib.metadata.version('proliferate-ai')
    if installed != version:
        raise SystemExit(f'isolation: proliferate-ai {installed} installed, {version} expected')


def set_up_legacy(version, endpoint, api_key, mode):
    # 0.1.0: endpoint is the full ingest URL; context is set with dicts; tags go to extra.tags.
    proliferate.init(endpoint=endpoint, api_key=api_key, environment=ENVIRONMENT,
                     release=RELEASE)
    proliferate.set_user({'id': 'user-42', 'email': 'jane@example.com'})
    proliferate.set_account({'id': 'acct-7', 'name': 'Acme Corp'})
    proliferate.set_tag('checkout_step', 'payment')
    proliferate.set_tag('sdk_version', version)
    proliferate.set_tag('mode', mode)


def set_up_hub(version, endpoint, api_key, mode):
    # 0.1.1 and later: endpoint is a base URL the SDK appends /v1/errors to.
    proliferate.init(api_key=api_key, endpoint=endpoint, environment=ENVIRONMENT,
                     release=RELEASE)
    proliferate.set_user(id='user-42', email='jane@example.com', username='jane')
    proliferate.set_tag('checkout_step', 'payment')
    proliferate.set_tag('sdk_version', version)
    proliferate.set_tag('mode', mode)
    proliferate.set_extra('order_id', str(ORDER_ID))


def handled(legacy):
    sent = {}
    try:
        shop.checkout(ORDER_ID)
    except shop.PaymentError as error:
        if legacy:
            sent['exception'] = proliferate.capture_exception(error, extra={'order_id': ORDER_ID})
        else:
            sent['exception'] = proliferate.capture_exception(error)
    if legacy:
        sent['message'] = proliferate.capture_message(
            'checkout retried with another card', level='warning', extra={'attempt': 2})
    else:
        # The SDK sends from a background thread: close() drains its queue before exit.
        proliferate.close()
    return sent


def main():
    version, endpoint, api_key, mode = sys.argv[1:5]
    check_isolation(version)
    legacy = hasattr(proliferate, 'capture_message')
    (set_up_legacy if legacy else set_up_hub)(version, endpoint, api_key, mode)
    report = {'api': 'legacy' if legacy else 'hub', 'version': version}
    if mode == 'handled':
        report['sent'] = handled(legacy)
        print(json.dumps(report), flush=True)
        return
    if mode == 'uncaught-close':
        atexit.register(proliferate.close)
    elif mode != 'uncaught':
        raise SystemExit(f'unknown mode {mode!r}')
    print(json.dumps(report), flush=True)
    shop.checkout(ORDER_ID)


main()
