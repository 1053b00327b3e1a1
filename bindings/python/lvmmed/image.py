"""Images and augmented views (image.h, augment.h).

Needs numpy. Pixels are float32, planar (channels, height, width) and keep
the stored sample values (an 8-bit PNG gives 0..255, a 16-bit CT slice its
raw numbers); intensity policies and channel conversion are explicit steps::

    with lvmmed.Context(seed=1) as ctx:
        img = lvmmed.Image.open(ctx, "slice.png")
        aug = lvmmed.Augmenter(ctx, size=224, seed=7)
        pixels, grids, params = aug.views(img, index=0, epoch=0, count=2)
"""

import ctypes
from collections import namedtuple

from ._arrays import array_in, array_out, as_path, c_view, need_numpy, np, out_tuple, ptr
from ._handle import Handle, Option, option_properties
from ._lib import AugmenterPtr, ImagePtr, lib, text

#: lvmmed_image_format by name.
FORMATS = {"none": 0, "png": 1, "tiff": 2, "jpeg": 3, "raw": 4}
#: lvmmed_sample_format by name.
SAMPLE_FORMATS = {"none": 0, "uint": 1, "int": 2, "float": 3}
#: lvmmed_intensity policies by name (a, b: their parameters, see Image.apply_intensity).
INTENSITY = {"none": 0, "type_range": 1, "minmax": 2, "percentile": 3, "window": 4, "auto": 5}

_PROPERTIES = {"width": 1, "height": 2, "channels": 3, "pages": 4, "page": 5, "bit_depth": 6,
               "sample_format": 7, "format": 8, "has_alpha": 9, "palette": 10}


def _ctx(context):
    return context._handle()


def _bytes_view(data):
    """(pointer, size, keep-alive) over a bytes-like object without copying it when possible."""
    mv = memoryview(data)
    if not mv.c_contiguous:
        raise ValueError("data must be a C-contiguous buffer")
    mv = mv.cast("B")
    if mv.readonly:  # ctypes cannot point into read-only buffers: bytes go via a char pointer
        raw = mv.tobytes() if not isinstance(data, bytes) else data
        return ctypes.cast(ctypes.c_char_p(raw), ctypes.c_void_p), len(raw), raw
    arr = (ctypes.c_ubyte * mv.nbytes).from_buffer(mv)
    return ctypes.cast(arr, ctypes.c_void_p), mv.nbytes, (arr, mv)


def detect_format(data):
    """Format name of an encoded buffer from its first bytes ("png", "tiff", "jpeg" or "none")."""
    p, size, keep = _bytes_view(data)
    value = lib.lvmmed_image_detect_format(p, size)
    del keep
    return format_name(value)


def format_available(fmt):
    """True if this build decodes fmt ("png", "tiff", "jpeg", or a value)."""
    value = FORMATS[fmt.lower()] if isinstance(fmt, str) else int(fmt)
    return bool(lib.lvmmed_image_format_available(value))


def format_name(value):
    """The library's name of an lvmmed_image_format value."""
    return text(lib.lvmmed_image_format_name(int(value)))


def sample_format_name(value):
    """The library's name of an lvmmed_sample_format value."""
    return text(lib.lvmmed_sample_format_name(int(value)))


