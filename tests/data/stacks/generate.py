"""Regenerate the node, chromium and python traces in this folder by running real programs.

Run from anywhere: python tests/data/stacks/generate.py. The programs are written under
/tmp/proliferate-stacks so the paths inside the traces stay the same between runs.
"""

import html
import http.server
import json
import pathlib
import subprocess
import sys
import threading
import textwrap

HERE = pathlib.Path(__file__).resolve().parent
WORK = pathlib.Path('/tmp/proliferate-stacks')

# The issue's own example:
# TypeError at processData (utils.js) -> handleClick (app.js) -> onClick (index.js).
SEED_UTILS = """\
'use strict';
{pad}
function processData(data) {{
  const rows = data.items;
  return rows.length;
}}

module.exports = {{ processData }};
"""
SEED_HELPERS = SEED_UTILS
SEED_APP = """\
'use strict';
const {{ processData }} = require('./{utils}');
{pad}
function {handler}(event) {{
  return processData(event.detail);
}}

module.exports = {{ {handler} }};
"""
SEED_INDEX = """\
'use strict';
const {{ {handler} }} = require('./app');

function onClick() {{
  return {handler}({{ detail: {{}} }});
}}

function {outer}() {{
  try {{
    onClick();
  }} catch (err) {{
    process.stdout.write(err.stack);
  }}
}}

{outer}();
"""


def seed(pad='', handler='handleClick', outer='main', utils='utils'):
    return {
        f'{utils}.js': SEED_UTILS.format(pad=pad),
        'app.js': SEED_APP.format(pad=pad, handler=handler, utils=utils),
        'index.js': SEED_INDEX.format(handler=handler, outer=outer),
    }


REPORT = 'try { main(); } catch (err) { process.stdout.write(err.stack); }\n'

