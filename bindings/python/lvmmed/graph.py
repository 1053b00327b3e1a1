"""Graph matching for LVM-Med: the QAP solver, the affinity builder, I-MLE (gm.h, affinity.h, imle.h).

Needs numpy. Arrays follow the C layouts: float32 affinities, int32 node
indices and permutations (``perm[i]`` is the target node of source node
i), float64 Koopmans–Beckmann matrices and LAP costs. C-contiguous inputs of
the right dtype are passed to C as they are; outputs are allocated with
``numpy.empty`` and filled in place, or written into ``out=`` arrays::

    with lvmmed.Context(threads=2, seed=0) as ctx, \\
            lvmmed.Affinity(ctx, group_size=16, feature_dim=128) as aff, \\
            lvmmed.IMLE(ctx, lambda_=80) as imle, lvmmed.GMSolver(ctx) as solver:
        f = aff.forward(z_s, z_t, maps_s, maps_t, grid_s, grid_t)
        perms = imle.forward(solver, f.unary, f.src_edges, f.tgt_edges, f.edge_affinity)
        loss, per_graph = imle.hamming_loss()
        g_unary, g_edge = imle.backward(solver)
        grads = aff.backward(g_unary, g_edge)
"""

import ctypes
from collections import namedtuple

from ._arrays import array_in, array_out, as_path, c_view, need_numpy, np, optional_in, out_tuple, ptr
from ._handle import Handle, Option, option_properties
from ._lib import AffinityPtr, GmSolverPtr, ImlePtr, lib, text
from .enums import Status
from .errors import StateError

# --- gm.h ---------------------------------------------------------------------------------------

#: Solver methods by name; the first name of each value is the library's own (lvmmed_gm_method_name).
METHODS = {"auto": 0, "lap": 1, "brute": 2, "sm": 3, "spectral": 3, "rrwm": 4, "ipfp": 5, "2opt": 6,
           "two_opt": 6}
#: Largest problem the brute-force method accepts (n! permutations).
BRUTE_MAX_N = 9


def method_name(method):
    """The library's lower-case name of a method given by value or name ("unknown" if none)."""
    if isinstance(method, str):
        method = METHODS.get(method.strip().lower(), -1)
    return text(lib.lvmmed_gm_method_name(int(method)))


def _ctx(context):
    """The C context of a Context (raises ValueError when it is closed)."""
    return context._handle()


def _no_forward(function):
    """StateError for a call that needs a forward pass the bindings do not know of."""
    return StateError(Status.ERR_STATE, f"{function}: no forward pass to use", function)


