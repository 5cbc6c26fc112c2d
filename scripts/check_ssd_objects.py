#!/usr/bin/env python3
"""Check the converted object detector (scripts/convert_ssd_tflite.py) and print its detections.

    scripts/check_ssd_objects.py [--models DIR] [--tflite PACKED_ASSETS] [--annotate OUT_DIR]
                                 [--time N] IMAGE_OR_VIDEO[@SECONDS] ...

For every image (or video frame at SECONDS, default 0), decoded and resized to 300x300 by
ffmpeg (bilinear, aspect ratio not kept, as MediaPipe feeds the model), this runs
`objects/ssd_mobilenetv2_oidv4.onnx` in onnxruntime and decodes the detections exactly as
`objects/config.json` says (anchors from `objects/anchors.f32`, sigmoid scores, background
ignored, score threshold, class-agnostic hard NMS at IoU 0.5): a Python reference for the
Rust decoder.

--tflite compares the raw outputs with the original .tflite (bytes 184.. of the packed
assets) run by a TFLite interpreter, if `ai_edge_litert` or `tflite_runtime` imports, and
prints the largest absolute differences. --annotate writes each input with its boxes and
labels as a PNG. --time N reports the mean onnxruntime time per frame at batch 1 over N runs.
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np


def frame(spec, size):
    """uint8 [size, size, 3] RGB and the source's (width, height)."""
    path, _, at = spec.partition("@")
    seek = ["-ss", at] if at else []
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", path],
                           check=True, capture_output=True, text=True).stdout.split()[0]
    w, h = (int(v) for v in probe.split(",")[:2])
    raw = subprocess.run(["ffmpeg", "-v", "error", *seek, "-i", path, "-frames:v", "1",
                          "-vf", f"scale={size}:{size}:flags=bilinear", "-pix_fmt", "rgb24",
                          "-f", "rawvideo", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(size, size, 3), (w, h)


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def decode(boxes, logits, anchors, cfg):
    """Detections (score, label, (xmin, ymin, xmax, ymax) normalised) for one image."""
    d, nms = cfg["decode"], cfg["nms"]
    ay, ax, ah, aw = anchors.T
    yc = boxes[:, 0] / d["y_scale"] * ah + ay
    xc = boxes[:, 1] / d["x_scale"] * aw + ax
    h = np.exp(boxes[:, 2] / d["h_scale"]) * ah
    w = np.exp(boxes[:, 3] / d["w_scale"]) * aw
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    scores[:, d["ignore_classes"]] = -1.0
    cls = scores.argmax(1)
    best = scores[np.arange(len(cls)), cls]
    keep = np.nonzero(best >= d["min_score_thresh"])[0]
    cands = sorted(((float(best[i]), int(cls[i]), (xc[i] - w[i] / 2, yc[i] - h[i] / 2, xc[i] + w[i] / 2,
                     yc[i] + h[i] / 2)) for i in keep), key=lambda t: -t[0])
    out = []
    for c in cands:
        if len(out) >= nms["max_num_detections"]:
            break
        if all(iou(c[2], o[2]) <= nms["min_suppression_threshold"] for o in out):
            out.append(c)
    return [(s, cfg["labels"][k], tuple(float(v) for v in box)) for s, k, box in out]


def annotate(spec, dets, size, out_path):
    path, _, at = spec.partition("@")
    w, h = size
    filters = []
    for s, label, (x0, y0, x1, y1) in dets:
        bx, by = int(max(x0, 0) * w), int(max(y0, 0) * h)
        bw, bh = int((min(x1, 1) - max(x0, 0)) * w), int((min(y1, 1) - max(y0, 0)) * h)
        filters.append(f"drawbox=x={bx}:y={by}:w={bw}:h={bh}:color=yellow:t=2")
        filters.append(f"drawtext=text='{label} {s:.2f}':x={bx + 3}:y={by + 3}:fontsize=14:"
                       "fontcolor=black:box=1:boxcolor=yellow")
    seek = ["-ss", at] if at else []
    subprocess.run(["ffmpeg", "-v", "error", "-y", *seek, "-i", path, "-frames:v", "1",
                    "-vf", ",".join(filters) or "null", out_path], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--models", default=os.environ.get("HEIMDEX_MODELS") or os.path.expanduser("~/.cache/heimdex/models"))
    ap.add_argument("--tflite", help="objectron_solution_packed_assets.data, to compare with the original model")
    ap.add_argument("--annotate", help="write annotated PNGs here")
    ap.add_argument("--time", type=int, default=0, help="time N onnxruntime runs at batch 1")
    args = ap.parse_args()

    import onnxruntime as ort

    d = os.path.join(args.models, "objects")
    cfg = json.load(open(os.path.join(d, "config.json")))
    anchors = np.fromfile(os.path.join(d, cfg["anchors"]["file"]), "<f4").reshape(-1, 4)
    sess = ort.InferenceSession(os.path.join(d, cfg["model"]), providers=["CPUExecutionProvider"])
    size = cfg["input"]["shape"][2]

    interp = None
    if args.tflite:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            from tflite_runtime.interpreter import Interpreter
        interp = Interpreter(model_content=open(args.tflite, "rb").read()[184:])
        interp.allocate_tensors()
        tin = interp.get_input_details()[0]["index"]
        touts = {o["name"]: o["index"] for o in interp.get_output_details()}
    worst = {"box_encodings": 0.0, "class_logits": 0.0, "sigmoid scores": 0.0}

    frames = []
    for spec in args.inputs:
        img, src_size = frame(spec, size)
        frames.append(img)
        x = img.astype(np.float32).transpose(2, 0, 1)[None]
        boxes, logits = sess.run(["box_encodings", "class_logits"], {"rgb": x})
        dets = decode(boxes[0], logits[0], anchors, cfg)
        line = f"{spec}: " + ", ".join(
            f"{label} {s:.2f} [{x0:.2f},{y0:.2f},{x1:.2f},{y1:.2f}]" for s, label, (x0, y0, x1, y1) in dets)
        if interp is not None:
            # The TFLite model takes NHWC in [-1, 1]; MediaPipe computes x * 2/255 - 1.
            interp.set_tensor(tin, (img.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0))[None])
            interp.invoke()
            tb = interp.get_tensor(touts["raw_outputs/box_encodings"])
            tl = interp.get_tensor(touts["raw_outputs/class_predictions"])
            db, dl = float(np.abs(tb - boxes).max()), float(np.abs(tl - logits).max())
            ds = float(np.abs(1 / (1 + np.exp(-tl)) - 1 / (1 + np.exp(-logits))).max())
            tdets = decode(tb[0], tl[0], anchors, cfg)
            same = [(l, round(s, 2)) for s, l, _ in tdets] == [(l, round(s, 2)) for s, l, _ in dets]
            line += f"\n    vs tflite: max |diff| boxes {db:.2e}, logits {dl:.2e}, scores {ds:.2e}; " \
                    f"detections {'identical' if same else 'DIFFER: ' + str(tdets)}"
            worst["box_encodings"] = max(worst["box_encodings"], db)
            worst["class_logits"] = max(worst["class_logits"], dl)
            worst["sigmoid scores"] = max(worst["sigmoid scores"], ds)
        print(line)
        if args.annotate:
            os.makedirs(args.annotate, exist_ok=True)
            path, _, at = spec.partition("@")
            name = os.path.splitext(os.path.basename(path))[0] + (f"_at_{at}" if at else "") + ".png"
            annotate(spec, dets, src_size, os.path.join(args.annotate, name))

    if len(frames) >= 2:
        x = np.stack(frames[:2]).astype(np.float32).transpose(0, 3, 1, 2)
        b2, l2 = sess.run(["box_encodings", "class_logits"], {"rgb": x})
        b1, l1 = zip(*(sess.run(["box_encodings", "class_logits"], {"rgb": x[i:i + 1]}) for i in range(2)))
        print(f"batch 2 vs two batch-1 runs: max |diff| {max(np.abs(b2 - np.concatenate(b1)).max(), np.abs(l2 - np.concatenate(l1)).max()):.2e}")
    if interp is not None:
        print("worst over all inputs, onnxruntime vs tflite: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    if args.time:
        x = frames[0].astype(np.float32).transpose(2, 0, 1)[None]
        for _ in range(5):
            sess.run(None, {"rgb": x})
        t = []
        for _ in range(args.time):
            t0 = time.perf_counter()
            sess.run(None, {"rgb": x})
            t.append(time.perf_counter() - t0)
        t = np.array(t) * 1000
        print(f"onnxruntime {ort.__version__}, batch 1, intra_op threads default: mean {t.mean():.1f} ms, "
              f"median {np.median(t):.1f} ms, min {t.min():.1f} ms over {args.time} runs")


if __name__ == "__main__":
    main()
