//! dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`), read from
//! dlib's own serialization format and run in Rust.
//!
//! The network is dlib's `anet_type` from `dnn_face_recognition_ex.cpp`: a 7x7/2 stem conv
//! (32 filters), affine (frozen batch norm), ReLU, 3x3/2 max pool, then residual blocks of
//! two 3x3 convs (32, 32, 32 | 64 down, 64, 64, 64 | 128 down, 128, 128 | 256 down, 256,
//! 256 | 256 down), global average pool and a 256 -> 128 fully connected layer without bias.
//! A "down" block convolves with stride 2 and adds a 2x2/2 average pool of its input; where
//! the two branches differ in size (channels or odd spatial sizes), dlib's `add_prev` adds
//! them top-left aligned and treats the missing values as zero, and so does this code.
//!
//! The file is read layer by layer in the order dlib writes it (input side first); each
//! layer's name (`con_4`, `affine_`, `relu_`, `max_pool_2`, `avg_pool_2`, `add_prev_`,
//! `fc_2`) is checked, and the wrapper fields dlib writes between layers (versions, flags,
//! empty gradient tensors) are skipped by locating the next layer's length-prefixed name.
//! Convolutions are im2col + SGEMM (`ndarray`/`matrixmultiply`).

use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::ml::MlError;

/// Input side length of the aligned face chip.
pub const CHIP_SIZE: usize = 150;

/// Mean pixel values subtracted by dlib's `input_rgb_image_sized` (R, G, B); the result is
/// divided by 256.
const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// A feature map: channels x rows x cols, row-major.
#[derive(Debug, Clone)]
struct Map {
    k: usize,
    nr: usize,
    nc: usize,
    data: Vec<f32>,
}

impl Map {
    fn zeros(k: usize, nr: usize, nc: usize) -> Self {
        Self {
            k,
            nr,
            nc,
            data: vec![0.0; k * nr * nc],
        }
    }
}

#[derive(Debug, Clone)]
struct Conv {
    filters: usize,
    k: usize,
    nr: usize,
    nc: usize,
    stride: usize,
    pad: usize,
    /// filters x (k * nr * nc)
    weights: Array2<f32>,
    bias: Vec<f32>,
}

#[derive(Debug, Clone)]
enum Layer {
    Conv(Conv),
    Affine {
        gamma: Vec<f32>,
        beta: Vec<f32>,
    },
    Relu,
    MaxPool {
        size: usize,
        stride: usize,
    },
    AvgPool {
        size: usize,
        stride: usize,
    },
    AddPrev,
    GlobalAvgPool,
    Fc {
        inputs: usize,
        outputs: usize,
        weights: Vec<f32>,
    },
}

/// The loaded network.
#[derive(Debug, Clone)]
pub struct DlibResnet {
    layers: Vec<Layer>,
    mean: [f32; 3],
}

/// A cursor over dlib's serialization.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) path: &'a str,
}

impl<'a> Reader<'a> {
    pub(super) fn err(&self, what: impl std::fmt::Display) -> MlError {
        MlError::model(
            self.path,
            format!("dlib format at byte {}: {what}", self.pos),
        )
    }

    pub(super) fn byte(&mut self) -> Result<u8, MlError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    /// dlib's variable-length integer: a control byte (length | 0x80 if negative) followed
    /// by that many little-endian bytes.
    pub(super) fn int(&mut self) -> Result<i64, MlError> {
        let ctl = self.byte()?;
        let len = usize::from(ctl & 0x0f);
        if len > 8 {
            return Err(self.err(format!("bad integer control byte {ctl:#x}")));
        }
        let mut v: u64 = 0;
        for i in 0..len {
            v |= u64::from(self.byte()?) << (8 * i);
        }
        let v = i64::try_from(v).map_err(|_| self.err("integer overflow"))?;
        Ok(if ctl & 0x80 != 0 { -v } else { v })
    }

    pub(super) fn usize(&mut self) -> Result<usize, MlError> {
        let v = self.int()?;
        usize::try_from(v).map_err(|_| self.err(format!("negative size {v}")))
    }

