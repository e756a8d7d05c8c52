"""The package's layout rules, read from the source with `ast` (nothing is imported): pure modules
stay pure, dependencies run one way, only app.py wires the pages, no import circles, and HTTP
lives only in the modules that serve it."""

import ast
import collections
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'proliferate'

# Modules whose functions take values and return values: they import no proliferate module but
# one another, and none of the libraries in IO_MODULES. Add a module here once it is pure.
PURE = frozenset((
    'proliferate.ingest.normalize',
    'proliferate.ingest.scrub',
    'proliferate.ingest.grouping',
    'proliferate.ingest.useragent',
    'proliferate.ingest.prepare',
    'proliferate.ingest.payload',
    'proliferate.ingest.envelope',
    'proliferate.ingest.slice_keys',
    'proliferate.ingest.sentry',
    'proliferate.notifications.rules',
    'proliferate.web.charts',
    'proliferate.web.urls',
    'proliferate.sourcemaps.decode',
    'proliferate.times',
    'proliferate.paths',
    'proliferate.versions',
))

# Libraries (and the standard library's modules) that reach a database, the network, files,
# other processes or log handlers: a pure module imports none of them (nor their submodules).
# Compression and JSON (zlib, orjson), the source map decoder (symbolic), a lock (threading)
# and reading the clock (datetime, time) are not I/O.
IO_MODULES = frozenset((
    # databases and the web stack
    'peewee', 'playhouse', 'sqlite3', 'psycopg', 'psycopg2', 'falcon', 'waitress', 'apscheduler',
    'jinja2',
    # network
    'socket', 'ssl', 'select', 'selectors', 'asyncio', 'smtplib', 'http.client', 'http.server',
    'urllib.request', 'requests', 'httpx',
    # files, processes and the environment
    'os', 'pathlib', 'shutil', 'tempfile', 'glob', 'fcntl', 'io', 'subprocess', 'multiprocessing',
    'signal', 'sys', 'logging',
))

# Modules that may speak HTTP (import falcon); everything else keeps to domain rules and storage.
HTTP_MODULES = frozenset((
    'proliferate.app',
    'proliferate.server',
    'proliferate.api',
    'proliferate.openapi',
    'proliferate.jsonapi',
    'proliferate.ingest.resources',
    'proliferate.ingest.sentry_api',
    'proliferate.sourcemaps.upload_api',
))
HTTP_PACKAGES = ('proliferate.web',)

# Capability packages below the HTTP layer: they never import pages, the read API or the app.
DOMAIN_PACKAGES = ('proliferate.ingest', 'proliferate.sourcemaps', 'proliferate.notifications')
ABOVE_DOMAIN = ('proliferate.web', 'proliferate.api', 'proliferate.app')

# The one module outside web/ that may import web/: it builds the app and adds the page routes.
WEB_WIRING = frozenset(('proliferate.app',))

# Who may import an HTTP module: the app wires them all and the server runs the app (and sizes
# request bodies); the command line starts the server; HTTP modules share the JSON helpers; the
# pages import one another. Anything else importing one (a domain module, or one front end
# reaching into another) makes the dependencies run the wrong way.
HTTP_WIRING = frozenset(('proliferate.app', 'proliferate.server'))
HTTP_ENTRY = {'proliferate.cli': frozenset(('proliferate.server',)),
              # The Sentry front door shares the ingest resources' body reader and hand-off.
              'proliferate.ingest.sentry_api': frozenset(('proliferate.ingest.resources',))}
HTTP_SHARED = frozenset(('proliferate.jsonapi',))


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def source_files():
    """Every module of the package. Migrations are left out: the runner loads them by path
    (their names are not importable) and they import only peewee."""
    return sorted(path for path in PACKAGE.rglob('*.py') if 'migrations' not in path.parts)


MODULES = {module_name(path): path for path in source_files()}


def within(name, prefix):
    return name == prefix or name.startswith(prefix + '.')


def is_package(name):
    return MODULES.get(name, Path()).name == '__init__.py'


def resolve_relative(module, level, target):
    base = module.split('.')
    if not is_package(module):
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return '.'.join(base + ([target] if target else []))


