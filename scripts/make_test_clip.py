#!/usr/bin/env python3
"""Write a tiny CLIP-shaped ONNX model pair with RANDOM weights, for testing plumbing only.

    scripts/make_test_clip.py OUT_DIR

Writes OUT_DIR/image.onnx, OUT_DIR/text.onnx and OUT_DIR/text_masked.onnx. They have the input/output contract of a
real CLIP export but carry no knowledge at all: their vectors mean nothing. They exist
because no CLIP/SigLIP weights are available from the package registries this project may
use, and Heimdex's image-text stage (heimdex-pipeline `ml::embed`, bring your own model)
still needs an end-to-end test.

- image.onnx: `pixel_values` float32 [N, 3, 224, 224] -> Conv(16x16, stride 16, 16 ch) -> ReLU
  -> global average pool -> MatMul 16x512 -> `image_embeds` float32 [N, 512]
- text.onnx: `input_ids` int64 [N, 77] -> Mod 1024 -> Gather (1024x32 table) -> mean over
  tokens -> MatMul 32x512 -> `text_embeds` float32 [N, 512]
- text_masked.onnx: as text.onnx plus an `attention_mask` int64 [N, 77] input (Hugging Face
  export style); the mean runs over masked-in tokens only

Weights come from a fixed seed, so the files are byte-for-byte reproducible (their hashes are
recorded in models/models.lock by `scripts/fetch-models.py --update-lock`).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DIM = 512
OPSET = 17
IR_VERSION = 8


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="heimdex-make-test-clip")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, path)


def image_model(rng, path):
    w = numpy_helper.from_array((rng.standard_normal((16, 3, 16, 16)) * 0.05).astype(np.float32), "conv_w")
    b = numpy_helper.from_array(np.zeros(16, np.float32), "conv_b")
    proj = numpy_helper.from_array((rng.standard_normal((16, DIM)) * 0.2).astype(np.float32), "proj")
    nodes = [
        helper.make_node("Conv", ["pixel_values", "conv_w", "conv_b"], ["c"], kernel_shape=[16, 16], strides=[16, 16]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "proj"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "random_clip_image",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", DIM])],
        [w, b, proj],
    )
    save(graph, path)


def text_model(rng, path):
    table = numpy_helper.from_array(rng.standard_normal((1024, 32)).astype(np.float32), "table")
    modulus = numpy_helper.from_array(np.array(1024, np.int64), "modulus")
    proj = numpy_helper.from_array((rng.standard_normal((32, DIM)) * 0.2).astype(np.float32), "proj")
    nodes = [
        helper.make_node("Mod", ["input_ids", "modulus"], ["ids"]),
        helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
        helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["m", "proj"], ["text_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "random_clip_text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", 77])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch", DIM])],
        [table, modulus, proj],
    )
    save(graph, path)


def text_masked_model(rng, path):
    table = numpy_helper.from_array(rng.standard_normal((1024, 32)).astype(np.float32), "table")
    modulus = numpy_helper.from_array(np.array(1024, np.int64), "modulus")
    axis1 = numpy_helper.from_array(np.array([1], np.int64), "axis1")
    axis2 = numpy_helper.from_array(np.array([2], np.int64), "axis2")
    proj = numpy_helper.from_array((rng.standard_normal((32, DIM)) * 0.2).astype(np.float32), "proj")
    nodes = [
        helper.make_node("Mod", ["input_ids", "modulus"], ["ids"]),
        helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mf", "axis2"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["em"]),
        helper.make_node("ReduceSum", ["em", "axis1"], ["s"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "axis1"], ["c"], keepdims=0),
        helper.make_node("Div", ["s", "c"], ["m"]),
        helper.make_node("MatMul", ["m", "proj"], ["text_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "random_clip_text_masked",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", 77]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", 77]),
        ],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch", DIM])],
        [table, modulus, axis1, axis2, proj],
    )
    save(graph, path)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261125)
    image_model(rng, os.path.join(out, "image.onnx"))
    text_model(rng, os.path.join(out, "text.onnx"))
    text_masked_model(rng, os.path.join(out, "text_masked.onnx"))
    print(f"make_test_clip: wrote random-weight test models to {out}")


if __name__ == "__main__":
    main()
