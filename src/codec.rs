//! Content codings: which coding a response is sent in (negotiated from the client's
//! `Accept-Encoding`), which responses are worth compressing, and the streaming decoders and
//! encoders used by the rewriter (an origin's compressed page is decoded to be rewritten) and by
//! compression at the edge. Every chunk is flushed, so compression never stops streaming.

use std::borrow::Cow;
use std::io::{self, Write};

use flate2::Compression;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::body::{self, Body, Transform};
use crate::headers;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// The coding named by a `Content-Encoding` header; `None` for codings this proxy cannot
    /// decode (or stacked codings), whose bodies then pass through unrewritten.
    pub fn from_header(value: Option<&HeaderValue>) -> Option<Coding> {
        let Some(value) = value else {
            return Some(Coding::Identity);
        };
        Coding::from_name(value.to_str().ok()?.trim())
    }

    fn from_name(name: &str) -> Option<Coding> {
        match name.to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Coding::Identity),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    /// The name in `Content-Encoding` and `Accept-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// Codings edgeseo encodes, best first: the order that breaks ties between equal q-values.
/// `deflate` is decoded but never chosen, since servers disagree on what it means.
const ENCODABLE: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

/// The coding a response to this request is sent in: the one the client prefers by q-value among
/// those edgeseo encodes (`*` stands for any not named), or identity when it accepts none.
pub fn negotiate(accept_encoding: Option<&HeaderValue>) -> Coding {
    let Some(value) = accept_encoding.and_then(|v| v.to_str().ok()) else {
        return Coding::Identity;
    };
    let mut q = [None::<f32>; ENCODABLE.len()];
    let mut wildcard = None;
    for (name, weight) in headers::weighted(value) {
        if name == "*" {
            wildcard = Some(weight);
        } else if let Some(coding) = Coding::from_name(name)
            && let Some(i) = ENCODABLE.iter().position(|c| *c == coding)
        {
            q[i] = Some(weight);
        }
    }
    let mut best = (Coding::Identity, 0.0f32);
    for (coding, weight) in ENCODABLE.iter().zip(q) {
        let weight = weight.or(wildcard).unwrap_or(0.0);
        if weight > best.1 {
            best = (*coding, weight);
        }
    }
    best.0
}

/// Whether a body of this media type shrinks when compressed: text, JSON, XML, JavaScript, SVG
/// and uncompressed fonts. Images, video, archives and event streams (which must not be held
/// back by an encoder) are left alone.
pub fn compressible(content_type: &str) -> bool {
    let media = headers::media_type_of(content_type);
    match media.split_once('/') {
        Some(("text", sub)) => sub != "event-stream",
        Some(("application", sub)) => {
            matches!(sub, "javascript" | "x-javascript" | "json" | "xml" | "wasm")
                || sub.ends_with("+json")
                || sub.ends_with("+xml")
                || sub == "vnd.ms-fontobject"
        }
        Some(("image", sub)) => matches!(sub, "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"),
        Some(("font", sub)) => matches!(sub, "ttf" | "otf"),
        _ => false,
    }
}

/// Compresses a response at the edge when that helps: the client accepts `coding`, the body is
/// not already encoded, is of a compressible type and (when its size is known) at least
/// `min_size` bytes, the status carries a body, and the origin did not forbid transformation.
/// For HEAD only the headers change, so they match what a GET gets.
pub fn encode_response(
    status: StatusCode,
    headers: &mut HeaderMap,
    body: Body,
    coding: Coding,
    min_size: u64,
) -> Body {
    let worth_it = coding != Coding::Identity
        && !headers.contains_key(header::CONTENT_ENCODING)
        && !matches!(status.as_u16(), 100..=199 | 204 | 206 | 304)
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(compressible)
        && !no_transform(headers)
        && declared_size(headers, &body).is_none_or(|n| n >= min_size);
    if !worth_it {
        return body;
    }
    mark_encoded(headers, coding);
    body::transform(body, Encoder::new(coding))
}

fn no_transform(headers: &HeaderMap) -> bool {
    headers::list(headers, header::CACHE_CONTROL).any(|d| d.eq_ignore_ascii_case("no-transform"))
}