@option_properties
class GMSolver(Handle):
    """A graph-matching (quadratic assignment) solver: one problem, one method, reusable workspace.

    ``GMSolver(ctx, method="auto", max_iter=50, restarts=0, maximize=False)``;
    options left as None keep the library defaults. Lawler problems
    (:meth:`set_problem`, what LVM-Med builds) are maximised;
    Koopmans–Beckmann ones (:meth:`set_koopmans_beckmann`,
    :meth:`load_qaplib`) are minimised unless ``maximize`` is set.
    Methods: "auto", "lap", "brute" (n <= 9), "sm" (spectral), "rrwm",
    "ipfp", "2opt" (see :data:`METHODS` for aliases).
    """

    _c_free = lib.lvmmed_gm_solver_free
    _c_set = lib.lvmmed_gm_solver_set_option
    _c_get = lib.lvmmed_gm_solver_get_option
    _c_bounds = lib.lvmmed_gm_option_bounds
    _c_value = ctypes.c_int64
    _OPTIONS = {"method": Option(1, METHODS), "max_iter": Option(2, int), "restarts": Option(3, int),
                "maximize": Option(4, bool)}

    def __init__(self, context, method=None, *, max_iter=None, restarts=None, maximize=None):
        need_numpy("lvmmed.GMSolver")
        ptr_ = GmSolverPtr()
        lib.lvmmed_gm_solver_create(_ctx(context), ctypes.byref(ptr_))
        self._ptr = ptr_
        try:
            self._set_options(dict(method=method, max_iter=max_iter, restarts=restarts, maximize=maximize))
        except BaseException:
            self.close()
            raise

    @property
    def n(self):
        """Number of nodes of the current problem (0 if none is set)."""
        return lib.lvmmed_gm_problem_size(self._h())

    def set_problem(self, unary, src_edges=None, tgt_edges=None, edge_affinity=None):
        """Set a Lawler-form problem (maximised); the arrays are copied by the library.

        unary: (n, n) float32; src_edges (Es, 2) and tgt_edges (Et, 2) int32
        node pairs (i, j), or None for no edges; edge_affinity (Es, Et)
        float32, needed when both edge lists are non-empty.
        """
        u = array_in(unary, np.float32, "unary", (None, None))
        n = u.shape[0]
        if u.shape[1] != n:
            raise ValueError(f"unary must be square, not {u.shape}")
        es = array_in(src_edges if src_edges is not None else np.empty((0, 2), np.int32), np.int32,
                      "src_edges", (None, 2))
        et = array_in(tgt_edges if tgt_edges is not None else np.empty((0, 2), np.int32), np.int32,
                      "tgt_edges", (None, 2))
        w = optional_in(edge_affinity, np.float32, "edge_affinity", (es.shape[0], et.shape[0]))
        if w is None and es.shape[0] and et.shape[0]:
            raise ValueError("edge_affinity is needed when both edge lists are non-empty")
        lib.lvmmed_gm_set_problem(self._h(), n, ptr(u), es.shape[0], ptr(es), et.shape[0], ptr(et), ptr(w))

    def set_koopmans_beckmann(self, a, b):
        """Set a Koopmans–Beckmann problem J(p) = Σ A[i][j]·B[p[i]][p[j]] (float64 (n, n) each)."""
        a = array_in(a, np.float64, "a", (None, None))
        n = a.shape[0]
        a_shape = (n, n)
        if a.shape != a_shape:
            raise ValueError(f"a must be square, not {a.shape}")
        b = array_in(b, np.float64, "b", a_shape)
        lib.lvmmed_gm_set_koopmans_beckmann(self._h(), n, ptr(a), ptr(b))

    def load_qaplib(self, path):
        """Read a QAPLIB instance (.dat) as the current problem; returns its size n."""
        lib.lvmmed_gm_load_qaplib(self._h(), as_path(path))
        return self.n

    def solve(self, out=None):
        """Solve with the configured method: ``(permutation (n,) int32, objective)``."""
        n = self.n
        perm = array_out(out, (n,), np.int32)
        target = perm if n else np.empty(1, np.int32)  # no problem set: the library raises StateError
        obj = ctypes.c_double()
        lib.lvmmed_gm_solve(self._h(), ptr(target), ctypes.byref(obj))
        return perm, obj.value

    def brute_force(self, out=None):
        """Exhaustive search over all n! permutations (n <= 9; the oracle): ``(permutation, objective)``.

        Runs the "brute" method once; the configured method is left unchanged.
        """
        saved = self.get_option("method")
        self.set_option("method", "brute")
        try:
            return self.solve(out)
        finally:
            self.set_option("method", saved)

    def objective(self, permutation):
        """Objective J of a permutation of the current problem (validated by the library)."""
        p = array_in(permutation, np.int32, "permutation", (self.n,))
        obj = ctypes.c_double()
        lib.lvmmed_gm_objective(self._h(), ptr(p), ctypes.byref(obj))
        return obj.value


def solve_qaplib(context, path, method="auto", **options):
    """Load a QAPLIB instance and solve it: ``(permutation, objective)`` (options as GMSolver's)."""
    with GMSolver(context, method, **options) as solver:
        solver.load_qaplib(path)
        return solver.solve()