def _intensity(policy):
    if isinstance(policy, str):
        try:
            return INTENSITY[policy.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown intensity policy {policy!r} (expected one of: {', '.join(INTENSITY)})") from None
    return int(policy)


@option_properties
class Image(Handle):
    """One decoded page of a PNG, TIFF or JPEG file (or pixels given with :meth:`set_pixels`).

    ``Image(ctx, max_pixels=..., max_file_bytes=..., read_page=0)``;
    :meth:`open`, :meth:`from_bytes` and :meth:`from_array` create and fill
    in one step. Facts about the pixels are properties (width, height,
    channels, pages, page, bit_depth, sample_format, format, has_alpha,
    palette, shape); :meth:`to_numpy` copies the pixels out and :meth:`view`
    exposes them without a copy. A failed read leaves the image empty.
    """

    _c_free = lib.lvmmed_image_free
    _c_set = lib.lvmmed_image_set_option
    _c_get = lib.lvmmed_image_get_option
    _c_bounds = lib.lvmmed_image_option_bounds
    _c_value = ctypes.c_int64
    # read_page is LVMMED_IMAGE_OPT_PAGE (the page the next read decodes); `page` is the decoded one.
    _OPTIONS = {"max_pixels": Option(1, int), "max_file_bytes": Option(2, int), "read_page": Option(3, int)}

    def __init__(self, context, *, max_pixels=None, max_file_bytes=None, read_page=None):
        need_numpy("lvmmed.Image")
        ptr_ = ImagePtr()
        lib.lvmmed_image_create(_ctx(context), ctypes.byref(ptr_))
        self._ptr = ptr_
        try:
            self._set_options(dict(max_pixels=max_pixels, max_file_bytes=max_file_bytes, read_page=read_page))
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, context, path, page=None, **options):
        """A new Image holding page (default 0) of the file at path."""
        img = cls(context, **options)
        try:
            img.read(path, page)
        except BaseException:
            img.close()
            raise
        return img

    @classmethod
    def from_bytes(cls, context, data, name=None, page=None, **options):
        """A new Image decoded from an encoded buffer (bytes, bytearray, memoryview, numpy uint8)."""
        img = cls(context, **options)
        try:
            img.read_bytes(data, name, page)
        except BaseException:
            img.close()
            raise
        return img

    @classmethod
    def from_array(cls, context, pixels):
        """A new Image holding a copy of pixels ((C, H, W) or (H, W) float32)."""
        img = cls(context)
        try:
            img.set_pixels(pixels)
        except BaseException:
            img.close()
            raise
        return img

    # -- reading ------------------------------------------------------------------------------
    def read(self, path, page=None):
        """Decode page (default: the read_page option) of the file at path; replaces the pixels."""
        if page is not None:
            self.set_option("read_page", page)
        lib.lvmmed_image_read_file(self._h(), as_path(path))
        return self

    def read_bytes(self, data, name=None, page=None):
        """Decode an encoded buffer (borrowed for the call); name is used in error messages."""
        if page is not None:
            self.set_option("read_page", page)
        p, size, keep = _bytes_view(data)
        lib.lvmmed_image_read_memory(self._h(), p, size, None if name is None else str(name).encode())
        del keep
        return self

    def set_pixels(self, pixels):
        """Replace the pixels with a copy of (C, H, W) or (H, W) float32 values (format "raw")."""
        a = array_in(pixels, np.float32, "pixels")
        if a.ndim == 2:
            a = a.reshape((1,) + a.shape)
        if a.ndim != 3:
            raise ValueError(f"pixels must be (C, H, W) or (H, W), not {a.shape}")
        lib.lvmmed_image_set_pixels(self._h(), ptr(a), *a.shape)
        return self

    # -- facts --------------------------------------------------------------------------------
    def get(self, prop):
        """A raw property value by name ("width", ..., "palette") or lvmmed_image_property value."""
        key = _PROPERTIES[prop] if isinstance(prop, str) else int(prop)
        out = ctypes.c_int64()
        lib.lvmmed_image_get(self._h(), key, ctypes.byref(out))
        return out.value

    width = property(lambda self: self.get("width"), doc="Columns (0 for an empty image).")
    height = property(lambda self: self.get("height"), doc="Rows.")
    channels = property(lambda self: self.get("channels"), doc="Channels, alpha included.")
    pages = property(lambda self: self.get("pages"), doc="Pages in the source file (1 for PNG/JPEG).")
    page = property(lambda self: self.get("page"), doc="The page these pixels come from.")
    bit_depth = property(lambda self: self.get("bit_depth"), doc="Bits per stored sample.")
    has_alpha = property(lambda self: bool(self.get("has_alpha")), doc="True if the last channel is alpha.")
    palette = property(lambda self: bool(self.get("palette")), doc="True if values came from a palette.")
    sample_format = property(lambda self: sample_format_name(self.get("sample_format")),
                             doc='How the source stored samples: "uint", "int", "float" or "none".')
    format = property(lambda self: format_name(self.get("format")),
                      doc='Source format: "png", "tiff", "jpeg", "raw" or "none".')

    @property
    def shape(self):
        """(channels, height, width) of the pixels; (0, 0, 0) when empty."""
        return self.channels, self.height, self.width

    @property
    def empty(self):
        return self.width == 0

    def view(self):
        """The pixels as a read-only (C, H, W) float32 view of the library's buffer (no copy).

        Valid only until the next call that changes this image (read,
        set_pixels, apply_intensity, convert_channels) or close(); it keeps
        the Image object alive. Use :meth:`to_numpy` for a copy that lasts.
        """
        return c_view(lib.lvmmed_image_data(self._h()), self.shape, np.float32, self, readonly=True)

    def to_numpy(self, out=None):
        """A copy of the pixels, (C, H, W) float32 (into out if given)."""
        dst = array_out(out, self.shape, np.float32)
        dst[...] = self.view()
        return dst

    def __array__(self, dtype=None):
        """numpy.asarray(image): a copy of the pixels."""
        arr = self.to_numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def range(self):
        """(min, max) of the finite colour values (alpha excluded); StateError if none."""
        lo, hi = ctypes.c_double(), ctypes.c_double()
        lib.lvmmed_image_range(self._h(), ctypes.byref(lo), ctypes.byref(hi))
        return lo.value, hi.value

    def nominal_range(self):
        """(min, max) the stored sample type can hold (float samples: the actual range)."""
        lo, hi = ctypes.c_double(), ctypes.c_double()
        lib.lvmmed_image_nominal_range(self._h(), ctypes.byref(lo), ctypes.byref(hi))
        return lo.value, hi.value

    # -- transforms ---------------------------------------------------------------------------
    def apply_intensity(self, policy, a=0.0, b=0.0):
        """Rescale the colour channels in place to [0, 1] by policy (see :data:`INTENSITY`).

        "percentile": a, b are percentiles (0 <= a < b <= 100); "window": a is
        the level, b the width; "auto": percentiles a, b for non-8-bit data.
        """
        lib.lvmmed_image_apply_intensity(self._h(), _intensity(policy), float(a), float(b))
        return self

    def convert_channels(self, channels):
        """Convert to 1 (luma) or 3 (gray replicated) channels, dropping alpha."""
        lib.lvmmed_image_convert_channels(self._h(), int(channels))
        return self


