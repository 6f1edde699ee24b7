#!/usr/bin/env python3
"""Make a random Gaussian-mixture likelihood benchmark problem.

Writes an sdeflow model file (exact GMM under the VP process, layout of docs/formats.md) and a data
file with N samples drawn from that mixture:

    python bench/make_problem.py --dim 8 --components 8 --n 1000 --seed 0 \
        --model model.h5 --data data.h5

The mixture (all from one seeded numpy Generator):

- weights ~ Dirichlet(2, ..., 2)
- means   ~ N(0, 2^2 I)
- covariances  A A^T / D + 0.1 I,  A with standard-normal entries

then the whole mixture is centred and scaled by one scalar so that the mixture's covariance has trace D
(average variance 1 per coordinate): means -> (means - m) / c, covariances -> covariances / c^2. The
data are drawn from the scaled mixture.

Data file: dataset /data [N, D] float64, root attributes format = "sdeflow.data", version = 1 (int64).
"""
import argparse
import os
import sys

import h5py
import numpy as np


def make_mixture(rng, dim, components):
    weights = rng.dirichlet(np.full(components, 2.0))
    means = rng.normal(0.0, 2.0, size=(components, dim))
    a = rng.standard_normal(size=(components, dim, dim))
    covs = a @ np.swapaxes(a, 1, 2) / dim + 0.1 * np.eye(dim)
    # centre and rescale: total covariance of the mixture = sum_k w_k (S_k + mu_k mu_k^T) - m m^T
    m = weights @ means
    centred = means - m
    total = np.einsum("k,kij->ij", weights, covs) + np.einsum("k,ki,kj->ij", weights, centred, centred)
    c = np.sqrt(np.trace(total) / dim)
    means = centred / c
    covs = covs / c**2
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))  # exactly symmetric
    return weights, means, covs


def sample_mixture(rng, weights, means, covs, n):
    k = rng.choice(len(weights), size=n, p=weights)
    chol = np.linalg.cholesky(covs)
    z = rng.standard_normal(size=(n, means.shape[1]))
    return means[k] + np.einsum("nij,nj->ni", chol[k], z)


def write_model(path, weights, means, covs):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = "sdeflow.model"
        f.attrs["version"] = np.int64(1)
        f.attrs["kind"] = "gmm"
        p = f.create_group("process")
        p.attrs["name"] = "vp"
        p.attrs["beta_min"] = np.float64(0.1)
        p.attrs["beta_max"] = np.float64(20.0)
        p.attrs["eps"] = np.float64(1e-3)
        p.attrs["T"] = np.float64(1.0)
        g = f.create_group("gmm")
        g.create_dataset("weights", data=np.asarray(weights, dtype=np.float64))
        g.create_dataset("means", data=np.asarray(means, dtype=np.float64))
        g.create_dataset("covariances", data=np.asarray(covs, dtype=np.float64))
    os.replace(tmp, path)


def write_data(path, x):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = "sdeflow.data"
        f.attrs["version"] = np.int64(1)
        f.create_dataset("data", data=np.asarray(x, dtype=np.float64))
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=int, default=8, help="data dimension D (default 8)")
    ap.add_argument("--components", type=int, default=8, help="mixture components K (default 8)")
    ap.add_argument("--n", type=int, default=1000, help="number of data samples N (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="numpy Generator seed (default 0)")
    ap.add_argument("--model", required=True, help="output model file (.h5)")
    ap.add_argument("--data", required=True, help="output data file (.h5)")
    args = ap.parse_args(argv)
    if args.dim < 1 or args.components < 1 or args.n < 1:
        ap.error("--dim, --components and --n must be >= 1")

    rng = np.random.default_rng(args.seed)
    weights, means, covs = make_mixture(rng, args.dim, args.components)
    x = sample_mixture(rng, weights, means, covs, args.n)
    write_model(args.model, weights, means, covs)
    write_data(args.data, x)
    print(f"wrote {args.model} (K={args.components}, D={args.dim}) and {args.data} (N={args.n})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
