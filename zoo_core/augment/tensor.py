"""Batched augmentation of cached uint8 images on the training device, mirroring the MRI policy.

The PIL policy (``zoo_core.augment.policy.MriPolicy``) transforms one image at
a time in the DataLoader workers. :class:`TensorAugment` applies the same
steps to a whole batch of uint8 tensors on the device the batch is on (CPU or
CUDA): random resized crop to ``img_size``, horizontal flip, RandAugment, then
float conversion and mean/std normalisation. The trainer runs it on the GPU
after moving a batch there, and on the CPU in the DataLoader workers when
there are any (``augment_pixels`` there, ``normalize`` in the training process).

Every random draw of image ``index`` in epoch ``epoch`` comes from a CPU
``torch.Generator`` seeded with ``sample_seed(seed, epoch, index)``, so the
draws depend neither on the batch the image lands in, nor on the number of
DataLoader workers, nor on the device. Pixels computed on CPU and CUDA can
still differ by floating-point rounding.

The input is a batch of cached images of different sizes, edge-padded to
the largest height and width in the batch (see
``zoo_core.train.sampling.collate_padded_uint8``), together with each image's
true height and width. Crop boxes are drawn inside the true size.

RandAugment follows timm's ``rand-m{M}-n{N}-mstd0.5`` (timm 1.0): N operations
drawn with replacement from timm's 15 RandAugment operations, each applied
with probability 0.5, at a magnitude drawn from a normal distribution with
mean M and standard deviation 0.5, clipped to [0, 10]. The magnitude m maps to
the same arguments as in timm:

* Rotate: +-30 * m / 10 degrees.
* ShearX, ShearY: +-0.3 * m / 10.
* TranslateXRel, TranslateYRel: +-0.45 * m / 10 of the image size.
  The sign of these five is negative with probability 0.5.
* Brightness, Contrast, Sharpness, Color: blend factor 0.1 + 1.8 * m / 10.
* Posterize: keep int(4 * m / 10) bits.
* Solarize: invert pixels at or above int(256 * m / 10).
* SolarizeAdd: add int(110 * m / 10) to pixels below 128.
* AutoContrast, Equalize, Invert: no magnitude.

Where this differs from timm's PIL path:

* The crop is resized bilinearly, one sample per output pixel and without
  antialiasing, instead of with PIL's bicubic resize.
  A crop is never larger than its image, so it shrinks by at most about
  (4/3) / crop_pct per side. Rotate, shear and translate use bilinear
  ``grid_sample`` instead of bicubic.
* Shears are about the image centre. PIL shears about the top-left corner,
  which adds a translation on top.
* Pixels are kept as floats in [0, 255] between operations, and rounded to
  uint8 at the end. PIL rounds or truncates to uint8 after every operation.
  Here only Posterize, Solarize and Equalize, which are defined on integer
  levels, round their input.
* Areas uncovered by rotate, shear and translate are filled with
  ``round(255 * mean)`` per channel, as timm does. A one-channel (grey) batch
  uses the average of the three means, because its channels are expanded to
  RGB only after the operations.
* Color (saturation) leaves one-channel images unchanged, as PIL does for grey.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from zoo_core.train.sampling import sample_seed

__all__ = ["RAND_OPS", "TensorAugment", "draw_sample_params"]

# timm 1.0's _RAND_TRANSFORMS, in its order; op ids index this tuple.
RAND_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "SolarizeAdd",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)
GEOMETRIC_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"})
RAND_OP_PROB = 0.5
MAGNITUDE_STD = 0.5
MAGNITUDE_MAX = 10.0
CROP_ATTEMPTS = 10


def _crop_boxes(uniforms: torch.Tensor, sizes: torch.Tensor, scale: Sequence[float],
                ratio: Sequence[float]) -> torch.Tensor:
    """Return (x0, y0, x1, y1) boxes of torchvision's ``RandomResizedCrop.get_params``, for a batch.

    ``uniforms`` is (B, 4 * CROP_ATTEMPTS): area, log-ratio, top and left uniforms
    for each attempt. As in torchvision, the first attempt that fits is used,
    and a centre crop clamped to ``ratio`` when none fits.
    """
    heights = sizes[:, 0:1].double()
    widths = sizes[:, 1:2].double()
    area = heights * widths
    u_area, u_ratio, u_top, u_left = uniforms.double().split(CROP_ATTEMPTS, dim=1)

    target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + (log_high - log_low) * u_ratio)
    crop_w = torch.round(torch.sqrt(target_area * aspect))
    crop_h = torch.round(torch.sqrt(target_area / aspect))
    fits = (crop_w > 0) & (crop_w <= widths) & (crop_h > 0) & (crop_h <= heights)
    top = torch.floor(u_top * (heights - crop_h + 1))
    left = torch.floor(u_left * (widths - crop_w + 1))

    # Fallback crop for samples where no attempt fits.
    in_ratio = widths / heights
    fallback_w = torch.where(in_ratio > ratio[1], torch.round(heights * ratio[1]), widths)
    fallback_h = torch.where(in_ratio < ratio[0], torch.round(widths / ratio[0]), heights)
    fallback_w = torch.where(in_ratio < ratio[0], widths, fallback_w)
    fallback_h = torch.where(in_ratio > ratio[1], heights, fallback_h)
    fallback_top = torch.div(heights - fallback_h, 2, rounding_mode="floor")
    fallback_left = torch.div(widths - fallback_w, 2, rounding_mode="floor")

    any_fits = fits.any(dim=1, keepdim=True)
    first = fits.double().argmax(dim=1, keepdim=True)

    def pick(values: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
        return torch.where(any_fits, values.gather(1, first), fallback)

    top = pick(top, fallback_top)
    left = pick(left, fallback_left)
    crop_h = pick(crop_h, fallback_h)
    crop_w = pick(crop_w, fallback_w)
    return torch.cat([left, top, left + crop_w, top + crop_h], dim=1).float()


def draw_sample_params(keys: torch.Tensor, seed: int, num_ops: int) -> dict[str, torch.Tensor]:
    """Draw the random numbers of each sample from a generator seeded by (seed, epoch, index).

    ``keys`` is (B, 2) of (index, epoch). Returns CPU tensors: ``crop`` (B, 40)
    uniforms, ``flip`` (B,), and per operation slot ``op``, ``apply`` and
    ``sign`` uniforms and ``magnitude_noise`` standard normals, each (B, num_ops).
    """
    width = 4 * CROP_ATTEMPTS + 1 + 3 * num_ops
    uniforms = torch.empty(len(keys), width)
    normals = torch.empty(len(keys), num_ops)
    generator = torch.Generator()
    for row, (index, epoch) in enumerate(keys.tolist()):
        generator.manual_seed(sample_seed(seed, int(epoch), int(index)))
        uniforms[row] = torch.rand(width, generator=generator)
        normals[row] = torch.randn(num_ops, generator=generator)
    crop_end = 4 * CROP_ATTEMPTS
    ops = uniforms[:, crop_end + 1 :].view(len(keys), 3, num_ops)
    return {
        "crop": uniforms[:, :crop_end],
        "flip": uniforms[:, crop_end],
        "op": ops[:, 0],
        "apply": ops[:, 1],
        "sign": ops[:, 2],
        "magnitude_noise": normals,
    }


# ----- colour operations on float images in [0, 255] of shape (n, C, H, W), with arguments of shape (n,) -----


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def _blend(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (degenerate + _per_sample(factor) * (image - degenerate)).clamp(0.0, 255.0)


def _grey(image: torch.Tensor) -> torch.Tensor:
    if image.shape[1] == 1:
        return image
    # PIL's "L" conversion weights (ITU-R 601-2 luma).
    weights = image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True)


def auto_contrast(image: torch.Tensor) -> torch.Tensor:
    low = image.amin(dim=(2, 3), keepdim=True)
    high = image.amax(dim=(2, 3), keepdim=True)
    flat = high <= low
    scale = 255.0 / torch.where(flat, torch.ones_like(high), high - low)
    return torch.where(flat, image, ((image - low) * scale).clamp(0.0, 255.0))


def equalize(image: torch.Tensor) -> torch.Tensor:
    """Equalize each channel's histogram with PIL's ``ImageOps.equalize`` lookup table."""
    n, channels, height, width = image.shape
    levels = image.round().clamp(0, 255).long().view(n * channels, -1)
    histogram = torch.zeros(n * channels, 256, device=image.device, dtype=torch.long)
    histogram.scatter_add_(1, levels, torch.ones_like(levels))

    # As in PIL, step = (pixels - count of the highest level present) // 255, and a step of 0 keeps the image.
    present = histogram > 0
    highest = (present.long() * torch.arange(256, device=image.device)).argmax(dim=1, keepdim=True)
    step = torch.div(height * width - histogram.gather(1, highest), 255, rounding_mode="floor")
    exclusive = torch.cumsum(histogram, dim=1) - histogram
    safe_step = step.clamp(min=1)
    lut = torch.div(torch.div(step, 2, rounding_mode="floor") + exclusive, safe_step, rounding_mode="floor")
    lut = lut.clamp(max=255)
    identity = torch.arange(256, device=image.device).expand_as(lut)
    lut = torch.where(step > 0, lut, identity)
    return lut.gather(1, levels).view(n, channels, height, width).to(image.dtype)


def invert(image: torch.Tensor) -> torch.Tensor:
    return 255.0 - image


def posterize(image: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    # Keeping b bits is flooring to a multiple of 2 ** (8 - b); b >= 8 keeps the image.
    bucket = _per_sample(torch.pow(2.0, (8 - bits).clamp(min=0)))
    return torch.floor(image.round() / bucket) * bucket


def solarize(image: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    levels = image.round()
    return torch.where(levels >= _per_sample(threshold), 255.0 - levels, levels)


def solarize_add(image: torch.Tensor, addition: torch.Tensor) -> torch.Tensor:
    levels = image.round()
    return torch.where(levels < 128, (levels + _per_sample(addition)).clamp(max=255.0), levels)


def color(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if image.shape[1] == 1:
        return image
    return _blend(_grey(image), image, factor)


def contrast(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # PIL blends with a constant image at the rounded mean of the grey image.
    mean = torch.floor(_grey(image).mean(dim=(1, 2, 3), keepdim=True) + 0.5)
    return _blend(mean.expand_as(image), image, factor)


def brightness(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(torch.zeros_like(image), image, factor)


def sharpness(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # PIL's SMOOTH filter is a 3x3 kernel of ones with 5 in the centre, over 13, and keeps border pixels.
    # The 3x3 sum plus 4 times the centre is that kernel, and avg_pool2d is much faster than conv2d on CPU.
    smooth = (9.0 * F.avg_pool2d(image, 3, stride=1) + 4.0 * image[:, :, 1:-1, 1:-1]) / 13.0
    degenerate = image.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(degenerate, image, factor)


def _affine_theta(name: str, argument: torch.Tensor) -> torch.Tensor:
    """Return (n, 2, 3) matrices for ``affine_grid`` that map output to input coordinates, in [-1, 1] units."""
    theta = torch.zeros(len(argument), 2, 3, dtype=argument.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if name == "Rotate":
        # PIL rotates counter-clockwise on screen. With y pointing down, the input point is R(angle) @ output.
        radians = torch.deg2rad(argument)
        theta[:, 0, 0] = torch.cos(radians)
        theta[:, 0, 1] = -torch.sin(radians)
        theta[:, 1, 0] = torch.sin(radians)
        theta[:, 1, 1] = torch.cos(radians)
    elif name == "ShearX":
        theta[:, 0, 1] = argument
    elif name == "ShearY":
        theta[:, 1, 0] = argument
    elif name == "TranslateXRel":
        # PIL's affine reads the input at x + fraction * width, and [-1, 1] spans the width, hence the 2.
        theta[:, 0, 2] = 2.0 * argument
    elif name == "TranslateYRel":
        theta[:, 1, 2] = 2.0 * argument
    else:
        raise ValueError(f"{name!r} is not a geometric operation; expected one of {sorted(GEOMETRIC_OPS)}")
    return theta


def _affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # Same grid as F.affine_grid(align_corners=False), which runs a slow bmm on CPU, from broadcast multiply-adds.
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    xs = xs.view(1, 1, width)
    ys = ys.view(1, height, 1)
    coefficient = theta.view(-1, 6, 1, 1).unbind(dim=1)
    grid = theta.new_empty(len(theta), height, width, 2)
    grid[..., 0] = coefficient[0] * xs + coefficient[1] * ys + coefficient[2]
    grid[..., 1] = coefficient[3] * xs + coefficient[4] * ys + coefficient[5]
    return grid


def warp_affine(image: torch.Tensor, theta: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Resample ``image`` with ``theta`` (n, 2, 3), filling pixels from outside the image with ``fill`` (C,)."""
    grid = _affine_grid(theta.to(image.device, image.dtype), image.shape[2], image.shape[3])
    fill = fill.view(1, -1, 1, 1)
    # Zero padding of (image - fill), plus fill, pads with fill exactly for bilinear sampling.
    return F.grid_sample(image - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the (x0, y0, x1, y1) pixel ``boxes`` of a uint8 batch to ``size`` x ``size`` floats, mirroring where ``flip``.

    Bilinear sampling at the output pixel centres, one sample per output
    pixel, as ``torchvision.ops.roi_align(..., sampling_ratio=1, aligned=True)``
    computes, but through ``grid_sample``, which is about three times faster
    on CPU (torch 2.14, torchvision 0.29).
    """
    count, _, height, width = images.shape
    device = images.device
    boxes = boxes.to(device)
    steps = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    steps = steps.view(1, size)
    mirrored = torch.where(flip.to(device).view(-1, 1), steps.flip(-1), steps)
    # Pixel coordinates (pixel k spans [k, k + 1]) to grid_sample's [-1, 1] with align_corners=False.
    xs = 2 * (boxes[:, 0:1] + mirrored * (boxes[:, 2:3] - boxes[:, 0:1])) / width - 1
    ys = 2 * (boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])) / height - 1
    # Filling an empty grid is about three times faster on CPU than torch.stack of the broadcast coordinates.
    grid = torch.empty(count, size, size, 2, device=device)
    grid[..., 0] = xs.view(count, 1, size)
    grid[..., 1] = ys.view(count, size, 1)
    # Border padding reads the edge-padded pixels, which equal the image's last row and column.
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def _op_argument(name: str, magnitude: torch.Tensor, sign: torch.Tensor) -> torch.Tensor | None:
    """Map magnitudes in [0, 10] to the operation's argument as timm 1.0's level-to-argument functions do."""
    level = magnitude / 10.0
    signed = torch.where(sign < 0.5, -level, level)
    if name == "Rotate":
        return 30.0 * signed
    if name in ("ShearX", "ShearY"):
        return 0.3 * signed
    if name in ("TranslateXRel", "TranslateYRel"):
        return 0.45 * signed
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return 1.8 * level + 0.1
    if name == "Posterize":
        return torch.floor(4.0 * level)
    if name == "Solarize":
        return torch.floor(256.0 * level).clamp(max=256.0)
    if name == "SolarizeAdd":
        return torch.floor(110.0 * level).clamp(max=128.0)
    return None


COLOUR_FUNCTIONS = {
    "AutoContrast": lambda image, _: auto_contrast(image),
    "Equalize": lambda image, _: equalize(image),
    "Invert": lambda image, _: invert(image),
    "Posterize": posterize,
    "Solarize": solarize,
    "SolarizeAdd": solarize_add,
    "Color": color,
    "Contrast": contrast,
    "Brightness": brightness,
    "Sharpness": sharpness,
}


class TensorAugment:
    """Random resized crop, flip, RandAugment and normalisation of a padded uint8 batch.

    Args:
        img_size: output height and width.
        scale: random resized crop area range, as ``augment.scale``.
        hflip: horizontal flip probability.
        num_ops: RandAugment operations per image; 0 turns RandAugment off.
        magnitude: RandAugment magnitude (0-30, clipped to 10 as in timm); 0 turns RandAugment off.
        mean, std: normalisation per RGB channel, in [0, 1] units.
        seed: the recipe's seed; sample seeds are ``sample_seed(seed, epoch, index)``.
        ratio: random resized crop aspect-ratio range (width / height), torchvision's default.
        ops: RandAugment operation names to draw from, a subset of :data:`RAND_OPS` (default all).
    """

    def __init__(self, img_size: int, scale: Sequence[float], hflip: float, num_ops: int, magnitude: float,
                 mean: Sequence[float], std: Sequence[float], seed: int,
                 ratio: Sequence[float] = (3 / 4, 4 / 3), ops: Sequence[str] = RAND_OPS):
        unknown = [name for name in ops if name not in RAND_OPS]
        if unknown:
            raise ValueError(f"unknown RandAugment operation(s) {unknown}; choose from {list(RAND_OPS)}")
        if not ops:
            raise ValueError("ops is empty; pass at least one RandAugment operation or set num_ops=0")
        if scale[0] <= 0 or scale[0] > scale[1]:
            raise ValueError(f"scale must satisfy 0 < min <= max, got {tuple(scale)}; augment.scale is an area range "
                             "such as [0.08, 1.0]")
        if ratio[0] <= 0 or ratio[0] > ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {tuple(ratio)}")
        self.img_size = img_size
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.hflip = hflip
        self.num_ops = num_ops if magnitude > 0 else 0
        self.magnitude = float(magnitude)
        self.ops = tuple(ops)
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.seed = seed

    @classmethod
    def from_config(cls, config, img_size: int, seed: int) -> "TensorAugment":
        """Build from an ``AugmentConfig`` (the ``augment`` section of a recipe)."""
        return cls(img_size, config.scale, config.hflip, config.randaugment_num_ops, config.randaugment_magnitude,
                   config.mean, config.std, seed)

    def __call__(self, images: torch.Tensor, sizes: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Augment a batch and return float32 (B, 3, img_size, img_size) normalised images on ``images.device``.

        Args:
            images: uint8 (B, C, H, W) with C 1 or 3, each image in its top-left (height, width) corner,
                edge-padded to H and W.
            sizes: (B, 2) true heights and widths.
            keys: (B, 2) of (index, epoch); the augmentation of a sample depends only on these and the seed.
        """
        return self.normalize(self.augment_pixels(images, sizes, keys))

    def augment_pixels(self, images: torch.Tensor, sizes: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Crop, flip and RandAugment a batch as :meth:`__call__` does, and return uint8 (B, C, img_size, img_size).

        The result is rounded to uint8, as PIL's images are. Together with
        :meth:`normalize` this lets DataLoader workers send uint8 batches,
        a twelfth of the bytes of normalised float RGB for grey images.
        """
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 images of shape (B, 1 or 3, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        params = draw_sample_params(keys.cpu(), self.seed, self.num_ops)

        boxes = _crop_boxes(params["crop"], sizes.cpu(), self.scale, self.ratio)
        flip = params["flip"] < self.hflip
        output = resized_crop(images, boxes, flip, self.img_size)

        for slot in range(self.num_ops):
            output = self._apply_slot(output, params, slot)
        return output.round_().clamp_(0.0, 255.0).to(torch.uint8)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return float32 (B, 3, H, W) ``(pixels / 255 - mean) / std`` of uint8 (B, 1 or 3, H, W) ``pixels``."""
        device = pixels.device
        # One multiply-add, which also expands one channel to three.
        scale = (1.0 / (255.0 * self.std)).to(device).view(1, 3, 1, 1)
        shift = (-self.mean / self.std).to(device).view(1, 3, 1, 1)
        return torch.addcmul(shift, pixels.float(), scale)

    def _apply_slot(self, images: torch.Tensor, params: dict[str, torch.Tensor], slot: int) -> torch.Tensor:
        """Apply operation slot ``slot`` of RandAugment: each sample's drawn operation, where drawn to apply."""
        op_ids = torch.floor(params["op"][:, slot] * len(self.ops)).long().clamp(max=len(self.ops) - 1)
        applies = params["apply"][:, slot] < RAND_OP_PROB
        magnitude = (self.magnitude + MAGNITUDE_STD * params["magnitude_noise"][:, slot]).clamp(0.0, MAGNITUDE_MAX)
        sign = params["sign"][:, slot]

        geometric_rows, thetas = [], []
        for op_id, name in enumerate(self.ops):
            rows = torch.nonzero(applies & (op_ids == op_id)).flatten()
            if len(rows) == 0:
                continue
            argument = _op_argument(name, magnitude[rows], sign[rows])
            if name in GEOMETRIC_OPS:
                geometric_rows.append(rows)
                thetas.append(_affine_theta(name, argument))
                continue
            device_rows = rows.to(images.device)
            if argument is not None:
                argument = argument.to(images.device)
            images[device_rows] = COLOUR_FUNCTIONS[name](images[device_rows], argument)

        # Rotate, shear and translate of one slot run as one grid_sample over their samples.
        if geometric_rows:
            rows = torch.cat(geometric_rows).to(images.device)
            images[rows] = warp_affine(images[rows], torch.cat(thetas), self._fill(images))
        return images

    def _fill(self, images: torch.Tensor) -> torch.Tensor:
        fill = torch.round(255.0 * self.mean)
        if images.shape[1] == 1:
            fill = torch.round(255.0 * self.mean.mean()).view(1)
        return fill.to(images.device)
