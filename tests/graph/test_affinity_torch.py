"""Affinity builder against a PyTorch autograd reference of the same formulas.

kNN edges, GCN (weights read from the C handle), global cosine, VICRegL-style
local term, edge affinity: forward values and every gradient (node features,
feature maps, GCN weights) of L = sum(gu * c_v) + sum(ge * c_e), computed in
float64 by torch from the same float32 inputs. Run by meson under Debian's
/usr/bin/python3 (python3-torch, python3-numpy); LVMMED_LIBRARY names the
library under test.
"""

import ctypes
import os
import sys
import unittest
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))
from lvmmed import _lib  # noqa: E402

L = _lib.lib
torch.set_num_threads(1)

OPT = dict(GROUP_SIZE=1, KNN=2, FEATURE_DIM=3, GCN_WIDTH=4, GCN_LAYERS=5, GCN_RELU_LAST=6, SYMMETRIZE=7,
           ALPHA=8, GAMMA_LOC=9, GAMMA_FEAT=10, LOCAL_NORM=11)
EPS = 1e-8


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


# ---- the reference, written from METHOD.md §3-§5 and include/lvmmed/affinity.h ----

def inv_norm(sq):
    """1/sqrt(sq) where the norm exceeds EPS, else 0 (no gradient through the masked entries)."""
    m = (sq > EPS * EPS).detach()
    safe = torch.where(m, sq, torch.ones_like(sq))
    return m * safe.rsqrt()


def cos_matrix(u, w):
    """cos between the rows of u (m×d) and of w (n×d), 0 for zero vectors."""
    return (u @ w.T) * inv_norm((u * u).sum(1))[:, None] * inv_norm((w * w).sum(1))[None, :]


def knn(x, k):
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    d.fill_diagonal_(float("inf"))
    order = torch.sort(d, dim=1, stable=True).indices[:, :k]
    n = x.shape[0]
    return torch.stack([torch.arange(n).repeat_interleave(k), order.reshape(-1)], 1)


