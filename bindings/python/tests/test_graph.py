"""GMSolver, lap_solve, Affinity, knn_graph, gcn_adjacency and IMLE through the bindings.

References: scipy.optimize.linear_sum_assignment for LAP solves, brute force
over itertools.permutations for small graph-matching problems, numpy for kNN,
the GCN propagation matrix, the global cosine affinities (alpha = 1, no maps)
and their gradients, and the I-MLE finite difference with noise off.
"""

import ctypes
import gc
import itertools
import os
import tempfile
import unittest
import weakref

import numpy as np

import _support
import lvmmed
from lvmmed import _lib, graph

try:
    from scipy.optimize import linear_sum_assignment
except ImportError:  # pragma: no cover - CI installs python3-scipy
    linear_sum_assignment = None

QAPLIB_DIR = os.path.join(_support.REPO_ROOT, "tests", "graph", "data")


def lawler_objective(unary, src, tgt, w, perm):
    """J(p) = sum_i U[i][p_i] + sum over e=(i,j), f=(a,b) with a=p_i, b=p_j of W[e][f], in float64."""
    j = float(np.sum(unary.astype(np.float64)[np.arange(len(perm)), perm]))
    for e, (i, jj) in enumerate(src):
        for f, (a, b) in enumerate(tgt):
            if perm[i] == a and perm[jj] == b:
                j += float(w[e, f])
    return j


def random_lawler(rng, n, n_edges):
    unary = rng.standard_normal((n, n)).astype(np.float32)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    src = np.array([pairs[k] for k in rng.choice(len(pairs), n_edges, replace=False)], np.int32)
    tgt = np.array([pairs[k] for k in rng.choice(len(pairs), n_edges, replace=False)], np.int32)
    w = rng.standard_normal((n_edges, n_edges)).astype(np.float32)
    return unary, src, tgt, w


def brute_lawler(unary, src, tgt, w):
    n = unary.shape[0]
    best = max(itertools.permutations(range(n)), key=lambda p: lawler_objective(unary, src, tgt, w, np.array(p)))
    return np.array(best), lawler_objective(unary, src, tgt, w, np.array(best))


