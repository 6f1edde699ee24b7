#!/usr/bin/env python3
"""Reference likelihood computations for the sdeflow likelihood benchmark.

Computes the NLL of data under an exact Gaussian-mixture diffusion model (sdeflow model file, VP
process) by integrating the probability-flow ODE augmented with the exact divergence of its vector
field (instantaneous change of variables), with a general-purpose ODE solver applied to the whole batch
as ONE system, the way reference implementations do it:

  --method scipy-rk45          scipy.integrate.solve_ivp(method="RK45") on the flattened state
                               [B*D + B] (x of all samples, then the B log-density increments); the
                               mixture in numpy, vectorised over the batch (score_sde's way).
  --method torchdiffeq-dopri5  torchdiffeq.odeint(method="dopri5") on the state (x [B, D], delta [B]),
                               a tuple, so torchdiffeq's default mixed RMS norm applies (the larger of
                               the RMS errors of x and of delta); the mixture in torch float64.
                               --torch-state flat uses one [B, D+1] tensor (plain RMS norm) instead.
  --method exact               no ODE: prints the exact -log p_0(x) per sample (the reference).

The maths (VP, beta(t) = beta_min + t (beta_max - beta_min), B(t) = int_0^t beta):
  alpha = exp(-B/2), sigma^2 = -expm1(-B); p_t = sum_k w_k N(alpha mu_k, alpha^2 S_k + sigma^2 I)
  v(x, t) = -beta/2 (x + score),  div v = -beta/2 (D + Laplacian log p_t)
  d/dt [x, delta] = [v, div v] from t = eps to T, delta(eps) = 0
  log p_eps(x) = log p_T(x_T) + delta(T);  NLL = -log p_eps(x);  bits/dim = NLL / (D ln 2)
  prior "standard": log N(x_T; 0, I); prior "exact": the mixture marginal log p_T.
With --prior exact the result equals log p_0(x) up to solver error and the (tiny) eps blur, so
|(-nll) - log p_0(x)| measures the accuracy.

Threads: --threads T sets OMP_NUM_THREADS, MKL_NUM_THREADS and OPENBLAS_NUM_THREADS in the environment
*before* numpy / scipy / torch are imported (BLAS pools read them at import time), and calls
torch.set_num_threads(T) for the torch method. Without --threads the environment is left alone. The
JSON records what was used ("threads", and "blas_threads" as threadpoolctl reports it, if installed).

Before the timed solves one untimed solve runs (and one 16 MiB block is allocated and freed, see
warm_allocator) unless --no-warmup: the timings are of a warm process, like sdeflow's in-process
wall_time_s. The reported wall time is the best of --repeat solves and excludes reading the files, the
eigendecompositions and other setup (it includes evaluating the prior at x_T); nfe counts calls of the
right-hand side (all of them, including the solver's initial-step selection).

JSON fields: method, n, dim, components, rtol, atol, eps, T, prior, process; wall_time_s (best),
wall_times_s (all), cpu_time_s / cpu_times_s (process CPU time, a check on a busy machine), warmup,
warmup_wall_s, repeat, nfe,
steps (scipy only), success, message; nll (per sample, nats), nll_mean, nll_stderr, bpd_mean;
exact_logp0_mean (mean exact log p_0(x)), abs_err_max / abs_err_mean (|(-nll) - log p_0(x)|, meaningful
for --prior exact), exact_logpeps_mean, abs_err_eps_max / abs_err_eps_mean (against the exact log
p_eps(x), which --prior exact should reproduce: the pure solver error); threads, threads_env,
blas_threads, torch_state, versions. --method exact writes nll (= -log p_0), nll_mean, exact_logp0.

Example:
  python bench/likelihood_baselines.py --model model.h5 --data data.h5 --rtol 1e-5 --atol 1e-5 \
      --eps 1e-5 --prior exact --method scipy-rk45 --threads 1 --repeat 3 --json scipy.json
"""
import argparse
import json
import math
import os
import sys
import time

