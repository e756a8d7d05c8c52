"""The request-side ingest pipeline in one process, without HTTP or the writer: JSON parsing,
validation, scrubbing, stack parsing, fingerprint and compression of the benchmark's events.

It tells how much of the server's CPU per event is this pipeline (the rest is HTTP, the writer
and running it all on threads). Prints the best of --repeat passes in microseconds of CPU time
per event (steadier than wall time on a shared machine);
--profile adds cProfile's top functions and the share of each stage.

    python bench/pipeline.py [--events 20000] [--repeat 5] [--mix realistic|unique] [--profile]
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


# The pipeline's stages as (name, function): their cumulative time under cProfile, as a share of
# the whole pass (the profiler's own cost inflates small functions, so shares, not microseconds).
STAGES = (
    ('JSON parsing', 'loads'),
    ('validation and bounding', 'normalize_event'),
    ('scrubbing', 'scrub_event'),
    ('stack parsing', 'parse_stack'),
    ('fingerprint', 'compute_fingerprint'),
    ('culprit', 'get_culprit'),
    ('user agent', 'parse_user_agent'),
    ('compression', 'encode_event'),
)


def print_stages(stats):
    """Each stage's share of the profiled pass, by the cumulative time of its function."""
    total = stats.total_tt
    cumulative = {}
    for (_file, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        cumulative[name] = max(cumulative.get(name, 0.0), ct)
    for label, wanted in STAGES:
        # Builtins show as '<built-in method orjson.loads>'.
        spent = max((ct for name, ct in cumulative.items()
                     if name == wanted or name.endswith(f'.{wanted}>')), default=0.0)
        print(f'{label:<26} {spent / total:6.1%}')


def best_pass(passes):
    """CPU microseconds per event of the fastest pass (the least disturbed by other work). Each
    pass has events of its own, so a stack seen once is not seen again by a later pass. CPU
    time of this process, not wall time: on a shared machine the wall clock also counts the
    time other processes held the cores."""
    best = float('inf')
    for bodies in passes:
        began = time.process_time()
        process(bodies)
        best = min(best, time.process_time() - began)
    return best / len(passes[0]) * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--events', type=int, default=20000)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--mix', choices=events.MIXES, default='realistic')
    parser.add_argument('--profile', action='store_true')
    args = parser.parse_args(argv)
    source = events.EventSource(seed=args.seed, api_key='pk_bench', mix=args.mix)
    repeat = max(1, args.repeat)
    passes = [[source.event(index)[1] for index in range(start, start + args.events)]
              for start in range(0, (repeat + 1) * args.events, args.events)]
    micros = best_pass(passes[:repeat])
    print(f'request-side pipeline, {args.mix} mix: {micros:.1f} us per event '
          f'(CPU time, best of {repeat} passes over {args.events:,} events each)')
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(process, passes[repeat])
        stats = pstats.Stats(profiler)
        stats.sort_stats('tottime').print_stats(20)
        print_stages(stats)
    return micros


if __name__ == '__main__':
    main()