def read_qaplib_solution(path):
    """Read a QAPLIB solution file (.sln): ``(objective, permutation)`` with 0-based targets."""
    need_numpy("lvmmed.graph.read_qaplib_solution")
    with open(path, encoding="ascii") as f:
        tokens = f.read().split()
    try:
        n, objective = int(tokens[0]), float(tokens[1])
        perm = np.array([int(t) for t in tokens[2:]], np.int32) - 1
    except (IndexError, ValueError) as e:
        raise ValueError(f"{path}: not a QAPLIB solution ({e})") from None
    if perm.shape != (n,):
        raise ValueError(f"{path}: {perm.size} permutation entries for n = {n}")
    return objective, perm


def lap_solve(context, cost, maximize=False, out=None):
    """Exact linear assignment of a (rows, cols) cost matrix: ``(assignment (rows,) int32, total)``.

    With rows <= cols every row gets a distinct column; with rows > cols the
    unassigned rows get -1. cost is float64 (converted if needed).
    """
    need_numpy("lvmmed.lap_solve")
    c = array_in(cost, np.float64, "cost", (None, None))
    rows, cols = c.shape
    assignment = array_out(out, (rows,), np.int32)
    obj = ctypes.c_double()
    lib.lvmmed_lap_solve(_ctx(context), rows, cols, ptr(c), int(bool(maximize)), ptr(assignment),
                         ctypes.byref(obj))
    return assignment, obj.value


# --- affinity.h ---------------------------------------------------------------------------------

LOCAL_NORMS = {"mean": 0, "sum": 1, "one_way": 2}

#: Outputs of Affinity.forward: unary (G, N, N), edge_affinity (G, E, E), src/tgt_edges (G, E, 2).
AffinityOutput = namedtuple("AffinityOutput", ["unary", "edge_affinity", "src_edges", "tgt_edges"])
#: Outputs of Affinity.backward: dL/dz (n_images, F) and dL/dmaps (n_images, D, R, S) of each view.
AffinityGrads = namedtuple("AffinityGrads", ["z_s", "z_t", "maps_s", "maps_t"])
#: A GCN weight: name, shape (rows, cols), and writable views of its value and gradient in C memory.
Parameter = namedtuple("Parameter", ["name", "shape", "value", "grad"])