NODE_CASES = {
    'v8_seed': (seed(), 'index.js'),
    'v8_seed_lines_shifted': (seed(pad='\n// moved down by a refactor\n\n\n'), 'index.js'),
    'v8_seed_other_caller': (seed(outer='bootstrap'), 'index.js'),
    'v8_seed_other_handler': (seed(handler='handleSubmit'), 'index.js'),
    'v8_seed_other_file': (seed(utils='helpers'), 'index.js'),
    'v8_async': (
        {
            'jobs.js': textwrap.dedent("""\
        'use strict';
        async function fetchUser(id) {
          await null;
          throw new Error(`user ${id} not found`);
        }
        async function loadUsers(ids) {
          return await Promise.all(ids.map((id) => fetchUser(id)));
        }
        async function main() {
          try {
            await loadUsers([42, 43]);
          } catch (err) {
            process.stdout.write(err.stack);
          }
        }
        main();
        """)
        },
        'jobs.js',
    ),
    'v8_constructor': (
        {
            'cart.js': textwrap.dedent("""\
        'use strict';
        class Cart {
          constructor(items) {
            if (!Array.isArray(items)) {
              throw new TypeError('items must be an array, got ' + typeof items);
            }
            this.items = items;
          }
        }
        function createCart(payload) {
          return new Cart(payload.items);
        }
        function main() {
          createCart({ items: 'x' });
        }
        """)
            + REPORT
        },
        'cart.js',
    ),
    'v8_method_alias': (
        {
            'api.js': textwrap.dedent("""\
        'use strict';
        function loadOrders(userId) {
          throw new RangeError('page size 500 exceeds the limit of 100');
        }
        const api = { fetch: loadOrders };
        class Client {
          orders(userId) {
            return api.fetch(userId);
          }
        }
        function main() {
          new Client().orders(7);
        }
        """)
            + REPORT
        },
        'api.js',
    ),
    'v8_eval': (
        {
            'plugin.js': textwrap.dedent("""\
        'use strict';
        function runPlugin(source) {
          return eval(source);
        }
        function main() {
          runPlugin('const settings = undefined;\\nsettings.theme;');
        }
        """)
            + REPORT
        },
        'plugin.js',
    ),
    'v8_nested_eval': (
        {
            'speak.js': textwrap.dedent("""\
        function speak() {
          eval('function foo() { eval("function baz() { throw new Error(\\'message string\\'); } baz();"); }\\nfoo();');
        }
        function main() {
          speak();
        }
        """)
            + REPORT
        },
        'speak.js',
    ),
    'v8_anonymous': (
        {
            'report.js': textwrap.dedent("""\
        'use strict';
        function totals(rows) {
          return rows.map((row) => row.amount.toFixed(2));
        }
        function main() {
          totals([{ amount: 1 }, { amount: null }]);
        }
        """)
            + REPORT
        },
        'report.js',
    ),
    'v8_json_parse': (
        {
            'config.js': textwrap.dedent("""\
        'use strict';
        function readConfig(text) {
          return JSON.parse(text);
        }
        function main() {
          readConfig('{"port": 8080,');
        }
        """)
            + REPORT
        },
        'config.js',
    ),
    'v8_node_fs': (
        {
            'loader.js': textwrap.dedent("""\
        'use strict';
        const fs = require('fs');
        function loadTemplate(name) {
          return fs.readFileSync('/srv/templates/' + name + '.html', 'utf8');
        }
        function main() {
          loadTemplate('invoice-2024-0031');
        }
        """)
            + REPORT
        },
        'loader.js',
    ),
    'v8_node_arg_type': (
        {
            'paths.js': textwrap.dedent("""\
        'use strict';
        const path = require('path');
        function resolveUpload(upload) {
          return path.join('/srv/uploads', upload.dir);
        }
        function main() {
          resolveUpload({});
        }
        """)
            + REPORT
        },
        'paths.js',
    ),
    'v8_custom_error_multiline': (
        {
            'billing.js': textwrap.dedent("""\
        'use strict';
        class PaymentError extends Error {
          constructor(message) {
            super(message);
            this.name = 'PaymentError';
          }
        }
        function charge(card) {
          throw new PaymentError('card declined\\ncode: do_not_honor\\nrequest: req_8f3a2b');
        }
        function main() {
          charge({ last4: '4242' });
        }
        """)
            + REPORT
        },
        'billing.js',
    ),
    'v8_no_message': (
        {
            'empty.js': textwrap.dedent("""\
        'use strict';
        function fail() {
          throw new Error();
        }
        function main() {
          fail();
        }
        """)
            + REPORT
        },
        'empty.js',
    ),
    'v8_recursion': (
        {
            'tree.js': textwrap.dedent("""\
        'use strict';
        function walk(node) {
          return walk({ parent: node });
        }
        function main() {
          walk({});
        }
        """)
            + REPORT
        },
        'tree.js',
    ),
    'v8_deep_300': (
        {
            'deep.js': textwrap.dedent("""\
        'use strict';
        Error.stackTraceLimit = Infinity;
        function descend(n) {
          if (n === 0) {
            throw new Error('bottom reached');
          }
          return descend(n - 1);
        }
        function main() {
          descend(300);
        }
        """)
            + REPORT
        },
        'deep.js',
    ),
    'v8_esm': (
        {
            'shop.mjs': textwrap.dedent("""\
        function applyCoupon(order, code) {
          if (!order.coupons[code]) {
            throw new Error(`unknown coupon ${code}`);
          }
        }
        export function checkout(order) {
          applyCoupon(order, 'SPRING-25');
        }
        try {
          checkout({ coupons: {} });
        } catch (err) {
          process.stdout.write(err.stack);
        }
        """)
        },
        'shop.mjs',
    ),
    'v8_getter_static': (
        {
            'models.js': textwrap.dedent("""\
        'use strict';
        class Invoice {
          static fromRow(row) {
            return new Invoice(row).total;
          }
          constructor(row) {
            this.row = row;
          }
          get total() {
            return this.row.lines.reduce((sum, line) => sum + line.amount, 0);
          }
        }
        function main() {
          Invoice.fromRow({});
        }
        """)
            + REPORT
        },
        'models.js',
    ),
}

PY_PAD = '\n# moved down by a refactor\n\n\n'

PY_PRICING = '''\
"""Prices."""
{pad}

def unit_price(total, quantity):
    return total / quantity


def compute(cart):
    return [unit_price(line['total'], line['quantity']) for line in cart]
'''

PY_VIEWS = '''\
"""Views."""
from myapp import pricing
{pad}

def {view}(request):
    cart = request['cart']
    return pricing.compute(cart)
'''

PY_ERRORS = '''\
"""Errors."""


class PaymentError(Exception):
    pass
'''