class GMSolverTest(unittest.TestCase):
    def setUp(self):
        self.ctx = lvmmed.Context(threads=1, seed=5)
        self.addCleanup(self.ctx.close)

    def solver(self, *args, **kw):
        s = lvmmed.GMSolver(self.ctx, *args, **kw)
        self.addCleanup(s.close)
        return s

    def test_options_and_method_names(self):
        s = self.solver("ipfp", max_iter=7, restarts=2, maximize=True)
        self.assertEqual((s.method, s.max_iter, s.restarts, s.maximize), ("ipfp", 7, 2, True))
        for name, value in graph.METHODS.items():
            s.method = name
            self.assertEqual(s.method, graph.method_name(value))
            self.assertEqual(s.get_option("method"), graph.method_name(name))
        self.assertEqual([graph.method_name(v) for v in range(7)],
                         ["auto", "lap", "brute", "sm", "rrwm", "ipfp", "2opt"])
        self.assertEqual(graph.method_name(99), "unknown")
        s["max_iter"] = 11
        self.assertEqual(s["max_iter"], 11)
        lo, hi = lvmmed.GMSolver.option_bounds("max_iter")
        with self.assertRaises(lvmmed.OutOfRangeError) as cm:
            s.max_iter = hi + 1
        self.assertIn("lvmmed_gm_solver_set_option", str(cm.exception))
        self.assertEqual(s.max_iter, 11)  # unchanged
        with self.assertRaises(ValueError):
            s.method = "hungarian"
        with self.assertRaises(lvmmed.OutOfRangeError):
            s.method = 42
        with self.assertRaises(KeyError):
            s.get_option("tolerance")
        self.assertIn("max_iter=11", repr(s))

    @unittest.skipIf(linear_sum_assignment is None, "needs scipy")
    def test_lap_method_matches_scipy(self):
        rng = np.random.default_rng(1)
        s = self.solver("lap")
        for n in (1, 7, 40):
            u = rng.standard_normal((n, n)).astype(np.float32)
            s.set_problem(u)
            self.assertEqual(s.n, n)
            perm, obj = s.solve()
            self.assertEqual((perm.dtype, perm.shape), (np.int32, (n,)))
            rows, cols = linear_sum_assignment(u.astype(np.float64), maximize=True)
            ref = float(u.astype(np.float64)[rows, cols].sum())
            self.assertEqual(sorted(perm.tolist()), list(range(n)))
            self.assertAlmostEqual(obj, ref, places=9)
            np.testing.assert_array_equal(perm, cols)  # continuous random data: a unique optimum
            self.assertAlmostEqual(s.objective(perm), ref, places=9)

    def test_brute_force_matches_python(self):
        rng = np.random.default_rng(2)
        unary, src, tgt, w = random_lawler(rng, 6, 10)
        s = self.solver("auto")
        s.set_problem(unary, src, tgt, w)
        perm, obj = s.brute_force()
        self.assertEqual(s.method, "auto")  # restored
        ref_perm, ref = brute_lawler(unary, src, tgt, w)
        np.testing.assert_array_equal(perm, ref_perm)
        self.assertAlmostEqual(obj, ref, places=4)
        for p in (np.arange(6), rng.permutation(6)):
            self.assertAlmostEqual(s.objective(p), lawler_objective(unary, src, tgt, w, p), places=4)
        auto_perm, auto_obj = s.solve()
        self.assertLessEqual(auto_obj, obj + 1e-9)
        self.assertAlmostEqual(auto_obj, lawler_objective(unary, src, tgt, w, auto_perm), places=4)
        # Edges given as int64 and affinities as float64 are converted; same problem, same answer.
        s.set_problem(unary.astype(np.float64), src.astype(np.int64), tgt.astype(np.int64), w.astype(np.float64))
        np.testing.assert_array_equal(s.brute_force()[0], ref_perm)

    def test_koopmans_beckmann_brute_force(self):
        rng = np.random.default_rng(3)
        n = 5
        a = rng.integers(0, 10, (n, n)).astype(np.float64)
        b = rng.integers(0, 10, (n, n)).astype(np.float64)
        costs = {p: float(np.sum(a * b[np.ix_(p, p)])) for p in itertools.permutations(range(n))}
        s = self.solver("brute")
        s.set_koopmans_beckmann(a, b)
        perm, obj = s.solve()
        self.assertEqual(obj, min(costs.values()))
        self.assertEqual(costs[tuple(perm)], obj)
        s.maximize = True
        self.assertEqual(s.solve()[1], max(costs.values()))

    def test_qaplib_helpers(self):
        dat, sln = os.path.join(QAPLIB_DIR, "nug12.dat"), os.path.join(QAPLIB_DIR, "nug12.sln")
        best, best_perm = graph.read_qaplib_solution(sln)
        s = self.solver()
        self.assertEqual(s.load_qaplib(dat), 12)
        self.assertEqual(s.objective(best_perm), best)  # the published optimum, 578
        perm, obj = graph.solve_qaplib(self.ctx, dat, "auto", restarts=1)
        self.assertEqual(sorted(perm.tolist()), list(range(12)))
        self.assertGreaterEqual(obj, best)
        self.assertLessEqual(obj, 1.1 * best)
        self.assertEqual(s.objective(perm), obj)
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "bad.dat")
            with open(bad, "w") as f:
                f.write("3\n1 2 x\n")
            with self.assertRaises(lvmmed.FileFormatError) as cm:
                s.load_qaplib(bad)
            self.assertIn("bad.dat", str(cm.exception))
            self.assertEqual(s.n, 12)  # the previous problem stays
            with self.assertRaises(lvmmed.LvmmedError) as cm:
                s.load_qaplib(os.path.join(tmp, "missing.dat"))
            self.assertIn("missing.dat", str(cm.exception))

    def test_errors(self):
        s = self.solver()
        with self.assertRaises(lvmmed.StateError) as cm:
            s.solve()
        self.assertIn("no problem", str(cm.exception))
        with self.assertRaises(ValueError):
            s.set_problem(np.zeros((3, 4), np.float32))
        with self.assertRaises(TypeError):
            s.set_problem(np.zeros((3, 3), np.float32), np.array([[0.0, 1.0]]), np.array([[0, 1]]), np.zeros((1, 1)))
        with self.assertRaises(TypeError):
            s.set_problem(np.zeros((3, 3), complex))
        with self.assertRaises(ValueError):  # edge_affinity of the wrong shape
            s.set_problem(np.zeros((3, 3)), [[0, 1]], [[1, 2]], np.zeros((2, 1)))
        with self.assertRaises(ValueError):  # edges need their affinities
            s.set_problem(np.zeros((3, 3)), [[0, 1]], [[1, 2]])
        with self.assertRaises(lvmmed.OutOfRangeError) as cm:  # node 3 of a 3-node graph: the library's check
            s.set_problem(np.zeros((3, 3)), [[0, 3]], [[1, 2]], np.zeros((1, 1)))
        self.assertIn("lvmmed_gm_set_problem", str(cm.exception))
        u = np.zeros((3, 3), np.float32)
        u[1, 1] = np.nan
        with self.assertRaises(lvmmed.NumericError):
            s.set_problem(u)
        s.set_problem(np.eye(10, dtype=np.float32))
        with self.assertRaises(lvmmed.LimitError):
            s.brute_force()
        with self.assertRaises(ValueError):
            s.objective(np.arange(9))
        with self.assertRaises(lvmmed.LvmmedError):
            s.objective(np.zeros(10, np.int32))  # not a permutation
        with self.assertRaises(TypeError):
            s.solve(out=np.empty(10, np.int64))
        with self.assertRaises(ValueError):
            s.solve(out=np.empty(11, np.int32))
        with self.assertRaises(ValueError):
            s.solve(out=np.empty(20, np.int32)[::2])
        out = np.empty(10, np.int32)
        perm, obj = s.solve(out=out)
        self.assertIs(perm, out)
        np.testing.assert_array_equal(out, np.arange(10))
        self.assertEqual(obj, 10.0)

    def test_lifetime(self):
        with lvmmed.GMSolver(self.ctx) as s:
            s.set_problem(np.eye(2))
        self.assertTrue(s.closed)
        with self.assertRaises(ValueError):
            s.solve()
        s.close()  # idempotent
        self.assertIn("closed", repr(s))
        import copy
        import pickle
        with lvmmed.GMSolver(self.ctx) as s2:
            with self.assertRaises(TypeError):
                copy.copy(s2)
            with self.assertRaises(TypeError):
                pickle.dumps(s2)
        # The solver keeps the C context alive after the Context object is closed.
        ctx = lvmmed.Context()
        s3 = lvmmed.GMSolver(ctx)
        ctx.close()
        s3.set_problem(np.eye(3))
        self.assertEqual(s3.solve()[1], 3.0)
        s3.close()


