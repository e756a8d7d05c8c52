"""Run under sentry-sdk from PyPI (its own install target): report.py DSN MODE -> the event ids it
sent, as one JSON line. MODE: 'all' (errors, message, logging, transaction, session) or
'flood' (the same error 5 times, to meet the rate limit)."""

import json
import logging
import sys

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

dsn, mode, compression = sys.argv[1], sys.argv[2], sys.argv[3]


class PaymentError(Exception):
    pass


def parse(digits):
    return int(digits)


def authorize(amount):
    try:
        parse('x' + str(amount))
    except ValueError as error:
        raise PaymentError('card declined') from error


sent = {}
options = {'transport_compression_algo': compression} if compression != 'none' else {}
sentry_sdk.init(dsn=dsn, release='shop@2.0.0', environment='staging', traces_sample_rate=1.0,
                integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
                _experiments=options)
sentry_sdk.set_user({'id': 'user-42', 'email': 'jane@example.com', 'username': 'jane'})
sentry_sdk.set_tag('checkout_step', 'payment')
sentry_sdk.set_context('account', {'id': 'acct-7', 'name': 'Acme Corp'})
sentry_sdk.add_breadcrumb(category='auth', message='signed in', level='info')

if mode == 'flood':
    ids = []
    for _ in range(5):
        try:
            authorize(10)
        except PaymentError:
            ids.append(sentry_sdk.capture_exception())
        sentry_sdk.flush()
    sent['flood'] = ids
else:
    # A transaction (sentry-sdk 2.x names it so; 3.x: a root span) and a release-health
    # session, sent first: the server's X-Sentry-Rate-Limits answer then switches both off.
    start = getattr(sentry_sdk, 'start_transaction', None) or sentry_sdk.start_span
    with start(name='checkout'):
        pass
    scope = sentry_sdk.get_isolation_scope()
    scope.start_session()
    scope.end_session()
    sentry_sdk.flush()
    for attempt in ('first', 'second'):
        try:
            authorize(10)
        except PaymentError:
            sent[attempt] = sentry_sdk.capture_exception()
    sent['message'] = sentry_sdk.capture_message('stock is low', level='warning')
    logging.getLogger('shop.orders').error('order %s failed', 1042)
sentry_sdk.flush(timeout=10)
print(json.dumps(sent))
