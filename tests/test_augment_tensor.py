"""Batched tensor augmentation: shapes, seeding, each operation, and training with augment.backend=tensor."""


import numpy as np
import pytest
import torch

from helpers import interrupt_mid_epoch, metrics_without_timing, tiny_recipe
from zoo_core.augment import tensor as T
from zoo_core.augment.tensor import TensorAugment
from zoo_core.train.run import resume_run, train_recipe
from zoo_core.train.sampling import AugmentingCollate, collate_padded_uint8
from zoo_core.train.trainer import TrainingError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@pytest.fixture(autouse=True)
def zoo_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))


def make_augment(img_size=32, num_ops=2, magnitude=9, hflip=0.5, scale=(0.8, 1.0), seed=0, **kwargs):
    return TensorAugment(img_size, scale, hflip, num_ops, magnitude, MEAN, STD, seed, **kwargs)


def random_batch(count=6, size=40, channels=1, seed=0):
    generator = np.random.default_rng(seed)
    items = []
    for index in range(count):
        shape = (size, size + 8 * (index % 2)) + (() if channels == 1 else (3,))
        items.append((generator.integers(0, 256, shape, dtype=np.uint8), index % 4, index, 1))
    return collate_padded_uint8(items)


def denormalise(output):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (output * std + mean) * 255.0


def test_collate_pads_and_keeps_sizes():
    small = np.full((4, 5), 7, dtype=np.uint8)
    wide = np.arange(18, dtype=np.uint8).reshape(3, 6)
    images, sizes, keys, labels = collate_padded_uint8([(small, 1, 10, 2), (wide, 3, 11, 2)])
    assert images.shape == (2, 1, 4, 6)
    assert images.dtype == torch.uint8
    assert sizes.tolist() == [[4, 5], [3, 6]]
    assert keys.tolist() == [[10, 2], [11, 2]]
    assert labels.tolist() == [1, 3]
    assert torch.equal(images[1, 0, 3], images[1, 0, 2]), "padding rows repeat the last row"


def test_collate_expands_grey_next_to_rgb():
    grey = np.full((2, 2), 9, dtype=np.uint8)
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    images, _, _, _ = collate_padded_uint8([(grey, 0, 0, 0), (rgb, 0, 1, 0)])
    assert images.shape == (2, 3, 2, 2)
    assert (images[0] == 9).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_dtype_and_normalisation(channels):
    images, sizes, keys, _ = random_batch(channels=channels)
    output = make_augment(num_ops=0)(images, sizes, keys)
    assert output.shape == (6, 3, 32, 32)
    assert output.dtype == torch.float32
    pixels = denormalise(output)
    assert pixels.min() >= -1e-3
    assert pixels.max() <= 255 + 1e-3


def test_constant_image_normalises_to_mean_std():
    images = torch.full((2, 1, 40, 40), 128, dtype=torch.uint8)
    sizes = torch.tensor([[40, 40], [40, 40]])
    keys = torch.tensor([[0, 0], [1, 0]])
    output = make_augment(num_ops=0)(images, sizes, keys)
    expected = (128 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(output.mean(dim=(2, 3)), expected.expand(2, 3), atol=1e-5, rtol=0)


def test_same_key_gives_same_augmentation():
    images, sizes, keys, _ = random_batch()
    first = make_augment()(images, sizes, keys)
    second = make_augment()(images.clone(), sizes, keys)
    assert torch.equal(first, second)


def test_augmentation_independent_of_batch_position():
    images, sizes, keys, _ = random_batch()
    whole = make_augment()(images, sizes, keys)
    order = torch.tensor([5, 2, 0, 4, 1, 3])
    shuffled = make_augment()(images[order], sizes[order], keys[order])
    torch.testing.assert_close(shuffled, whole[order], atol=1e-4, rtol=0)
    alone = make_augment()(images[3:4], sizes[3:4], keys[3:4])
    torch.testing.assert_close(alone[0], whole[3], atol=1e-4, rtol=0)


def test_different_keys_give_different_augmentations():
    image = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48).remainder(251).to(torch.uint8)
    images = image.expand(4, 1, 48, 48).contiguous()
    sizes = torch.tensor([[48, 48]] * 4)
    augment = make_augment()
    by_index = augment(images, sizes, torch.tensor([[0, 0], [1, 0], [2, 0], [3, 0]]))
    by_epoch = augment(images, sizes, torch.tensor([[0, 0], [0, 1], [0, 2], [0, 3]]))
    for outputs in (by_index, by_epoch):
        for row in range(1, 4):
            assert not torch.allclose(outputs[0], outputs[row])