fn declared_size(headers: &HeaderMap, body: &Body) -> Option<u64> {
    use http_body::Body as _;
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(body.size_hint().exact())
}

/// The headers of a body re-encoded by edgeseo in `coding`: its length is no longer known, a
/// byte range of it means nothing to the origin, its validator can only be weak, and caches
/// downstream must keep one copy per coding.
pub fn mark_encoded(headers: &mut HeaderMap, coding: Coding) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    match coding {
        Coding::Identity => headers.remove(header::CONTENT_ENCODING),
        coding => headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.name()),
        ),
    };
    weaken_etag(headers);
    let varies = headers::list(headers, header::VARY)
        .any(|v| v.eq_ignore_ascii_case("accept-encoding") || v == "*");
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A body that differs from the origin's keeps only a weak validator.
fn weaken_etag(headers: &mut HeaderMap) {
    if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok())
        && !etag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
    {
        headers.insert(header::ETAG, weak);
    }
}

/// Most bytes one response may decode to. A page is rewritten as it decodes, so this bounds the
/// memory and CPU one origin response can take, whatever its compressed size.
pub const MAX_DECODED: u64 = 64 << 20;
/// Largest expansion past the first [`RATIO_FREE`] bytes: HTML compresses 5–20:1; a body that
/// inflates 100 times is a decompression bomb, not a page.
pub const MAX_RATIO: u64 = 100;
pub const RATIO_FREE: u64 = 1 << 20;

/// Why decoding stopped on purpose.
#[derive(Debug, thiserror::Error)]
#[error(
    "decoded body exceeds edgeseo's limits ({decoded} bytes from {encoded}; at most {MAX_DECODED}, and {MAX_RATIO}:1 past the first MiB): response cut"
)]
pub struct DecodeLimit {
    pub decoded: u64,
    pub encoded: u64,
}

/// Where a decompressor writes: counts what comes out against what went in, and refuses to
/// take more than the limits allow, which stops the decompressor in the middle of its chunk.
#[derive(Default)]
pub struct Bounded {
    out: Vec<u8>,
    encoded: u64,
    decoded: u64,
}

