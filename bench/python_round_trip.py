#!/usr/bin/python3
"""Loop latency of the Python client over loopback gRPC, next to the C++
client's (bench/loop_latency.cc, same protocol): the time NextStimuli +
ReportResponses take per generation (rig side, measuring excluded), median
and p99, plus the time to decode a generation's PNGs into numpy arrays
(done lazily by Stimulus.image, so not inside NextStimuli). Starts the real
server binary.

  PYTHONPATH=build/python /usr/bin/python3 bench/python_round_trip.py \\
      --server_binary=build/server/stimloop-server --generations=100
"""

import argparse
import os
import sys
import time

import numpy as np

import stimloop

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients",
                                "python", "tests"))
from server_process import ServerProcess  # noqa: E402  (the tests' server launcher)


def summarize(values):
    """Median and p99 (nearest rank), as bench/bench_util.h's Summarize."""
    values = sorted(values)
    n = len(values)
    median = values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])
    return median, values[min(n - 1, int(0.99 * n))]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server_binary", default="build/server/stimloop-server")
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--optimizer", default="genetic")
    parser.add_argument("--image_space", default="spectral")
    parser.add_argument("--size", type=int, default=64, help="image side (grayscale)")
    parser.add_argument("--generation_size", type=int, default=40)
    args = parser.parse_args(argv)

    os.environ["STIMLOOP_SERVER"] = args.server_binary
    server = ServerProcess()
    try:
        client = stimloop.Client(server.start(), connect_timeout=60)
        session = client.create_session(
            height=args.size, width=args.size, channels=1, num_neurons=1,
            optimizer=args.optimizer, image_space=args.image_space, seed=1,
            generation_size=args.generation_size)
        rng = np.random.default_rng(1)
        next_ms, report_ms, total_ms, decode_ms = [], [], [], []
        for _ in range(args.generations):
            t0 = time.perf_counter()
            stimuli = session.next_stimuli(0)
            t1 = time.perf_counter()
            images = [s.image for s in stimuli]  # decode, timed on its own
            t2 = time.perf_counter()
            # Stand-in measurement: Poisson counts over 0.2 s, ~ image mean.
            responses = [(s, [rng.poisson(0.2 * 50 * im.mean() / 255) / 0.2])
                         for s, im in zip(stimuli, images)]
            t3 = time.perf_counter()
            session.report(responses)
            t4 = time.perf_counter()
            next_ms.append(1e3 * (t1 - t0))
            report_ms.append(1e3 * (t4 - t3))
            total_ms.append(next_ms[-1] + report_ms[-1])
            decode_ms.append(1e3 * (t2 - t1))
        client.close()
    finally:
        server.stop()

    print("# Python client (grpcio %s), %s in %s space, %dx%d gray, generation %d, "
          "%d generations, loopback gRPC"
          % (stimloop.client.grpc.__version__, args.optimizer, args.image_space, args.size,
             args.size, args.generation_size, args.generations))
    print("| call                         | p50 ms | p99 ms |")
    print("|------------------------------|--------|--------|")
    for name, values in (("NextStimuli", next_ms), ("ReportResponses", report_ms),
                         ("NextStimuli + ReportResponses", total_ms),
                         ("decode %d PNGs (.image)" % args.generation_size, decode_ms)):
        p50, p99 = summarize(values)
        print("| %-29s| %6.2f | %6.2f |" % (name, p50, p99))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
