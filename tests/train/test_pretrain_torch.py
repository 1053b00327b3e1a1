"""One LVM-Med pretraining step against a PyTorch autograd reference of the same step.

lvmmed.Pretrainer.forward_backward (resnet18, I-MLE without noise, 16 image
pairs) runs on seeded random views; the reference rebuilds the step in
PyTorch (float64) from the pretrainer's initial weights, read before the step
(forward_backward changes no weight, only the batch-norm running statistics):

    torchvision resnet18 (fc removed; one pass over [views_s; views_t], train-mode
    batch norm unless frozen_bn) → projector Linear → z_s = z[:B], z_t = z[B:]
      → affinity: the autograd reference of tests/graph/test_affinity_torch.py
        (kNN edges computed by torch from z, without gradient, ties to the lower
        index; GCN; c_v = α·global cosine + the MEAN local term from the feature
        maps and location grids; c_e)
      → solver outputs: the library's GMSolver (the pretrainer solver's method)
        on torch's c_v, c_e as float32 gives ṽ, and on the I-MLE target
        θ' = c_v − λ·(1 − 2I) (formed in float32 as the library does; edges
        unchanged) gives v'
      → dL/dc_v = (ṽ − v') / (λ·G), dL/dc_e[e][f] = (ṽ_ia ṽ_jb − v'_ia v'_jb) / (λ·G)
        for e = (i→j), f = (a→b) (include/lvmmed/imle.h: no noise, one sample)
      → autograd of Σ c_v·dL/dc_v + Σ c_e·dL/dc_e.

Errors are normwise: max|ours − torch64| / max|torch64| per tensor.

Why the backbone's parameter gradients are checked twice. A float32 forward
of a ReLU network puts, at random inputs, about one of its ~10^6 ReLU inputs
within rounding of zero; that unit then flips, and in train mode batch norm's
backward spreads the changed gradient over the whole channel and every layer
below. The float64 reference itself moves by ~5e-3 (up to 1e-1 on single
tensors) when the input moves by 1e-6, and PyTorch float32 misses its own
float64 by as much at 30-100 % of the seeds (measured: 32×32 and 64×64, train
mode). So:

  end to end     every tensor against torch64. Tight (FLOOR, or 5 × PyTorch
                 float32's own error when larger): loss (exactly), GCN and
                 projector gradients, running statistics. Backbone gradients:
                 only what a ReLU flip cannot explain (all of them normwise
                 <= 3e-2, each tensor <= 0.25).
  composition    a second lvmmed.Backbone with the same weights replays the
                 step's forward (bit-identical: its running statistics must
                 equal the pretrainer's exactly) and back-propagates torch's
                 dL/dz and dL/d(feature maps). With the same ReLU decisions as
                 the step, its gradients must match the step's tightly, which
                 proves that the step feeds the backbone the right gradients
                 through the right path. The backbone's own backward is
                 checked against torchvision by tests/backbone.

Also: the lent affinity builder on torch's z gives the same kNN edges and
c_v, c_e within 1e-4, and the solver's outputs on its c_v equal those on
torch's (the step is not on a near-tie of the solver). Self-checks show the
comparison can fail: references with λ scaled by 1.5, with the feature-map
gradient path cut, or without the local term must miss by far.

Run by meson (suite train) under Debian's /usr/bin/python3 with LVMMED_LIBRARY
and PYTHONPATH set.
"""

import os
import sys
import unittest

import numpy as np
import torch
import torchvision

import lvmmed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "graph"))
import test_affinity_torch as affref  # noqa: E402  (the affinity reference: kNN, GCN, c_v, c_e)

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

FLOOR = 2e-4          # normwise error floor of the tight checks (gradients)
FLOOR_RUNNING = 1e-5  # ... of the running statistics
F32_FACTOR = 5.0      # or this multiple of PyTorch float32's error on the same tensor
FLIP_GLOBAL = 3e-2    # end to end, all backbone gradients together (ReLU flips; see above)
FLIP_TENSOR = 0.25    # end to end, each backbone gradient tensor
WORST = {}            # (case, group) -> (worst error, tensor, PyTorch float32's error there)


def relerr(ours, ref):
    ref = np.asarray(ref, np.float64)
    scale = np.abs(ref).max()
    return float(np.abs(np.asarray(ours, np.float64) - ref).max() / (scale if scale > 0 else 1.0))


