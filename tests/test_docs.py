"""The README's commands are the ones CI runs, in both languages."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fenced_commands(path: Path) -> list[str]:
    """Return the bash blocks of a Markdown file with trailing comments removed."""
    blocks = re.findall(r"```bash\n(.+?)\n```", path.read_text(), flags=re.S)
    return ["\n".join(re.sub(r"\s+#.*$", "", line) for line in block.splitlines()) for block in blocks]


def test_ci_runs_readme_commands():
    ci_lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == fenced_commands(REPO / "README.md")[:2]


def test_translation_has_same_commands():
    english = fenced_commands(REPO / "README.md")
    chinese = fenced_commands(REPO / "README.zh-TW.md")
    assert chinese == english


def test_recipes_in_readme_exist():
    for name in re.findall(r"`(\w+\.yaml)`", (REPO / "README.md").read_text()):
        if name not in ("SWEEP.yaml", "a.yaml", "b.yaml", "recipe.yaml"):
            assert (REPO / "recipes" / name).is_file(), name