    /// dlib's portable float: mantissa and exponent as integers.
    pub(super) fn float(&mut self) -> Result<f64, MlError> {
        let m = self.int()?;
        let e = self.int()?;
        Ok(m as f64 * 2f64.powi(i32::try_from(e).map_err(|_| self.err("bad exponent"))?))
    }

    /// A `resizable_tensor` (version 2): dims then raw little-endian f32.
    fn tensor(&mut self) -> Result<Vec<f32>, MlError> {
        let version = self.int()?;
        if version != 2 {
            return Err(self.err(format!("tensor version {version}")));
        }
        let mut n = 1usize;
        for _ in 0..4 {
            n = n
                .checked_mul(self.usize()?)
                .ok_or_else(|| self.err("tensor too large"))?;
        }
        let bytes = n * 4;
        let end = self.pos.checked_add(bytes).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| self.err("tensor past end"))?;
        let out = self.buf[self.pos..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.pos = end;
        Ok(out)
    }

    /// An `alias_tensor` (version 1): dims only.
    fn alias(&mut self) -> Result<[usize; 4], MlError> {
        let version = self.int()?;
        if version != 1 {
            return Err(self.err(format!("alias_tensor version {version}")));
        }
        Ok([self.usize()?, self.usize()?, self.usize()?, self.usize()?])
    }

    /// Move to the next length-prefixed layer name out of `names` and return it.
    fn next_name(&mut self, names: &[&str]) -> Result<String, MlError> {
        let start = self.pos;
        // Wrapper fields between two layers are a few hundred bytes at most.
        let limit = (start + 4096).min(self.buf.len());
        for p in start..limit {
            if self.buf[p] != 0x01 {
                continue;
            }
            let Some(&len) = self.buf.get(p + 1) else {
                break;
            };
            let len = usize::from(len);
            let Some(s) = self.buf.get(p + 2..p + 2 + len) else {
                continue;
            };
            if let Some(n) = names.iter().find(|n| n.as_bytes() == s) {
                self.pos = p + 2 + len;
                return Ok((*n).to_owned());
            }
        }
        Err(self.err(format!("expected one of {names:?}")))
    }
}

const LAYER_NAMES: &[&str] = &[
    "con_4",
    "con_5",
    "affine_",
    "affine_2",
    "relu_",
    "relu_2",
    "max_pool_2",
    "avg_pool_2",
    "add_prev_",
    "fc_2",
    "fc_3",
];