impl Bounded {
    fn over(&self) -> bool {
        self.decoded > MAX_DECODED
            || (self.decoded > RATIO_FREE && self.decoded > MAX_RATIO * self.encoded)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.decoded += buf.len() as u64;
        if self.over() {
            let limit = DecodeLimit {
                decoded: self.decoded,
                encoded: self.encoded,
            };
            tracing::warn!("{limit}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, limit));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub enum Decoder {
    Identity,
    Gzip(Box<flate2::write::MultiGzDecoder<Bounded>>),
    /// `deflate` is zlib-wrapped by the standard, raw by some servers: decided on the first bytes.
    Deflate(Option<Box<dyn DeflateSink>>),
    Brotli(Box<brotli::DecompressorWriter<Bounded>>),
    Zstd(Box<ZstdDecoder>),
}

/// zstd through its streaming API, which tells when a frame is complete (a body that ends
/// mid-frame was truncated).
pub struct ZstdDecoder {
    raw: zstd::stream::raw::Decoder<'static>,
    frame_open: bool,
    /// Output space reused for every chunk.
    buf: Vec<u8>,
    bounded: Bounded,
}

impl ZstdDecoder {
    fn push(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        self.bounded.encoded += input.len() as u64;
        let mut input = InBuffer::around(input);
        loop {
            let mut output = OutBuffer::around(&mut self.buf[..]);
            let hint = self.raw.run(&mut input, &mut output)?;
            let written = output.pos();
            self.bounded.write_all(&self.buf[..written])?;
            self.frame_open = hint != 0;
            if input.pos() == input.src.len() && written < self.buf.len() {
                return Ok(std::mem::take(&mut self.bounded.out));
            }
        }
    }
}

pub trait DeflateSink: Write + Send {
    fn bounded(&mut self) -> &mut Bounded;
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>>;
}

impl DeflateSink for flate2::write::ZlibDecoder<Bounded> {
    fn bounded(&mut self) -> &mut Bounded {
        self.get_mut()
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        Ok((*self).finish()?.out)
    }
}

impl DeflateSink for flate2::write::DeflateDecoder<Bounded> {
    fn bounded(&mut self) -> &mut Bounded {
        self.get_mut()
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        Ok((*self).finish()?.out)
    }
}

/// Feeds `input` to a decompressor writing into a [`Bounded`], and takes what came out.
fn decode_into<W: Write + ?Sized>(
    d: &mut W,
    bounded: impl Fn(&mut W) -> &mut Bounded,
    input: &[u8],
) -> io::Result<Vec<u8>> {
    bounded(d).encoded += input.len() as u64;
    d.write_all(input)?;
    // Without a flush the decoder holds output back until its buffer fills.
    d.flush()?;
    Ok(std::mem::take(&mut bounded(d).out))
}

impl Decoder {
    pub fn new(coding: Coding) -> Decoder {
        match coding {
            Coding::Identity => Decoder::Identity,
            Coding::Gzip => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                Bounded::default(),
            ))),
            Coding::Deflate => Decoder::Deflate(None),
            Coding::Brotli => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(
                Bounded::default(),
                16 * 1024,
            ))),
            Coding::Zstd => Decoder::Zstd(Box::new(ZstdDecoder {
                // Only fails when the library cannot allocate its context.
                raw: zstd::stream::raw::Decoder::new().expect("zstd decoder context"),
                frame_open: false,
                buf: vec![0; 32 * 1024],
                bounded: Bounded::default(),
            })),
        }
    }

    /// Decodes one chunk; returns what could be decoded so far.
    pub fn push<'a>(&mut self, input: &'a [u8]) -> io::Result<Cow<'a, [u8]>> {
        let decoded = match self {
            Decoder::Identity => return Ok(Cow::Borrowed(input)),
            Decoder::Gzip(d) => decode_into(&mut **d, |d| d.get_mut(), input)?,
            Decoder::Deflate(sink) => {
                let d = sink.get_or_insert_with(|| {
                    if looks_like_zlib(input) {
                        Box::new(flate2::write::ZlibDecoder::new(Bounded::default()))
                    } else {
                        Box::new(flate2::write::DeflateDecoder::new(Bounded::default()))
                    }
                });
                decode_into(&mut **d, |d| d.bounded(), input)?
            }
            Decoder::Brotli(d) => decode_into(&mut **d, |d| d.get_mut(), input)?,
            Decoder::Zstd(d) => d.push(input)?,
        };
        Ok(Cow::Owned(decoded))
    }

    /// Ends the stream, failing if it was truncated.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Decoder::Identity | Decoder::Deflate(None) => Ok(Vec::new()),
            Decoder::Gzip(d) => Ok(d.finish()?.out),
            Decoder::Deflate(Some(d)) => d.finish(),
            Decoder::Brotli(mut d) => {
                d.close()?;
                Ok(std::mem::take(&mut d.get_mut().out))
            }
            Decoder::Zstd(d) if d.frame_open => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "zstd body ends mid-frame",
            )),
            Decoder::Zstd(_) => Ok(Vec::new()),
        }
    }
}

fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => true,
    }
}

