"""The package's shape: the folder tree is the architecture, imports between its stages flow one
way, and the facts that several stages share are written in one place."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from keras_digits.__main__ import COMMANDS
from keras_digits.core import contract, names

PACKAGE = REPO / "keras_digits"
# Each stage and the stages it may import, in the order data flows. The command modules at the
# top (`keras_digits/train.py`, ...) are the entry points and may import any stage.
ALLOWED = {
    "core": set(),
    "imaging": {"core"},
    "data": {"core", "imaging"},
    "models": {"core"},
    "training": {"core", "data", "imaging", "models"},
    "deploy": {"core", "data", "imaging", "models"},
    "reading": {"core", "imaging"},  # no models, training or deploy: no TensorFlow
    "serving": {"core", "reading"},
    "analysis": {"core", "data", "imaging", "models", "training", "deploy", "reading"},
}


def _stages_imported(path: Path) -> set[str]:
    """The keras_digits stages a file imports anywhere, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = ([f"{node.module}.{a.name}" for a in node.names]
                       if node.module == "keras_digits" else [node.module])
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        found |= {m.split(".")[1] for m in modules if m.startswith("keras_digits.")}
    return found


def test_the_folders_are_the_stages():
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert stages == set(ALLOWED)


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_a_stage_imports_only_the_stages_before_it(stage):
    wrong = {str(p.relative_to(PACKAGE)): sorted(_stages_imported(p) - ALLOWED[stage] - {stage})
             for p in (PACKAGE / stage).rglob("*.py")}
    assert not {k: v for k, v in wrong.items() if v}


def test_every_command_has_its_module_and_every_module_at_the_top_is_a_command():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top == set(COMMANDS)


def test_the_cheap_modules_import_no_tensorflow_keras_or_numpy():
    code = ("import sys\nimport keras_digits.core.names, keras_digits.core.contract\n"
            "import keras_digits.core.cli, keras_digits.core.artifacts, keras_digits.core.atomic\n"
            "import keras_digits.training.runtime, keras_digits.training.cluster\n"
            "import keras_digits.data.folders, keras_digits.models\n"
            "heavy = {'tensorflow', 'keras'} & set(sys.modules)\nassert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_shared_facts_are_written_once():
    """The model list, the ONNX names and the preprocessing constants have one home each."""
    sources = {p: p.read_text() for p in PACKAGE.rglob("*") if p.suffix in (".py", ".js")}
    model_list = ", ".join(f'"{m}"' for m in names.MODEL_NAMES)
    facts = {model_list: "names.py", f'"{contract.CLASSES_KEY}"': "contract.py",
             f'"{contract.DATASET_KEY}"': "contract.py", "7.8": "contract.py",
             "RULE_THICKNESS = 0": "nowhere"}
    for fact, home in facts.items():
        holders = sorted(p.name for p, text in sources.items() if fact in text)
        assert holders == ([home] if home != "nowhere" else []), (fact, holders)
    from keras_digits.models import registry

    assert tuple(registry.list_models()) == names.MODEL_NAMES


def test_the_product_holds_no_option_that_no_recipe_uses():
    """Studies define their own variants; measured-and-rejected options stay out of the package
    (docs/STUDIES.md lists them with the commit that has their code)."""
    rejected = ("focal", "elastic", "cutout", "clothes", "clothing")
    found = [(str(p.relative_to(PACKAGE)), word) for p in PACKAGE.rglob("*.py")
             for word in rejected if word in p.read_text().lower()]
    assert not found


def test_where_to_change_what_names_files_that_hold_those_things():
    """The README's newcomer table: every file it names exists, and the names it gives in
    backticks beside a file are in that file."""
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Where to change what", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == 6
    for row in rows:
        files = re.findall(r"`(keras_digits/[\w/]+\.(?:py|js))`", row)
        assert files, row
        for file in files:
            assert (REPO / file).is_file(), file
        text = "".join((REPO / f).read_text() for f in files)
        for name in re.findall(r"`@?(\w+)`", row):
            assert name in text, (name, files)
