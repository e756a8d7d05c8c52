"""A tiny application for the SDK scripts: a checkout whose card authorisation fails.

The whole call chain lives in this file, so every SDK version reports the same top frames.
"""


class PaymentError(Exception):
    """The card was declined."""


def checkout(order_id):
    return charge_card(order_id, amount_cents=4200)


def charge_card(order_id, amount_cents):
    return authorize(order_id, amount_cents)


def authorize(order_id, amount_cents):
    raise PaymentError(f'card declined for order {order_id}')
