#!/usr/bin/python3
"""Which pooled image should a session call its best? Rules read offline.

Reads the CSV of `sample_efficiency --dump_pooled=FILE` (every session's
pooled images at every budget, with their true rate) and prints, per cell and
budget, the true fraction of the optimum of the image each rule picks: median
and mean over seeds, then every seed. Rules use only what a session knows
(presentations, measured objectives, generation, the proposing model's
predicted objective); "shown" is the oracle. "validation KxV" simulates a
block at the session's end: the K images the session ranks first (best mean
among images shown twice or more) shown V more times each, drawn from
their true rate with the benchmark's noise (Poisson counts in a 0.2 s
window, peak 50 spikes/s), then the best pooled mean; it reads as the pick
after budget + K*V responses.

    /usr/bin/python3 bench/pick_rules.py pooled.csv
"""
import collections
import csv
import math
import sys

import numpy as np


def load(path):
    sessions = collections.defaultdict(list)
    with open(path) as f:
        for r in csv.DictReader(f):
            sessions[(r['cell'], int(r['seed']), int(r['budget']))].append(dict(
                generation=int(r['generation']), predicted=float(r['predicted']),
                n=int(r['presentations']), mean=float(r['mean']),
                truth=float(r['true_fraction']),
                objectives=[float(x) for x in r['objectives'].split(';') if x]))
    return sessions


def fano(images):
    """Noise variance per unit mean, pooled over images shown twice or more."""
    squares = weighted_means = 0.0
    for i in images:
        if i['n'] >= 2:
            o = np.array(i['objectives'])
            squares += ((o - o.mean()) ** 2).sum()
            weighted_means += (i['n'] - 1) * max(o.mean(), 1e-9)
    return squares / weighted_means if weighted_means > 0 else 1.0


def shown_at_least(images, min_n):
    """The images with min_n or more presentations; all of them if none."""
    return [i for i in images if i['n'] >= min_n] or images


def best_mean(images, min_n=2):
    """The session's rule (Session.best_measured) with min_n = 2."""
    return max(shown_at_least(images, min_n), key=lambda i: i['mean'])


def shrunk(images, recent=5):
    """Empirical Bayes: each mean shrunk towards the mean of the newest
    `recent` generations' images by its noise (Fano x mean / n)."""
    f = fano(images)
    newest = max(i['generation'] for i in images)
    pool = [i for i in images if i['generation'] > newest - recent]
    means = np.array([i['mean'] for i in pool])
    noise = f * np.maximum(means, 1e-9) / np.array([i['n'] for i in pool])
    prior_mean, prior_var = means.mean(), max(means.var() - noise.mean(), 1e-6)

    def posterior(i):
        var = f * max(i['mean'], prior_mean) / i['n']
        return prior_mean + prior_var / (prior_var + var) * (i['mean'] - prior_mean)
    return max(images, key=posterior)


def model_posterior(images, recent=10):
    """Each image's posterior mean: its measured mean shrunk by its noise
    towards a regression of the newest `recent` generations' measured means
    on the proposing model's predicted objective. A function of an image."""
    f = fano(images)
    newest = max(i['generation'] for i in images)
    pool = [i for i in images
            if i['generation'] > newest - recent and not math.isnan(i['predicted'])]
    if len(pool) < 10:
        return None
    p = np.array([i['predicted'] for i in pool])
    m = np.array([i['mean'] for i in pool])
    w = np.sqrt([i['n'] for i in pool])
    design = np.vstack([np.ones_like(p), p]).T
    coef = np.linalg.lstsq(design * w[:, None], m * w, rcond=None)[0]
    noise = f * np.maximum(m, 1e-9) / np.array([i['n'] for i in pool])
    prior_var = max(((m - design @ coef) ** 2).mean() - noise.mean(), 1e-6)

    def posterior(i):
        predicted = p.mean() if math.isnan(i['predicted']) else i['predicted']
        prior = coef[0] + coef[1] * predicted
        var = f * max(i['mean'], prior) / i['n']
        return prior + prior_var / (prior_var + var) * (i['mean'] - prior)
    return posterior


def model_prior(images, recent=10):
    """As shrunk, but the prior mean of an image is a regression of the
    measured means on the proposing model's predicted objective."""
    posterior = model_posterior(images, recent)
    if posterior is None:
        return shrunk(images, recent)
    return max(images, key=posterior)