METHODS = ("scipy-rk45", "torchdiffeq-dopri5", "exact")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="NLL of data under an exact GMM diffusion model (PF ODE + exact divergence) with "
                    "scipy RK45 or torchdiffeq dopri5 over the whole batch as one system.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="sdeflow model file (kind gmm, process vp)")
    ap.add_argument("--data", required=True, help="data file (/data [N, D])")
    ap.add_argument("--method", required=True, choices=METHODS)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--eps", type=float, default=None,
                    help="start time of the ODE (default: the model's process eps)")
    ap.add_argument("--prior", choices=("standard", "exact"), default="standard")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for BLAS/OpenMP/torch (set before importing numpy); default: leave as is")
    ap.add_argument("--repeat", type=int, default=3, help="solves to time; the best is reported (default 3)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the untimed warm-up solve and allocator warm-up before the timed ones")
    ap.add_argument("--n", type=int, default=None, help="use only the first N data rows")
    ap.add_argument("--torch-state", choices=("tuple", "flat"), default="tuple",
                    help="torchdiffeq state: tuple (x, delta) with the mixed norm (default) or one [B, D+1] tensor")
    ap.add_argument("--json", default=None, help="write the results here (JSON)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    if not (args.rtol > 0 and args.atol > 0):
        ap.error("--rtol and --atol must be > 0")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads is not None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import h5py  # noqa: E402  (after the thread environment is set)
import numpy as np  # noqa: E402

LOG2PI = math.log(2.0 * math.pi)


class InputError(Exception):
    pass


# ---------------------------------------------------------------------------------------------- files

def _str_attr(obj, name, path):
    if name not in obj.attrs:
        raise InputError(f"{path}: missing attribute '{name}'")
    v = obj.attrs[name]
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise InputError(f"{path}: attribute '{name}' is not a scalar string")
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode("utf-8")
    return str(v).rstrip("\x00 ")


def read_model(path):
    with h5py.File(path, "r") as f:
        if _str_attr(f, "format", path + ":/") != "sdeflow.model":
            raise InputError(f"{path}: not an sdeflow model file (format attribute)")
        if int(f.attrs.get("version", -1)) != 1:
            raise InputError(f"{path}: unsupported model version {f.attrs.get('version')}")
        if _str_attr(f, "kind", path + ":/") != "gmm":
            raise InputError(f"{path}: only kind 'gmm' is supported")
        if "process" not in f:
            raise InputError(f"{path}: missing group /process")
        proc = f["process"]
        name = _str_attr(proc, "name", path + ":/process")
        if name != "vp":
            raise InputError(f"{path}:/process: process '{name}' is not supported by the baselines "
                             "(only 'vp')")
        params = {"beta_min": 0.1, "beta_max": 20.0, "eps": 1e-3, "T": 1.0}
        for key in proc.attrs:
            if key == "name":
                continue
            if key not in params:
                raise InputError(f"{path}:/process: unknown VP parameter '{key}'")
            params[key] = float(proc.attrs[key])
        w = np.asarray(f["gmm/weights"][...], dtype=np.float64)
        mu = np.asarray(f["gmm/means"][...], dtype=np.float64)
        cov = np.asarray(f["gmm/covariances"][...], dtype=np.float64)
    k, d = mu.shape
    if w.shape != (k,) or cov.shape != (k, d, d):
        raise InputError(f"{path}: inconsistent shapes weights {w.shape}, means {mu.shape}, "
                         f"covariances {cov.shape}")
    return params, w, mu, cov


def read_data(path, n=None):
    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise InputError(f"{path}: missing dataset /data")
        x = np.asarray(f["data"][...] if n is None else f["data"][:n], dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"{path}:/data: expected 2 dimensions, got shape {x.shape}")
    return x


# ------------------------------------------------------------------------------------------ schedule

class VPSchedule:
    def __init__(self, beta_min, beta_max):
        self.bmin = beta_min
        self.bdiff = beta_max - beta_min

    def __call__(self, t):
        """(beta, alpha, sigma^2) at time t (python floats)."""
        big_b = t * self.bmin + 0.5 * t * t * self.bdiff
        return self.bmin + t * self.bdiff, math.exp(-0.5 * big_b), -math.expm1(-big_b)


# --------------------------------------------------------------------------------------------- numpy

class NumpyMixture:
    """Exact VP marginal of a Gaussian mixture; batch-vectorised, layout [K, B, D] internally."""

    def __init__(self, w, mu, cov, sched):
        self.lam, self.U = np.linalg.eigh(cov)                    # [K, D], [K, D, D]
        self.Ut = np.ascontiguousarray(np.swapaxes(self.U, 1, 2))
        with np.errstate(divide="ignore"):
            self.logw = np.log(w)
        self.muU = np.einsum("kd,kde->ke", mu, self.U)           # rows of U_k^T mu_k
        self.d = mu.shape[1]
        self.sched = sched

    def terms(self, x, t, need_derivs=True):
        """log p_t(x) [B]; with need_derivs also score [B, D] and Laplacian of log p_t [B]."""
        _, alpha, s2 = self.sched(t)
        y = np.matmul(x, self.U)                                  # [K, B, D]: U_k^T x
        y -= alpha * self.muU[:, None, :]
        v = alpha * alpha * self.lam + s2                         # [K, D]
        z = y / v[:, None, :]
        a = self.logw[:, None] - 0.5 * (np.einsum("kbd,kbd->kb", y, z)
                                        + np.log(v).sum(1)[:, None] + self.d * LOG2PI)
        amax = a.max(0)
        e = np.exp(a - amax)
        tot = e.sum(0)
        logp = amax + np.log(tot)
        if not need_derivs:
            return logp
        r = e / tot                                               # [K, B]
        score = -np.matmul(z * r[:, :, None], self.Ut).sum(0)     # [B, D]
        zz = np.einsum("kbd,kbd->kb", z, z) - (1.0 / v).sum(1)[:, None]
        lap = np.einsum("kb,kb->b", r, zz) - np.einsum("bd,bd->b", score, score)
        return logp, score, lap


def log_prior_np(model, xT, T, prior):
    if prior == "standard":
        return -0.5 * np.einsum("bd,bd->b", xT, xT) - 0.5 * xT.shape[1] * LOG2PI
    return model.terms(xT, T, need_derivs=False)


def run_scipy(model, x, eps, T, rtol, atol, prior):
    from scipy.integrate import solve_ivp
    b, d = x.shape
    counter = [0]

    def rhs(t, state):
        counter[0] += 1
        xs = state[: b * d].reshape(b, d)
        beta, _, _ = model.sched(t)
        _, score, lap = model.terms(xs, t)
        out = np.empty_like(state)
        out[: b * d] = (-0.5 * beta) * (xs + score).reshape(-1)
        out[b * d:] = (-0.5 * beta) * (d + lap)
        return out

    y0 = np.concatenate([x.reshape(-1), np.zeros(b)])
    c0, t0 = time.process_time(), time.perf_counter()
    sol = solve_ivp(rhs, (eps, T), y0, method="RK45", rtol=rtol, atol=atol)
    xT = sol.y[: b * d, -1].reshape(b, d)
    delta = sol.y[b * d:, -1]
    logp = log_prior_np(model, xT, T, prior) + delta
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "nfe": counter[0], "nll": -logp, "success": bool(sol.success),
            "message": str(sol.message), "steps": int(len(sol.t) - 1)}