def test_seed_changes_augmentation():
    images, sizes, keys, _ = random_batch()
    assert not torch.allclose(make_augment(seed=0)(images, sizes, keys), make_augment(seed=1)(images, sizes, keys))


def test_no_randaugment_is_crop_flip_normalise():
    images, sizes, keys, _ = random_batch()
    baseline = make_augment(num_ops=0)(images, sizes, keys)
    torch.testing.assert_close(make_augment(magnitude=0)(images, sizes, keys), baseline, atol=0, rtol=0)

    # The same crop, flip and normalisation written out from the drawn parameters.
    params = T.draw_sample_params(keys, 0, 0)
    boxes = T._crop_boxes(params["crop"], sizes, (0.8, 1.0), (3 / 4, 4 / 3))
    for row in range(len(images)):
        left, top, right, bottom = boxes[row].tolist()
        crop = images[row : row + 1, :, int(top) : int(bottom), int(left) : int(right)].float()
        resized = torch.nn.functional.interpolate(crop, size=(32, 32), mode="bilinear", align_corners=False)
        if params["flip"][row] < 0.5:
            resized = resized.flip(-1)
        # The augmented pixels are rounded to uint8 before normalisation.
        torch.testing.assert_close(denormalise(baseline[row : row + 1])[:, :1], resized, atol=0.51, rtol=0)


def test_crop_boxes_stay_inside_image():
    generator = torch.Generator().manual_seed(0)
    uniforms = torch.rand(200, 4 * T.CROP_ATTEMPTS, generator=generator)
    sizes = torch.tensor([[40, 40], [40, 64], [64, 40], [30, 200]] * 50)
    boxes = T._crop_boxes(uniforms, sizes, (0.08, 1.0), (3 / 4, 4 / 3))
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 2] <= sizes[:, 1]).all()
    assert (boxes[:, 3] <= sizes[:, 0]).all()
    assert (boxes[:, 2] > boxes[:, 0]).all()
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (sizes[:, 0] * sizes[:, 1])
    assert areas[:50].min() >= 0.06, "square images take a fitting attempt with area in the scale range"


def test_crop_falls_back_to_centre_for_extreme_ratio():
    uniforms = torch.full((1, 4 * T.CROP_ATTEMPTS), 0.99)
    boxes = T._crop_boxes(uniforms, torch.tensor([[10, 200]]), (0.99, 1.0), (3 / 4, 4 / 3))
    # No 3/4-4/3 crop of 99% of a 10 x 200 image fits, so the centre 13 x 10 crop is used (13 = round(10 * 4 / 3)).
    assert boxes.tolist() == [[93.0, 0.0, 106.0, 10.0]]


def test_hflip_mirrors_image():
    image = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    image[..., :, :8] = 255
    sizes = torch.tensor([[32, 32]])
    keys = torch.tensor([[0, 0]])
    kept = make_augment(num_ops=0, hflip=0.0, scale=(1.0, 1.0))(image, sizes, keys)
    flipped = make_augment(num_ops=0, hflip=1.0, scale=(1.0, 1.0))(image, sizes, keys)
    assert denormalise(kept)[0, 0, :, 2].min() > 250
    assert denormalise(flipped)[0, 0, :, -3].min() > 250
    torch.testing.assert_close(flipped, kept.flip(-1))


def bright_square(size=32):
    image = torch.zeros(1, 1, size, size)
    image[..., 12:20, 24:30] = 255.0
    return image


def centre_of_mass(image):
    weights = image[0, 0]
    rows, cols = torch.meshgrid(torch.arange(weights.shape[0]), torch.arange(weights.shape[1]), indexing="ij")
    total = weights.sum()
    return float((rows * weights).sum() / total), float((cols * weights).sum() / total)


