"""The request-side ingest pipeline in one process, without HTTP or the writer: JSON parsing,
validation, scrubbing, stack parsing, fingerprint and compression of the benchmark's events.

It tells how much of the server's CPU per event is this pipeline (the rest is HTTP, the writer
and running it all on threads). Prints the best of --repeat passes in microseconds per event;
--profile adds cProfile's top functions.

    python bench/pipeline.py [--events 20000] [--repeat 5] [--profile]
"""

import argparse
import cProfile
import pathlib
import pstats
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'bench'))

import events  # noqa: E402
import orjson  # noqa: E402

from proliferate.ingest.normalize import normalize_event  # noqa: E402
from proliferate.ingest.prepare import prepare_event  # noqa: E402
from proliferate.times import utcnow  # noqa: E402


def process(bodies):
    """What a request thread does with each event before handing it to the writer."""
    received_at = utcnow()
    for body in bodies:
        _key, timestamp, event = normalize_event(orjson.loads(body), received_at=received_at,
                                                 header_key=None)
        prepare_event(event, 1, timestamp, received_at)


def best_pass(bodies, repeat):
    """Microseconds per event of the fastest pass (the least disturbed by other work)."""
    best = float('inf')
    for _ in range(repeat):
        began = time.perf_counter()
        process(bodies)
        best = min(best, time.perf_counter() - began)
    return best / len(bodies) * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--events', type=int, default=20000)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--profile', action='store_true')
    args = parser.parse_args(argv)
    source = events.EventSource(seed=args.seed, api_key='pk_bench')
    bodies = [source.event(index)[1] for index in range(args.events)]
    micros = best_pass(bodies, max(1, args.repeat))
    print(f'request-side pipeline: {micros:.1f} us per event '
          f'(best of {args.repeat} passes over {len(bodies):,} events)')
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(process, bodies)
        pstats.Stats(profiler).sort_stats('tottime').print_stats(20)
    return micros


if __name__ == '__main__':
    main()