PY_PAYMENTS = '''\
"""Payments."""
from myapp.errors import PaymentError

CARDS = {'tok_visa': 'visa'}


def find_card(token):
    return CARDS[token]


def charge(token, amount):
    try:
        card = find_card(token)
    except KeyError as exc:
        raise PaymentError(f'card {token} was declined for {amount} EUR') from exc
    return card


def refund(token):
    try:
        return find_card(token)
    except KeyError:
        raise ValueError(f'cannot refund unknown card {token!r}')
'''


def py_app(pad='', view='checkout'):
    return {
        'myapp/__init__.py': '',
        'myapp/errors.py': PY_ERRORS,
        'myapp/pricing.py': PY_PRICING.format(pad=pad),
        'myapp/views.py': PY_VIEWS.format(pad=pad, view=view),
        'myapp/payments.py': PY_PAYMENTS,
    }


PY_CASES = {
    'python_zero_division': (
        py_app(),
        'from myapp import views\n\nviews.checkout({"cart": [{"total": 10, "quantity": 0}]})\n',
    ),
    'python_zero_division_lines_shifted': (
        py_app(PY_PAD),
        'from myapp import views\n\n\n\nviews.checkout({"cart": [{"total": 10, "quantity": 0}]})\n',
    ),
    'python_zero_division_other_view': (
        py_app(view='quote'),
        'from myapp import views\n\nviews.quote({"cart": [{"total": 10, "quantity": 0}]})\n',
    ),
    'python_chained_from': (
        py_app(),
        'from myapp import payments\n\npayments.charge("tok_4000000000000002", 1250)\n',
    ),
    'python_chained_implicit': (
        py_app(),
        'from myapp import payments\n\npayments.refund("tok_chargeback_91")\n',
    ),
    'python_json_decode': (
        {
            'settings_loader.py': textwrap.dedent("""\
        import json


        def load_settings(text):
            return json.loads(text)


        def main():
            load_settings('{"debug": true,')


        main()
        """)
        },
        None,
    ),
    'python_key_error_caret': (
        {
            'report.py': textwrap.dedent("""\
        def column(row, name):
            return row['values'][name] * 2


        def build(rows):
            return [column(row, 'revenue') for row in rows]


        build([{'values': {'cost': 3}}])
        """)
        },
        None,
    ),
    'python_syntax_error': (
        {
            'plugin_host.py': textwrap.dedent("""\
        def load_plugin(source):
            return compile(source, 'plugin.py', 'exec')


        load_plugin('def run(:\\n    pass\\n')
        """)
        },
        None,
    ),
    'python_recursion': (
        {
            'tree.py': textwrap.dedent("""\
        def depth(node):
            return 1 + depth({'parent': node})


        depth({})
        """)
        },
        None,
    ),
    'python_exception_group': (
        {
            'batch.py': textwrap.dedent("""\
        def send(item):
            raise ConnectionError(f'host {item}.example.com refused the connection')


        def send_all(items):
            errors = []
            for item in items:
                try:
                    send(item)
                except ConnectionError as exc:
                    errors.append(exc)
            if errors:
                raise ExceptionGroup('delivery failed', errors)


        send_all(['a', 'b'])
        """)
        },
        None,
    ),
    'python_multiline_message': (
        {
            'importer.py': textwrap.dedent("""\
        class ImportFailed(Exception):
            pass


        def import_rows(path):
            raise ImportFailed(f'could not import {path}\\nrow 17: missing column "email"\\nrow 18: bad date')


        import_rows('/srv/uploads/customers-2024.csv')
        """)
        },
        None,
    ),
}