def test_rotate_90_moves_square_counter_clockwise():
    theta = T._affine_theta("Rotate", torch.tensor([90.0]))
    rotated = T.warp_affine(bright_square(), theta, torch.zeros(1))
    row, col = centre_of_mass(rotated)
    # A square right of centre (row 15.5, column 26.5) turns to above the centre, as PIL's rotate(90) does.
    assert row == pytest.approx(4.5, abs=0.6)
    assert col == pytest.approx(15.5, abs=0.6)


def test_translate_moves_square_left_and_fills():
    theta = T._affine_theta("TranslateXRel", torch.tensor([0.25]))
    moved = T.warp_affine(bright_square(), theta, torch.tensor([100.0]))
    assert centre_of_mass((moved == 255).float())[1] == pytest.approx(18.5, abs=0.6)
    assert moved[0, 0, 0, -1] == pytest.approx(100.0)
    assert moved[0, 0, 0, 0] == pytest.approx(0.0)


def test_shear_x_shifts_rows_by_their_height():
    image = torch.zeros(1, 1, 32, 32)
    image[..., :, 15:17] = 255.0
    sheared = T.warp_affine(image, T._affine_theta("ShearX", torch.tensor([0.5])), torch.zeros(1))
    top_col = centre_of_mass(sheared[..., :4, :])[1]
    bottom_col = centre_of_mass(sheared[..., -4:, :])[1]
    assert top_col > 16 + 5
    assert bottom_col < 15 - 5


def test_solarize_inverts_at_and_above_threshold():
    image = torch.tensor([[[[10.0, 127.0, 128.0, 250.0]]]])
    output = T.solarize(image, torch.tensor([128.0]))
    assert output.flatten().tolist() == [10.0, 127.0, 127.0, 5.0]


def test_solarize_add_adds_below_128():
    image = torch.tensor([[[[10.0, 127.0, 128.0, 250.0]]]])
    output = T.solarize_add(image, torch.tensor([100.0]))
    assert output.flatten().tolist() == [110.0, 227.0, 128.0, 250.0]


def test_posterize_keeps_high_bits():
    image = torch.tensor([[[[0.0, 37.0, 200.0, 255.0]]]])
    assert T.posterize(image, torch.tensor([3.0])).flatten().tolist() == [0.0, 32.0, 192.0, 224.0]
    assert T.posterize(image, torch.tensor([8.0])).flatten().tolist() == image.flatten().tolist()


def test_invert_and_brightness():
    image = torch.tensor([[[[0.0, 100.0, 200.0]]]])
    assert T.invert(image).flatten().tolist() == [255.0, 155.0, 55.0]
    assert T.brightness(image, torch.tensor([1.5])).flatten().tolist() == [0.0, 150.0, 255.0]


def test_contrast_blends_with_mean():
    image = torch.tensor([[[[100.0, 200.0]]]])
    assert T.contrast(image, torch.tensor([0.0])).flatten().tolist() == [150.0, 150.0]
    assert T.contrast(image, torch.tensor([2.0])).flatten().tolist() == [50.0, 250.0]


def test_auto_contrast_stretches_to_full_range():
    image = torch.tensor([[[[50.0, 100.0, 150.0]]], [[[7.0, 7.0, 7.0]]]])
    output = T.auto_contrast(image)
    assert output[0].flatten().tolist() == [0.0, 127.5, 255.0]
    assert output[1].flatten().tolist() == [7.0, 7.0, 7.0]


def test_equalize_matches_pil():
    from PIL import Image, ImageOps

    generator = np.random.default_rng(0)
    array = np.clip(generator.normal(90, 20, (24, 24)), 0, 255).astype(np.uint8)
    expected = np.asarray(ImageOps.equalize(Image.fromarray(array, mode="L")))
    output = T.equalize(torch.from_numpy(array).float().view(1, 1, 24, 24))
    assert np.array_equal(output[0, 0].numpy().astype(np.uint8), expected)