@unittest.skipIf(linear_sum_assignment is None, "needs scipy")
class LapSolveTest(unittest.TestCase):
    def test_against_scipy(self):
        rng = np.random.default_rng(4)
        with lvmmed.Context() as ctx:
            for rows, cols, maximize in ((6, 6, False), (4, 9, True), (9, 4, False), (1, 1, True)):
                cost = rng.standard_normal((rows, cols))
                assignment, obj = lvmmed.lap_solve(ctx, cost, maximize)
                r, c = linear_sum_assignment(cost, maximize=maximize)
                ref = np.full(rows, -1, np.int32)
                ref[r] = c
                np.testing.assert_array_equal(assignment, ref)
                self.assertAlmostEqual(obj, cost[r, c].sum(), places=12)
            out = np.empty(3, np.int32)
            self.assertIs(lvmmed.lap_solve(ctx, np.eye(3), out=out)[0], out)
            with self.assertRaises(lvmmed.NumericError) as cm:
                lvmmed.lap_solve(ctx, [[0.0, np.inf]])
            self.assertIn("lvmmed_lap_solve", str(cm.exception))
            with self.assertRaises(ValueError):
                lvmmed.lap_solve(ctx, np.zeros(3))


# --- affinity -----------------------------------------------------------------------------------


def np_knn(x, k):
    d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    n = x.shape[0]
    return np.stack([np.repeat(np.arange(n), k), order.reshape(-1)], 1).astype(np.int32)


