#!/usr/bin/env python3
"""Convert MediaPipe's SSD-MobileNetV2 Open Images object detector from TFLite to ONNX, and
write its SSD anchors and decoding parameters, without TensorFlow.

    scripts/convert_ssd_tflite.py PACKED_ASSETS OUT_DIR

PACKED_ASSETS is `objectron_solution_packed_assets.data` from npm
`@mediapipe/objectron@0.4.1675468480` (Apache-2.0). Its loader
(`objectron_solution_packed_assets_loader.js`) lists two files in it:

    bytes 0..184          object_detection_oidv4_labelmap.txt (24 lines, "???" = background)
    bytes 184..9,987,912  object_detection_ssd_mobilenetv2_oidv4_fp16.tflite

Both offsets are checked here (the label map is text ending in a newline, the model has the
flatbuffer identifier `TFL3` at its byte 4 and ends at the end of the file).

The .tflite flatbuffer is read with the schema bindings of PyPI `tflite` and rebuilt op by op
with `onnx.helper`: DEQUANTIZE of float16 constants is folded into float32 initializers,
CONV_2D / DEPTHWISE_CONV_2D (weights OHWI / 1HWC -> ONNX OIHW, TensorFlow "SAME" padding as
explicit pads, fused ReLU6 -> Clip), ADD, RESHAPE, CONCATENATION, LOGISTIC. Activations run
in NCHW; a tensor is transposed back to NHWC before a RESHAPE, so every reshape, concatenation
and output has exactly the TFLite element order. The model ends in raw SSD outputs (MediaPipe
decodes them in its TensorsToDetectionsCalculator), which are kept as they are:

- input `rgb`: float32 [N, 3, 300, 300], RGB values 0..255, N dynamic. The graph maps them
  to [-1, 1] itself (x * 2/255 - 1), as MediaPipe's ImageToTensorCalculator does for this
  model (output_tensor_float_range -1..1). The whole frame is resized to 300x300 (MediaPipe:
  keep_aspect_ratio false, no letterbox).
- output `box_encodings`: float32 [N, 1917, 4], per anchor (ty, tx, th, tw).
- output `class_logits`: float32 [N, 1917, 24], per anchor and class, before the sigmoid;
  class 0 is the background ("???").

OUT_DIR gets:

- `ssd_mobilenetv2_oidv4.onnx`
- `anchors.f32`: 1917 x 4 little-endian float32, row-major, each row (y_center, x_center, h, w)
  in coordinates normalised to the image (0..1), in the order of the model's outputs.
- `config.json`: input contract, decoding parameters, the anchor options they were computed
  from, MediaPipe's score threshold and NMS settings, and the label map as a list.

The anchor, decoding and NMS options are those of MediaPipe's ObjectDetectionOidV4Subgraph
(`mediapipe/modules/objectron/object_detection_oid_v4_gpu.pbtxt`); the npm package has no
.pbtxt, but the subgraph is compiled into `objectron_solution_*wasm_bin.wasm` as a serialized
CalculatorGraphConfig, from which the values below were read (SsdAnchorsCalculatorOptions,
TensorsToDetectionsCalculatorOptions, NonMaxSuppressionCalculatorOptions,
ImageToTensorCalculatorOptions). The anchor count they give is checked against the model.

The outputs are byte-for-byte reproducible (no timestamps, fixed names, IR and opset).
"""
import argparse
import json
import math
import os
import sys

import numpy as np

OPSET = 17
IR_VERSION = 8
MODEL_NAME = "ssd_mobilenetv2_oidv4.onnx"
LABELMAP_END = 184  # from objectron_solution_packed_assets_loader.js

