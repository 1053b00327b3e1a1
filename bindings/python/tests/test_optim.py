"""Optimizers and schedules against torch.optim / torch.optim.lr_scheduler (Debian's python3-torch)."""

import math
import unittest

import numpy as np

import lvmmed

try:
    import torch
except ImportError:  # pragma: no cover - CI installs python3-torch
    torch = None

STEPS = 25


def _problem(seed, shapes=((37, 5), (129,), (3, 3, 3, 4))):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(STEPS)]
    return params, grads


def _run_ours(method, params, grads, flags=None, **options):
    with lvmmed.Context(threads=2, seed=0) as ctx:
        opt = lvmmed.Optimizer(ctx, method, **options)
        data = [p.copy() for p in params]
        gbuf = [np.zeros_like(p) for p in params]
        for i, (d, g) in enumerate(zip(data, gbuf)):
            opt.add_param(f"p{i}", d, g, flags[i] if flags else 0)
        lrs = []
        for step in range(STEPS):
            for g, src in zip(gbuf, grads[step]):
                g[...] = src
            lrs.append(opt.lr)
            opt.step()
        state = {k: v.copy() for k, v in opt.state().items()}
        opt.close()
        return data, lrs, state


def _run_torch(make_opt, params, grads, make_sched=None):
    tp = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = make_opt(tp)
    sched = make_sched(opt) if make_sched else None
    lrs = []
    for step in range(STEPS):
        for t, g in zip(tp, grads[step]):
            t.grad = torch.tensor(g)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched:
            sched.step()
    return [t.detach().numpy() for t in tp], lrs, opt


@unittest.skipIf(torch is None, "needs python3-torch")
class TorchParity(unittest.TestCase):
    # After 25 steps float32 rounding differences stay near 1 ulp per step.
    RTOL, ATOL = 1e-5, 1e-6

    def assert_close(self, ours, ref):
        for a, b in zip(ours, ref):
            np.testing.assert_allclose(a, b, rtol=self.RTOL, atol=self.ATOL)

    def test_sgd_momentum_weight_decay(self):
        params, grads = _problem(1)
        ours, _, state = _run_ours("sgd", params, grads, lr=0.05, momentum=0.9, weight_decay=1e-3)
        ref, _, topt = _run_torch(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
                                  params, grads)
        self.assert_close(ours, ref)
        buf = topt.state[topt.param_groups[0]["params"][0]]["momentum_buffer"].numpy().ravel()
        np.testing.assert_allclose(state["p0.momentum"], buf, rtol=self.RTOL, atol=self.ATOL)

    def test_sgd_nesterov_and_plain(self):
        params, grads = _problem(2)
        ours, _, _ = _run_ours("sgd", params, grads, lr=0.1, momentum=0.8, nesterov=1)
        ref, _, _ = _run_torch(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True), params, grads)
        self.assert_close(ours, ref)
        ours, _, _ = _run_ours("sgd", params, grads, lr=0.1, momentum=0)
        ref, _, _ = _run_torch(lambda p: torch.optim.SGD(p, lr=0.1), params, grads)
        self.assert_close(ours, ref)

    def test_adam(self):
        params, grads = _problem(3)
        ours, _, state = _run_ours("adam", params, grads, lr=2e-3, weight_decay=1e-4)
        ref, _, topt = _run_torch(lambda p: torch.optim.Adam(p, lr=2e-3, weight_decay=1e-4), params, grads)
        self.assert_close(ours, ref)
        st = topt.state[topt.param_groups[0]["params"][1]]
        np.testing.assert_allclose(state["p1.exp_avg"], st["exp_avg"].numpy(), rtol=self.RTOL, atol=1e-7)
        np.testing.assert_allclose(state["p1.exp_avg_sq"], st["exp_avg_sq"].numpy(), rtol=self.RTOL, atol=1e-9)

    def test_adamw(self):
        params, grads = _problem(4)
        ours, _, _ = _run_ours("adam", params, grads, lr=1e-2, weight_decay=0.05, decoupled=1,
                               beta1=0.8, beta2=0.99, eps=1e-6)
        ref, _, _ = _run_torch(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05, betas=(0.8, 0.99),
                                                           eps=1e-6), params, grads)
        self.assert_close(ours, ref)

    def test_step_schedule_halving(self):
        params, grads = _problem(5)
        ours, lrs, _ = _run_ours("adam", params, grads, lr=2e-3, schedule="step", step_every=6, gamma=0.5)
        ref, tlrs, _ = _run_torch(lambda p: torch.optim.Adam(p, lr=2e-3), params, grads,
                                  lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=6, gamma=0.5))
        np.testing.assert_allclose(lrs, tlrs, rtol=1e-12)
        self.assert_close(ours, ref)

    def test_cosine_schedule(self):
        params, grads = _problem(6)
        ours, lrs, _ = _run_ours("sgd", params, grads, lr=0.2, momentum=0.9, schedule="cosine",
                                 total_steps=STEPS, min_lr_ratio=0.1)
        ref, tlrs, _ = _run_torch(lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9), params, grads,
                                  lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.02))
        np.testing.assert_allclose(lrs, tlrs, rtol=1e-9)
        self.assert_close(ours, ref)