@option_properties
class Affinity(Handle):
    """LVM-Med's affinity builder: kNN graphs, a GCN, vertex (c_v) and edge (c_e) affinities.

    ``Affinity(ctx, group_size=16, knn=5, feature_dim=128, gcn_width=128,
    gcn_layers=2, gcn_relu_last=True, symmetrize=True, alpha=0.8,
    gamma_loc=20, gamma_feat=49, local_norm="mean")``: keywords left as None
    keep the library defaults. Changing feature_dim, gcn_width or gcn_layers
    re-initialises the GCN weights (earlier :meth:`parameters` views become
    invalid); any option change discards the saved forward pass.
    """

    _c_free = lib.lvmmed_affinity_free
    _c_set = lib.lvmmed_affinity_set_option
    _c_get = lib.lvmmed_affinity_get_option
    _c_bounds = lib.lvmmed_affinity_option_bounds
    _c_value = ctypes.c_double
    _OPTIONS = {"group_size": Option(1, int), "knn": Option(2, int), "feature_dim": Option(3, int),
                "gcn_width": Option(4, int), "gcn_layers": Option(5, int), "gcn_relu_last": Option(6, bool),
                "symmetrize": Option(7, bool), "alpha": Option(8, float), "gamma_loc": Option(9, int),
                "gamma_feat": Option(10, int), "local_norm": Option(11, LOCAL_NORMS)}

    def __init__(self, context, **options):
        need_numpy("lvmmed.Affinity")
        unknown = set(options) - set(self._OPTIONS)
        if unknown:
            raise TypeError(f"Affinity() got unknown options {sorted(unknown)}")
        ptr_ = AffinityPtr()
        lib.lvmmed_affinity_create(_ctx(context), ctypes.byref(ptr_))
        self._ptr = ptr_
        self._fwd = None  # what backward needs to size its outputs, and the feature maps C reads again
        try:
            self._set_options(options)
        except BaseException:
            self.close()
            raise

    def close(self):
        self._fwd = None
        super().close()

    def shape(self, n_images):
        """``(n_graphs, n_nodes, n_edges, out_dim)`` of a forward pass over n_images images."""
        g, n, e, d = (ctypes.c_size_t() for _ in range(4))
        lib.lvmmed_affinity_shape(self._h(), int(n_images), ctypes.byref(g), ctypes.byref(n), ctypes.byref(e),
                                  ctypes.byref(d))
        return g.value, n.value, e.value, d.value

    def forward(self, z_s, z_t, maps_s=None, maps_t=None, grid_s=None, grid_t=None, *, edges=True, out=None):
        """Build every graph of a batch: returns an :data:`AffinityOutput`.

        z_s, z_t: (B, F) node features of the two views (F = feature_dim);
        maps_s, maps_t: (B, D, R, S) feature maps, or None for no local term;
        grid_s, grid_t: (B, R, S, 2) cell locations (needed with maps).
        edges=False skips c_e and the edge lists (returned as None). out, if
        given, is a 4-tuple of arrays or None (allocated) in the output order.
        The maps are kept referenced for :meth:`backward` (the library reads
        them again there): do not modify them in between.
        """
        h = self._h()
        f = int(self.get_option("feature_dim"))
        zs = array_in(z_s, np.float32, "z_s", (None, f))
        b = zs.shape[0]
        zt = array_in(z_t, np.float32, "z_t", (b, f))
        if (maps_s is None) != (maps_t is None):
            raise ValueError("give both feature maps or neither")
        ms = optional_in(maps_s, np.float32, "maps_s", (b, None, None, None))
        mt = gs = gt = None
        d = r = s = 0
        if ms is not None:
            d, r, s = ms.shape[1:]
            mt = array_in(maps_t, np.float32, "maps_t", ms.shape)
            if grid_s is None or grid_t is None:
                raise ValueError("feature maps need both location grids")
            gs = array_in(grid_s, np.float32, "grid_s", (b, r, s, 2))
            gt = array_in(grid_t, np.float32, "grid_t", (b, r, s, 2))
        g, n, e, _ = self.shape(b)
        o_u, o_w, o_es, o_et = out_tuple(out, 4, "forward")
        unary = array_out(o_u, (g, n, n), np.float32, "unary")
        w = array_out(o_w, (g, e, e), np.float32, "edge_affinity") if edges else None
        es = array_out(o_es, (g, e, 2), np.int32, "src_edges") if edges else None
        et = array_out(o_et, (g, e, 2), np.int32, "tgt_edges") if edges else None
        self._fwd = None
        lib.lvmmed_affinity_forward(h, b, ptr(zs), ptr(zt), ptr(ms), ptr(mt), d, r, s, ptr(gs), ptr(gt),
                                    ptr(unary), ptr(w), ptr(es), ptr(et))
        self._fwd = dict(b=b, f=f, g=g, n=n, e=e, maps_s=ms, maps_t=mt)
        return AffinityOutput(unary, w, es, et)

    def backward(self, grad_unary=None, grad_edge=None, *, z_grads=True, map_grads=True, out=None):
        """Back-propagate dL/dc_v (G, N, N) and dL/dc_e (G, E, E) of the last forward.

        Either gradient may be None (zero). Returns an :data:`AffinityGrads`;
        z_grads=False / map_grads=False skip those outputs (None; the map
        gradients are None anyway without maps). The GCN weight gradients
        are ADDED to :meth:`parameters`' grad buffers (see :meth:`zero_grad`).
        out, if given, is a 4-tuple of arrays or None in the output order.
        Without a forward the library raises StateError.
        """
        h = self._h()
        fw = self._fwd
        if fw is None:  # let the library say why (with NULL buffers it cannot write anything)
            lib.lvmmed_affinity_backward(h, None, None, None, None, None, None, None, None)
            raise _no_forward("lvmmed_affinity_backward")  # pragma: no cover - the library raised
        g, n, e, b, f = fw["g"], fw["n"], fw["e"], fw["b"], fw["f"]
        gu = optional_in(grad_unary, np.float32, "grad_unary", (g, n, n))
        ge = optional_in(grad_edge, np.float32, "grad_edge", (g, e, e))
        o_zs, o_zt, o_ms, o_mt = out_tuple(out, 4, "backward")
        dzs = array_out(o_zs, (b, f), np.float32, "grad_z_s") if z_grads else None
        dzt = array_out(o_zt, (b, f), np.float32, "grad_z_t") if z_grads else None
        ms, mt = fw["maps_s"], fw["maps_t"]
        want_maps = map_grads and ms is not None
        dms = array_out(o_ms, ms.shape, np.float32, "grad_maps_s") if want_maps else None
        dmt = array_out(o_mt, mt.shape, np.float32, "grad_maps_t") if want_maps else None
        lib.lvmmed_affinity_backward(h, ptr(gu), ptr(ge), ptr(ms), ptr(mt), ptr(dzs), ptr(dzt), ptr(dms),
                                     ptr(dmt))
        return AffinityGrads(dzs, dzt, dms, dmt)

    # -- parameters (the GCN weights) ---------------------------------------------------------
    def _param_info(self, index):
        name, rows, cols = ctypes.c_char_p(), ctypes.c_size_t(), ctypes.c_size_t()
        lib.lvmmed_affinity_param_info(self._h(), index, ctypes.byref(name), ctypes.byref(rows),
                                       ctypes.byref(cols))
        return text(name.value), (rows.value, cols.value)

    def param_names(self):
        """Names of the GCN weights ("gcn.<l>.weight"), in layer order."""
        return [self._param_info(i)[0] for i in range(lib.lvmmed_affinity_param_count(self._h()))]

    def parameters(self):
        """[:data:`Parameter`] with float32 (rows, cols) views of the C buffers (no copies).

        Writing ``value`` changes the weights in place (as an optimizer does;
        the views can go straight to :meth:`lvmmed.Optimizer.add_param`). The
        views keep this object alive, but become invalid after close() or a
        change of feature_dim, gcn_width or gcn_layers: fetch them again then.
        """
        out = []
        for i in range(lib.lvmmed_affinity_param_count(self._h())):
            name, shape = self._param_info(i)
            value, grad = ctypes.c_void_p(), ctypes.c_void_p()
            lib.lvmmed_affinity_param_data(self._h(), i, ctypes.byref(value), ctypes.byref(grad))
            out.append(Parameter(name, shape, c_view(value.value, shape, np.float32, self),
                                 c_view(grad.value, shape, np.float32, self)))
        return out

    def _param_shape(self, name):
        for i in range(lib.lvmmed_affinity_param_count(self._h())):
            pname, shape = self._param_info(i)
            if pname == name:
                return shape
        return None

    def read_param(self, name, out=None):
        """A copy of the named weight, (rows, cols) float32 (into out if given)."""
        shape = self._param_shape(name)
        if shape is None:  # the library names the missing tensor
            lib.lvmmed_affinity_param_read(self._h(), name.encode(), None, 0)
        dst = array_out(out, shape, np.float32)
        lib.lvmmed_affinity_param_read(self._h(), name.encode(), ptr(dst), dst.size)
        return dst

    def write_param(self, name, value):
        """Overwrite the named weight (rows, cols) from value (finite); discards the forward state."""
        shape = self._param_shape(name)
        if shape is None:
            lib.lvmmed_affinity_param_write(self._h(), name.encode(), None, 0)
        src = array_in(value, np.float32, name, shape)
        lib.lvmmed_affinity_param_write(self._h(), name.encode(), ptr(src), src.size)
        self._fwd = None

    def state_dict(self):
        """{name: copy of the weight}."""
        return {name: self.read_param(name) for name in self.param_names()}

    def zero_grad(self):
        """Set every weight gradient to zero."""
        lib.lvmmed_affinity_zero_grad(self._h())

    def reset_params(self):
        """Re-initialise the weights from the context seed, zero the gradients, drop the forward state."""
        self._fwd = None
        lib.lvmmed_affinity_reset_params(self._h())

    def set_option(self, name, value):
        super().set_option(name, value)
        self._fwd = None  # the library discarded its forward state

    set_option.__doc__ = Handle.set_option.__doc__
    __setitem__ = set_option