# SsdAnchorsCalculatorOptions of ObjectDetectionOidV4Subgraph (interpolated_scale_aspect_ratio
# is not set there and takes the proto default, 1.0).
ANCHOR_OPTIONS = {
    "num_layers": 6,
    "min_scale": 0.2,
    "max_scale": 0.95,
    "input_size_height": 300,
    "input_size_width": 300,
    "anchor_offset_x": 0.5,
    "anchor_offset_y": 0.5,
    "strides": [16, 32, 64, 128, 256, 512],
    "aspect_ratios": [1.0, 2.0, 0.5, 3.0, 0.3333],
    "reduce_boxes_in_lowest_layer": True,
    "interpolated_scale_aspect_ratio": 1.0,
    "fixed_anchor_size": False,
}
# TensorsToDetectionsCalculatorOptions of the same subgraph.
DECODE = {
    "num_classes": 24,
    "num_boxes": 1917,
    "num_coords": 4,
    "box_order": ["y_center", "x_center", "h", "w"],
    "x_scale": 10.0,
    "y_scale": 10.0,
    "h_scale": 5.0,
    "w_scale": 5.0,
    "apply_exponential_on_box_size": True,
    "sigmoid_score": True,
    "ignore_classes": [0],
    "min_score_thresh": 0.5,
}
# NonMaxSuppressionCalculatorOptions: hard NMS over all classes together.
NMS = {
    "max_num_detections": 100,
    "min_suppression_threshold": 0.5,
    "overlap_type": "intersection_over_union",
    "algorithm": "default (hard suppression)",
    "class_agnostic": True,
}


# ---------------------------------------------------------------------------------------------
# Anchors: MediaPipe's SsdAnchorsCalculator (mediapipe/calculators/tflite/ssd_anchors_calculator.cc)

def calculate_scale(min_scale, max_scale, stride_index, num_strides):
    if num_strides == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * stride_index / (num_strides - 1.0)