def imports_of(module, path):
    """(imported name, line) for every import in the module, function-local ones included.
    `from a import b` yields a.b when that is a proliferate module or when a is outside the
    package (so `from urllib import request` is seen as urllib.request), and a otherwise."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = resolve_relative(module, node.level, node.module)
            for alias in node.names:
                candidate = f'{base}.{alias.name}'
                if candidate in MODULES:
                    found.append((candidate, node.lineno))
                    continue
                found.append((base, node.lineno))
                if not within(base, 'proliferate'):
                    found.append((candidate, node.lineno))
    return found


def build_graph():
    """module -> {imported module: first line}, for proliferate modules and outside ones alike."""
    graph = {}
    for module, path in MODULES.items():
        edges = {}
        for name, line in imports_of(module, path):
            edges.setdefault(name, line)
        graph[module] = edges
    return graph


GRAPH = build_graph()


def internal_edges(module):
    return {name: line for name, line in GRAPH[module].items() if within(name, 'proliferate')}


def where(module, line):
    return f'{MODULES[module].relative_to(PACKAGE.parent)}:{line}'


def report(title, violations):
    return title + '\n' + '\n'.join(f'  {item}' for item in sorted(violations))


def test_the_graph_sees_the_package():
    """A sanity check of the walk itself: the app imports the ingest resources, and a
    function-local import (cli's server) is an edge too."""
    assert 'proliferate.ingest.resources' in GRAPH['proliferate.app']
    assert 'proliferate.server' in GRAPH['proliferate.cli']


def test_the_pure_modules_exist():
    missing = sorted(PURE - set(MODULES))
    assert not missing, f'pure modules listed but not found: {missing}'


def test_pure_modules_import_nothing_that_does_io():
    violations = []
    for module in sorted(PURE & set(GRAPH)):
        for name, line in GRAPH[module].items():
            if within(name, 'proliferate'):
                if name not in PURE:
                    violations.append(f'{where(module, line)} {module} imports {name} (not pure)')
            elif any(within(name, denied) for denied in IO_MODULES):
                violations.append(f'{where(module, line)} {module} imports {name} (I/O)')
    assert not violations, report('pure modules importing I/O:', violations)


def test_domain_packages_never_import_the_http_layer():
    violations = []
    for module in GRAPH:
        if not any(within(module, package) for package in DOMAIN_PACKAGES):
            continue
        for name, line in internal_edges(module).items():
            if any(within(name, above) for above in ABOVE_DOMAIN):
                violations.append(f'{where(module, line)} {module} imports {name}')
    assert not violations, report('ingest/sourcemaps/notifications importing web/api/app:',
                                  violations)


def test_only_the_app_wires_the_pages():
    violations = []
    for module in GRAPH:
        if within(module, 'proliferate.web') or module in WEB_WIRING:
            continue
        for name, line in internal_edges(module).items():
            if within(name, 'proliferate.web'):
                violations.append(f'{where(module, line)} {module} imports {name}')
    assert not violations, report('modules outside web/ importing web/ (only '
                                  f'{sorted(WEB_WIRING)} may):', violations)


def test_only_http_modules_import_falcon():
    violations = []
    for module, edges in GRAPH.items():
        if module in HTTP_MODULES or any(within(module, p) for p in HTTP_PACKAGES):
            continue
        for name, line in edges.items():
            if within(name, 'falcon'):
                violations.append(f'{where(module, line)} {module} imports {name}')
    assert not violations, report('modules mixing HTTP (falcon) with domain rules:', violations)


def is_http(module):
    return module in HTTP_MODULES or any(within(module, p) for p in HTTP_PACKAGES)


def test_http_modules_are_imported_only_by_the_wiring():
    violations = []
    for module in GRAPH:
        if module in HTTP_WIRING:
            continue
        for name, line in internal_edges(module).items():
            if not is_http(name) or name in HTTP_ENTRY.get(module, ()):
                continue
            if is_http(module) and name in HTTP_SHARED:
                continue
            if within(module, 'proliferate.web') and within(name, 'proliferate.web'):
                continue
            violations.append(f'{where(module, line)} {module} imports {name}')
    assert not violations, report('HTTP modules imported from outside the wiring (only '
                                  f'{sorted(HTTP_WIRING)} may import them all):', violations)


def strongly_connected(graph):
    """Tarjan's components of graph (node -> iterable of nodes), iteratively."""
    index = {}
    low = {}
    stack = []
    on_stack = set()
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def shortest_cycle(graph, members):
    """The shortest import circle through the first member, staying inside the component."""
    start = members[0]
    inside = set(members)
    previous = {start: None}
    queue = collections.deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if child in inside and child not in previous:
                previous[child] = node
                queue.append(child)
    return members


def test_no_import_circles():
    graph = {module: {name for name in internal_edges(module) if name in GRAPH and name != module}
             for module in GRAPH}
    circles = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        path = shortest_cycle(graph, component)
        steps = ' -> '.join(
            f'{a} ({where(a, GRAPH[a][b])})' for a, b in zip(path, path[1:], strict=False)) + f' -> {path[-1]}'
        circles.append(f'{steps}\n    (all of: {", ".join(component)})')
    assert not circles, report('import circles:', circles)


@pytest.mark.parametrize('source, expected', [
    ('from proliferate.web import urls\n', ['proliferate.web.urls']),
    ('from proliferate.models import Event\n', ['proliferate.models']),
    ('def f():\n    import proliferate.server\n', ['proliferate.server']),
    ('from urllib import request\n', ['urllib', 'urllib.request']),
])
def test_imports_of_reads_each_form(tmp_path, source, expected):
    path = tmp_path / 'example.py'
    path.write_text(source)
    assert [name for name, _line in imports_of('proliferate.example', path)] == expected