impl DlibResnet {
    /// Read `dlib_face_recognition_resnet_model_v1.dat`.
    pub fn load(path: &Path) -> Result<Self, MlError> {
        let buf = std::fs::read(path).map_err(|source| MlError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.display().to_string();
        Self::parse(&buf, &name)
    }

    fn parse(buf: &[u8], path: &str) -> Result<Self, MlError> {
        let mut r = Reader { buf, pos: 0, path };
        r.next_name(&["loss_metric_", "loss_metric_2"])?;
        r.next_name(&["input_rgb_image_sized"])?;
        let mut mean = [0f32; 3];
        for m in &mut mean {
            *m = r.float()? as f32;
        }
        if mean.iter().zip(MEAN_RGB).any(|(a, b)| (a - b).abs() > 0.01) {
            return Err(r.err(format!("unexpected input means {mean:?}")));
        }
        let mut layers = Vec::new();
        loop {
            let name = r.next_name(LAYER_NAMES)?;
            match name.as_str() {
                "con_4" | "con_5" => {
                    let params = r.tensor()?;
                    let filters = r.usize()?;
                    let nr = r.usize()?;
                    let nc = r.usize()?;
                    let sy = r.usize()?;
                    let sx = r.usize()?;
                    let py = r.usize()?;
                    let px = r.usize()?;
                    let f = r.alias()?;
                    if sy != sx || py != px || f[0] != filters || f[2] != nr || f[3] != nc {
                        return Err(r.err("unsupported convolution shape"));
                    }
                    let k = f[1];
                    let nw = filters * k * nr * nc;
                    if params.len() != nw + filters {
                        return Err(r.err("convolution parameter count mismatch"));
                    }
                    let weights =
                        Array2::from_shape_vec((filters, k * nr * nc), params[..nw].to_vec())
                            .map_err(|e| r.err(e))?;
                    layers.push(Layer::Conv(Conv {
                        filters,
                        k,
                        nr,
                        nc,
                        stride: sy,
                        pad: py,
                        weights,
                        bias: params[nw..].to_vec(),
                    }));
                }
                "affine_" | "affine_2" => {
                    let params = r.tensor()?;
                    let g = r.alias()?;
                    let n = g.iter().product::<usize>();
                    if params.len() != 2 * n {
                        return Err(r.err("affine parameter count mismatch"));
                    }
                    layers.push(Layer::Affine {
                        gamma: params[..n].to_vec(),
                        beta: params[n..].to_vec(),
                    });
                }
                "relu_" | "relu_2" => layers.push(Layer::Relu),
                "max_pool_2" | "avg_pool_2" => {
                    let nr = r.usize()?;
                    let nc = r.usize()?;
                    let sy = r.usize()?;
                    let sx = r.usize()?;
                    let py = r.usize()?;
                    let px = r.usize()?;
                    if nr != nc || sy != sx || py != 0 || px != 0 {
                        return Err(r.err("unsupported pooling shape"));
                    }
                    layers.push(match (name.as_str(), nr) {
                        ("avg_pool_2", 0) => Layer::GlobalAvgPool,
                        ("avg_pool_2", _) => Layer::AvgPool {
                            size: nr,
                            stride: sy,
                        },
                        _ => Layer::MaxPool {
                            size: nr,
                            stride: sy,
                        },
                    });
                }
                "add_prev_" => layers.push(Layer::AddPrev),
                _ => {
                    // fc_2 / fc_3
                    let outputs = r.usize()?;
                    let inputs = r.usize()?;
                    let weights = r.tensor()?;
                    if weights.len() != inputs * outputs {
                        return Err(r.err("fc parameter count mismatch (expected no bias)"));
                    }
                    layers.push(Layer::Fc {
                        inputs,
                        outputs,
                        weights,
                    });
                    break;
                }
            }
        }
        let convs = layers
            .iter()
            .filter(|l| matches!(l, Layer::Conv(_)))
            .count();
        if convs != 29 {
            return Err(r.err(format!("expected 29 convolutions, found {convs}")));
        }
        Ok(Self { layers, mean })
    }

    /// Size of the descriptor (128).
    pub fn dims(&self) -> usize {
        match self.layers.last() {
            Some(Layer::Fc { outputs, .. }) => *outputs,
            _ => 0,
        }
    }

    /// The descriptor of an aligned 150x150 RGB face chip (packed RGB24).
    pub fn embed(&self, chip_rgb: &[u8]) -> Vec<f32> {
        let mut x = Map::zeros(3, CHIP_SIZE, CHIP_SIZE);
        let plane = CHIP_SIZE * CHIP_SIZE;
        for (i, px) in chip_rgb.chunks_exact(3).take(plane).enumerate() {
            for (c, (&v, m)) in px.iter().zip(self.mean).enumerate() {
                x.data[c * plane + i] = (f32::from(v) - m) / 256.0;
            }
        }
        // Residual bookkeeping: after the stem (conv, affine, relu, max pool) the convs come
        // in pairs; the first of a pair starts a block whose input is kept for `add_prev`.
        let mut conv_index = 0usize;
        let mut block_input: Option<Map> = None;
        let mut pooled_shortcut: Option<Map> = None;
        let mut out = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::Conv(c) => {
                    if conv_index % 2 == 1 {
                        block_input = Some(x.clone());
                    }
                    conv_index += 1;
                    x = conv(&x, c);
                }
                Layer::Affine { gamma, beta } => {
                    let plane = x.nr * x.nc;
                    for (ch, chunk) in x.data.chunks_mut(plane).enumerate() {
                        let (g, b) = (gamma[ch], beta[ch]);
                        chunk.iter_mut().for_each(|v| *v = *v * g + b);
                    }
                }
                Layer::Relu => x.data.iter_mut().for_each(|v| *v = v.max(0.0)),
                Layer::MaxPool { size, stride } => x = pool(&x, *size, *stride, true),
                Layer::AvgPool { size, stride } => {
                    let input = block_input.as_ref().unwrap_or(&x);
                    pooled_shortcut = Some(pool(input, *size, *stride, false));
                }
                Layer::AddPrev => {
                    let shortcut = pooled_shortcut.take().or_else(|| block_input.take());
                    if let Some(s) = shortcut {
                        x = add_zero_extended(&x, &s);
                    }
                    block_input = None;
                }
                Layer::GlobalAvgPool => {
                    let plane = (x.nr * x.nc).max(1);
                    let data = x
                        .data
                        .chunks(plane)
                        .map(|c| c.iter().sum::<f32>() / plane as f32)
                        .collect::<Vec<_>>();
                    x = Map {
                        k: data.len(),
                        nr: 1,
                        nc: 1,
                        data,
                    };
                }
                Layer::Fc {
                    inputs,
                    outputs,
                    weights,
                } => {
                    // dlib's fc weights are inputs x outputs.
                    out = vec![0f32; *outputs];
                    for (i, &v) in x.data.iter().take(*inputs).enumerate() {
                        let row = &weights[i * outputs..(i + 1) * outputs];
                        for (o, w) in out.iter_mut().zip(row) {
                            *o += v * w;
                        }
                    }
                }
            }
        }
        out
    }
}