def knn_graph(context, x, k, out=None):
    """Directed kNN graph of the rows of x (n, dim): (n·k, 2) int32 pairs (i, j), nearest first.

    Ties go to the lower index; 1 <= k < n.
    """
    need_numpy("lvmmed.knn_graph")
    a = array_in(x, np.float32, "x", (None, None))
    n, dim = a.shape
    k = int(k)
    if not 1 <= k < n:
        raise ValueError(f"knn_graph: k = {k} must be in [1, n) for n = {n} points")
    edges = array_out(out, (n * k, 2), np.int32)
    lib.lvmmed_knn_graph(_ctx(context), n, dim, ptr(a), k, ptr(edges))
    return edges


def gcn_adjacency(context, n, edges, symmetrize=True, out=None):
    """GCN propagation matrix D^-1/2 (A + I) D^-1/2 (n, n) float32 of an (E, 2) int32 edge list."""
    need_numpy("lvmmed.gcn_adjacency")
    e = array_in(edges, np.int32, "edges", (None, 2))
    adj = array_out(out, (int(n), int(n)), np.float32)
    lib.lvmmed_gcn_adjacency(_ctx(context), int(n), e.shape[0], ptr(e), int(bool(symmetrize)), ptr(adj))
    return adj


# --- imle.h -------------------------------------------------------------------------------------

