"""Objects in an image of any size: overlapping tiles through the object network, peaks kept only in each tile's
core (so no object is found twice at a seam), and memory bounded by the tile, not the image (the image itself
is the one full-size array).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SCORE = 0.02   # peaks kept for choosing the threshold later; predictions use the run's chosen threshold
DIVISOR = 16       # the U-Net's total downsampling: tile sides are multiples of it
BLOCK = 4          # the density is kept summed over BLOCK x BLOCK model pixels: counts per region, small memory


@dataclass
class Peaks:
    """Candidate objects at model scale, before the score threshold."""
    centres: np.ndarray      # (n, 2) x, y in model pixels
    classes: np.ndarray      # (n,)
    scores: np.ndarray       # (n,)
    sizes: np.ndarray        # (n, 2) width, height in model pixels
    foreground: np.ndarray | None = None   # (H, W) float16 probability (mask runs)
    density: np.ndarray | None = None      # (ceil(H/BLOCK), ceil(W/BLOCK), n_classes) objects per block

    def density_count(self, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        """Objects per class from the density head inside `box` (x0, y0, x1, y1 in model pixels; blocks whose
        centre lies inside count), or in the whole image; None for models without a density head."""
        if self.density is None:
            return None
        if box is None:
            return self.density.sum(axis=(0, 1))
        centres_y = np.arange(self.density.shape[0]) * BLOCK + BLOCK / 2
        centres_x = np.arange(self.density.shape[1]) * BLOCK + BLOCK / 2
        rows = (centres_y >= box[1]) & (centres_y < box[3])
        cols = (centres_x >= box[0]) & (centres_x < box[2])
        return self.density[rows][:, cols].sum(axis=(0, 1))


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` (H, W, C) uint8 resized by `scale` (anti-aliased)."""
    from PIL import Image

    if abs(scale - 1.0) < 1e-6:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.shape[2] == 3:
        return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(size, Image.Resampling.BILINEAR))
              for c in range(image.shape[2])]
    return np.stack(planes, axis=-1)


def _round_up(value: int, divisor: int = DIVISOR) -> int:
    return int(np.ceil(value / divisor) * divisor)


def window(image: np.ndarray, y0: int, x0: int, size: int) -> np.ndarray:
    """The size x size window at (y0, x0), mirrored where it passes the image edge. The rows and columns it
    touches are sliced first, so an image read from disk by windows (readers.image_decode.TiffWindows) reads only
    those."""
    height, width = image.shape[:2]
    ys = np.clip(np.arange(y0, y0 + size), 0, None)
    xs = np.clip(np.arange(x0, x0 + size), 0, None)
    ys = np.where(ys >= height, 2 * (height - 1) - ys, ys).clip(0, height - 1)
    xs = np.where(xs >= width, 2 * (width - 1) - xs, xs).clip(0, width - 1)
    top, left = int(ys.min()), int(xs.min())
    block = image[top:int(ys.max()) + 1, left:int(xs.max()) + 1]
    return block[np.ix_(ys - top, xs - left)]


def scaled_shape(image: np.ndarray, scale: float) -> tuple[int, int]:
    """(height, width) of `image` resized by `scale`, as `resize` makes it."""
    if abs(scale - 1.0) < 1e-6:
        return image.shape[0], image.shape[1]
    return max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))


def scaled_window(image: np.ndarray, scale: float, y0: int, x0: int, size: int) -> np.ndarray:
    """The size x size window at (y0, x0) of `image` resized by `scale`, made from the matching window of the
    original only (PIL's resize of a source box, the same anti-aliasing filter as `resize` of the whole image), so
    an image of any size is resized one tile at a time. Mirrored at the edges like `window`."""
    from PIL import Image

    if abs(scale - 1.0) < 1e-6:
        return window(image, y0, x0, size)
    height, width = scaled_shape(image, scale)
    sy, sx = image.shape[0] / height, image.shape[1] / width   # original pixels per scaled pixel, as resize has it
    pad = int(np.ceil(2 * max(sy, sx))) + 2                      # room for the filter's support at the box edges
    top, left = int(np.floor(y0 * sy)) - pad, int(np.floor(x0 * sx)) - pad
    rows, cols = int(np.ceil(size * sy)) + 2 * pad, int(np.ceil(size * sx)) + 2 * pad
    source = window(image, top, left, max(rows, cols))[:rows, :cols]
    box = (x0 * sx - left, y0 * sy - top, (x0 + size) * sx - left, (y0 + size) * sy - top)
    if source.shape[2] == 3:
        return np.asarray(Image.fromarray(np.ascontiguousarray(source)).resize(
            (size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(source[..., c])).resize(
        (size, size), Image.Resampling.BILINEAR, box=box)) for c in range(source.shape[2])], axis=-1)


