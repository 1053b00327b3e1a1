"""The dataset reader (dataset.h): image files in, batches of two augmented views out.

Needs numpy::

    with lvmmed.Context(threads=2, seed=0) as ctx:
        aug = lvmmed.Augmenter(ctx, size=224)
        ds = lvmmed.Dataset(ctx, aug, workers=2)
        ds.add_folder("images/")
        for batch in ds.iter_epoch(0, batch_size=32):
            train(batch.views_s, batch.views_t, batch.grids_s, batch.grids_t)
"""

import ctypes
from collections import namedtuple

from ._arrays import array_out, as_path, need_numpy, np, out_tuple, ptr
from ._handle import Handle, Option, option_properties
from ._lib import DatasetPtr, MISSING_FUNCTIONS, lib, text
from .errors import LvmmedError
from .image import Augmenter

#: One batch: views_s, views_t (n, 3, S, S) float32; grids_s, grids_t (n, N, N, 2) float32;
#: items (n,) int64 item indices. n is the number of images delivered.
Batch = namedtuple("Batch", ["views_s", "views_t", "grids_s", "grids_t", "items"])

_COUNTERS = {"items": 1, "delivered": 2, "skipped": 3, "epoch": 4, "position": 5}


@option_properties
class Dataset(Handle):
    """Lists image files and delivers each once per epoch as two augmented views (views 0 and 1).

    ``Dataset(ctx, augmenter, workers=1, queue=16, shuffle=True,
    strict=False, recursive=True, all_pages=False, max_pixels=...)``. The
    augmenter's configuration and seed are copied now (the Augmenter may be
    changed or closed afterwards). Options can be set only while no epoch
    runs (else StateError). Unreadable files are skipped and counted
    (``skipped``) unless ``strict``; then the batch call raises that file's
    error, with the images filled before it in the exception's ``batch``.
    """

    _c_free = lib.lvmmed_dataset_free
    _c_set = lib.lvmmed_dataset_set_option
    _c_get = lib.lvmmed_dataset_get_option
    _c_bounds = lib.lvmmed_dataset_option_bounds
    _c_value = ctypes.c_int64
    _OPTIONS = {"workers": Option(1, int), "queue": Option(2, int), "shuffle": Option(3, bool),
                "strict": Option(4, bool), "recursive": Option(5, bool), "all_pages": Option(6, bool),
                "max_pixels": Option(7, int)}

    def __init__(self, context, augmenter, **options):
        need_numpy("lvmmed.Dataset")
        if not isinstance(augmenter, Augmenter):
            raise TypeError(f"augmenter must be an lvmmed.Augmenter, not {type(augmenter).__name__}")
        unknown = set(options) - set(self._OPTIONS)
        if unknown:
            raise TypeError(f"Dataset() got unknown options {sorted(unknown)}")
        view_shape, grid_shape = augmenter.view_shape, augmenter.grid_shape  # copied with the config
        ptr_ = DatasetPtr()
        lib.lvmmed_dataset_create(context._handle(), augmenter._h(), ctypes.byref(ptr_))
        self._ptr = ptr_
        self.view_shape, self.grid_shape = view_shape, grid_shape
        try:
            self._set_options(options)
        except BaseException:
            self.close()
            raise

    # -- listing ------------------------------------------------------------------------------
    def _added(self, fn, path):
        before = self.stat("items")
        fn(self._h(), as_path(path))
        return self.stat("items") - before

    def add_folder(self, folder):
        """Add the image files under folder (by extension, sorted by path); returns the items added."""
        return self._added(lib.lvmmed_dataset_add_folder, folder)

    def add_list(self, list_path):
        """Add the files named in a text file, one per line; returns the items added."""
        return self._added(lib.lvmmed_dataset_add_list, list_path)

    def add_file(self, path):
        """Add one file (every page with all_pages); returns the items added."""
        return self._added(lib.lvmmed_dataset_add_file, path)

    def __len__(self):
        return self.stat("items")

    def item_path(self, index):
        """Path of item index; IndexError when out of range."""
        index = int(index)
        p = lib.lvmmed_dataset_item_path(self._h(), index) if index >= 0 else None
        if p is None:
            raise IndexError(f"dataset item {index} out of range (0..{len(self) - 1})")
        return text(p)

    def paths(self):
        """Every item's path, in item order."""
        return [self.item_path(i) for i in range(len(self))]

    # -- counters -----------------------------------------------------------------------------
    def stat(self, counter):
        """A counter by name: "items", "delivered", "skipped", "epoch" (-1 before any), "position"."""
        try:
            key = _COUNTERS[counter]
        except KeyError:
            raise KeyError(f"unknown dataset counter {counter!r} (expected one of: {', '.join(_COUNTERS)})") from None
        out = ctypes.c_int64()
        lib.lvmmed_dataset_stat(self._h(), key, ctypes.byref(out))
        return out.value

    def stats(self):
        """{counter: value} of every counter."""
        return {name: self.stat(name) for name in _COUNTERS}

    delivered = property(lambda self: self.stat("delivered"), doc="Images delivered since creation.")
    skipped = property(lambda self: self.stat("skipped"), doc="Bad items skipped (or failed) since creation.")
    epoch = property(lambda self: self.stat("epoch"), doc="Epoch of the last start_epoch (-1 before).")
    position = property(lambda self: self.stat("position"), doc="Items of the current epoch consumed so far.")

    # -- epochs -------------------------------------------------------------------------------
    def start_epoch(self, epoch, position=0):
        """Start epoch epoch (< 2^19): fix its order, start the workers; a running epoch is dropped.

        position > 0 skips the first position items of the epoch's order
        without reading them, so the batches that follow are those an
        uninterrupted epoch delivers after them (resuming from a checkpoint).
        """
        epoch, position = int(epoch), int(position)
        if not 0 <= epoch < 2**32 or not 0 <= position < 2**64:  # the library checks the real bounds
            raise OverflowError(f"epoch {epoch} / position {position} do not fit uint32_t / uint64_t")
        if position == 0 or "lvmmed_dataset_start_epoch_at" in MISSING_FUNCTIONS:
            if position:
                raise NotImplementedError("this liblvmmed has no lvmmed_dataset_start_epoch_at")
            lib.lvmmed_dataset_start_epoch(self._h(), epoch)
        else:
            lib.lvmmed_dataset_start_epoch_at(self._h(), epoch, position)

    def next_batch(self, max_images, *, grids=True, items=True, out=None):
        """Up to max_images images of the current epoch as a :data:`Batch`, trimmed to the count.

        Fewer than max_images only at the end of the epoch, none once it is
        over (then options may be changed). grids/items=False skip those
        outputs (None). out: a 5-tuple of arrays with max_images rows (or
        None) in Batch order; the result holds views of their first rows.
        """
        h = self._h()
        m = int(max_images)
        if m < 0:
            raise ValueError(f"max_images must be >= 0, not {m}")
        o = out_tuple(out, 5, "next_batch")
        vs = array_out(o[0], (m,) + self.view_shape, np.float32, "views_s")
        vt = array_out(o[1], (m,) + self.view_shape, np.float32, "views_t")
        gs = array_out(o[2], (m,) + self.grid_shape, np.float32, "grids_s") if grids else None
        gt = array_out(o[3], (m,) + self.grid_shape, np.float32, "grids_t") if grids else None
        it = array_out(o[4], (m,), np.int64, "items") if items else None
        count = ctypes.c_size_t()

        def trimmed():
            n = count.value
            return Batch(*(None if a is None else a[:n] for a in (vs, vt, gs, gt, it)))

        try:
            lib.lvmmed_dataset_next_batch(h, m, ptr(vs), ptr(vt), ptr(gs), ptr(gt), ptr(it), ctypes.byref(count))
        except LvmmedError as e:  # strict mode: keep what was filled before the bad file
            e.batch = trimmed()
            raise
        return trimmed()

    def iter_epoch(self, epoch, batch_size, position=0, **kwargs):
        """Start epoch (at position) and yield its batches (:meth:`next_batch` keywords) until it ends.

        Leaving the loop early leaves the epoch running (options stay locked
        until another epoch is started and read to its end).
        """
        self.start_epoch(epoch, position)
        while True:
            batch = self.next_batch(batch_size, **kwargs)
            if len(batch.views_s) == 0:
                return
            yield batch