PEAK_RATE, WINDOW_S = 50.0, 0.2  # bench/sample_efficiency's defaults


def extra_trials(image, v, rng):
    """v more presentations of an image, drawn from its true rate."""
    return rng.poisson(image['truth'] * PEAK_RATE * WINDOW_S, size=v) / WINDOW_S


def ranked(images, by_model):
    """The images best first: by model_posterior when by_model (and it can
    be fitted), else the session's rule (best mean among images shown twice
    or more)."""
    posterior = model_posterior(images) if by_model else None
    if posterior is not None:
        return sorted(images, key=lambda i: -posterior(i))
    return sorted(shown_at_least(images, 2), key=lambda i: -i['mean'])


def validation_block(images, k, v, rng, by_model=False):
    """The k first images of `ranked` shown v more times each; the best
    pooled mean."""
    def pooled(i):
        return (i['mean'] * i['n'] + extra_trials(i, v, rng).sum()) / (i['n'] + v)
    return max(ranked(images, by_model)[:k], key=pooled)


def successive_halving(images, first, rounds, rng):
    """A racing block (Karnin et al. 2013): the `first` images of `ranked`
    by the model enter; each round (v, keep) shows every image left v more
    times and keeps the `keep` best pooled means."""
    alive = ranked(images, by_model=True)[:first]
    sums = {id(i): [i['mean'] * i['n'], i['n']] for i in alive}
    for v, keep in rounds:
        for i in alive:
            sums[id(i)][0] += extra_trials(i, v, rng).sum()
            sums[id(i)][1] += v
        alive = sorted(alive, key=lambda i: -sums[id(i)][0] / sums[id(i)][1])[:keep]
    return alive[0]


def lower_bound(images, z=1.0):
    f = fano(images)
    return max(images, key=lambda i: i['mean'] - z * math.sqrt(f * max(i['mean'], 1e-9) / i['n']))


RULES = {
    'best mean, n>=2 (session)': best_mean,
    'best mean, n>=3': lambda x: best_mean(x, 3),
    'best mean, n>=4': lambda x: best_mean(x, 4),
    'shrunk to newest 5 gens': shrunk,
    'shrunk to model prediction': model_prior,
    'mean - 1 s.e.': lower_bound,
    'shown (oracle)': lambda x: max(x, key=lambda i: i['truth']),
}

# Rules that draw simulated trials: (images, rng) -> image.
SIMULATED_RULES = {
    'validation 5x20 (+100)': lambda x, rng: validation_block(x, 5, 20, rng),
    'validation 10x10 (+100)': lambda x, rng: validation_block(x, 10, 10, rng),
    'validation 3x30 (+90)': lambda x, rng: validation_block(x, 3, 30, rng),
    'validation 5x20 by model (+100)': lambda x, rng: validation_block(x, 5, 20, rng, True),
    'halving 20x2,10x3,5x6,2x10 (+120)':
        lambda x, rng: successive_halving(x, 20, [(2, 10), (3, 5), (6, 2), (10, 1)], rng),
}


def main():
    sessions = load(sys.argv[1])
    for cell in sorted({k[0] for k in sessions}):
        for budget in sorted({k[2] for k in sessions}):
            keys = sorted(k for k in sessions if k[0] == cell and k[2] == budget)
            fanos = [fano(sessions[k]) for k in keys]
            print(f'{cell}, {budget} responses, {len(keys)} seeds, Fano factor of the '
                  f'repeats {np.median(fanos):.1f} (rates; Poisson at {WINDOW_S} s: '
                  f'{1 / WINDOW_S:g})')
            picks = {name: [rule(sessions[k]) for k in keys] for name, rule in RULES.items()}
            for name, rule in SIMULATED_RULES.items():
                # One generator per session (seed, budget): reruns print the same.
                picks[name] = [rule(sessions[k], np.random.default_rng(k[1] * 7919 + k[2]))
                               for k in keys]
            for name, picked in picks.items():
                truths = [i['truth'] for i in picked]
                print(f'  {name:34s} median {np.median(truths):.3f} mean {np.mean(truths):.3f}  '
                      + ' '.join(f'{t:.2f}' for t in truths))


if __name__ == '__main__':
    main()
