"""A model's hidden layers as extra outputs of its ONNX file, for `explain` and the page.

`export/<dataset>/inside/<model>.onnx` computes exactly what `<model>.onnx` computes, and also
returns each hidden layer: a convolution's feature maps after its ReLU (N, channels, height,
width, as tf2onnx lays them out), and a dense layer's units before their ReLU (N, units), so
that a reader can probe a unit's weights through the file (it is linear in its inputs there).
Which outputs there are, with the Keras layer each comes from, is listed as JSON in the file's
metadata under `contract.INSIDE_KEY`. Made from the exported file with the onnx package alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_digits.core import artifacts, atomic, contract


def _layer_name(tensor: str) -> str:
    """The Keras layer a tf2onnx tensor comes from ("cnn_1/block1_relu_1/Relu:0": block1_relu)."""
    parts = tensor.split("/")
    name = parts[1] if len(parts) > 2 else parts[0]
    return name.removesuffix("_1")


def hidden_layers(proto) -> list[dict]:
    """Each ReLU of the graph as a hidden layer: {"output", "layer", "kind": "conv"|"dense"}."""
    from onnx import shape_inference

    graph = shape_inference.infer_shapes(proto).graph
    rank = {v.name: len(v.type.tensor_type.shape.dim)
            for v in list(graph.value_info) + list(graph.output)}
    layers = []
    for node in graph.node:
        if node.op_type != "Relu":
            continue
        if rank.get(node.output[0]) == 4:
            layers.append({"output": node.output[0], "layer": _layer_name(node.output[0]),
                           "kind": "conv"})
        elif rank.get(node.input[0]) == 2:
            layers.append({"output": node.input[0], "layer": _layer_name(node.output[0]),
                           "kind": "dense"})
    return layers


def write_inside(model_path: Path, final: Path | None = None) -> Path:
    """The inside copy of an exported ONNX model, written atomically; its path."""
    import onnx

    final = final or artifacts.inside_path(model_path)
    proto = onnx.load(str(model_path))
    layers = hidden_layers(proto)
    for layer in layers:  # shapes of any batch: (N, C, H, W) or (N, units)
        rank = 4 if layer["kind"] == "conv" else 2
        proto.graph.output.append(onnx.helper.make_tensor_value_info(
            layer["output"], onnx.TensorProto.FLOAT, [None] * rank))
    props = {p.key: p.value for p in proto.metadata_props}
    props[contract.INSIDE_KEY] = json.dumps(layers)
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(final) as tmp:
        onnx.save(proto, str(tmp))
    return final