def global_err(ours, ref, names):
    a = np.concatenate([np.ravel(ours[k]) for k in names])
    r = np.concatenate([np.ravel(ref[k]) for k in names])
    return float(np.linalg.norm(a - r) / np.linalg.norm(r))


def group_of(name, ndim):
    if name.startswith("gcn."):
        return "gcn"
    if name.startswith("projector"):
        return "projector"
    return "conv" if ndim == 4 else "bn"


def onehot(perm, n):
    m = np.zeros((n, n))
    m[np.arange(n), perm] = 1.0
    return m


class Setup:
    """Inputs, options and the pretrainer's tensors before the step."""

    def __init__(self, pt, vs, vt, gs, gt):
        self.vs, self.vt, self.gs, self.gt = vs, vt, gs, gt
        self.backbone = pt.backbone.state_dict()
        self.gcn = pt.affinity.state_dict()
        self.gcn_names = pt.affinity.param_names()
        self.train_bn = not pt["frozen_bn"]
        self.local = bool(pt["local_term"])
        a = pt.affinity
        self.cfg = dict(group=a["group_size"], k=a["knn"], symmetrize=int(a["symmetrize"]),
                        relu_last=int(a["gcn_relu_last"]), alpha=a["alpha"], gamma_loc=a["gamma_loc"],
                        gamma_feat=a["gamma_feat"], norm=lvmmed.graph.LOCAL_NORMS[a["local_norm"]])
        self.lam = pt.imle["lambda"]
        self.method = pt.solver["method"]