def adjacency(n, edges, symmetrize):
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edges[:, 0], edges[:, 1]] = 1
    if symmetrize:
        a = torch.maximum(a, a.T)
    a = a + torch.eye(n, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


def local_term(ys, yt, gs, gt, keep_loc, keep_feat, dirs, w_loc, w_feat):
    """ys, yt: N×D×P maps; gs, gt: N×P×2 grids. Returns the N×N local part of c_v."""
    xs, xt = ys.transpose(1, 2), yt.transpose(1, 2)  # N×P×D
    n = xs.shape[0]
    gram = torch.einsum("ipd,aqd->iapq", xs, xt)  # N×N×P×P
    ns2, nt2 = (xs * xs).sum(-1), (xt * xt).sum(-1)  # N×P
    cosv = gram * inv_norm(ns2)[:, None, :, None] * inv_norm(nt2)[None, :, None, :]
    dloc = ((gs[:, None, :, None, :] - gt[None, :, None, :, :]) ** 2).sum(-1)  # N×N×P(s)×P(t)
    dfeat = (ns2[:, None, :, None] + nt2[None, :, None, :] - 2 * gram).detach()
    out = torch.zeros(n, n, dtype=torch.float64)
    for direction in range(dirs):
        c = cosv if direction == 0 else cosv.transpose(2, 3)  # queries along dim 2
        for dist, keep, w in ((dloc, keep_loc, w_loc), (dfeat, keep_feat, w_feat)):
            dd = dist if direction == 0 else dist.transpose(2, 3)
            best, arg = dd.min(3)  # N×N×P: nearest key of each query, first index on ties
            kept = torch.sort(best, dim=2, stable=True).indices[:, :, :keep]  # N×N×keep
            picked = torch.gather(c, 3, arg.unsqueeze(3)).squeeze(3)  # cos of each query's match
            out = out + w * torch.gather(picked, 2, kept).sum(2)
    return out


def reference(cfg, zs, zt, ms, mt, gs, gt, weights):
    n, k = cfg["group"], cfg["k"]
    g_n = zs.shape[0] // n
    alpha = cfg["alpha"]
    local = ms is not None and alpha < 1
    cvs, ces, edges = [], [], []
    for g in range(g_n):
        sl = slice(g * n, (g + 1) * n)
        hs = []
        for v, z in enumerate((zs[sl], zt[sl])):
            e = knn(z.detach(), k)
            edges.append(e)
            a = adjacency(n, e, cfg["symmetrize"])
            h = z
            for li, w in enumerate(weights):
                h = a @ (h @ w)
                if li + 1 < len(weights) or cfg["relu_last"]:
                    h = torch.relu(h)
            hs.append(h)
        es, et = edges[-2], edges[-1]
        cv = cos_matrix(hs[0], hs[1])
        if local:
            p = ms.shape[2]
            kl, kf = min(cfg["gamma_loc"], p), min(cfg["gamma_feat"], p)
            dirs, per_dir, per_term = {0: (2, 0.5, 0.5), 1: (2, 1.0, 1.0), 2: (1, 1.0, 0.5)}[cfg["norm"]]
            rest = 1 - alpha
            loc = local_term(ms[sl], mt[sl], gs[sl], gt[sl], kl, kf, dirs, rest * per_dir * per_term / kl,
                             rest * per_dir * per_term / kf)
            cv = alpha * cv + loc
        u = hs[0][es[:, 0]] - hs[0][es[:, 1]]
        w = hs[1][et[:, 0]] - hs[1][et[:, 1]]
        cvs.append(cv)
        ces.append(cos_matrix(u, w))
    return torch.stack(cvs), torch.stack(ces), edges


# ---- the library ----

class Affinity:
    def __init__(self, cfg, threads=1):
        self.ctx = _lib.CtxPtr()
        L.lvmmed_ctx_create(ctypes.byref(self.ctx))
        L.lvmmed_ctx_set_option(self.ctx, 1, threads)
        L.lvmmed_ctx_set_option(self.ctx, 2, 1234)
        self.h = _lib.AffinityPtr()
        L.lvmmed_affinity_create(self.ctx, ctypes.byref(self.h))
        for key, name in (("group", "GROUP_SIZE"), ("k", "KNN"), ("feat", "FEATURE_DIM"), ("width", "GCN_WIDTH"),
                          ("layers", "GCN_LAYERS"), ("relu_last", "GCN_RELU_LAST"),
                          ("symmetrize", "SYMMETRIZE"), ("alpha", "ALPHA"), ("gamma_loc", "GAMMA_LOC"),
                          ("gamma_feat", "GAMMA_FEAT"), ("norm", "LOCAL_NORM")):
            L.lvmmed_affinity_set_option(self.h, OPT[name], float(cfg[key]))
        self.cfg = cfg

    def close(self):
        L.lvmmed_affinity_free(self.h)
        L.lvmmed_ctx_release(self.ctx)

    def weights(self):
        out = []
        for i in range(L.lvmmed_affinity_param_count(self.h)):
            name, r, c = ctypes.c_char_p(), ctypes.c_size_t(), ctypes.c_size_t()
            L.lvmmed_affinity_param_info(self.h, i, ctypes.byref(name), ctypes.byref(r), ctypes.byref(c))
            w = np.empty((r.value, c.value), np.float32)
            L.lvmmed_affinity_param_read(self.h, name.value, ptr(w), w.size)
            out.append(w)
        return out

    def forward(self, zs, zt, ms, mt, gs, gt, dims):
        b = zs.shape[0]
        g, n, e = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        L.lvmmed_affinity_shape(self.h, b, ctypes.byref(g), ctypes.byref(n), ctypes.byref(e), None)
        self.g, self.n, self.e = g.value, n.value, e.value
        cv = np.empty((self.g, self.n, self.n), np.float32)
        ce = np.empty((self.g, self.e, self.e), np.float32)
        es = np.empty((self.g, self.e, 2), np.int32)
        et = np.empty((self.g, self.e, 2), np.int32)
        none = ctypes.c_void_p()
        L.lvmmed_affinity_forward(self.h, b, ptr(zs), ptr(zt), ptr(ms) if ms is not None else none,
                                  ptr(mt) if mt is not None else none, *dims,
                                  ptr(gs) if gs is not None else none, ptr(gt) if gt is not None else none,
                                  ptr(cv), ptr(ce), ptr(es), ptr(et))
        return cv, ce, es, et

    def backward(self, gu, ge, zs, ms, mt):
        dzs, dzt = np.empty_like(zs), np.empty_like(zs)
        dms = np.empty_like(ms) if ms is not None else None
        dmt = np.empty_like(mt) if mt is not None else None
        none = ctypes.c_void_p()
        L.lvmmed_affinity_zero_grad(self.h)
        L.lvmmed_affinity_backward(self.h, ptr(gu), ptr(ge), ptr(ms) if ms is not None else none,
                                   ptr(mt) if mt is not None else none, ptr(dzs), ptr(dzt),
                                   ptr(dms) if dms is not None else none, ptr(dmt) if dmt is not None else none)
        dws = []
        for i in range(L.lvmmed_affinity_param_count(self.h)):
            r, c = ctypes.c_size_t(), ctypes.c_size_t()
            L.lvmmed_affinity_param_info(self.h, i, None, ctypes.byref(r), ctypes.byref(c))
            grad = ctypes.c_void_p()
            L.lvmmed_affinity_param_data(self.h, i, None, ctypes.byref(grad))
            buf = (ctypes.c_float * (r.value * c.value)).from_address(grad.value)
            dws.append(np.frombuffer(buf, np.float32).reshape(r.value, c.value).copy())
        return dzs, dzt, dms, dmt, dws


def rel_err(ours, ref):
    """max |ours - ref| / max(|ref|), the norm-wise relative error."""
    ref = np.asarray(ref, np.float64)
    scale = max(np.abs(ref).max(), 1e-30)
    return float(np.abs(np.asarray(ours, np.float64) - ref).max() / scale)


BASE = dict(group=16, k=5, feat=32, width=24, layers=2, relu_last=1, symmetrize=1, alpha=0.8, gamma_loc=20,
            gamma_feat=49, norm=0)
CASES = {
    # the LVM-Med geometry (7×7 maps, γ 20/49) at smaller widths; two groups and 5 spare images
    "default": dict(BASE),
    "sum_directed_linear_last": dict(BASE, norm=1, symmetrize=0, relu_last=0, alpha=0.5, gamma_loc=7,
                                     gamma_feat=11, layers=1),
    "one_way_no_gcn": dict(BASE, norm=2, layers=0, alpha=0.3, gamma_loc=30, gamma_feat=40),
    "no_local_three_layers": dict(BASE, layers=3, maps=False),
}
TOL_VALUE = 2e-5   # float32 forward vs float64 reference, absolute on values in [-1, 1]
TOL_GRAD = 2e-4    # norm-wise relative error of each gradient


class AffinityTorchTest(unittest.TestCase):
    def run_case(self, name, cfg, threads=1):
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        b, f, d, r, s = 37, cfg["feat"], 32, 7, 7
        with_maps = cfg.get("maps", True)
        zs = rng.standard_normal((b, f)).astype(np.float32)
        zt = rng.standard_normal((b, f)).astype(np.float32)
        ms = mt = gs = gt = None
        if with_maps:
            ms = np.maximum(rng.standard_normal((b, d, r * s)), -0.3).astype(np.float32)
            mt = np.maximum(rng.standard_normal((b, d, r * s)), -0.3).astype(np.float32)
            gs = (rng.random((b, r * s, 2)) * 224).astype(np.float32)
            gt = (rng.random((b, r * s, 2)) * 224).astype(np.float32)
        aff = Affinity(cfg, threads)
        try:
            weights = aff.weights()
            cv, ce, es, et = aff.forward(zs, zt, ms, mt, gs, gt, (d, r, s) if with_maps else (0, 0, 0))
            t = lambda a: None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True)
            tzs, tzt, tms, tmt = t(zs), t(zt), t(ms), t(mt)
            tgs = None if gs is None else torch.tensor(gs, dtype=torch.float64)
            tgt = None if gt is None else torch.tensor(gt, dtype=torch.float64)
            tw = [t(w) for w in weights]
            rcv, rce, redges = reference(cfg, tzs, tzt, tms, tmt, tgs, tgt, tw)
            for g in range(aff.g):
                np.testing.assert_array_equal(es[g], redges[2 * g].numpy(), f"{name}: source kNN edges of graph {g}")
                np.testing.assert_array_equal(et[g], redges[2 * g + 1].numpy(), f"{name}: target kNN edges")
            err_v = float(np.abs(cv - rcv.detach().numpy()).max())
            err_e = float(np.abs(ce - rce.detach().numpy()).max())
            self.assertLess(err_v, TOL_VALUE, f"{name}: c_v")
            self.assertLess(err_e, TOL_VALUE, f"{name}: c_e")

            report = [f"{name}: c_v {err_v:.2e}, c_e {err_e:.2e}"]
            sparse_ge = np.zeros_like(ce)
            flat = sparse_ge.reshape(-1)
            flat[rng.choice(flat.size, 40, replace=False)] = rng.choice([-1.0, 1.0], 40) / 80
            # like I-MLE: at most two non-zero pairs per row of dL/dc_v (the block-wise local backward)
            sparse_gu = np.zeros_like(cv)
            for g in range(cv.shape[0]):
                for i in range(cv.shape[1]):
                    sparse_gu[g, i, rng.choice(cv.shape[2], 2, replace=False)] = [1 / 80, -1 / 80]
            for label, gu, ge in (("dense", rng.standard_normal(cv.shape).astype(np.float32),
                                   rng.standard_normal(ce.shape).astype(np.float32)),
                                  ("sparse", sparse_gu, sparse_ge)):
                dzs, dzt, dms, dmt, dws = aff.backward(gu, ge, zs, ms, mt)
                for x in [tzs, tzt, tms, tmt] + tw:
                    if x is not None and x.grad is not None:
                        x.grad = None
                loss = (torch.tensor(gu, dtype=torch.float64) * rcv).sum() + \
                    (torch.tensor(ge, dtype=torch.float64) * rce).sum()
                loss.backward(retain_graph=True)
                pairs = [("z_s", dzs, tzs), ("z_t", dzt, tzt)]
                if with_maps:
                    pairs += [("maps_s", dms, tms), ("maps_t", dmt, tmt)]
                pairs += [(f"gcn.{i}.weight", dw, w) for i, (dw, w) in enumerate(zip(dws, tw))]
                errs = []
                for what, ours, ref in pairs:
                    refg = ref.grad.numpy() if ref.grad is not None else np.zeros_like(ours)
                    e = rel_err(ours, refg)
                    errs.append(f"{what} {e:.1e}")
                    self.assertLess(e, TOL_GRAD, f"{name} ({label} dL/dc_e): gradient of {what}")
                # images outside the groups get zero gradients
                self.assertTrue(np.all(dzs[aff.g * aff.n:] == 0))
                report.append(f"grads[{label}] " + ", ".join(errs))
            print("  " + "; ".join(report), flush=True)
        finally:
            aff.close()

    def test_cases(self):
        for name, cfg in CASES.items():
            with self.subTest(case=name):
                self.run_case(name, cfg)

    def test_two_threads(self):
        self.run_case("default_two_threads", CASES["default"], threads=2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