def test_sharpness_matches_pil():
    from PIL import Image, ImageEnhance

    generator = np.random.default_rng(1)
    array = generator.integers(0, 256, (16, 16), dtype=np.uint8)
    expected = np.asarray(ImageEnhance.Sharpness(Image.fromarray(array, mode="L")).enhance(0.3)).astype(np.float32)
    output = T.sharpness(torch.from_numpy(array).float().view(1, 1, 16, 16), torch.tensor([0.3]))
    # PIL rounds the smoothed image and truncates the blend to uint8, where this path keeps floats.
    assert np.abs(output[0, 0].numpy() - expected).max() < 1.5


def test_color_leaves_grey_unchanged():
    image = torch.rand(2, 1, 8, 8) * 255
    assert torch.equal(T.color(image, torch.tensor([0.1, 1.9])), image)


def test_every_operation_changes_some_images():
    # Levels 20 to 250: AutoContrast has room to stretch and Solarize's threshold (about 230 at magnitude 9) is reached.
    image = torch.arange(40 * 40, dtype=torch.float32).view(1, 1, 40, 40).remainder(231).add(20).to(torch.uint8)
    images = image.expand(64, 1, 40, 40).contiguous()
    sizes = torch.tensor([[40, 40]] * 64)
    keys = torch.stack([torch.arange(64), torch.zeros(64, dtype=torch.long)], dim=1)
    plain = make_augment(num_ops=0, hflip=0.0)(images, sizes, keys)
    for name in T.RAND_OPS:
        if name == "Color":
            continue
        output = make_augment(num_ops=1, hflip=0.0, ops=(name,))(images, sizes, keys)
        changed = (output - plain).abs().amax(dim=(1, 2, 3)) > 1e-3
        # Each sample applies its operation with probability 0.5.
        assert 10 < int(changed.sum()) < 54, name


def test_unknown_operation_rejected():
    with pytest.raises(ValueError, match="unknown RandAugment operation"):
        make_augment(ops=("Rotate", "Blur"))


def test_non_uint8_input_rejected():
    with pytest.raises(ValueError, match="expected uint8"):
        make_augment()(torch.zeros(1, 1, 8, 8), torch.tensor([[8, 8]]), torch.tensor([[0, 0]]))


TENSOR_OVERRIDES = ("data.cache=true", "augment.backend=tensor", "augment.randaugment_magnitude=9",
                    "train.batch_size=4", "optim.lr=1e-3")


def test_tensor_backend_needs_cache(tmp_path):
    with pytest.raises(TrainingError, match="data.cache"):
        train_recipe(tiny_recipe("augment.backend=tensor"), tmp_path / "run", progress=False)


def test_tensor_backend_training_lowers_loss(tmp_path):
    run_dir = tmp_path / "run"
    train_recipe(tiny_recipe("data.cache=true", "augment.backend=tensor", "train.epochs=4"), run_dir, progress=False)
    metrics = metrics_without_timing(run_dir)
    assert len(metrics) == 4
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]


# Without workers the trainer augments in the training process; on the CPU with workers, the workers augment.
@pytest.mark.parametrize("workers", [0, 2])
def test_tensor_backend_resume_mid_epoch_matches(tmp_path, monkeypatch, workers):
    overrides = (*TENSOR_OVERRIDES, f"data.num_workers={workers}")
    reference_dir = tmp_path / "reference"
    train_recipe(tiny_recipe(*overrides), reference_dir, progress=False)

    run_dir = tmp_path / "run"
    # 24 training images in batches of 4 make six steps an epoch, so the eighth check falls in epoch 2.
    interrupt_mid_epoch(tiny_recipe(*overrides), run_dir, monkeypatch, stop_at_check=8)

    resume_run(run_dir, progress=False)
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference_dir)


def test_augmenting_collate_matches_call():
    items = [(np.full((40, 44), 60 + index, dtype=np.uint8), index % 4, index, 3) for index in range(4)]
    augment = make_augment()
    pixels, labels = AugmentingCollate(augment)(items)
    padded, sizes, keys, expected_labels = collate_padded_uint8(items)
    assert pixels.dtype == torch.uint8
    assert torch.equal(augment.normalize(pixels), augment(padded, sizes, keys))
    assert torch.equal(labels, expected_labels)


def test_invalid_scale_rejected():
    with pytest.raises(ValueError, match="scale must satisfy"):
        make_augment(scale=(0.9, 0.5))
