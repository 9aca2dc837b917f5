#!/usr/bin/python3
"""stimloop rig example: the template for connecting a Python rig.

Copy this file and replace the two functions marked RIG: show() puts an
image on the stimulus display (e.g. a PsychoPy ImageStim) and measure()
returns one rate per recorded neuron for the presentation that just ended.
Everything else is the protocol as a rig should speak it:

  create (or resume) a session -> for each generation:
      show + measure every stimulus -> report (retried, same request_id)

As shipped, show() does nothing and measure() is a PLACEHOLDER model (a
rectified Gabor filter), so the example runs against a local server:

  build/server/stimloop-server &
  PYTHONPATH=build/python /usr/bin/python3 clients/python/examples/rig.py
"""

import argparse
import sys

import numpy as np

import stimloop

# ------------------------------------------------------------------ RIG


def show(image):
    """RIG: display `image` for one presentation.

    image: uint8 numpy array, height x width (gray) or height x width x 3
    (RGB), exactly the pixels to show. With PsychoPy, e.g.:
        stim.image = image[::-1] / 127.5 - 1  # PsychoPy wants [-1, 1], bottom row first
        stim.draw(); win.flip(); core.wait(0.1); win.flip()
    Return False if the trial was aborted (e.g. a fixation break): the
    stimulus is then reported as skipped.
    """
    global _last_image
    _last_image = image  # Only for the placeholder measure(); drop it with measure().
    return True


def measure():
    """RIG: one non-negative rate per recorded neuron (e.g. spikes/s in the
    response window) for the presentation that just ended.

    PLACEHOLDER: not a neuron. Correlates the image just shown with a fixed
    vertical Gabor and rectifies it, so that the loop has something to climb.
    """
    image = _last_image.astype(np.float64)
    if image.ndim == 3:
        image = image.mean(axis=2)
    image = image / 255.0 - 0.5
    height, width = image.shape
    y, x = np.mgrid[0:height, 0:width]
    y = (y - height / 2) / height
    x = (x - width / 2) / width
    gabor = np.exp(-(x * x + y * y) / (2 * 0.15 ** 2)) * np.cos(2 * np.pi * 3 * x)
    drive = float((image * gabor).sum() / np.abs(gabor).sum())
    return [50.0 * max(0.0, drive) / 0.5]  # spikes/s, one neuron


_last_image = None

# ------------------------------------------------------------------ protocol


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="host:port of the server")
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--session", default="", help="resume this session id")
    parser.add_argument("--token", default=None, help="bearer token (remote servers)")
    parser.add_argument("--root_cert", default=None, help="PEM file to trust (TLS)")
    args = parser.parse_args(argv)

    client = stimloop.Client(args.server, token=args.token, root_cert=args.root_cert)
    if args.session:
        session = client.resume_session(args.session)
    else:
        session = client.create_session(
            height=64, width=64, channels=1, num_neurons=1, seed=1,  # the default strategy
            metadata={"subject": "example", "rig": "rig.py"})
    print("session", session.id, flush=True)

    for stimuli in session.generations(args.generations):
        responses = []
        for stimulus in stimuli:
            if show(stimulus.image):
                responses.append((stimulus, measure()))
            else:
                responses.append((stimulus, stimloop.SKIPPED))
        ack = session.report(responses)  # retried with one request_id: counts once
        best = session.info().best_measured
        print("generation %d: %d responses, best measured %.1f"
              % (stimuli[0].generation, ack.counts.responses, best.mean_objective), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except stimloop.StimloopError as e:
        sys.exit("rig.py: %s" % e)