def np_adjacency(n, edges, symmetrize):
    a = np.zeros((n, n))
    a[edges[:, 0], edges[:, 1]] = 1
    if symmetrize:
        a = np.maximum(a, a.T)
    a += np.eye(n)
    d = 1 / np.sqrt(a.sum(1))
    return d[:, None] * a * d[None, :]


def np_cos(u, w):
    """Cosines between the rows of u and w; 0 where a norm is <= 1e-8 (affinity.h's convention)."""
    nu, nw = np.linalg.norm(u, axis=-1), np.linalg.norm(w, axis=-1)
    iu = np.where(nu > 1e-8, 1 / np.maximum(nu, 1e-300), 0.0)
    iw = np.where(nw > 1e-8, 1 / np.maximum(nw, 1e-300), 0.0)
    return (u @ w.T) * iu[:, None] * iw[None, :]


class AffinityTest(unittest.TestCase):
    CFG = dict(group_size=6, knn=2, feature_dim=5, gcn_width=4, gcn_layers=2, alpha=1.0)

    def setUp(self):
        self.ctx = lvmmed.Context(threads=2, seed=11)
        self.addCleanup(self.ctx.close)
        self.rng = np.random.default_rng(12)

    def affinity(self, **kw):
        a = lvmmed.Affinity(self.ctx, **{**self.CFG, **kw})
        self.addCleanup(a.close)
        return a

    def test_knn_graph_and_adjacency(self):
        x = self.rng.standard_normal((9, 4)).astype(np.float32)
        edges = lvmmed.knn_graph(self.ctx, x, 3)
        np.testing.assert_array_equal(edges, np_knn(x, 3))
        for sym in (True, False):
            dup = np.concatenate([edges, edges[:2]])
            adj = lvmmed.gcn_adjacency(self.ctx, 9, dup, sym)
            np.testing.assert_allclose(adj, np_adjacency(9, edges, sym), rtol=1e-6, atol=1e-7)
        out = np.empty((9, 9), np.float32)
        self.assertIs(lvmmed.gcn_adjacency(self.ctx, 9, edges, out=out), out)
        with self.assertRaises(ValueError):  # k < n: checked before the output is allocated
            lvmmed.knn_graph(self.ctx, x, 9)
        with self.assertRaises(lvmmed.NumericError) as cm:
            lvmmed.knn_graph(self.ctx, np.full((4, 2), np.nan), 2)
        self.assertIn("lvmmed_knn_graph", str(cm.exception))
        with self.assertRaises(ValueError):
            lvmmed.knn_graph(self.ctx, x.ravel(), 2)
        with self.assertRaises(lvmmed.LvmmedError) as cm:
            lvmmed.gcn_adjacency(self.ctx, 3, [[0, 5]])
        self.assertIn("lvmmed_gcn_adjacency", str(cm.exception))

    def test_options(self):
        a = self.affinity(local_norm="sum", symmetrize=False)
        self.assertEqual(a.options()["local_norm"], "sum")
        self.assertIs(a.symmetrize, False)
        self.assertEqual((a.group_size, a.knn, a.feature_dim, a.alpha), (6, 2, 5, 1.0))
        a.local_norm = "one_way"
        self.assertEqual(a["local_norm"], "one_way")
        self.assertEqual(a.shape(13), (2, 6, 12, 4))
        a.gcn_layers = 0
        self.assertEqual(a.shape(5)[0], 0)
        self.assertEqual(a.shape(6)[3], 5)  # L = 0: out_dim = F
        with self.assertRaises(lvmmed.OutOfRangeError):
            a.alpha = 1.5
        with self.assertRaises(lvmmed.OutOfRangeError):
            a.knn = 2.5
        with self.assertRaises(TypeError):
            lvmmed.Affinity(self.ctx, neighbours=3)
        self.assertEqual(lvmmed.Affinity.option_bounds("alpha"), (0.0, 1.0))

    def global_reference(self, a, zs, zt):
        """c_v, c_e and edges of every group, in float64, with the handle's GCN weights."""
        n, k = a.group_size, a.knn
        weights = [a.read_param(name).astype(np.float64) for name in a.param_names()]
        cv, ce, es_all, et_all = [], [], [], []
        for g in range(zs.shape[0] // n):
            hs = []
            for z, edges_out in ((zs[g * n:(g + 1) * n], es_all), (zt[g * n:(g + 1) * n], et_all)):
                e = np_knn(z, k)
                edges_out.append(e)
                adj = np_adjacency(n, e, True)
                h = z.astype(np.float64)
                for w in weights:
                    h = np.maximum(adj @ (h @ w), 0)
                hs.append(h)
            cv.append(np_cos(hs[0], hs[1]))
            u = hs[0][es_all[-1][:, 0]] - hs[0][es_all[-1][:, 1]]
            v = hs[1][et_all[-1][:, 0]] - hs[1][et_all[-1][:, 1]]
            ce.append(np_cos(u, v))
        return np.array(cv), np.array(ce), np.array(es_all), np.array(et_all)

    def test_forward_global_matches_numpy(self):
        a = self.affinity(gcn_width=16)
        zs = self.rng.standard_normal((13, 5)).astype(np.float32)  # 2 groups and a leftover image
        zt = (zs + 0.3 * self.rng.standard_normal((13, 5))).astype(np.float32)
        out = a.forward(zs, zt)
        cv, ce, es, et = self.global_reference(a, zs, zt)
        np.testing.assert_array_equal(out.src_edges, es)
        np.testing.assert_array_equal(out.tgt_edges, et)
        np.testing.assert_allclose(out.unary, cv, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(out.edge_affinity, ce, rtol=1e-4, atol=2e-5)
        # edges=False skips c_e and the edge lists; c_v is unchanged.
        lite = a.forward(zs, zt, edges=False)
        self.assertIsNone(lite.edge_affinity)
        np.testing.assert_array_equal(lite.unary, out.unary)
        # out= arrays are filled in place.
        bufs = tuple(np.empty_like(x) for x in out)
        res = a.forward(zs, zt, out=bufs)
        for got, buf, ref in zip(res, bufs, out):
            self.assertIs(got, buf)
            np.testing.assert_array_equal(buf, ref)

    def test_backward_global_matches_numpy(self):
        a = self.affinity(gcn_layers=0)  # c_v = cos(z_s, z_t): gradient in closed form
        zs = self.rng.standard_normal((13, 5)).astype(np.float32)
        zt = self.rng.standard_normal((13, 5)).astype(np.float32)
        a.forward(zs, zt, edges=False)
        gu = self.rng.standard_normal((2, 6, 6)).astype(np.float32)
        grads = a.backward(gu)
        self.assertIsNone(grads.maps_s)
        ref_s, ref_t = np.zeros((13, 5)), np.zeros((13, 5))
        for g in range(2):
            u, w = zs[g * 6:(g + 1) * 6].astype(np.float64), zt[g * 6:(g + 1) * 6].astype(np.float64)
            nu, nw = np.linalg.norm(u, axis=1), np.linalg.norm(w, axis=1)
            c = np_cos(u, w)
            ref_s[g * 6:(g + 1) * 6] = (gu[g] @ (w / nw[:, None]) - (gu[g] * c).sum(1)[:, None] * u / nu[:, None]) / nu[:, None]
            ref_t[g * 6:(g + 1) * 6] = (gu[g].T @ (u / nu[:, None]) - (gu[g] * c).sum(0)[:, None] * w / nw[:, None]) / nw[:, None]
        np.testing.assert_allclose(grads.z_s, ref_s, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grads.z_t, ref_t, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(grads.z_s[12], 0)  # outside every group
        self.assertEqual(a.backward(gu, z_grads=False), (None, None, None, None))

    def test_parameters_are_views(self):
        a = self.affinity()
        params = a.parameters()
        self.assertEqual([(p.name, p.shape) for p in params], [("gcn.0.weight", (5, 4)), ("gcn.1.weight", (4, 4))])
        for i, p in enumerate(params):
            value, grad = ctypes.c_void_p(), ctypes.c_void_p()
            _lib.lib.lvmmed_affinity_param_data(a._h(), i, ctypes.byref(value), ctypes.byref(grad))
            self.assertEqual(p.value.ctypes.data, value.value)
            self.assertEqual(p.grad.ctypes.data, grad.value)
            self.assertTrue(p.value.flags.writeable and p.value.flags.c_contiguous)
            self.assertEqual(p.value.dtype, np.float32)
        again = a.parameters()
        self.assertTrue(np.shares_memory(params[0].value, again[0].value))
        copy = a.read_param("gcn.0.weight")
        self.assertFalse(np.shares_memory(copy, params[0].value))
        np.testing.assert_array_equal(copy, params[0].value)
        params[0].value[...] = 0.25  # writes the C buffer
        np.testing.assert_array_equal(a.read_param("gcn.0.weight"), np.full((5, 4), 0.25, np.float32))
        a.write_param("gcn.1.weight", np.eye(4))
        np.testing.assert_array_equal(params[1].value, np.eye(4, dtype=np.float32))
        a.reset_params()
        np.testing.assert_array_equal(params[0].value, copy)  # same context seed, same weights
        # Gradients accumulate over backward calls; zero_grad clears them.
        zs = self.rng.standard_normal((6, 5)).astype(np.float32)
        a.forward(zs, zs[::-1].copy())
        gu = self.rng.standard_normal((1, 6, 6)).astype(np.float32)
        a.backward(gu)
        once = params[0].grad.copy()
        self.assertGreater(np.abs(once).max(), 0)
        a.backward(gu)
        np.testing.assert_allclose(params[0].grad, 2 * once, rtol=1e-6)
        a.zero_grad()
        self.assertFalse(params[0].grad.any())
        # The views keep the Affinity object alive.
        b = lvmmed.Affinity(self.ctx, **self.CFG)
        view = b.parameters()[0].value
        ref = weakref.ref(b)
        del b
        gc.collect()
        self.assertIsNotNone(ref())
        self.assertTrue(np.isfinite(view).all())
        ref().close()  # the views are invalid from here on
        del view

    def test_optimizer_updates_views(self):
        a = self.affinity()
        with lvmmed.Optimizer(self.ctx, "sgd", lr=0.5, momentum=0) as opt:
            for p in a.parameters():
                opt.add_param(p.name, p.value, p.grad)
            before = a.read_param("gcn.1.weight")
            a.parameters()[1].grad[...] = 1.0
            opt.step()
        np.testing.assert_allclose(a.read_param("gcn.1.weight"), before - 0.5, rtol=1e-6)

    def test_local_term_shapes(self):
        a = self.affinity(alpha=0.5, gamma_loc=3, gamma_feat=3)
        b, d, r, s = 6, 3, 2, 3
        zs = self.rng.standard_normal((b, 5)).astype(np.float32)
        zt = self.rng.standard_normal((b, 5)).astype(np.float32)
        ms = self.rng.standard_normal((b, d, r, s)).astype(np.float32)
        mt = self.rng.standard_normal((b, d, r, s)).astype(np.float32)
        gs = self.rng.uniform(0, 10, (b, r, s, 2)).astype(np.float32)
        gt = self.rng.uniform(0, 10, (b, r, s, 2)).astype(np.float32)
        glob = a.forward(zs, zt).unary
        out = a.forward(zs, zt, ms, mt, gs, gt)
        self.assertFalse(np.allclose(out.unary, glob))
        grads = a.backward(np.ones((1, 6, 6), np.float32), np.zeros((1, 12, 12), np.float32))
        self.assertEqual(grads.maps_s.shape, (b, d, r, s))
        self.assertGreater(np.abs(grads.maps_t).max(), 0)
        self.assertIsNone(a.backward(np.ones((1, 6, 6)), map_grads=False).maps_s)
        with self.assertRaises(ValueError):
            a.forward(zs, zt, ms, None, gs, gt)
        with self.assertRaises(ValueError):
            a.forward(zs, zt, ms, mt)
        with self.assertRaises(ValueError):
            a.forward(zs, zt, ms, mt, gs[:, :1], gt)

    def test_errors(self):
        a = self.affinity()
        with self.assertRaises(lvmmed.StateError) as cm:
            a.backward(np.zeros((1, 6, 6)))
        self.assertIn("no forward", str(cm.exception))
        zs = self.rng.standard_normal((6, 5)).astype(np.float32)
        with self.assertRaises(ValueError):  # F = 5
            a.forward(zs[:, :4], zs[:, :4])
        with self.assertRaises(ValueError):
            a.forward(zs, zs[:5])
        with self.assertRaises(TypeError):
            a.forward(zs.astype(complex), zs)
        with self.assertRaises(lvmmed.ShapeError) as cm:
            a.forward(zs[:5], zs[:5])
        self.assertIn("no group", str(cm.exception))
        bad = zs.copy()
        bad[2, 2] = np.inf
        with self.assertRaises(lvmmed.NumericError):
            a.forward(bad, zs)
        a.forward(zs, zs)
        with self.assertRaises(ValueError):
            a.backward(np.zeros((2, 6, 6)))
        a.alpha = 0.9  # an option change discards the forward state
        with self.assertRaises(lvmmed.StateError):
            a.backward(np.zeros((1, 6, 6)))
        a.knn = 5
        a.group_size = 3
        with self.assertRaises(lvmmed.OutOfRangeError) as cm:
            a.forward(zs, zs)
        self.assertIn("must be < group size", str(cm.exception))
        with self.assertRaises(lvmmed.NotFoundError) as cm:
            a.read_param("gcn.7.weight")
        self.assertIn("gcn.7.weight", str(cm.exception))
        with self.assertRaises(lvmmed.NotFoundError):
            a.write_param("nope", np.zeros((1, 1)))
        with self.assertRaises(ValueError):
            a.write_param("gcn.0.weight", np.zeros((4, 5)))
        with self.assertRaises(lvmmed.NumericError):
            a.write_param("gcn.0.weight", np.full((5, 4), np.nan))
        a.close()
        with self.assertRaises(ValueError):
            a.parameters()


# --- I-MLE ----------------------------------------------------------------------------------------


class IMLETest(unittest.TestCase):
    G, N, E = 3, 5, 6

    def setUp(self):
        self.ctx = lvmmed.Context(threads=2, seed=21)
        self.addCleanup(self.ctx.close)
        rng = np.random.default_rng(22)
        problems = [random_lawler(rng, self.N, self.E) for _ in range(self.G)]
        self.unary = np.array([p[0] for p in problems])
        self.src = np.array([p[1] for p in problems])
        self.tgt = np.array([p[2] for p in problems])
        self.w = np.array([p[3] for p in problems])
        self.solvers = [lvmmed.GMSolver(self.ctx, "brute") for _ in range(2)]
        for s in self.solvers:
            self.addCleanup(s.close)

    def imle(self, **kw):
        im = lvmmed.IMLE(self.ctx, **kw)
        self.addCleanup(im.close)
        return im

    def test_options(self):
        im = self.imle(noise="sum_of_gamma", lambda_=5, samples=3, reduction="sum", noise_edges=False)
        self.assertEqual((im.noise, im.lambda_, im["lambda"], im.samples, im.reduction, im.noise_edges),
                         ("sum_of_gamma", 5.0, 5.0, 3, "sum", False))
        im.noise_counter = 2**40 - 1
        self.assertEqual(im.noise_counter, 2**40 - 1)
        with self.assertRaises(lvmmed.OutOfRangeError):
            im.noise_counter = 2**40
        with self.assertRaises(ValueError):
            im.noise = "uniform"
        with self.assertRaises(TypeError):
            lvmmed.IMLE(self.ctx, temperature=1)

    def test_noise_free_forward_loss_backward(self):
        lam = 3.0
        im = self.imle(noise="none", lambda_=lam, samples=2)
        perms = im.forward(self.solvers, self.unary, self.src, self.tgt, self.w)
        self.assertEqual((perms.shape, perms.dtype), ((self.G, 2, self.N), np.int32))
        ref = []
        for g in range(self.G):
            p, _ = brute_lawler(self.unary[g], self.src[g], self.tgt[g], self.w[g])
            ref.append(p)
            np.testing.assert_array_equal(perms[g, 0], p)
            np.testing.assert_array_equal(perms[g, 1], p)
        loss, per_graph = im.hamming_loss()
        ham = np.array([2.0 * np.sum(p != np.arange(self.N)) for p in ref])
        np.testing.assert_array_equal(per_graph, ham)
        self.assertAlmostEqual(loss, ham.mean(), places=12)
        gu, ge = im.backward(self.solvers)
        self.assertGreater(np.abs(gu).max(), 0)  # the target moved: the check below is not vacuous
        # Blackbox differentiation: target θ' = θ - λ(1 - 2I) on the unary part.
        eye = np.eye(self.N)
        for g in range(self.G):
            shifted = (self.unary[g] - lam * (1 - 2 * eye)).astype(np.float32)
            vp, _ = brute_lawler(shifted, self.src[g], self.tgt[g], self.w[g])
            v, v2 = np.zeros((self.N, self.N)), np.zeros((self.N, self.N))
            v[np.arange(self.N), ref[g]] = 1
            v2[np.arange(self.N), vp] = 1
            np.testing.assert_allclose(gu[g], (v - v2) / lam / self.G, atol=1e-7)
            ref_e = np.zeros((self.E, self.E))
            for e, (i, j) in enumerate(self.src[g]):
                for f, (a, b) in enumerate(self.tgt[g]):
                    ref_e[e, f] = (v[i, a] * v[j, b] - v2[i, a] * v2[j, b]) / lam / self.G
            np.testing.assert_allclose(ge[g], ref_e, atol=1e-7)
        # An explicit grad_perm equal to the Hamming gradient gives the same result.
        gp = np.broadcast_to((1 - 2 * eye).astype(np.float32), (self.G, 2, self.N, self.N))
        gu2, ge2 = im.backward(self.solvers[0], gp)
        np.testing.assert_array_equal(gu2, gu)
        np.testing.assert_array_equal(ge2, ge)
        self.assertIsNone(im.backward(self.solvers, edge_grad=False)[1])

    def test_noise_counter_and_determinism(self):
        im = self.imle(samples=2)
        a = im.forward(self.solvers, self.unary, self.src, self.tgt, self.w)
        self.assertEqual(im.noise_counter, 1)
        b = im.forward(self.solvers[:1], self.unary, self.src, self.tgt, self.w)
        self.assertEqual(im.noise_counter, 2)
        self.assertFalse(np.array_equal(a, b))  # counter 1 draws fresh noise
        im.noise_counter = 0
        out = np.empty_like(a)
        c = im.forward(self.solvers[0], self.unary, self.src, self.tgt, self.w, out=out)
        self.assertIs(c, out)
        np.testing.assert_array_equal(c, a)  # same counter, same noise, any number of solvers
        loss, per_graph = im.hamming_loss()
        self.assertEqual(per_graph.shape, (self.G,))
        self.assertAlmostEqual(loss, per_graph.mean(), places=12)

    def test_errors(self):
        im = self.imle()
        with self.assertRaises(lvmmed.StateError):
            im.hamming_loss()
        with self.assertRaises(lvmmed.StateError) as cm:
            im.backward(self.solvers)
        self.assertIn("no forward", str(cm.exception))
        with self.assertRaises(ValueError):
            im.forward([], self.unary, self.src, self.tgt, self.w)
        with self.assertRaises(TypeError):
            im.forward([self.ctx], self.unary, self.src, self.tgt, self.w)
        with self.assertRaises(ValueError):
            im.forward(self.solvers, self.unary, self.src[:2], self.tgt, self.w)
        with self.assertRaises(ValueError):
            im.forward(self.solvers, self.unary, self.src, self.tgt)
        with self.assertRaises(TypeError):
            im.forward(self.solvers, self.unary, self.src.astype(float), self.tgt, self.w)
        bad = self.src.copy()
        bad[1, 0, 1] = self.N
        with self.assertRaises(lvmmed.LvmmedError) as cm:
            im.forward(self.solvers, self.unary, bad, self.tgt, self.w)
        self.assertIn("lvmmed_imle_forward", str(cm.exception))
        im.forward(self.solvers, self.unary, self.src, self.tgt, self.w)
        with self.assertRaises(ValueError):
            im.backward(self.solvers, np.zeros((self.G, 2, self.N, self.N)))  # samples is 1
        im.lambda_ = 2.0  # discards the forward state
        with self.assertRaises(lvmmed.StateError):
            im.backward(self.solvers)
        closed = lvmmed.GMSolver(self.ctx)
        closed.close()
        with self.assertRaises(ValueError):
            im.forward([closed], self.unary, self.src, self.tgt, self.w)


if __name__ == "__main__":
    unittest.main()