NOISES = {"none": 0, "gumbel": 1, "sum_of_gamma": 2}
REDUCTIONS = {"mean": 0, "sum": 1}


def _solver_array(solvers):
    """A ``lvmmed_gm_solver *[]`` of one GMSolver or a sequence of them (kept by the caller)."""
    if isinstance(solvers, GMSolver):
        solvers = [solvers]
    solvers = list(solvers)
    if not solvers:
        raise ValueError("at least one GMSolver is needed")
    for s in solvers:
        if not isinstance(s, GMSolver):
            raise TypeError(f"solvers must be GMSolver objects, not {type(s).__name__}")
    return (GmSolverPtr * len(solvers))(*[s._h() for s in solvers]), len(solvers)


@option_properties
class IMLE(Handle):
    """I-MLE gradients through graph-matching solvers (perturb-and-MAP, imle.h).

    ``IMLE(ctx, noise="gumbel", noise_scale=1, sog_kappa=0, sog_terms=10,
    lambda_=80, samples=1, noise_edges=True, reduction="mean",
    noise_counter=0)`` (``lambda`` is spelt ``lambda_`` as a keyword and
    property; ``imle["lambda"]`` works too). Every call takes one GMSolver
    or a list of them, all configured alike; pass one per context thread for
    full parallelism.
    """

    _c_free = lib.lvmmed_imle_free
    _c_set = lib.lvmmed_imle_set_option
    _c_get = lib.lvmmed_imle_get_option
    _c_bounds = lib.lvmmed_imle_option_bounds
    _c_value = ctypes.c_double
    _OPTIONS = {"noise": Option(1, NOISES), "noise_scale": Option(2, float), "sog_kappa": Option(3, float),
                "sog_terms": Option(4, int), "lambda": Option(5, float), "samples": Option(6, int),
                "noise_edges": Option(7, bool), "reduction": Option(8, REDUCTIONS),
                "noise_counter": Option(9, int)}

    def __init__(self, context, **options):
        need_numpy("lvmmed.IMLE")
        if "lambda_" in options:
            options["lambda"] = options.pop("lambda_")
        unknown = set(options) - set(self._OPTIONS)
        if unknown:
            raise TypeError(f"IMLE() got unknown options {sorted(unknown)}")
        ptr_ = ImlePtr()
        lib.lvmmed_imle_create(_ctx(context), ctypes.byref(ptr_))
        self._ptr = ptr_
        self._fwd = None  # (n_graphs, samples, n, n_src_edges, n_tgt_edges) of the last forward
        try:
            self._set_options(options)
        except BaseException:
            self.close()
            raise

    def forward(self, solvers, unary, src_edges, tgt_edges, edge_affinity=None, out=None):
        """Perturb-and-MAP over G graphs: permutations (G, samples, n) int32.

        unary: (G, n, n) float32 c_v; src_edges (G, Es, 2), tgt_edges (G, Et, 2)
        int32; edge_affinity (G, Es, Et) float32 (None only when an edge
        count is 0). Uses and then increments noise_counter.
        """
        h = self._h()
        arr, count = _solver_array(solvers)
        u = array_in(unary, np.float32, "unary", (None, None, None))
        g, n = u.shape[0], u.shape[1]
        if u.shape[2] != n:
            raise ValueError(f"unary must be (G, n, n), not {u.shape}")
        es = array_in(src_edges, np.int32, "src_edges", (g, None, 2))
        et = array_in(tgt_edges, np.int32, "tgt_edges", (g, None, 2))
        n_es, n_et = es.shape[1], et.shape[1]
        w = optional_in(edge_affinity, np.float32, "edge_affinity", (g, n_es, n_et))
        if w is None and n_es and n_et:
            raise ValueError("edge_affinity is needed when both edge lists are non-empty")
        samples = int(self.get_option("samples"))
        perms = array_out(out, (g, samples, n), np.int32, "permutations")
        self._fwd = None
        lib.lvmmed_imle_forward(h, arr, count, g, n, ptr(u), n_es, ptr(es), n_et, ptr(et), ptr(w), ptr(perms))
        self._fwd = (g, samples, n, n_es, n_et)
        return perms

    def hamming_loss(self):
        """Hamming loss of the last forward against the identity: ``(loss, per_graph (G,) float64)``."""
        h = self._h()
        loss = ctypes.c_double()
        if self._fwd is None:
            lib.lvmmed_imle_hamming_loss(h, ctypes.byref(loss), None)  # the library raises StateError
            raise _no_forward("lvmmed_imle_hamming_loss")  # pragma: no cover
        per_graph = np.empty(self._fwd[0], np.float64)
        lib.lvmmed_imle_hamming_loss(h, ctypes.byref(loss), ptr(per_graph))
        return loss.value, per_graph

    def backward(self, solvers, grad_perm=None, *, edge_grad=True, out=None):
        """I-MLE backward of the last forward: ``(grad_unary (G, n, n), grad_edge (G, Es, Et))``.

        grad_perm: (G, samples, n, n) float32 loss gradients per sample, or
        None for the Hamming loss against the identity. edge_grad=False skips
        grad_edge (None). out: a 2-tuple of arrays or None.
        """
        h = self._h()
        arr, count = _solver_array(solvers)
        if self._fwd is None:  # the library raises StateError
            lib.lvmmed_imle_backward(h, arr, count, None, None, None)
            raise _no_forward("lvmmed_imle_backward")  # pragma: no cover
        g, s, n, n_es, n_et = self._fwd
        gp = optional_in(grad_perm, np.float32, "grad_perm", (g, s, n, n))
        o_u, o_e = out_tuple(out, 2, "backward")
        gu = array_out(o_u, (g, n, n), np.float32, "grad_unary")
        ge = array_out(o_e, (g, n_es, n_et), np.float32, "grad_edge") if edge_grad else None
        lib.lvmmed_imle_backward(h, arr, count, ptr(gp), ptr(gu), ptr(ge))
        return gu, ge

    def set_option(self, name, value):
        super().set_option(name, value)
        if name != "noise_counter":
            self._fwd = None  # the library discarded its forward state

    set_option.__doc__ = Handle.set_option.__doc__
    __setitem__ = set_option