# --------------------------------------------------------------------------------------------- torch

class TorchMixture:
    def __init__(self, w, mu, cov, sched, torch):
        self.torch = torch
        lam, U = np.linalg.eigh(cov)
        f64 = torch.float64
        self.lam = torch.tensor(lam, dtype=f64)
        self.U = torch.tensor(U, dtype=f64)
        self.Ut = self.U.transpose(1, 2).contiguous()
        with np.errstate(divide="ignore"):
            self.logw = torch.tensor(np.log(w), dtype=f64)
        self.muU = torch.tensor(np.einsum("kd,kde->ke", mu, U), dtype=f64)
        self.d = mu.shape[1]
        self.sched = sched

    def terms(self, x, t, need_derivs=True):
        torch = self.torch
        _, alpha, s2 = self.sched(t)
        y = torch.matmul(x, self.U) - alpha * self.muU[:, None, :]        # [K, B, D]
        v = alpha * alpha * self.lam + s2                                # [K, D]
        z = y / v[:, None, :]
        a = self.logw[:, None] - 0.5 * ((y * z).sum(2) + torch.log(v).sum(1)[:, None] + self.d * LOG2PI)
        logp = torch.logsumexp(a, 0)
        if not need_derivs:
            return logp
        r = torch.exp(a - logp)                                          # [K, B]
        score = -torch.matmul(z * r[:, :, None], self.Ut).sum(0)         # [B, D]
        zz = (z * z).sum(2) - (1.0 / v).sum(1)[:, None]
        lap = (r * zz).sum(0) - (score * score).sum(1)
        return logp, score, lap


