"""Loading liblvmmed and declaring its C functions.

This is the only module that touches the raw shared library. Every exported
function is declared once, in ``_FUNCTIONS`` below (name -> restype,
argtypes); adding a new C function to the bindings is one table line.

Search order for the library (the first that loads wins):

1. ``LVMMED_LIBRARY``: a path to the .so (or to a directory holding
   ``liblvmmed.so.0``). If it is set and fails to load, nothing else is
   tried, so a typo never silently picks up another copy.
2. The build tree: walking up from this package to the repository root,
   ``build/liblvmmed.so.0`` first, then the other ``build*/`` directories in
   sorted order. Sanitizer builds are skipped: an ASan library cannot be
   loaded into a Python that was not started with the ASan runtime
   preloaded (point ``LVMMED_LIBRARY`` at one to use it anyway).
3. The installed library by SONAME (``liblvmmed.so.0``), then whatever
   ``ctypes.util.find_library('lvmmed')`` reports.
"""

import ctypes
import ctypes.util
import json
import os

SONAME = "liblvmmed.so.0"
ENV_VAR = "LVMMED_LIBRARY"

# --- C types ------------------------------------------------------------------


class lvmmed_ctx(ctypes.Structure):
    """Opaque ``struct lvmmed_ctx``; only ever used through a pointer."""

    _fields_ = []


CtxPtr = ctypes.POINTER(lvmmed_ctx)


class lvmmed_backbone(ctypes.Structure):
    """Opaque ``struct lvmmed_backbone``; only ever used through a pointer."""

    _fields_ = []


BackbonePtr = ctypes.POINTER(lvmmed_backbone)


class lvmmed_gm_solver(ctypes.Structure):
    """Opaque ``struct lvmmed_gm_solver``; only ever used through a pointer."""

    _fields_ = []


GmSolverPtr = ctypes.POINTER(lvmmed_gm_solver)


class lvmmed_optimizer(ctypes.Structure):
    """Opaque ``struct lvmmed_optimizer``; only ever used through a pointer."""

    _fields_ = []


OptimizerPtr = ctypes.POINTER(lvmmed_optimizer)


class lvmmed_pretrainer(ctypes.Structure):
    """Opaque ``struct lvmmed_pretrainer``; only ever used through a pointer."""

    _fields_ = []


PretrainerPtr = ctypes.POINTER(lvmmed_pretrainer)


class lvmmed_image(ctypes.Structure):
    """Opaque ``struct lvmmed_image``; only ever used through a pointer."""

    _fields_ = []


ImagePtr = ctypes.POINTER(lvmmed_image)


class lvmmed_augmenter(ctypes.Structure):
    """Opaque ``struct lvmmed_augmenter``; only ever used through a pointer."""

    _fields_ = []


AugmenterPtr = ctypes.POINTER(lvmmed_augmenter)


class lvmmed_dataset(ctypes.Structure):
    """Opaque ``struct lvmmed_dataset``; only ever used through a pointer."""

    _fields_ = []


DatasetPtr = ctypes.POINTER(lvmmed_dataset)


class lvmmed_affinity(ctypes.Structure):
    """Opaque ``struct lvmmed_affinity``; only ever used through a pointer."""

    _fields_ = []


AffinityPtr = ctypes.POINTER(lvmmed_affinity)


class lvmmed_imle(ctypes.Structure):
    """Opaque ``struct lvmmed_imle``; only ever used through a pointer."""

    _fields_ = []


ImlePtr = ctypes.POINTER(lvmmed_imle)

#: ``void (*)(void *user, lvmmed_log_level level, const char *message)``
LogFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
#: ``void *(*)(void *user, size_t size, size_t alignment)``
AllocFn = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
#: ``void (*)(void *user, void *ptr, size_t size)``
FreeFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class lvmmed_allocator(ctypes.Structure):
    """``struct lvmmed_allocator`` (copied by the library at context creation)."""

    _fields_ = [("alloc", AllocFn), ("free", FreeFn), ("user", ctypes.c_void_p)]