def generate_anchors(o):
    """Anchors as float64 rows (y_center, x_center, h, w), in MediaPipe's order."""
    anchors = []
    strides = o["strides"]
    layer_id = 0
    while layer_id < o["num_layers"]:
        heights, widths, ratios, scales = [], [], [], []
        last = layer_id
        while last < len(strides) and strides[last] == strides[layer_id]:
            scale = calculate_scale(o["min_scale"], o["max_scale"], last, len(strides))
            if last == 0 and o["reduce_boxes_in_lowest_layer"]:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                for r in o["aspect_ratios"]:
                    ratios.append(r)
                    scales.append(scale)
                if o["interpolated_scale_aspect_ratio"] > 0.0:
                    nxt = 1.0 if last == len(strides) - 1 else calculate_scale(
                        o["min_scale"], o["max_scale"], last + 1, len(strides))
                    scales.append(math.sqrt(scale * nxt))
                    ratios.append(o["interpolated_scale_aspect_ratio"])
            last += 1
        for r, s in zip(ratios, scales):
            heights.append(s / math.sqrt(r))
            widths.append(s * math.sqrt(r))
        stride = strides[layer_id]
        fh = math.ceil(o["input_size_height"] / stride)
        fw = math.ceil(o["input_size_width"] / stride)
        for y in range(fh):
            for x in range(fw):
                for h, w in zip(heights, widths):
                    xc = (x + o["anchor_offset_x"]) / fw
                    yc = (y + o["anchor_offset_y"]) / fh
                    if o["fixed_anchor_size"]:
                        h = w = 1.0
                    anchors.append((yc, xc, h, w))
        layer_id = last
    return np.array(anchors, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# TFLite -> ONNX

ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
PAD_SAME, PAD_VALID = 0, 1
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


class Converter:
    def __init__(self, tfl_bytes):
        import tflite
        from onnx import helper
        from tflite.BuiltinOperator import BuiltinOperator
        from tflite.TensorType import TensorType

        self.tflite = tflite
        self.helper = helper
        self.op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}
        self.buf = tfl_bytes
        self.model = tflite.Model.GetRootAsModel(tfl_bytes, 0)
        if self.model.SubgraphsLength() != 1:
            raise SystemExit("convert_ssd_tflite: expected one subgraph")
        self.g = self.model.Subgraphs(0)
        self.consts = {}   # tensor index -> float32/int32 numpy array (constants)
        self.names = {}    # tensor index -> ONNX value name
        self.layout = {}   # tensor index -> "nchw" (4-D activations) or "plain" (TFLite order)
        self.nodes = []
        self.inits = []
        self.init_names = set()
        self.counter = 0

    # -- tensors
    def shape(self, i):
        t = self.g.Tensors(i)
        return [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []

    def tname(self, i):
        return self.g.Tensors(i).Name().decode()

    def const_data(self, i):
        t = self.g.Tensors(i)
        b = self.model.Buffers(t.Buffer())
        if b.Offset() > 1:
            raw = self.buf[b.Offset():b.Offset() + b.Size()]
        elif b.DataLength():
            raw = b.DataAsNumpy().tobytes()
        else:
            return None
        dtype = {"FLOAT32": "<f4", "FLOAT16": "<f2", "INT32": "<i4", "INT64": "<i8"}.get(self.type_names[t.Type()])
        if dtype is None:
            raise SystemExit(f"convert_ssd_tflite: constant {self.tname(i)} has unsupported type {self.type_names[t.Type()]}")
        return np.frombuffer(raw, dtype=dtype).reshape(self.shape(i)).copy()

    def fresh(self, stem):
        self.counter += 1
        return f"{stem}_{self.counter}"

    def init(self, name, array):
        from onnx import numpy_helper
        if name not in self.init_names:
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
            self.init_names.add(name)
        return name

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=f"n{len(self.nodes)}_{op}", **attrs))

    def value(self, i, want):
        """ONNX name of tensor i in layout `want` ("nchw" or "plain"), transposing if needed."""
        have = self.layout[i]
        if have == want or len(self.shape(i)) != 4:
            return self.names[i]
        out = self.fresh(f"t{i}_{want}")
        self.node("Transpose", [self.names[i]], [out], perm=NHWC_TO_NCHW if want == "nchw" else NCHW_TO_NHWC)
        return out

    def activation(self, x, act, out):
        """out = fused activation `act` (not NONE) of x."""
        if act == ACT_RELU:
            self.node("Relu", [x], [out])
        elif act in (ACT_RELU6, ACT_RELU_N1_TO_1):
            lo, hi = (0.0, 6.0) if act == ACT_RELU6 else (-1.0, 1.0)
            self.node("Clip", [x, self.init(f"clip_{lo:g}", np.array(lo, np.float32)),
                               self.init(f"clip_{hi:g}", np.array(hi, np.float32))], [out])
        else:
            raise SystemExit(f"convert_ssd_tflite: unsupported fused activation {act}")

    # -- ops
    def options(self, op, cls):
        o = cls()
        bo = op.BuiltinOptions()
        if bo is None:
            return None
        o.Init(bo.Bytes, bo.Pos)
        return o

    @staticmethod
    def same_pads(size, k, stride, dilation):
        out = -(-size // stride)
        total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2

    def conv(self, op, depthwise):
        tfl = self.tflite
        ins = [int(j) for j in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        o = self.options(op, tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions)
        w = self.consts.get(ins[1])
        if w is None:
            raise SystemExit("convert_ssd_tflite: convolution with non-constant weights")
        _, ih, iw, ic = self.shape(ins[0])
        if depthwise:  # [1, kh, kw, C*M] -> [C*M, 1, kh, kw], group = C
            if w.shape[3] != ic * o.DepthMultiplier():
                raise SystemExit("convert_ssd_tflite: depthwise weight shape does not match the input")
            weight = w.transpose(3, 0, 1, 2)
            group = ic
        else:  # [O, kh, kw, I] -> [O, I, kh, kw]
            weight = w.transpose(0, 3, 1, 2)
            group = 1
        kh, kw = weight.shape[2], weight.shape[3]
        sh, sw = o.StrideH(), o.StrideW()
        dh, dw = o.DilationHFactor(), o.DilationWFactor()
        if o.Padding() == PAD_SAME:
            pt, pb = self.same_pads(ih, kh, sh, dh)
            pl, pr = self.same_pads(iw, kw, sw, dw)
        elif o.Padding() == PAD_VALID:
            pt = pb = pl = pr = 0
        else:
            raise SystemExit(f"convert_ssd_tflite: unsupported padding {o.Padding()}")
        inputs = [self.value(ins[0], "nchw"), self.init(f"w{ins[1]}", weight.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.init(f"b{ins[2]}", self.consts[ins[2]].astype(np.float32)))
        y = f"t{out}"
        act = o.FusedActivationFunction()
        conv_out = y if act == ACT_NONE else self.fresh(f"t{out}_conv")
        self.node("Conv", inputs, [conv_out], kernel_shape=[kh, kw], strides=[sh, sw],
                  dilations=[dh, dw], pads=[pt, pl, pb, pr], group=group)
        if act != ACT_NONE:
            self.activation(conv_out, act, y)
        self.names[out], self.layout[out] = y, "nchw"

    def add(self, op):
        ins = [int(j) for j in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        if any(j in self.consts for j in ins):
            raise SystemExit("convert_ssd_tflite: ADD with a constant operand is not supported")
        lay = self.layout[ins[0]]
        y = f"t{out}"
        act = self.options(op, self.tflite.AddOptions).FusedActivationFunction()
        add_out = y if act == ACT_NONE else self.fresh(f"t{out}_add")
        self.node("Add", [self.value(j, lay) for j in ins], [add_out])
        if act != ACT_NONE:
            self.activation(add_out, act, y)
        self.names[out], self.layout[out] = y, lay

    def reshape(self, op):
        ins = [int(j) for j in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        in_shape, out_shape = self.shape(ins[0]), self.shape(out)
        if not out_shape or in_shape[0] != 1 or out_shape[0] != 1:
            raise SystemExit("convert_ssd_tflite: RESHAPE must keep a leading batch dimension of 1")
        # 0 copies the batch dimension, so N stays dynamic; the rest is TFLite's static shape.
        target = np.array([0] + out_shape[1:], dtype=np.int64)
        y = f"t{out}"
        self.node("Reshape", [self.value(ins[0], "plain"), self.init(f"shape{out}", target)], [y])
        self.names[out], self.layout[out] = y, "plain"

    def concat(self, op):
        ins = [int(j) for j in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        o = self.options(op, self.tflite.ConcatenationOptions)
        rank = len(self.shape(out))
        axis = o.Axis() % rank
        lay = "nchw" if rank == 4 and all(self.layout[j] == "nchw" for j in ins) else "plain"
        if lay == "nchw":
            axis = NHWC_TO_NCHW.index(axis)
        y = f"t{out}"
        act = o.FusedActivationFunction()
        cat_out = y if act == ACT_NONE else self.fresh(f"t{out}_concat")
        self.node("Concat", [self.value(j, lay) for j in ins], [cat_out], axis=axis)
        if act != ACT_NONE:
            self.activation(cat_out, act, y)
        self.names[out], self.layout[out] = y, lay

    def convert(self):
        from onnx import TensorProto
        helper = self.helper
        g = self.g
        for i in range(g.TensorsLength()):
            if self.model.Buffers(g.Tensors(i).Buffer()).DataLength() or self.model.Buffers(g.Tensors(i).Buffer()).Offset() > 1:
                self.consts[i] = self.const_data(i)

        (inp,) = [int(j) for j in g.InputsAsNumpy()]
        in_shape = self.shape(inp)
        if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[3] != 3 or self.type_names[g.Tensors(inp).Type()] != "FLOAT32":
            raise SystemExit(f"convert_ssd_tflite: unexpected input {self.tname(inp)} {in_shape}")
        height, width = in_shape[1], in_shape[2]
        outs = [int(j) for j in g.OutputsAsNumpy()]
        out_names = {"raw_outputs/box_encodings": "box_encodings", "raw_outputs/class_predictions": "class_logits"}
        if sorted(self.tname(j) for j in outs) != sorted(out_names):
            raise SystemExit(f"convert_ssd_tflite: unexpected outputs {[self.tname(j) for j in outs]}")

        # rgb 0..255 (NCHW) -> x * 2/255 - 1, MediaPipe's float range -1..1 for this model.
        scaled = self.fresh("rgb_scaled")
        self.node("Mul", ["rgb", self.init("rgb_scale", np.array(2.0 / 255.0, np.float32))], [scaled])
        self.node("Add", [scaled, self.init("rgb_offset", np.array(-1.0, np.float32))], [f"t{inp}"])
        self.names[inp], self.layout[inp] = f"t{inp}", "nchw"

        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            oc = self.model.OperatorCodes(op.OpcodeIndex())
            code = self.op_names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))
            if code == "DEQUANTIZE":
                (src,) = [int(j) for j in op.InputsAsNumpy()]
                (dst,) = [int(j) for j in op.OutputsAsNumpy()]
                if src not in self.consts or self.consts[src].dtype != np.float16:
                    raise SystemExit("convert_ssd_tflite: only DEQUANTIZE of float16 constants is supported")
                self.consts[dst] = self.consts[src].astype(np.float32)
            elif code == "CONV_2D":
                self.conv(op, depthwise=False)
            elif code == "DEPTHWISE_CONV_2D":
                self.conv(op, depthwise=True)
            elif code == "ADD":
                self.add(op)
            elif code == "RESHAPE":
                self.reshape(op)
            elif code == "CONCATENATION":
                self.concat(op)
            elif code == "LOGISTIC":
                (src,) = [int(j) for j in op.InputsAsNumpy()]
                (dst,) = [int(j) for j in op.OutputsAsNumpy()]
                self.node("Sigmoid", [self.names[src]], [f"t{dst}"])
                self.names[dst], self.layout[dst] = f"t{dst}", self.layout[src]
            elif code == "CUSTOM":
                raise SystemExit(f"convert_ssd_tflite: custom op {oc.CustomCode()!r} is not supported "
                                 "(TFLite_Detection_PostProcess is decoded outside the model)")
            else:
                raise SystemExit(f"convert_ssd_tflite: unsupported op {code}")

        graph_outputs = []
        for j in outs:
            name = out_names[self.tname(j)]
            self.node("Identity", [self.value(j, "plain")], [name])
            shape = self.shape(j)
            graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"] + shape[1:]))
        graph_outputs.sort(key=lambda v: list(out_names.values()).index(v.name))
        graph = helper.make_graph(
            self.nodes, "ssd_mobilenetv2_oidv4",
            [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, ["N", 3, height, width])],
            graph_outputs, initializer=self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="heimdex scripts/convert_ssd_tflite.py",
            producer_version="1",
            doc_string="SSD-MobileNetV2 (Open Images V4, 24 classes) from MediaPipe's "
                       "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite (npm @mediapipe/objectron@0.4.1675468480, "
                       "Apache-2.0). Input rgb [N,3,H,W] 0..255; outputs raw SSD box encodings and class logits.")
        model.ir_version = IR_VERSION
        return model, (height, width), {out_names[self.tname(j)]: self.shape(j) for j in outs}


def split_packed(data):
    labelmap, tfl = data[:LABELMAP_END], data[LABELMAP_END:]
    if tfl[4:8] != b"TFL3":
        raise SystemExit(f"convert_ssd_tflite: no TFL3 flatbuffer at byte {LABELMAP_END} of the packed assets")
    if not labelmap.endswith(b"\n") or b"\0" in labelmap:
        raise SystemExit("convert_ssd_tflite: the first 184 bytes are not the label map")
    labels = labelmap.decode("utf-8").split("\n")[:-1]
    return labels, tfl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packed", help="objectron_solution_packed_assets.data")
    ap.add_argument("out_dir")
    args = ap.parse_args()

    import onnx

    labels, tfl = split_packed(open(args.packed, "rb").read())
    model, (height, width), out_shapes = Converter(tfl).convert()
    onnx.checker.check_model(model)

    anchors = generate_anchors(ANCHOR_OPTIONS)
    num_boxes, num_classes = out_shapes["class_logits"][1], out_shapes["class_logits"][2]
    if (height, width) != (ANCHOR_OPTIONS["input_size_height"], ANCHOR_OPTIONS["input_size_width"]):
        raise SystemExit(f"convert_ssd_tflite: model input {height}x{width} does not match the anchor options")
    if len(anchors) != num_boxes or num_boxes != DECODE["num_boxes"] or out_shapes["box_encodings"][1:] != [num_boxes, 4]:
        raise SystemExit(f"convert_ssd_tflite: {len(anchors)} anchors for {num_boxes} boxes")
    if num_classes != DECODE["num_classes"] or len(labels) != num_classes:
        raise SystemExit(f"convert_ssd_tflite: {len(labels)} labels for {num_classes} classes")

    os.makedirs(args.out_dir, exist_ok=True)
    model_path = os.path.join(args.out_dir, MODEL_NAME)
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    anchors_path = os.path.join(args.out_dir, "anchors.f32")
    with open(anchors_path, "wb") as f:
        f.write(anchors.astype("<f4").tobytes())

    config = {
        "about": "SSD-MobileNetV2 object detector (Open Images V4, 23 classes + background) from MediaPipe "
                 "Objectron, npm @mediapipe/objectron@0.4.1675468480, Apache-2.0; converted by "
                 "scripts/convert_ssd_tflite.py. Decoding and NMS as MediaPipe's ObjectDetectionOidV4Subgraph.",
        "model": MODEL_NAME,
        "input": {
            "name": "rgb",
            "shape": ["N", 3, height, width],
            "layout": "NCHW",
            "channels": "RGB",
            "range": [0, 255],
            "normalisation": "in the graph: x * 2/255 - 1 (model sees [-1, 1])",
            "resize": "whole frame stretched to 300x300, aspect ratio not kept (MediaPipe keep_aspect_ratio: false)",
        },
        "outputs": {
            "box_encodings": {"shape": ["N", num_boxes, 4], "order": DECODE["box_order"]},
            "class_logits": {"shape": ["N", num_boxes, num_classes], "activation": "sigmoid (not in the graph)"},
        },
        "anchors": {
            "file": "anchors.f32",
            "dtype": "float32 little-endian",
            "count": int(len(anchors)),
            "row": ["y_center", "x_center", "h", "w"],
            "units": "fractions of the image height (y, h) and width (x, w)",
            "options": ANCHOR_OPTIONS,
        },
        "decode": {
            **DECODE,
            "formula": "y_center = ty / y_scale * anchor.h + anchor.y_center; x_center = tx / x_scale * anchor.w "
                       "+ anchor.x_center; h = exp(th / h_scale) * anchor.h; w = exp(tw / w_scale) * anchor.w; "
                       "box = (x_center - w/2, y_center - h/2, x_center + w/2, y_center + h/2); "
                       "score, class = max over classes not ignored of sigmoid(logit)",
        },
        "nms": NMS,
        "labels": labels,
    }
    with open(os.path.join(args.out_dir, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"models: objects: {model_path} ({len(model.graph.node)} nodes), {len(anchors)} anchors, "
          f"{len(labels)} labels", file=sys.stderr)


if __name__ == "__main__":
    main()