def run_torchdiffeq(model, x_np, eps, T, rtol, atol, prior, state_kind, torch):
    from torchdiffeq import odeint
    b, d = x_np.shape
    counter = [0]
    x0 = torch.tensor(x_np, dtype=torch.float64)

    def field(t, xs):
        tf = float(t)
        beta, _, _ = model.sched(tf)
        _, score, lap = model.terms(xs, tf)
        return (-0.5 * beta) * (xs + score), (-0.5 * beta) * (d + lap)

    if state_kind == "tuple":
        def func(t, state):
            counter[0] += 1
            return field(t, state[0])
        y0 = (x0, torch.zeros(b, dtype=torch.float64))
    else:
        def func(t, state):
            counter[0] += 1
            dx, ddelta = field(t, state[:, :d])
            return torch.cat([dx, ddelta[:, None]], 1)
        y0 = torch.cat([x0, torch.zeros(b, 1, dtype=torch.float64)], 1)

    tspan = torch.tensor([eps, T], dtype=torch.float64)
    c0, t0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        sol = odeint(func, y0, tspan, rtol=rtol, atol=atol, method="dopri5")
        if state_kind == "tuple":
            xT, delta = sol[0][-1], sol[1][-1]
        else:
            xT, delta = sol[-1][:, :d], sol[-1][:, d]
        if prior == "standard":
            lp = -0.5 * (xT * xT).sum(1) - 0.5 * d * LOG2PI
        else:
            lp = model.terms(xT, T, need_derivs=False)
        logp = (lp + delta).numpy()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "nfe": counter[0], "nll": -logp,
            "success": bool(np.all(np.isfinite(logp))), "message": "", "steps": None}


# ---------------------------------------------------------------------------------------------- main

def warm_allocator():
    """Allocate and free one 16 MiB block so that glibc's dynamic mmap threshold rises above the size of
    the solvers' temporaries ([K, B, D] float64, ~0.5 MiB at K = 8, B = 1000, D = 8). Otherwise every
    such temporary may be mmapped and unmapped on every call (or the heap trimmed), and the timing
    measures page faults rather than arithmetic: seen here, 1e-5 runs spent most of their time in the
    kernel until a larger block had once been freed. A long-lived process reaches this state anyway."""
    buf = np.ones(2 * 1024 * 1024)
    del buf


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{"api": i.get("internal_api"), "threads": i.get("num_threads")} for i in threadpool_info()]


