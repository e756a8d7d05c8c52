"""What source-map resolution adds to the writer, per event, with the maps cached.

Usage (from the repository root): python tests/data/sourcemaps/bench_resolver.py [EVENTS]
Not a test: it produced the figures in README.md. It builds a throw-away SQLite database, uploads
build 1's map, prepares EVENTS copies of the real 10-frame V8 'checkout' stack, then times
  1. Resolver(items) alone (lookup, context lines, regroup = fingerprint + re-encode), and
  2. the whole writer transaction (Store) on batches of 100, without and with the resolver,
each for a stack the resolver has seen before (the usual case: the same error again) and for
stacks it has not (the parsed map is cached in both). Times are the process's CPU time, so that
other work on the machine's shared cores does not count; the writer's fsync waits do not either.
"""

import copy
import datetime
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from proliferate import times
from proliferate import db
from proliferate.ingest.store import Store
from proliferate.ingest.prepare import prepare_event
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.ingest.normalize import normalize_event
from proliferate.sourcemaps.resolver import Resolver

HERE = Path(__file__).resolve().parent
BATCH = 100
RUNS = 5


def make_items(project_id, count, release, distinct=False):
    base = json.loads((HERE / 'stacks' / 'app1.json').read_text())['checkout']
    now = times.utcnow()
    items = []
    for number in range(count):
        stack = base
        if distinct:
            # Another line in Node's own loader frame: a stack never seen before, whose seven
            # mapped frames need the same lookups and context lines as the original.
            stack = base.replace('loader:1266:32)', f'loader:{10000 + number}:32)')
        payload = {'api_key': 'x', 'event_id': uuid.uuid4().hex, 'type': 'exception',
                   'timestamp': now.isoformat() + 'Z', 'release': release,
                   'exception': {'type': 'RangeError', 'message': 'quantity for pear',
                                 'stack': stack}}
        _key, timestamp, event = normalize_event(payload, received_at=now)
        items.append(prepare_event(event, project_id, timestamp, now))
    return items


def per_event_us(seconds, count):
    return seconds / count * 1e6


def time_writer(store, template):
    """Seconds for the writer's transactions over fresh copies of template, batches of BATCH."""
    items = copy.deepcopy(template)
    for item in items:
        item['event_id'] = uuid.uuid4().hex
    start = time.process_time()
    for part in range(0, len(items), BATCH):
        with db.database.atomic():
            store(items[part:part + BATCH])
    return time.process_time() - start


def time_resolver(resolver, template):
    items = copy.deepcopy(template)
    start = time.process_time()
    with db.database.atomic():
        for part in range(0, len(items), BATCH):
            resolver(items[part:part + BATCH])
    elapsed = time.process_time() - start
    assert items[0]['frames'][0]['function'] == 'validateQuantity'
    return elapsed


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        db.open_database(f'sqlite:///{tmp}/bench.db', synchronous='NORMAL')
        db.migrate()
        db.database.connect()
        with db.database.atomic():
            org = Organization.create(name='Bench', slug='bench')
            project = Project.create(organization=org, name='web', slug='web')
            release = Release.create(project=project, version='shop@1')
            data = (HERE / 'min' / 'app1.min.js.map').read_bytes()
            SourceMap.create(release=release, url='https://cdn.example.com/static/js/app1.min.js',
                             map_data=data, size=len(data), sha256='0' * 64)
        same = make_items(project.id, count, 'shop@1')
        assert len(same[0]['frames']) == 10, len(same[0]['frames'])
        distinct = make_items(project.id, count, 'shop@1', distinct=True)
        no_maps = make_items(project.id, count, 'shop@2')  # a release without maps

        # Runs interleave the variants, so a busy neighbour on the shared cores hits all alike.
        plain = Store(clock=times.utcnow)
        figures = {name: [] for name in ('resolver same', 'resolver new', 'writer plain',
                                         'writer same', 'writer new', 'writer no maps')}
        for _ in range(RUNS):
            resolver = Resolver()
            with db.database.atomic():
                resolver(copy.deepcopy(same[:1]))  # the release list and the parsed map cached
            figures['resolver same'].append(time_resolver(resolver, same))
            resolver._stacks.clear()
            figures['resolver new'].append(time_resolver(resolver, distinct))
            figures['writer plain'].append(time_writer(plain, same))
            resolver._stacks.clear()
            figures['writer new'].append(time_writer(Store(clock=times.utcnow, resolver=resolver),
                                                     distinct))
            figures['writer same'].append(time_writer(Store(clock=times.utcnow, resolver=resolver),
                                                      same))
            figures['writer no maps'].append(time_writer(
                Store(clock=times.utcnow, resolver=resolver), no_maps))
        db.database.close()
    for label, pick in (('median', statistics.median), ('best', min)):
        report(label, {name: per_event_us(pick(values), count) for name, values in figures.items()},
               count)


def report(label, us, count):
    print(f'{datetime.date.today()}: {count} events of 10 frames (7 mapped), batches of {BATCH}, '
          f'{label} of {RUNS} interleaved runs, maps cached')
    print(f'resolver alone: {us["resolver same"]:.0f} us/event for a stack seen before, '
          f'{us["resolver new"]:.0f} us/event for a new stack')
    print(f'writer transaction: {us["writer plain"]:.0f} us/event without resolution; '
          f'{us["writer same"]:.0f} (+{us["writer same"] - us["writer plain"]:.0f}) with a stack '
          f'seen before; {us["writer new"]:.0f} (+{us["writer new"] - us["writer plain"]:.0f}) '
          f'with new stacks; {us["writer no maps"]:.0f} '
          f'(+{us["writer no maps"] - us["writer plain"]:.0f}) for a release without maps')


if __name__ == '__main__':
    main()