class LarsAndSchedule(unittest.TestCase):
    def test_lars_matches_formula(self):
        params, grads = _problem(7)
        flags = [0, lvmmed.optim.NO_ADAPT, 0]
        ours, _, _ = _run_ours("lars", params, grads, flags=flags, lr=0.3, momentum=0.9, weight_decay=1e-4,
                               trust=0.001)
        ref = [p.astype(np.float64) for p in params]
        bufs = [np.zeros_like(r) for r in ref]
        for step in range(STEPS):
            for i, (w, b) in enumerate(zip(ref, bufs)):
                g = grads[step][i].astype(np.float64)
                if flags[i] == 0:
                    g = g + 1e-4 * w
                    pn, gn = np.linalg.norm(w), np.linalg.norm(g)
                    g = g * (0.001 * pn / gn if pn > 0 and gn > 0 else 1.0)
                b *= 0.9
                b += g
                w -= 0.3 * b
        for a, r in zip(ours, ref):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)

    def test_warmup_then_cosine(self):
        with lvmmed.Context() as ctx:
            opt = lvmmed.Optimizer(ctx, "adam", lr=1.0, schedule="cosine", warmup_steps=4, total_steps=14)
            self.assertEqual([opt.lr_at(s) for s in range(4)], [0.25, 0.5, 0.75, 1.0])
            self.assertAlmostEqual(opt.lr_at(9), 0.5, places=12)
            self.assertEqual(opt.lr_at(14), 0.0)
            self.assertEqual(opt.lr_at(1000), 0.0)
            opt.close()

    def test_validation(self):
        with lvmmed.Context() as ctx:
            opt = lvmmed.Optimizer(ctx, "sgd")
            with self.assertRaises(lvmmed.OutOfRangeError) as cm:
                opt["momentum"] = 1.5
            self.assertIn("momentum", str(cm.exception))
            with self.assertRaises(lvmmed.OutOfRangeError):
                opt["warmup_steps"] = 2.5
            w, g = np.ones(4, np.float32), np.zeros(4, np.float32)
            opt.add_param("w", w, g)
            with self.assertRaises(lvmmed.LvmmedError):
                opt.add_param("w", w.copy(), g.copy())  # duplicate name
            g[2] = np.nan
            with self.assertRaises(lvmmed.LvmmedError) as cm:
                opt.step()
            self.assertIn("not finite", str(cm.exception))
            np.testing.assert_array_equal(w, np.ones(4, np.float32))  # nothing changed
            self.assertEqual(opt.steps, 0)
            g[2] = 0.0
            opt.step()
            with self.assertRaises(lvmmed.LvmmedError):  # too late to add tensors
                opt.add_param("v", np.ones(2, np.float32), np.ones(2, np.float32))
            opt.close()

    def test_deterministic(self):
        params, grads = _problem(8, shapes=((300, 300),))
        a, _, _ = _run_ours("lars", params, grads, lr=0.1)
        b, _, _ = _run_ours("lars", params, grads, lr=0.1)
        self.assertTrue(np.array_equal(a[0], b[0]))


if __name__ == "__main__":
    unittest.main()