class _StatusType(ctypes.c_int):
    """Marker restype: a fallible call returning ``lvmmed_status``.

    Functions declared with it get an errcheck that raises
    :class:`lvmmed.errors.LvmmedError` on a negative status. It is never
    instantiated; the real restype is ``c_int``.
    """


STATUS = _StatusType
c_int, c_uint, c_char_p = ctypes.c_int, ctypes.c_uint, ctypes.c_char_p
c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_size_t, c_void_p = ctypes.c_size_t, ctypes.c_void_p
c_int_p, c_size_t_p = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_size_t)

# --- the declaration table ------------------------------------------------------
# name: (restype, [argtypes]). STATUS = returns lvmmed_status and raises on error.
# Enum parameters are c_int (C enums are int-sized on every ABI we target).
_FUNCTIONS = {
    # version.h
    "lvmmed_version_string": (c_char_p, []),
    "lvmmed_version_number": (c_uint, []),
    "lvmmed_abi_version": (c_uint, []),
    "lvmmed_abi_check": (c_int, [c_uint]),  # a verdict, not an error: never raises
    # status.h
    "lvmmed_status_name": (c_char_p, [c_int]),
    "lvmmed_status_describe": (c_char_p, [c_int]),
    # ctx.h
    "lvmmed_ctx_create": (STATUS, [ctypes.POINTER(CtxPtr)]),
    "lvmmed_ctx_create_with_allocator": (STATUS, [ctypes.POINTER(CtxPtr), ctypes.POINTER(lvmmed_allocator)]),
    "lvmmed_ctx_retain": (CtxPtr, [CtxPtr]),
    "lvmmed_ctx_release": (None, [CtxPtr]),
    "lvmmed_ctx_refcount": (c_uint, [CtxPtr]),
    "lvmmed_ctx_set_option": (STATUS, [CtxPtr, c_int, ctypes.c_int64]),
    "lvmmed_ctx_get_option": (STATUS, [CtxPtr, c_int, c_int64_p]),
    "lvmmed_ctx_option_bounds": (STATUS, [c_int, c_int64_p, c_int64_p]),
    "lvmmed_ctx_set_log_callback": (STATUS, [CtxPtr, LogFn, ctypes.c_void_p]),
    "lvmmed_ctx_last_error": (c_char_p, [CtxPtr]),
    "lvmmed_ctx_last_status": (c_int, [CtxPtr]),  # a query: never raises
    "lvmmed_ctx_clear_error": (None, [CtxPtr]),
    "lvmmed_backend_available": (c_int, [c_int]),
    "lvmmed_backend_name": (c_char_p, [c_int]),
    # backbone.h (float arrays as void pointers)
    "lvmmed_backbone_create": (STATUS, [CtxPtr, c_int, c_size_t, ctypes.POINTER(BackbonePtr)]),
    "lvmmed_backbone_create_from_file": (STATUS, [CtxPtr, c_char_p, c_size_t, ctypes.POINTER(BackbonePtr)]),
    "lvmmed_backbone_free": (None, [BackbonePtr]),
    "lvmmed_backbone_ctx": (CtxPtr, [BackbonePtr]),
    "lvmmed_backbone_set_option": (STATUS, [BackbonePtr, c_int, ctypes.c_int64]),
    "lvmmed_backbone_get_option": (STATUS, [BackbonePtr, c_int, c_int64_p]),
    "lvmmed_backbone_option_bounds": (STATUS, [c_int, c_int64_p, c_int64_p]),
    "lvmmed_backbone_info": (STATUS, [BackbonePtr, c_int_p, c_size_t_p, c_size_t_p]),
    "lvmmed_backbone_map_shape": (STATUS, [BackbonePtr, c_size_t, c_size_t, c_size_t_p, c_size_t_p, c_size_t_p]),
    "lvmmed_backbone_init_weights": (STATUS, [BackbonePtr, ctypes.c_uint64]),
    "lvmmed_backbone_forward": (STATUS, [BackbonePtr, c_void_p, c_size_t, c_size_t, c_size_t, c_void_p, c_void_p]),
    "lvmmed_backbone_backward": (STATUS, [BackbonePtr, c_void_p, c_void_p, c_void_p]),
    "lvmmed_backbone_zero_grad": (STATUS, [BackbonePtr]),
    "lvmmed_backbone_projector_dim": (c_size_t, [BackbonePtr]),
    "lvmmed_backbone_project": (STATUS, [BackbonePtr, c_void_p, c_size_t, c_void_p]),
    "lvmmed_backbone_project_backward": (STATUS, [BackbonePtr, c_void_p, c_void_p]),
    "lvmmed_backbone_tensor_count": (c_size_t, [BackbonePtr]),
    "lvmmed_backbone_tensor": (STATUS, [BackbonePtr, c_size_t, ctypes.POINTER(c_char_p), c_int_p, c_size_t_p, c_size_t_p, c_size_t_p, ctypes.POINTER(c_void_p), ctypes.POINTER(c_void_p)]),
    "lvmmed_backbone_find_tensor": (STATUS, [BackbonePtr, c_char_p, c_size_t_p]),
    "lvmmed_backbone_load": (STATUS, [BackbonePtr, c_char_p, c_uint, c_size_t_p, c_size_t_p]),
    "lvmmed_backbone_load_memory": (STATUS, [BackbonePtr, c_void_p, c_size_t, c_uint, c_size_t_p, c_size_t_p]),
    "lvmmed_backbone_save": (STATUS, [BackbonePtr, c_char_p]),
    # image.h, augment.h, dataset.h (handles and float arrays as void pointers)
    "lvmmed_image_create": (STATUS, [CtxPtr, ctypes.POINTER(ImagePtr)]),
    "lvmmed_image_free": (None, [ImagePtr]),
    "lvmmed_image_ctx": (CtxPtr, [ImagePtr]),
    "lvmmed_image_set_option": (STATUS, [ImagePtr, c_int, ctypes.c_int64]),
    "lvmmed_image_get_option": (STATUS, [ImagePtr, c_int, c_int64_p]),
    "lvmmed_image_option_bounds": (STATUS, [c_int, c_int64_p, c_int64_p]),
    "lvmmed_image_read_file": (STATUS, [ImagePtr, c_char_p]),
    "lvmmed_image_read_memory": (STATUS, [ImagePtr, c_void_p, c_size_t, c_char_p]),
    "lvmmed_image_set_pixels": (STATUS, [ImagePtr, c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]),
    "lvmmed_image_get": (STATUS, [ImagePtr, c_int, c_int64_p]),
    "lvmmed_image_data": (c_void_p, [ImagePtr]),
    "lvmmed_image_range": (STATUS, [ImagePtr, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_image_nominal_range": (STATUS, [ImagePtr, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_image_apply_intensity": (STATUS, [ImagePtr, c_int, ctypes.c_double, ctypes.c_double]),
    "lvmmed_image_convert_channels": (STATUS, [ImagePtr, ctypes.c_int64]),
    "lvmmed_image_detect_format": (c_int, [c_void_p, c_size_t]),
    "lvmmed_image_format_available": (c_int, [c_int]),
    "lvmmed_image_format_name": (c_char_p, [c_int]),
    "lvmmed_sample_format_name": (c_char_p, [c_int]),
    "lvmmed_augmenter_create": (STATUS, [CtxPtr, ctypes.POINTER(AugmenterPtr)]),
    "lvmmed_augmenter_free": (None, [AugmenterPtr]),
    "lvmmed_augmenter_ctx": (CtxPtr, [AugmenterPtr]),
    "lvmmed_augmenter_set_option": (STATUS, [AugmenterPtr, c_int, ctypes.c_double]),
    "lvmmed_augmenter_get_option": (STATUS, [AugmenterPtr, c_int, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_augmenter_option_bounds": (STATUS, [c_int, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_augmenter_set_seed": (STATUS, [AugmenterPtr, ctypes.c_uint64]),
    "lvmmed_augmenter_get_seed": (STATUS, [AugmenterPtr, ctypes.POINTER(ctypes.c_uint64)]),
    "lvmmed_augmenter_view_size": (STATUS, [AugmenterPtr, c_size_t_p, c_size_t_p]),
    "lvmmed_augmenter_views": (STATUS, [AugmenterPtr, ImagePtr, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, c_void_p, c_void_p, c_void_p]),
    "lvmmed_dataset_create": (STATUS, [CtxPtr, AugmenterPtr, ctypes.POINTER(DatasetPtr)]),
    "lvmmed_dataset_free": (None, [DatasetPtr]),
    "lvmmed_dataset_ctx": (CtxPtr, [DatasetPtr]),
    "lvmmed_dataset_set_option": (STATUS, [DatasetPtr, c_int, ctypes.c_int64]),
    "lvmmed_dataset_get_option": (STATUS, [DatasetPtr, c_int, c_int64_p]),
    "lvmmed_dataset_option_bounds": (STATUS, [c_int, c_int64_p, c_int64_p]),
    "lvmmed_dataset_add_folder": (STATUS, [DatasetPtr, c_char_p]),
    "lvmmed_dataset_add_list": (STATUS, [DatasetPtr, c_char_p]),
    "lvmmed_dataset_add_file": (STATUS, [DatasetPtr, c_char_p]),
    "lvmmed_dataset_item_path": (c_char_p, [DatasetPtr, c_size_t]),
    "lvmmed_dataset_stat": (STATUS, [DatasetPtr, c_int, c_int64_p]),
    "lvmmed_dataset_start_epoch": (STATUS, [DatasetPtr, ctypes.c_uint32]),
    "lvmmed_dataset_start_epoch_at": (STATUS, [DatasetPtr, ctypes.c_uint32, ctypes.c_uint64]),
    "lvmmed_dataset_next_batch": (STATUS, [DatasetPtr, c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_size_t_p]),
    # gm.h (arrays as void pointers: float32 unary/affinities, int32 edges and permutations, float64 KB)
    "lvmmed_gm_solver_create": (STATUS, [CtxPtr, ctypes.POINTER(GmSolverPtr)]),
    "lvmmed_gm_solver_free": (None, [GmSolverPtr]),
    "lvmmed_gm_solver_ctx": (CtxPtr, [GmSolverPtr]),
    "lvmmed_gm_solver_set_option": (STATUS, [GmSolverPtr, c_int, ctypes.c_int64]),
    "lvmmed_gm_solver_get_option": (STATUS, [GmSolverPtr, c_int, c_int64_p]),
    "lvmmed_gm_option_bounds": (STATUS, [c_int, c_int64_p, c_int64_p]),
    "lvmmed_gm_method_name": (c_char_p, [c_int]),
    "lvmmed_gm_set_problem": (STATUS, [GmSolverPtr, c_size_t, c_void_p, c_size_t, c_void_p, c_size_t, c_void_p, c_void_p]),
    "lvmmed_gm_set_koopmans_beckmann": (STATUS, [GmSolverPtr, c_size_t, c_void_p, c_void_p]),
    "lvmmed_gm_load_qaplib": (STATUS, [GmSolverPtr, c_char_p]),
    "lvmmed_gm_problem_size": (c_size_t, [GmSolverPtr]),
    "lvmmed_gm_solve": (STATUS, [GmSolverPtr, c_void_p, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_gm_objective": (STATUS, [GmSolverPtr, c_void_p, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_lap_solve": (STATUS, [CtxPtr, c_size_t, c_size_t, c_void_p, c_int, c_void_p, ctypes.POINTER(ctypes.c_double)]),
    # affinity.h (arrays as void pointers: float32 features/maps/affinities, int32 edges)
    "lvmmed_affinity_create": (STATUS, [CtxPtr, ctypes.POINTER(AffinityPtr)]),
    "lvmmed_affinity_free": (None, [AffinityPtr]),
    "lvmmed_affinity_ctx": (CtxPtr, [AffinityPtr]),
    "lvmmed_affinity_set_option": (STATUS, [AffinityPtr, c_int, ctypes.c_double]),
    "lvmmed_affinity_get_option": (STATUS, [AffinityPtr, c_int, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_affinity_option_bounds": (STATUS, [c_int, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_affinity_shape": (STATUS, [AffinityPtr, c_size_t, c_size_t_p, c_size_t_p, c_size_t_p, c_size_t_p]),
    "lvmmed_affinity_forward": (STATUS, [AffinityPtr, c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_size_t, c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p]),
    "lvmmed_affinity_backward": (STATUS, [AffinityPtr, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p]),
    "lvmmed_affinity_param_count": (c_size_t, [AffinityPtr]),
    "lvmmed_affinity_param_info": (STATUS, [AffinityPtr, c_size_t, ctypes.POINTER(c_char_p), c_size_t_p, c_size_t_p]),
    "lvmmed_affinity_param_data": (STATUS, [AffinityPtr, c_size_t, ctypes.POINTER(c_void_p), ctypes.POINTER(c_void_p)]),
    "lvmmed_affinity_param_read": (STATUS, [AffinityPtr, c_char_p, c_void_p, c_size_t]),
    "lvmmed_affinity_param_write": (STATUS, [AffinityPtr, c_char_p, c_void_p, c_size_t]),
    "lvmmed_affinity_zero_grad": (STATUS, [AffinityPtr]),
    "lvmmed_affinity_reset_params": (STATUS, [AffinityPtr]),
    "lvmmed_knn_graph": (STATUS, [CtxPtr, c_size_t, c_size_t, c_void_p, c_size_t, c_void_p]),
    "lvmmed_gcn_adjacency": (STATUS, [CtxPtr, c_size_t, c_size_t, c_void_p, c_int, c_void_p]),
    # imle.h (solvers as an array of GmSolverPtr; arrays as void pointers)
    "lvmmed_imle_create": (STATUS, [CtxPtr, ctypes.POINTER(ImlePtr)]),
    "lvmmed_imle_free": (None, [ImlePtr]),
    "lvmmed_imle_ctx": (CtxPtr, [ImlePtr]),
    "lvmmed_imle_set_option": (STATUS, [ImlePtr, c_int, ctypes.c_double]),
    "lvmmed_imle_get_option": (STATUS, [ImlePtr, c_int, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_imle_option_bounds": (STATUS, [c_int, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_imle_forward": (STATUS, [ImlePtr, ctypes.POINTER(GmSolverPtr), c_size_t, c_size_t, c_size_t, c_void_p, c_size_t, c_void_p, c_size_t, c_void_p, c_void_p, c_void_p]),
    "lvmmed_imle_hamming_loss": (STATUS, [ImlePtr, ctypes.POINTER(ctypes.c_double), c_void_p]),
    "lvmmed_imle_backward": (STATUS, [ImlePtr, ctypes.POINTER(GmSolverPtr), c_size_t, c_void_p, c_void_p, c_void_p]),
    # optim.h
    "lvmmed_optimizer_create": (STATUS, [CtxPtr, c_int, ctypes.POINTER(OptimizerPtr)]),
    "lvmmed_optimizer_free": (None, [OptimizerPtr]),
    "lvmmed_optimizer_ctx": (CtxPtr, [OptimizerPtr]),
    "lvmmed_optimizer_set_option": (STATUS, [OptimizerPtr, c_int, ctypes.c_double]),
    "lvmmed_optimizer_get_option": (STATUS, [OptimizerPtr, c_int, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_optim_option_bounds": (STATUS, [c_int, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_optimizer_add_param": (STATUS, [OptimizerPtr, c_char_p, c_void_p, c_void_p, c_size_t, c_uint]),
    "lvmmed_optimizer_step": (STATUS, [OptimizerPtr]),
    "lvmmed_optimizer_lr": (STATUS, [OptimizerPtr, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_optimizer_lr_at": (STATUS, [OptimizerPtr, ctypes.c_uint64, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_optimizer_steps": (ctypes.c_uint64, [OptimizerPtr]),
    "lvmmed_optimizer_set_steps": (STATUS, [OptimizerPtr, ctypes.c_uint64]),
    "lvmmed_optimizer_state_count": (c_size_t, [OptimizerPtr]),
    "lvmmed_optimizer_state": (STATUS, [OptimizerPtr, c_size_t, ctypes.POINTER(c_char_p), ctypes.POINTER(c_void_p), c_size_t_p]),
    # pretrain.h (views and grids as void pointers to float32)
    "lvmmed_pretrainer_create": (STATUS, [CtxPtr, ctypes.POINTER(PretrainerPtr)]),
    "lvmmed_pretrainer_free": (None, [PretrainerPtr]),
    "lvmmed_pretrainer_ctx": (CtxPtr, [PretrainerPtr]),
    "lvmmed_pretrainer_set_option": (STATUS, [PretrainerPtr, c_int, ctypes.c_double]),
    "lvmmed_pretrainer_get_option": (STATUS, [PretrainerPtr, c_int, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_pretrainer_option_bounds": (STATUS, [c_int, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_pretrainer_stat": (STATUS, [PretrainerPtr, c_int, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_pretrainer_backbone": (BackbonePtr, [PretrainerPtr]),
    "lvmmed_pretrainer_affinity": (AffinityPtr, [PretrainerPtr]),
    "lvmmed_pretrainer_imle": (ImlePtr, [PretrainerPtr]),
    "lvmmed_pretrainer_optimizer": (OptimizerPtr, [PretrainerPtr]),
    "lvmmed_pretrainer_solver": (GmSolverPtr, [PretrainerPtr]),
    "lvmmed_pretrainer_grid_shape": (STATUS, [PretrainerPtr, c_size_t, c_size_t, c_size_t_p, c_size_t_p]),
    "lvmmed_pretrainer_forward_backward": (STATUS, [PretrainerPtr, c_size_t, c_size_t, c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_pretrainer_update": (STATUS, [PretrainerPtr]),
    "lvmmed_pretrainer_step": (STATUS, [PretrainerPtr, c_size_t, c_size_t, c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_pretrainer_step_dataset": (STATUS, [PretrainerPtr, DatasetPtr, ctypes.POINTER(ctypes.c_double)]),
    "lvmmed_pretrainer_save": (STATUS, [PretrainerPtr, c_char_p]),
    "lvmmed_pretrainer_load": (STATUS, [PretrainerPtr, c_char_p]),
    "lvmmed_checkpoint_read_meta": (STATUS, [CtxPtr, c_char_p, c_char_p, ctypes.c_char_p, c_size_t]),
}

#: Names of every C function this module declares, in table order.
DECLARED_FUNCTIONS = tuple(_FUNCTIONS)

# --- locating the library ---------------------------------------------------------


def _is_sanitizer_build(build_dir):
    """True for a meson build directory configured with -Db_sanitize (or named so)."""
    name = os.path.basename(build_dir).lower()
    if "asan" in name or "sanitize" in name or "ubsan" in name:
        return True
    info = os.path.join(build_dir, "meson-info", "intro-buildoptions.json")
    try:
        with open(info, encoding="utf-8") as f:
            options = json.load(f)
    except (OSError, ValueError):
        return False
    for opt in options:
        if opt.get("name") == "b_sanitize":
            return opt.get("value") not in (None, "none", "")
    return False


def _repo_root(start):
    """The nearest ancestor of start that looks like the liblvmmed source tree."""
    d = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(d, "meson.build")) and os.path.isdir(
            os.path.join(d, "include", "lvmmed")
        ):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def build_tree_candidates(start=None):
    """Paths of ``build*/liblvmmed.so.0`` in the source tree above start, best first."""
    root = _repo_root(start or os.path.dirname(os.path.abspath(__file__)))
    if root is None:
        return []
    try:
        dirs = sorted(
            e for e in os.listdir(root)
            if e.startswith("build") and os.path.isdir(os.path.join(root, e))
        )
    except OSError:
        return []
    # build/ first: it is the conventional default build directory.
    dirs.sort(key=lambda e: e != "build")
    out = []
    for e in dirs:
        bdir = os.path.join(root, e)
        path = os.path.join(bdir, SONAME)
        if os.path.exists(path) and not _is_sanitizer_build(bdir):
            out.append(path)
    return out


def _load():
    """Load the library; returns (CDLL, path or None). Raises ImportError listing every try."""
    tried = []
    env = os.environ.get(ENV_VAR)
    if env:
        path = os.path.join(env, SONAME) if os.path.isdir(env) else env
        try:
            return ctypes.CDLL(path), os.path.abspath(path)
        except OSError as e:
            hint = ""
            if "asan" in str(e).lower() or "sanitizer" in str(e).lower():
                hint = " (a sanitizer build needs LD_PRELOAD of the sanitizer runtime)"
            raise ImportError(
                f"liblvmmed: {ENV_VAR}={env!r} could not be loaded: {e}{hint}"
            ) from e
    tried.append(f"{ENV_VAR} (not set)")

    for path in build_tree_candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path}: {e}")
    if len(tried) == 1:
        tried.append("build tree: no build*/" + SONAME + " (sanitizer builds skipped)")

    try:
        return ctypes.CDLL(SONAME), None
    except OSError as e:
        tried.append(f"{SONAME}: {e}")

    found = ctypes.util.find_library("lvmmed")
    if found:
        try:
            return ctypes.CDLL(found), None
        except OSError as e:
            tried.append(f"find_library('lvmmed') -> {found}: {e}")
    else:
        tried.append("ctypes.util.find_library('lvmmed'): nothing found")

    raise ImportError(
        "liblvmmed could not be loaded. Build it (meson setup build && meson compile -C build) "
        f"or set {ENV_VAR} to the path of {SONAME}. Tried:\n  " + "\n  ".join(tried)
    )


def _mapped_path(cdll):
    """Resolve the file a CDLL came from via /proc/self/maps (Linux); None if unknown."""
    try:
        addr = ctypes.cast(cdll.lvmmed_version_string, ctypes.c_void_p).value
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split(None, 5)
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if lo <= addr < hi and len(fields) == 6:
                    return fields[5].strip()
    except (OSError, AttributeError, ValueError):
        pass
    return None


# --- declaring ------------------------------------------------------------------------


#: How a failed call finds the context whose last_error explains it, keyed by the
#: type of the call's first argument: None means "it is the context"; a callable
#: maps a handle to its context pointer (e.g. a future ``lvmmed_backbone_ctx``).
CONTEXT_OF_FIRST_ARG = {CtxPtr: None, BackbonePtr: lambda bb: lib.lvmmed_backbone_ctx(bb),
                        GmSolverPtr: lambda gs: lib.lvmmed_gm_solver_ctx(gs),
                        OptimizerPtr: lambda op: lib.lvmmed_optimizer_ctx(op),
                        AffinityPtr: lambda af: lib.lvmmed_affinity_ctx(af),
                        ImlePtr: lambda im: lib.lvmmed_imle_ctx(im),
                        ImagePtr: lambda img: lib.lvmmed_image_ctx(img),
                        AugmenterPtr: lambda aug: lib.lvmmed_augmenter_ctx(aug),
                        DatasetPtr: lambda ds: lib.lvmmed_dataset_ctx(ds),
                        PretrainerPtr: lambda pt: lib.lvmmed_pretrainer_ctx(pt)}


def _context_of(func, args):
    """The context involved in a call (pointer or Context object), or None."""
    if not args or not func.argtypes or func.argtypes[0] not in CONTEXT_OF_FIRST_ARG:
        return None
    getter = CONTEXT_OF_FIRST_ARG[func.argtypes[0]]
    return args[0] if getter is None else getter(args[0])


def _check_status(result, func, args):
    """errcheck for STATUS functions: raise on a negative status, else return it."""
    if result < 0:
        from . import errors  # lazy: errors imports this module

        raise errors.error_from_status(result, ctx=_context_of(func, args), function=func.__name__)
    return result


def _declare(cdll):
    """Apply the table to cdll; returns the names the library lacks."""
    missing = []
    for name, (restype, argtypes) in _FUNCTIONS.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.argtypes = argtypes
        if restype is STATUS:
            fn.restype = ctypes.c_int
            fn.errcheck = _check_status
        else:
            fn.restype = restype
    return tuple(missing)


lib, _path = _load()
#: Absolute path of the loaded library file (None only where it cannot be resolved).
LIBRARY_PATH = _path or _mapped_path(lib)
#: Declared names the loaded library does not export (an older library); calling them fails.
MISSING_FUNCTIONS = _declare(lib)


def text(ptr):
    """Decode a ``const char *`` result (None stays None)."""
    return None if ptr is None else ptr.decode("utf-8", errors="replace")
