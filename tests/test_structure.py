"""The package's shape: imports flow one way with no circle, the cheap modules stay cheap, and
the facts that several stages share are written in one place."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from keras_digits import catalog, contract

PACKAGE = REPO / "keras_digits"
# Stages in the order data flows; a module may import only modules at its level or before it.
LAYERS = [
    {"cli", "catalog", "contract", "atomic", "raster"},
    {"runtime", "augment", "cluster"},  # cluster: the processes of a data-parallel run
    # views: training digits rendered through predict's preprocessing; paper: the desk, frame
    # strips and page rules that preprocess removes
    {"data", "decode", "paper", "preprocess", "strokes", "segment", "compose", "folders",
     "views", "pipeline"},  # pipeline: the splits as tf.data (or numpy) feeds
    {"models"},
    {"artifacts"},  # loads trained models, so after models (lazily: predict stays TF-free)
    {"calibrate"},
    {"plan"},  # a run's settings and its compiled model, shared by train and bench
    {"resume", "train"},
    {"litert"},
    {"export"},
    {"reader", "verifier"},  # verifier: the one-digit model that number mode cuts with
    {"race", "flops"},  # bench's parts: the time-to-accuracy race, FLOP counting
    {"predict", "report", "bench", "evaluate"},
    {"api"},  # the HTTP prediction endpoint, built on predict's JSON
    {"serve"},
    {"__main__"},  # the `keras-digits` dispatcher, importing each stage only when chosen
]


def _imports(path: Path) -> set[str]:
    """keras_digits modules imported anywhere in the file, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "keras_digits":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("keras_digits."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("keras_digits.")}
    return found


def graph() -> dict[str, set[str]]:
    return {p.stem: _imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_every_module_has_a_place_in_the_flow():
    assert set(graph()) == set().union(*LAYERS)


def test_imports_flow_one_way_without_a_circle():
    level = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    edges = graph()
    backwards = [(a, b) for a, targets in edges.items() for b in targets
                 if level[b] > level[a] and not (a == "train" and b == "report")]
    # train's `all` ends by writing the report: the one call downstream, made lazily.
    assert not backwards, backwards
    visiting, done = set(), set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in visiting, " -> ".join([*path, node])
        if node in done:
            return
        visiting.add(node)
        for target in edges[node]:
            visit(target, [*path, node])
        visiting.discard(node)
        done.add(node)

    for module in edges:
        visit(module, [])


def test_cheap_modules_import_no_tensorflow_keras_or_numpy():
    code = ("import sys\nimport keras_digits.catalog, keras_digits.contract, keras_digits.cli\n"
            "import keras_digits.artifacts, keras_digits.runtime, keras_digits.folders\n"
            "import keras_digits.cluster\n"
            "heavy = {'tensorflow', 'keras'} & set(sys.modules)\nassert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_shared_facts_are_written_once():
    """The model list, the ONNX names and the preprocessing constants have one home each."""
    sources = {p: p.read_text() for p in PACKAGE.rglob("*") if p.suffix in (".py", ".js")}
    model_list = ", ".join(f'"{m}"' for m in catalog.MODEL_NAMES)
    facts = {model_list: "catalog.py", f'"{contract.CLASSES_KEY}"': "contract.py",
             f'"{contract.DATASET_KEY}"': "contract.py", "7.8": "contract.py",
             "RULE_THICKNESS = 0": "nowhere"}
    for fact, home in facts.items():
        holders = sorted(p.name for p, text in sources.items() if fact in text)
        assert holders == ([home] if home != "nowhere" else []), (fact, holders)
    from keras_digits import models

    assert tuple(models.list_models()) == catalog.MODEL_NAMES


def test_no_module_is_much_over_300_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert all(n <= 340 for n in sizes.values()), sizes