def main(args):
    params, w, mu, cov = read_model(args.model)
    x = read_data(args.data, args.n)
    d = mu.shape[1]
    if x.shape[1] != d:
        raise InputError(f"{args.data}:/data: dimension {x.shape[1]} does not match the model's {d}")
    eps = params["eps"] if args.eps is None else args.eps
    T = params["T"]
    if not (0.0 <= eps < T):
        raise InputError(f"need 0 <= eps < T, got eps={eps}, T={T}")
    sched = VPSchedule(params["beta_min"], params["beta_max"])
    npmodel = NumpyMixture(w, mu, cov, sched)
    logp0 = npmodel.terms(x, 0.0, need_derivs=False)   # exact log p_0(x)
    logpeps = npmodel.terms(x, eps, need_derivs=False)  # exact log p_eps(x): what prior exact should give
    n = x.shape[0]

    result = {"method": args.method, "n": n, "dim": d, "components": int(mu.shape[0]),
              "rtol": args.rtol, "atol": args.atol, "eps": eps, "T": T, "prior": args.prior,
              "process": {"name": "vp", **params}}

    if args.method == "exact":
        for v in -logp0:
            print(repr(float(v)))
        result.update(nll=(-logp0).tolist(), nll_mean=float(-logp0.mean()),
                      exact_logp0_mean=float(logp0.mean()), exact_logp0=logp0.tolist())
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=1)
        return 0

    torch = None
    if args.method == "torchdiffeq-dopri5":
        import torch as _torch
        torch = _torch
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        model = TorchMixture(w, mu, cov, sched, torch)
        run = lambda: run_torchdiffeq(model, x, eps, T, args.rtol, args.atol, args.prior,  # noqa: E731
                                      args.torch_state, torch)
    else:
        run = lambda: run_scipy(npmodel, x, eps, T, args.rtol, args.atol, args.prior)  # noqa: E731

    warm_wall = None
    if not args.no_warmup:
        warm_allocator()
        warm_wall = run()["wall"]
    walls, cpus, out = [], [], None
    for _ in range(args.repeat):
        out = run()
        walls.append(out["wall"])
        cpus.append(out["cpu"])
    nll = np.asarray(out["nll"], dtype=np.float64)
    err = np.abs(-nll - logp0)
    err_eps = np.abs(-nll - logpeps)
    result.update(
        wall_time_s=min(walls), wall_times_s=walls,
        cpu_time_s=min(cpus), cpu_times_s=cpus, warmup=not args.no_warmup, warmup_wall_s=warm_wall,
        repeat=args.repeat, nfe=int(out["nfe"]),
        steps=out["steps"], success=out["success"], message=out["message"],
        nll=nll.tolist(), nll_mean=float(nll.mean()),
        nll_stderr=float(nll.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
        bpd_mean=float(nll.mean() / (d * math.log(2.0))),
        exact_logp0_mean=float(logp0.mean()),
        abs_err_max=float(err.max()), abs_err_mean=float(err.mean()),
        exact_logpeps_mean=float(logpeps.mean()),
        abs_err_eps_max=float(err_eps.max()), abs_err_eps_mean=float(err_eps.mean()),
        threads=(torch.get_num_threads() if torch is not None else args.threads),
        threads_env={v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                     "OPENBLAS_NUM_THREADS")},
        blas_threads=blas_threads(),
        torch_state=args.torch_state if torch is not None else None,
        versions=_versions(torch))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    note = "" if args.prior == "exact" else "  (errors vs log p_0 only meaningful with --prior exact)"
    print(f"{args.method}: n={n} wall={result['wall_time_s']:.4f}s (best of {args.repeat}; cpu {result['cpu_time_s']:.4f}s) "
          f"nfe={result['nfe']} nll_mean={result['nll_mean']:.6f} exact_logp0_mean={logp0.mean():.6f} "
          f"|err vs log p_0| max={result['abs_err_max']:.3e} mean={result['abs_err_mean']:.3e} "
          f"|err vs log p_eps| max={result['abs_err_eps_max']:.3e} mean={result['abs_err_eps_mean']:.3e} "
          f"success={result['success']}{note}")
    return 0 if out["success"] else 1


def _versions(torch):
    import scipy
    v = {"python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__}
    if torch is not None:
        import torchdiffeq
        v["torch"] = torch.__version__
        v["torchdiffeq"] = getattr(torchdiffeq, "__version__", "?")
    return v


if __name__ == "__main__":
    try:
        sys.exit(main(ARGS))
    except (InputError, OSError, KeyError) as exc:
        print(f"likelihood_baselines.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