def torch_model(setup, dtype):
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    sd = {k: torch.tensor(v) for k, v in setup.backbone.items() if not k.startswith("projector")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model = model.to(dtype)
    model.train(setup.train_bn)
    return model


def solve(ctx, method, unary, src, tgt, edge):
    s = lvmmed.GMSolver(ctx, method=method)
    try:
        s.set_problem(unary, src, tgt, edge)
        return s.solve()[0]
    finally:
        s.close()


def torch_step(ctx, setup, dtype, perms=None, lam_scale=1.0, detach_maps=False, drop_local=False):
    """The reference step; perms = [(ṽ, v') per graph] reuses solver outputs, else they are solved here.
    The keyword arguments after perms make deliberately wrong references for the self-checks."""
    model = torch_model(setup, dtype)
    x = torch.tensor(np.concatenate([setup.vs, setup.vt]), dtype=dtype)
    f = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    fmap = model.layer4(model.layer3(model.layer2(model.layer1(f))))
    pooled = torch.flatten(model.avgpool(fmap), 1)
    pw = torch.tensor(setup.backbone["projector.weight"], dtype=dtype, requires_grad=True)
    pb = torch.tensor(setup.backbone["projector.bias"], dtype=dtype, requires_grad=True)
    z = (pooled @ pw.T + pb).double()  # the affinity reference works in float64
    z.retain_grad()
    b = setup.vs.shape[0]
    zs, zt = z[:b], z[b:]
    ms = mt = gs = gt = maps = None
    if setup.local and not drop_local:
        maps = fmap.double().clone()  # its own node: its gradient is the local term's path only
        if detach_maps:
            maps = maps.detach()
        else:
            maps.retain_grad()
        flat = maps.reshape(2 * b, maps.shape[1], -1)
        ms, mt = flat[:b], flat[b:]
        gs = torch.tensor(setup.gs.reshape(b, -1, 2), dtype=torch.float64)
        gt = torch.tensor(setup.gt.reshape(b, -1, 2), dtype=torch.float64)
    gcn = [torch.tensor(setup.gcn[n], dtype=torch.float64, requires_grad=True) for n in setup.gcn_names]
    cv, ce, edges = affref.reference(setup.cfg, zs, zt, ms, mt, gs, gt, gcn)
    n_g, n = cv.shape[0], cv.shape[1]
    lam = setup.lam * lam_scale
    solved = []
    dcv = np.zeros(cv.shape)
    dce = np.zeros(ce.shape)
    loss = 0.0
    for g in range(n_g):
        es = edges[2 * g].numpy().astype(np.int32)
        et = edges[2 * g + 1].numpy().astype(np.int32)
        u32 = cv[g].detach().numpy().astype(np.float32)
        e32 = ce[g].detach().numpy().astype(np.float32)
        if perms is None:
            v = solve(ctx, setup.method, u32, es, et, e32)
            target = u32 - np.float32(lam) * (1 - 2 * np.eye(n, dtype=np.float32))
            vp = solve(ctx, setup.method, target, es, et, e32)
        else:
            v, vp = perms[g]
        solved.append((v, vp))
        loss += 2.0 * np.count_nonzero(v != np.arange(n))
        dcv[g] = (onehot(v, n) - onehot(vp, n)) / (lam * n_g)
        # e = (i→j) ∈ E^s, f = (a→b) ∈ E^t: ṽ[i][a]·ṽ[j][b] = [ṽ(i) = a and ṽ(j) = b]
        hit = lambda p: ((p[es[:, 0]][:, None] == et[None, :, 0]) &  # noqa: E731
                         (p[es[:, 1]][:, None] == et[None, :, 1])).astype(np.float64)
        dce[g] = (hit(v) - hit(vp)) / (lam * n_g)
    surrogate = (cv * torch.tensor(dcv)).sum() + (ce * torch.tensor(dce)).sum()
    surrogate.backward()
    grads = {k: p.grad.double().numpy() for k, p in model.named_parameters()}
    grads["projector.weight"] = pw.grad.double().numpy()
    grads["projector.bias"] = pb.grad.double().numpy()
    for name, w in zip(setup.gcn_names, gcn):
        grads[name] = w.grad.numpy()
    buffers = {k: v.double().numpy() for k, v in model.named_buffers() if "running" in k}
    d_maps = None
    if setup.local:
        d_maps = np.zeros(tuple(fmap.shape)) if maps is None or maps.grad is None else maps.grad.numpy()
    return dict(loss=loss / n_g, grads=grads, buffers=buffers, perms=solved, z=z.detach().numpy(),
                d_z=z.grad.numpy(), maps=None if ms is None else maps.detach().numpy(), d_maps=d_maps,
                cv=cv.detach().numpy(), ce=ce.detach().numpy(), edges=[e.numpy() for e in edges])


def replay_backbone(ctx, setup, d_z, d_maps):
    """A second Backbone with the step's initial tensors: the step's forward again, then backward
    of the given dL/dz and dL/d(feature maps). Returns (gradients, running statistics)."""
    bb = lvmmed.Backbone(ctx, "resnet18")
    try:
        for name, value in setup.backbone.items():
            bb.set(name, value)
        bb.train = setup.train_bn
        bb.grad_enabled = True
        bb.zero_grad()
        pooled, _ = bb.forward(np.concatenate([setup.vs, setup.vt]))
        bb.project(pooled)
        d_pooled = bb.project_backward(d_z.astype(np.float32))
        bb.backward(d_pooled, None if d_maps is None else d_maps.astype(np.float32))
        grads, buffers = {}, {}
        for name, kind, _ in bb.tensors():
            if kind == "parameter":
                grads[name] = bb.grad(name)
            elif "running" in name:
                buffers[name] = bb.get(name)
        return grads, buffers
    finally:
        bb.close()


class PretrainStepTorch(unittest.TestCase):
    ctx = None
    _runs = {}

    @classmethod
    def setUpClass(cls):
        cls.ctx = lvmmed.Context(threads=2, seed=20240611)

    @classmethod
    def tearDownClass(cls):
        cls._runs.clear()
        cls.ctx.close()
        print("worst errors (ours vs PyTorch float64; PyTorch float32's error on that tensor):", file=sys.stderr)
        for (case, group), (err, name, err32) in sorted(WORST.items()):
            extra = "" if err32 is None else f"; torch32 {err32:.3g}"
            print(f"  {case:10s} {group:22s} {err:.3g}  ({name}{extra})", file=sys.stderr)

    def record(self, case, group, name, err, err32=None):
        if err >= WORST.get((case, group), (-1.0,))[0]:
            WORST[(case, group)] = (err, name, err32)

    def run_step(self, case, size, seed, group_size=None, gamma=None, frozen_bn=False):
        """Our step against the reference (once per case); returns (setup, ours, torch64, tight
        tolerances by tensor) for the self-checks."""
        if case in self._runs:
            return self._runs[case]
        rng = np.random.default_rng(seed)
        b = 16
        pt = lvmmed.Pretrainer(self.ctx, arch="resnet18", frozen_bn=frozen_bn)
        pt.imle["noise"] = "none"
        if group_size is not None:
            pt.affinity["group_size"] = group_size
        if gamma is not None:
            pt.affinity["gamma_loc"], pt.affinity["gamma_feat"] = gamma
        if frozen_bn:  # running statistics that make eval-mode batch norm non-trivial
            for name, kind, shape in pt.backbone.tensors():
                if name.endswith("running_mean"):
                    pt.backbone.set(name, 0.1 * rng.standard_normal(shape))
                elif name.endswith("running_var"):
                    pt.backbone.set(name, 0.5 + rng.random(shape))
        vs = rng.standard_normal((b, 3, size, size)).astype(np.float32)
        # t is a noisy copy of s: the matching is partly right, partly wrong
        vt = (0.8 * vs + 0.6 * rng.standard_normal(vs.shape)).astype(np.float32)
        gh, gw = pt.grid_shape(size, size)
        gs = (rng.random((b, gh, gw, 2)) * 224).astype(np.float32)
        gt = (rng.random((b, gh, gw, 2)) * 224).astype(np.float32)
        setup = Setup(pt, vs, vt, gs, gt)

        loss = pt.forward_backward(vs, vt, gs, gt)
        ours = {"grads": {}, "buffers": {}}
        for name, kind, _ in pt.backbone.tensors():
            if kind == "parameter":
                ours["grads"][name] = pt.backbone.grad(name)
            elif "running" in name:
                ours["buffers"][name] = pt.backbone.get(name)
        for p in pt.affinity.parameters():
            ours["grads"][p.name] = p.grad.copy()
            np.testing.assert_array_equal(p.value, setup.gcn[p.name], "forward_backward changed a GCN weight")

        ref = torch_step(self.ctx, setup, torch.float64)
        ref32 = torch_step(self.ctx, setup, torch.float32, perms=ref["perms"])
        self.assertEqual(set(ours["grads"]), set(ref["grads"]), f"{case}: parameter names")
        self.assertEqual(set(ours["buffers"]), set(ref["buffers"]), f"{case}: running statistic names")

        # the same solver outputs give exactly the same Hamming loss; and a non-zero gradient
        self.assertEqual(loss, ref["loss"], f"{case}: loss")
        self.assertEqual(pt.stat("graphs"), len(ref["perms"]))
        self.assertTrue(any(np.any(v != vp) for v, vp in ref["perms"]),
                        f"{case}: ṽ = v' in every graph, all gradients would be zero (pick other inputs)")
        self.check_affinity(case, pt, setup, ref)
        pt.close()

        # end to end: tight where no ReLU flip reaches, flip-sized bounds on the backbone
        tols = {}
        backbone = sorted(k for k in ours["grads"] if group_of(k, 0) not in ("gcn", "projector"))
        for name, g in ours["grads"].items():
            group = group_of(name, np.ndim(g))
            err, err32 = relerr(g, ref["grads"][name]), relerr(ref32["grads"][name], ref["grads"][name])
            self.record(case, group + " (end to end)", name, err, err32)
            if name in backbone:
                self.assertLessEqual(err, FLIP_TENSOR, f"{case}: gradient of {name}: error {err:.3g}")
            else:
                tols[name] = max(FLOOR, F32_FACTOR * err32)
                self.assertLessEqual(err, tols[name], f"{case}: gradient of {name}: error {err:.3g} "
                                     f"> {tols[name]:.3g} (PyTorch float32: {err32:.3g})")
        for name, v in ours["buffers"].items():
            err, err32 = relerr(v, ref["buffers"][name]), relerr(ref32["buffers"][name], ref["buffers"][name])
            self.record(case, "running stats", name, err, err32)
            tol = max(FLOOR_RUNNING, F32_FACTOR * err32)
            self.assertLessEqual(err, tol, f"{case}: {name} after the pass: error {err:.3g} > {tol:.3g}")
            if frozen_bn:
                np.testing.assert_array_equal(v, setup.backbone[name], f"{case}: frozen {name} changed")
        g_err = global_err(ours["grads"], ref["grads"], backbone)
        g_err32 = global_err(ref32["grads"], ref["grads"], backbone)
        self.record(case, "backbone all (e2e)", "normwise 2-norm", g_err, g_err32)
        self.assertLessEqual(g_err, FLIP_GLOBAL, f"{case}: all backbone gradients: error {g_err:.3g}")

        # composition: the step's forward replayed, torch's upstream gradients back-propagated
        grads, buffers = replay_backbone(self.ctx, setup, ref["d_z"], ref["d_maps"])
        for name, v in buffers.items():
            np.testing.assert_array_equal(v, ours["buffers"][name],
                                          f"{case}: the replayed forward differs from the step's ({name})")
        for name, g in grads.items():
            err = relerr(ours["grads"][name], g)
            self.record(case, group_of(name, np.ndim(g)) + " (composition)", name, err)
            tols.setdefault(name, FLOOR)
            self.assertLessEqual(err, FLOOR, f"{case}: gradient of {name} against the replay: "
                                 f"error {err:.3g} > {FLOOR:.3g}")
        print(f"pretrain {case}: loss {loss:g}, backbone gradients end to end {g_err:.3g} "
              f"(PyTorch float32 {g_err32:.3g})", file=sys.stderr)
        self._runs[case] = (setup, ours, ref, tols)
        return self._runs[case]

    def check_affinity(self, case, pt, setup, ref):
        """The lent affinity builder on torch's z (as float32): same kNN edges, close c_v and c_e,
        and the solver's outputs on its c_v equal those on torch's (no near-tie in the step)."""
        b = setup.vs.shape[0]
        z = ref["z"].astype(np.float32)
        maps = grids = (None, None)
        if ref["maps"] is not None:
            m = ref["maps"].astype(np.float32)
            maps, grids = (m[:b], m[b:]), (setup.gs, setup.gt)
        out = pt.affinity.forward(z[:b], z[b:], maps[0], maps[1], grids[0], grids[1])
        for g in range(out.unary.shape[0]):
            np.testing.assert_array_equal(out.src_edges[g], ref["edges"][2 * g], f"{case}: source edges")
            np.testing.assert_array_equal(out.tgt_edges[g], ref["edges"][2 * g + 1], f"{case}: target edges")
            v = solve(self.ctx, setup.method, out.unary[g], out.src_edges[g], out.tgt_edges[g],
                      out.edge_affinity[g])
            np.testing.assert_array_equal(v, ref["perms"][g][0], f"{case}: solver output on our c_v")
        err_v = float(np.abs(out.unary - ref["cv"]).max())
        err_e = float(np.abs(out.edge_affinity - ref["ce"]).max())
        self.record(case, "c_v, c_e (absolute)", "lent affinity on torch's z", max(err_v, err_e))
        self.assertLess(err_v, 1e-4, f"{case}: c_v")
        self.assertLess(err_e, 1e-4, f"{case}: c_e")

    # -- the cases ----------------------------------------------------------------------------------
    def step_32(self):
        return self.run_step("32x32", 32, seed=1)

    def test_step_32(self):
        """The issue's case: resnet18 at 32×32, 16 images, fixed (no) noise; 1×1 feature maps."""
        self.step_32()

    def test_step_64_local(self):
        """2×2 feature maps (non-trivial location/feature matches and top-γ), two graphs of 8."""
        self.run_step("64x64", 64, seed=1, group_size=8, gamma=(2, 3))

    def test_step_frozen_bn(self):
        """Eval-mode batch norm from non-trivial running statistics, which must stay unchanged."""
        self.run_step("frozen_bn", 32, seed=2, frozen_bn=True)

    def test_can_fail(self):
        """Wrong references fail the tight tolerances by far: λ scaled by 1.5, the gradient path
        through the feature maps cut, the step without the local term."""
        setup, ours, ref, tols = self.step_32()
        for label, kw in (("lambda x1.5", dict(lam_scale=1.5, perms=ref["perms"])),
                          ("maps detached", dict(detach_maps=True, perms=ref["perms"])),
                          ("no local term", dict(drop_local=True))):
            bad = torch_step(self.ctx, setup, torch.float64, **kw)
            expect = dict(bad["grads"])
            expect.update(replay_backbone(self.ctx, setup, bad["d_z"], bad["d_maps"])[0])
            ratio, name = max((relerr(ours["grads"][k], expect[k]) / tol, k) for k, tol in tols.items())
            print(f"pretrain self-check {label}: worst error / tolerance = {ratio:.3g} ({name})", file=sys.stderr)
            self.assertGreater(ratio, 10, f"self-check {label}: the wrong reference passed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