def find_peaks(model, image: np.ndarray, n_classes: int, *, scale: float = 1.0, core: int = 512, margin: int = 32,
               min_distance: int = 1, with_foreground: bool = False, batch: int = 4, flips: bool = False,
               region: tuple[float, float, float, float] | None = None) -> Peaks:
    """Every local maximum of the heat map at or above MIN_SCORE, over overlapping tiles of `image` resized by
    `scale` (each tile resized from its own window of the original: memory is the original plus a few tiles).
    Coordinates are in model pixels (of the resized image). With `flips`, the network's outputs on the tile and its
    three mirror images are averaged (test-time augmentation: four passes). With `region` (x0, y0, x1, y1 in model
    pixels), only the tiles that overlap it are searched: the rest of the image gets no peaks and zero maps."""
    from scipy import ndimage

    height, width = scaled_shape(image, scale)
    core = _round_up(min(core, 2 ** int(np.ceil(np.log2(max(height, width, DIVISOR))))))  # few tile shapes: few compiles
    margin = _round_up(margin)
    side = core + 2 * margin
    origins = [(y, x) for y in range(0, height, core) for x in range(0, width, core)]
    if region is not None:
        origins = [(y, x) for y, x in origins
                   if x < region[2] and x + core > region[0] and y < region[3] and y + core > region[1]]
    foreground = np.zeros((height, width), np.float16) if with_foreground else None
    density = None
    found = {"centres": [], "classes": [], "scores": [], "sizes": []}
    footprint = np.ones((2 * min_distance + 1, 2 * min_distance + 1, 1), bool)
    for start in range(0, len(origins), batch):
        chunk = origins[start:start + batch]
        tiles = np.zeros((batch, side, side, image.shape[2]), np.float32)  # always a full batch: one shape
        for k, (y, x) in enumerate(chunk):
            tiles[k] = scaled_window(image, scale, y - margin, x - margin, side)
        out = _outputs(model, tiles, flips)[:len(chunk)]
        has_density = out.shape[-1] >= 2 * n_classes + 3  # models trained before the density head have none
        if has_density and density is None:
            density = np.zeros((-(-height // BLOCK), -(-width // BLOCK), n_classes), np.float32)
        for (y, x), result in zip(chunk, out):
            heat = 1 / (1 + np.exp(-result[..., :n_classes]))
            inner_h, inner_w = min(core, height - y), min(core, width - x)
            is_peak = (ndimage.maximum_filter(heat, footprint=footprint, mode="nearest") == heat) & (heat >= MIN_SCORE)
            is_peak[:margin] = is_peak[margin + inner_h:] = False
            is_peak[:, :margin] = is_peak[:, margin + inner_w:] = False
            rows, cols, classes = np.nonzero(is_peak)
            found["centres"].append(np.stack([cols - margin + x + 0.5, rows - margin + y + 0.5], 1))
            found["classes"].append(classes)
            found["scores"].append(heat[rows, cols, classes])
            found["sizes"].append(np.exp(np.clip(result[rows, cols, n_classes:n_classes + 2], -2, 8)))
            if foreground is not None:
                probability = 1 / (1 + np.exp(-result[margin:margin + inner_h, margin:margin + inner_w, n_classes + 2]))
                foreground[y:y + inner_h, x:x + inner_w] = probability
            if has_density:  # core sides are multiples of BLOCK, so each tile fills whole blocks
                from biolens.models.objects import DENSITY_SCALE

                plane = np.maximum(result[margin:margin + inner_h, margin:margin + inner_w,
                                          n_classes + 3:2 * n_classes + 3], 0) / DENSITY_SCALE
                bh, bw = -(-inner_h // BLOCK), -(-inner_w // BLOCK)
                padded = np.zeros((bh * BLOCK, bw * BLOCK, n_classes), np.float32)
                padded[:inner_h, :inner_w] = plane
                density[y // BLOCK:y // BLOCK + bh, x // BLOCK:x // BLOCK + bw] = \
                    padded.reshape(bh, BLOCK, bw, BLOCK, n_classes).sum(axis=(1, 3))
    merged = {k: np.concatenate(v) if v else np.zeros((0, 2) if k in ("centres", "sizes") else 0) for k, v in found.items()}
    return Peaks(merged["centres"].reshape(-1, 2), merged["classes"].astype(int), merged["scores"],
                 merged["sizes"].reshape(-1, 2), foreground, density)


def _outputs(model, tiles: np.ndarray, flips: bool) -> np.ndarray:
    """The network's raw outputs on a batch of tiles; with `flips`, the mean over the tiles mirrored up-down,
    left-right and both (each output mirrored back; widths and heights are unchanged by a mirror)."""
    forward = _forward(model)
    if not flips:
        return np.asarray(forward(tiles), dtype=np.float32)
    total = None
    for axes in ((), (1,), (2,), (1, 2)):
        mirrored = np.flip(tiles, axes) if axes else tiles
        result = np.asarray(forward(np.ascontiguousarray(mirrored)), dtype=np.float32)
        result = np.flip(result, axes) if axes else result
        total = result if total is None else total + result
    return total / 4


def _forward(model):
    """The network's inference pass compiled by XLA (less than half the memory of eager calls on big tiles); a
    plain callable (a stand-in network in tests) is used as it is."""
    import keras

    if not isinstance(model, keras.Model):
        return lambda tiles: model(tiles, training=False)
    from biolens.engine.training import compiled_forward

    return compiled_forward(model, xla=True)


def select(peaks: Peaks, threshold: float, min_distance: float, box_overlap: float = 0.0) -> np.ndarray:
    """Indices of peaks at or above `threshold`, one per place: where peaks of different classes sit within
    `min_distance` of each other, the stronger one stays. With `box_overlap` (box runs), a peak whose predicted
    box overlaps a stronger one's at IoU above it is dropped too (non-maximum suppression: one crown, one box)."""
    from scipy.spatial import cKDTree

    keep = np.flatnonzero(peaks.scores >= threshold)
    if len(keep) < 2:
        return keep
    order = keep[np.argsort(-peaks.scores[keep], kind="stable")]
    tree = cKDTree(peaks.centres[order])
    dropped = np.zeros(len(order), bool)
    for i, j in sorted(tree.query_pairs(max(min_distance, 1e-6))):
        if not dropped[i] and not dropped[j]:
            dropped[j] = True  # order is best first, so j (> i) is the weaker one
    if box_overlap > 0:
        from biolens.stats.objects import box_iou

        centres, sizes = peaks.centres[order], peaks.sizes[order]
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        # Greedy, best first: each kept box drops the weaker ones it overlaps. Two boxes overlap only when their
        # centres are closer than their half-diagonals summed, so neighbours are found by a radius search. Sizes over
        # twice their 99th percentile (an untrained corner of the size head, clipped at e^8 px) are compared with
        # every box instead: once they set the radius, which made every pair of 10^4 candidates a neighbour (14 GB).
        wide = (sizes > 2 * np.percentile(sizes, 99, axis=0)).any(axis=1)
        half = np.hypot(sizes[:, 0], sizes[:, 1]) / 2
        widest = float(half[~wide].max(initial=0.0))
        everywhere = np.flatnonzero(wide)
        for i in range(len(order)):
            if dropped[i]:
                continue
            near = np.arange(i + 1, len(order)) if wide[i] else np.union1d(
                np.asarray(tree.query_ball_point(centres[i], half[i] + widest), dtype=int), everywhere)
            near = near[(near > i) & ~dropped[near]]
            if len(near):
                dropped[near[box_iou(boxes[i:i + 1], boxes[near])[0] > box_overlap]] = True
    return np.sort(order[~dropped])


def instances(peaks: Peaks, chosen: np.ndarray) -> np.ndarray:
    """Instance labels (model scale) by watershed of the foreground from the chosen peaks; label k+1 = chosen[k]."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    foreground = peaks.foreground.astype(np.float32)
    markers = np.zeros(foreground.shape, np.int32)
    for k, (x, y) in enumerate(peaks.centres[chosen]):
        markers[min(int(y), foreground.shape[0] - 1), min(int(x), foreground.shape[1] - 1)] = k + 1
    mask = ndimage.binary_opening(foreground >= 0.5)
    return watershed(-foreground, markers, mask=mask).astype(np.int32)