# Application code failing inside libraries: the requests/urllib3 client (a chained traceback),
# the standard library's strptime and json. Two call sites each, which must group apart.
PY_HTTP = """\
import requests


def {function}(sku):
    # Port 9 (discard) refuses the connection: a real failure inside requests and urllib3.
    return requests.get(f'http://127.0.0.1:9/{path}/{{sku}}', timeout=2).json()


{function}('SKU-1234')
"""
PY_STRPTIME = """\
from datetime import datetime


def {function}(row):
    return datetime.strptime(row['{field}'], '%Y-%m-%d')


{function}({{'{field}': '07/12/2026'}})
"""
PY_LIBRARY_CASES = {
    'python_lib_requests_prices': (
        {'prices.py': PY_HTTP.format(function='fetch_prices', path='prices')},
        None,
    ),
    'python_lib_requests_inventory': (
        {'inventory.py': PY_HTTP.format(function='sync_inventory', path='stock')},
        None,
    ),
    'python_lib_strptime_orders': (
        {'orders.py': PY_STRPTIME.format(function='parse_order_date', field='ordered')},
        None,
    ),
    'python_lib_strptime_invoices': (
        {'invoices.py': PY_STRPTIME.format(function='parse_due_date', field='due')},
        None,
    ),
    'python_lib_json_webhook': (
        {
            'webhooks.py': textwrap.dedent("""\
        import json


        def parse_webhook(body):
            return json.loads(body)


        parse_webhook('{"event": "charge.failed",')
        """)
        },
        None,
    ),
}
PY_CASES.update(PY_LIBRARY_CASES)

# A tiny package under node_modules that throws from deep inside, called by two different
# pieces of application code: the library frames are the same, the application's are not.
MONEY_PACKAGE = {
    'node_modules/tiny-money/package.json': '{"name": "tiny-money", "version": "1.0.0"}\n',
    'node_modules/tiny-money/index.js': textwrap.dedent("""\
        'use strict';
        function toCents(amount) {
          return Math.round(amount.value * 100);
        }
        function normalise(amount) {
          return { cents: toCents(amount), currency: amount.currency };
        }
        function format(amount) {
          const { cents, currency } = normalise(amount);
          return `${(cents / 100).toFixed(2)} ${currency}`;
        }
        module.exports = { format };
        """),
}


def money_case(module, function):
    app = textwrap.dedent(f"""\
        'use strict';
        const money = require('tiny-money');
        function {function}(order) {{
          return money.format(order.total);
        }}
        function main() {{
          {function}({{ id: 7 }});
        }}
        """)
    return {**MONEY_PACKAGE, f'{module}.js': app + REPORT}, f'{module}.js'


NODE_CASES['v8_lib_money_cart'] = money_case('cart', 'formatTotal')
NODE_CASES['v8_lib_money_refunds'] = money_case('refunds', 'formatRefund')

CHROMIUM_APP = """\
function processData(data) {
  const rows = data.items;
  return rows.length;
}
function handleClick(event) {
  return processData(event.detail);
}
document.getElementById('buy').addEventListener('click', function onClick() {
  try {
    handleClick({ detail: {} });
  } catch (err) {
    document.getElementById('out').textContent = err.stack;
  }
});
window.addEventListener('load', function () {
  document.getElementById('buy').click();
});
"""
CHROMIUM_PAGE = """\
<!doctype html>
<html><body><button id="buy">Buy</button><pre id="out"></pre>
<script src="/static/app.3f9a.js?v=2#x"></script></body></html>
"""


def write_tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run(args, cwd):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    return done.stdout if done.stdout.strip() else done.stderr


def generate_node():
    for name, (files, entry) in NODE_CASES.items():
        root = WORK / 'node' / name / 'src'
        write_tree(root, files)
        stack = run(['node', str(root / entry)], root)
        assert '    at ' in stack, (name, stack)
        (HERE / f'{name}.txt').write_text(stack)


def generate_python():
    for name, (files, script) in PY_CASES.items():
        root = WORK / 'python' / name
        write_tree(root, files)
        if script is None:
            entry = next(iter(files))
        else:
            entry = 'manage.py'
            (root / entry).write_text(script)
        stack = run([sys.executable, str(root / entry)], root)
        assert 'Traceback' in stack, (name, stack)
        (HERE / f'{name}.txt').write_text(stack)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def generate_chromium():
    root = WORK / 'chromium'
    write_tree(root, {'index.html': CHROMIUM_PAGE, 'static/app.3f9a.js': CHROMIUM_APP})
    handler = lambda *a, **kw: QuietHandler(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}/index.html'
        dom = subprocess.run(
            ['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', url],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    finally:
        server.shutdown()
        server.server_close()
    stack = html.unescape(dom.split('<pre id="out">', 1)[1].split('</pre>', 1)[0])
    assert '    at ' in stack, dom
    (HERE / 'chromium_seed.txt').write_text(stack)


if __name__ == '__main__':
    generate_node()
    generate_python()
    generate_chromium()
    print(json.dumps(sorted(p.name for p in HERE.glob('*.txt'))))