fn conv(x: &Map, c: &Conv) -> Map {
    let oh = (x.nr + 2 * c.pad - c.nr) / c.stride + 1;
    let ow = (x.nc + 2 * c.pad - c.nc) / c.stride + 1;
    let p = oh * ow;
    let rows = c.k * c.nr * c.nc;
    // im2col: rows x p
    let mut col = vec![0f32; rows * p];
    let mut row = 0;
    for ch in 0..c.k {
        let src = &x.data[ch * x.nr * x.nc..(ch + 1) * x.nr * x.nc];
        for ky in 0..c.nr {
            for kx in 0..c.nc {
                let dst = &mut col[row * p..(row + 1) * p];
                for oy in 0..oh {
                    let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                    if iy < 0 || iy >= x.nr as isize {
                        continue;
                    }
                    let srow = &src[iy as usize * x.nc..(iy as usize + 1) * x.nc];
                    let drow = &mut dst[oy * ow..(oy + 1) * ow];
                    for (ox, d) in drow.iter_mut().enumerate() {
                        let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                        if ix >= 0 && (ix as usize) < x.nc {
                            *d = srow[ix as usize];
                        }
                    }
                }
                row += 1;
            }
        }
    }
    let col = ArrayView2::from_shape((rows, p), &col).expect("im2col shape");
    let mut out = Array2::<f32>::zeros((c.filters, p));
    ndarray::linalg::general_mat_mul(1.0, &c.weights, &col, 0.0, &mut out);
    let mut data = out.into_raw_vec_and_offset().0;
    for (f, chunk) in data.chunks_mut(p).enumerate() {
        let b = c.bias[f];
        chunk.iter_mut().for_each(|v| *v += b);
    }
    Map {
        k: c.filters,
        nr: oh,
        nc: ow,
        data,
    }
}

fn pool(x: &Map, size: usize, stride: usize, max: bool) -> Map {
    let oh = (x.nr - size) / stride + 1;
    let ow = (x.nc - size) / stride + 1;
    let mut out = Map::zeros(x.k, oh, ow);
    let norm = 1.0 / (size * size) as f32;
    for ch in 0..x.k {
        let src = &x.data[ch * x.nr * x.nc..(ch + 1) * x.nr * x.nc];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                for ky in 0..size {
                    for kx in 0..size {
                        let v = src[(oy * stride + ky) * x.nc + ox * stride + kx];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                out.data[(ch * oh + oy) * ow + ox] = if max { acc } else { acc * norm };
            }
        }
    }
    out
}

/// dlib's `add_prev` for tensors of different sizes: the output has the larger size in
/// every dimension; values outside a tensor count as zero.
fn add_zero_extended(a: &Map, b: &Map) -> Map {
    let (k, nr, nc) = (a.k.max(b.k), a.nr.max(b.nr), a.nc.max(b.nc));
    let mut out = Map::zeros(k, nr, nc);
    for src in [a, b] {
        for ch in 0..src.k {
            for r in 0..src.nr {
                for c in 0..src.nc {
                    out.data[(ch * nr + r) * nc + c] += src.data[(ch * src.nr + r) * src.nc + c];
                }
            }
        }
    }
    out
}