pub enum Encoder {
    Identity,
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
    Deflate(Box<flate2::write::ZlibEncoder<Vec<u8>>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl Encoder {
    pub fn new(coding: Coding) -> Encoder {
        // Moderate levels: an uncached response is compressed while it streams, and a cached one
        // is stored compressed, so speed matters more than the last few percent.
        match coding {
            Coding::Identity => Encoder::Identity,
            Coding::Gzip => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::new(),
                Compression::new(5),
            ))),
            Coding::Deflate => Encoder::Deflate(Box::new(flate2::write::ZlibEncoder::new(
                Vec::new(),
                Compression::new(5),
            ))),
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                5,
                22,
            ))),
            // Only fails when the library cannot allocate its context.
            Coding::Zstd => Encoder::Zstd(Box::new(
                zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd encoder context"),
            )),
        }
    }

    /// Encodes and flushes one chunk, so the client can start on it at once.
    pub fn push(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        fn step<W: Write>(w: &mut W, input: &[u8]) -> io::Result<()> {
            if !input.is_empty() {
                w.write_all(input)?;
                w.flush()?;
            }
            Ok(())
        }
        match self {
            Encoder::Identity => Ok(input.to_vec()),
            Encoder::Gzip(e) => {
                step(e.as_mut(), input)?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Deflate(e) => {
                step(e.as_mut(), input)?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                step(e.as_mut(), input)?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Zstd(e) => {
                step(e.as_mut(), input)?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Encoder::Identity => Ok(Vec::new()),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Deflate(e) => e.finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl Transform for Encoder {
    fn push(&mut self, input: &[u8]) -> Result<Vec<u8>, body::BoxError> {
        Ok(Encoder::push(self, input)?)
    }

    fn finish(self) -> Result<Vec<u8>, body::BoxError> {
        Ok(Encoder::finish(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut enc = Encoder::new(coding);
        let mut encoded = Vec::new();
        for piece in data.chunks(1000) {
            encoded.extend(enc.push(piece).unwrap());
        }
        encoded.extend(enc.finish().unwrap());
        let mut dec = Decoder::new(coding);
        let mut decoded = Vec::new();
        for piece in encoded.chunks(333) {
            decoded.extend_from_slice(&dec.push(piece).unwrap());
        }
        decoded.extend(dec.finish().unwrap());
        decoded
    }

    #[test]
    fn codings_round_trip_in_small_chunks() {
        let unit = "<p>hello ร้าน</p>".as_bytes();
        let data: Vec<u8> = (0..50_000).map(|i| unit[i % unit.len()]).collect();
        for coding in [
            Coding::Identity,
            Coding::Gzip,
            Coding::Deflate,
            Coding::Brotli,
            Coding::Zstd,
        ] {
            assert_eq!(roundtrip(coding, &data), data, "{coding:?}");
        }
    }

    #[test]
    fn raw_deflate_is_accepted_too() {
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(b"<html>raw deflate</html>").unwrap();
        let encoded = raw.finish().unwrap();
        let mut dec = Decoder::new(Coding::Deflate);
        let mut out = dec.push(&encoded).unwrap().into_owned();
        out.extend(dec.finish().unwrap());
        assert_eq!(out, b"<html>raw deflate</html>");
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&[b'x'; 10_000]).unwrap();
        let full = enc.finish().unwrap();
        let mut dec = Decoder::new(Coding::Gzip);
        dec.push(&full[..full.len() / 2]).unwrap();
        assert!(dec.finish().is_err());
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        let full = zstd::encode_all(&[b'x'; 10_000][..], 3).unwrap();
        let mut dec = Decoder::new(Coding::Zstd);
        dec.push(&full[..full.len() / 2]).unwrap();
        assert!(dec.finish().is_err());
        let mut dec = Decoder::new(Coding::Zstd);
        assert_eq!(dec.push(&full).unwrap().len(), 10_000);
        assert!(dec.finish().is_ok());
    }

    #[test]
    fn the_client_preference_picks_the_coding() {
        let n = |s: &str| negotiate(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(n("gzip, deflate, br, zstd"), Coding::Brotli);
        assert_eq!(n("gzip, deflate"), Coding::Gzip);
        assert_eq!(n("zstd, gzip;q=0.5"), Coding::Zstd);
        assert_eq!(n("br;q=0.2, gzip;q=0.8"), Coding::Gzip);
        assert_eq!(n("br;q=0, gzip"), Coding::Gzip);
        assert_eq!(n("*"), Coding::Brotli);
        assert_eq!(n("*;q=0.1, gzip"), Coding::Gzip);
        assert_eq!(n("deflate"), Coding::Identity);
        assert_eq!(n("identity"), Coding::Identity);
        assert_eq!(n("gzip;q=0"), Coding::Identity);
        assert_eq!(negotiate(None), Coding::Identity);
    }

    #[test]
    fn text_types_are_compressible_and_media_is_not() {
        for t in [
            "text/html; charset=utf-8",
            "text/css",
            "application/javascript",
            "application/ld+json",
            "application/json",
            "image/svg+xml",
            "application/rss+xml",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in [
            "image/png",
            "video/mp4",
            "application/zip",
            "text/event-stream",
            "",
        ] {
            assert!(!compressible(t), "{t}");
        }
    }
}
