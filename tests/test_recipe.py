"""Recipe schema: loading, overrides, errors that name the key, and round trips."""

from pathlib import Path

import pytest
import yaml

from zoo_core.recipe import Recipe, RecipeError, apply_overrides, load_recipe, parse_override

REPO = Path(__file__).resolve().parent.parent


def write_recipe(tmp_path, data) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def minimal():
    return {"name": "t", "model": {"name": "test_convnext"}, "train": {"epochs": 2, "batch_size": 4}}


def test_unknown_key_names_file_and_closest(tmp_path):
    data = minimal()
    data["optim"] = {"lrr": 0.1}
    path = write_recipe(tmp_path, data)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    assert "'optim.lrr'" in message
    assert str(path) in message
    assert "did you mean 'optim.lr'" in message


def test_unknown_section_suggests_section(tmp_path):
    data = minimal()
    data["trian"] = {"epochs": 3}
    with pytest.raises(RecipeError, match="did you mean 'train'"):
        load_recipe(write_recipe(tmp_path, data))


def test_wrong_type_names_key_and_value(tmp_path):
    data = minimal()
    data["train"]["epochs"] = "many"
    with pytest.raises(RecipeError) as error:
        load_recipe(write_recipe(tmp_path, data))
    assert "'train.epochs'" in str(error.value)
    assert "'many'" in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("optim.lr", -1.0), ("data.val_fraction", 1.5), ("train.batch_size", 0), ("model.drop_path_rate", 1.0)],
)
def test_out_of_range_value_rejected(tmp_path, key, value):
    data = minimal()
    section, field = key.split(".")
    data.setdefault(section, {})[field] = value
    with pytest.raises(RecipeError, match=f"'{key}'"):
        load_recipe(write_recipe(tmp_path, data))


def test_missing_model_name_says_how_to_fix(tmp_path):
    with pytest.raises(RecipeError, match="missing key 'model.name'.*--set model.name=VALUE"):
        load_recipe(write_recipe(tmp_path, {"model": {}}))


def test_missing_file_named(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_override_sets_nested_values(tmp_path):
    path = write_recipe(tmp_path, minimal())
    recipe = load_recipe(path, ["optim.lr=5e-5", "data.name=sample", "train.early_stopping_patience=null"])
    assert recipe.optim.lr == pytest.approx(5e-5)
    assert recipe.data.name == "sample"
    assert recipe.train.early_stopping_patience is None


def test_override_unknown_key_suggests(tmp_path):
    with pytest.raises(RecipeError, match="did you mean 'optim.lr'"):
        load_recipe(write_recipe(tmp_path, minimal()), ["optim.lrr=1"])


def test_override_without_equals_rejected():
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_override("optim.lr")


def test_override_creates_missing_section():
    data = apply_overrides({"model": {"name": "x"}}, ["schedule.warmup_epochs=2"])
    assert data["schedule"] == {"warmup_epochs": 2}


def test_saved_recipe_loads_back_identical(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, minimal()), ["optim.lr=3e-4"])
    saved = tmp_path / "saved.yaml"
    recipe.save(saved)
    assert load_recipe(saved) == recipe


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    assert recipe.augment.mixup_alpha == 0.0
    assert recipe.augment.cutmix_alpha == 0.0


def test_readme_reference_lists_every_key():
    from zoo_core.recipe import VALID_KEYS, reference_markdown

    readme = (REPO / "README.md").read_text()
    assert reference_markdown() in readme, "README recipe reference is stale; regenerate it"
    sections = {"model", "data", "augment", "optim", "schedule", "train"}
    for key in VALID_KEYS:
        if key not in sections:
            assert f"`{key}`" in readme, key


def test_requirements_install_every_plugin():
    requirements = (REPO / "requirements.txt").read_text()
    for plugin in sorted((REPO / "plugins").iterdir()):
        if (plugin / "pyproject.toml").is_file():
            assert f"-e ./plugins/{plugin.name}" in requirements, plugin.name


def test_bad_override_value_blames_set_option(tmp_path):
    path = write_recipe(tmp_path, minimal())
    with pytest.raises(RecipeError) as error:
        load_recipe(path, ["data.img_size=abc"])
    assert "--set data.img_size=abc" in str(error.value)
    assert str(path) not in str(error.value)