# --- augment.h ----------------------------------------------------------------------------------

#: The parameter record of one view: crop box and flip.
VIEW_PARAMS = ("top", "left", "height", "width", "flipped")
#: Upper bounds (exclusive) of views' index, epoch and view number.
MAX_INDEX, MAX_EPOCH, MAX_VIEW = 1 << 40, 1 << 19, 8
#: Outputs of Augmenter.views: pixels (count, 3, S, S), grids (count, N, N, 2), params (count, 5) int32.
Views = namedtuple("Views", ["pixels", "grids", "params"])

_AUG_NAMES = ("size", "grid", "scale_min", "scale_max", "ratio_min", "ratio_max", "flip_p", "mirror_grid",
              "jitter_p", "brightness", "contrast", "saturation", "hue", "grayscale_p", "blur_p",
              "blur_sigma_min", "blur_sigma_max", "blur_kernel", "gray_output", "mean_r", "mean_g", "mean_b",
              "std_r", "std_g", "std_b", "intensity", "intensity_a", "intensity_b")
_AUG_KINDS = {"size": int, "grid": int, "mirror_grid": bool, "blur_kernel": int, "gray_output": bool,
              "intensity": INTENSITY}


@option_properties
class Augmenter(Handle):
    """The augmented views LVM-Med trains on: random resized crop, flip, jitter, gray, blur, normalise.

    ``Augmenter(ctx, seed=None, size=224, grid=7, ...)``: every augment.h
    option is a keyword and a property (names as in C without the prefix,
    lower case: scale_min, flip_p, intensity="auto", ...). seed defaults to
    the context's seed. Views are a function of (seed, index, epoch, view)
    only.
    """

    _c_free = lib.lvmmed_augmenter_free
    _c_set = lib.lvmmed_augmenter_set_option
    _c_get = lib.lvmmed_augmenter_get_option
    _c_bounds = lib.lvmmed_augmenter_option_bounds
    _c_value = ctypes.c_double
    _OPTIONS = {name: Option(i + 1, _AUG_KINDS.get(name, float)) for i, name in enumerate(_AUG_NAMES)}

    def __init__(self, context, *, seed=None, **options):
        need_numpy("lvmmed.Augmenter")
        unknown = set(options) - set(self._OPTIONS)
        if unknown:
            raise TypeError(f"Augmenter() got unknown options {sorted(unknown)}")
        ptr_ = AugmenterPtr()
        lib.lvmmed_augmenter_create(_ctx(context), ctypes.byref(ptr_))
        self._ptr = ptr_
        try:
            if seed is not None:
                self.seed = seed
            self._set_options(options)
        except BaseException:
            self.close()
            raise

    @property
    def seed(self):
        """Seed of every view's random stream (defaults to the context seed at creation)."""
        out = ctypes.c_uint64()
        lib.lvmmed_augmenter_get_seed(self._h(), ctypes.byref(out))
        return out.value

    @seed.setter
    def seed(self, value):
        value = int(value)
        if not 0 <= value < 2**64:
            raise OverflowError(f"seed = {value} does not fit in uint64_t")
        lib.lvmmed_augmenter_set_seed(self._h(), value)

    def view_size(self):
        """(floats per view = 3·S·S, floats per grid = N·N·2), as lvmmed_augmenter_view_size."""
        p, g = ctypes.c_size_t(), ctypes.c_size_t()
        lib.lvmmed_augmenter_view_size(self._h(), ctypes.byref(p), ctypes.byref(g))
        return p.value, g.value

    @property
    def view_shape(self):
        """(3, S, S) of one view's pixels."""
        s = int(self.get_option("size"))
        return 3, s, s

    @property
    def grid_shape(self):
        """(N, N, 2) of one view's location grid."""
        n = int(self.get_option("grid"))
        return n, n, 2

    def views(self, image, index=0, epoch=0, first_view=0, count=2, *, grids=True, params=True, out=None):
        """Views first_view .. first_view+count-1 of image number index in epoch: a :data:`Views`.

        pixels (count, 3, S, S) float32, grids (count, N, N, 2) float32 cell
        centres (row, col) in original-image pixels, params (count, 5) int32
        (crop top, left, height, width, flipped). grids/params=False skip
        those outputs (None). out: a 3-tuple of arrays or None. The image is
        not modified.
        """
        h = self._h()
        if not isinstance(image, Image):
            raise TypeError(f"image must be an lvmmed.Image, not {type(image).__name__}")
        index, epoch, first_view, count = int(index), int(epoch), int(first_view), int(count)
        if not 0 <= index < MAX_INDEX or not 0 <= epoch < MAX_EPOCH:
            raise ValueError(f"index must be in [0, 2^40) and epoch in [0, 2^19), not {index}, {epoch}")
        if count < 1 or first_view < 0 or first_view + count > MAX_VIEW:
            raise ValueError(f"views {first_view}..{first_view + count - 1} outside 0..{MAX_VIEW - 1}")
        o_p, o_g, o_r = out_tuple(out, 3, "views")
        pix = array_out(o_p, (count,) + self.view_shape, np.float32, "pixels")
        grd = array_out(o_g, (count,) + self.grid_shape, np.float32, "grids") if grids else None
        prm = array_out(o_r, (count, len(VIEW_PARAMS)), np.int32, "params") if params else None
        lib.lvmmed_augmenter_views(h, image._h(), index, epoch, first_view, count, ptr(pix), ptr(grd), ptr(prm))
        return Views(pix, grd, prm)
