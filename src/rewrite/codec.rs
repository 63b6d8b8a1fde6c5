//! Content codings around the rewriter: the origin's gzip, deflate or brotli body is decoded to be
//! rewritten and encoded again in the same coding (which the client accepted, since only codings it
//! accepts are asked of the origin). Every chunk is flushed, so compression never stops streaming.

use std::borrow::Cow;
use std::io::{self, Write};

use flate2::Compression;
use http::HeaderValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    /// The coding named by a `Content-Encoding` header; `None` for codings this proxy cannot
    /// decode (or stacked codings), whose bodies then pass through unrewritten.
    pub fn from_header(value: Option<&HeaderValue>) -> Option<Coding> {
        let Some(value) = value else {
            return Some(Coding::Identity);
        };
        match value.to_str().ok()?.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Coding::Identity),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            _ => None,
        }
    }
}

/// Keeps only the codings edgeseo can decode from a client's `Accept-Encoding`, so the origin never
/// answers in one the rewriter cannot read. Returns `None` when nothing usable is left (identity).
pub fn decodable_accept_encoding(value: &str) -> Option<HeaderValue> {
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|item| {
            let name = item
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let refused = item.replace(' ', "").ends_with(";q=0")
                || item.replace(' ', "").ends_with(";q=0.0");
            !refused
                && matches!(
                    name.as_str(),
                    "gzip" | "x-gzip" | "deflate" | "br" | "identity"
                )
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        HeaderValue::from_str(&kept.join(", ")).ok()
    }
}

pub enum Decoder {
    Identity,
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    /// `deflate` is zlib-wrapped by the standard, raw by some servers: decided on the first bytes.
    Deflate(Option<Box<dyn DeflateSink>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

pub trait DeflateSink: Write + Send {
    fn take(&mut self) -> Vec<u8>;
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>>;
}

impl DeflateSink for flate2::write::ZlibDecoder<Vec<u8>> {
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.get_mut())
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        (*self).finish()
    }
}

impl DeflateSink for flate2::write::DeflateDecoder<Vec<u8>> {
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.get_mut())
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        (*self).finish()
    }
}

impl Decoder {
    pub fn new(coding: Coding) -> Decoder {
        match coding {
            Coding::Identity => Decoder::Identity,
            Coding::Gzip => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new()))),
            Coding::Deflate => Decoder::Deflate(None),
            Coding::Brotli => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(
                Vec::new(),
                16 * 1024,
            ))),
        }
    }

    /// Decodes one chunk; returns what could be decoded so far.
    pub fn push<'a>(&mut self, input: &'a [u8]) -> io::Result<Cow<'a, [u8]>> {
        let decoded = match self {
            Decoder::Identity => return Ok(Cow::Borrowed(input)),
            Decoder::Gzip(d) => {
                d.write_all(input)?;
                std::mem::take(d.get_mut())
            }
            Decoder::Deflate(sink) => {
                let d = sink.get_or_insert_with(|| {
                    if looks_like_zlib(input) {
                        Box::new(flate2::write::ZlibDecoder::new(Vec::new()))
                    } else {
                        Box::new(flate2::write::DeflateDecoder::new(Vec::new()))
                    }
                });
                d.write_all(input)?;
                d.take()
            }
            Decoder::Brotli(d) => {
                d.write_all(input)?;
                d.flush()?;
                std::mem::take(d.get_mut())
            }
        };
        Ok(Cow::Owned(decoded))
    }

    /// Ends the stream, failing if it was truncated.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Decoder::Identity | Decoder::Deflate(None) => Ok(Vec::new()),
            Decoder::Gzip(d) => d.finish(),
            Decoder::Deflate(Some(d)) => d.finish(),
            Decoder::Brotli(mut d) => {
                d.close()?;
                Ok(std::mem::take(d.get_mut()))
            }
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
}

impl Encoder {
    pub fn new(coding: Coding) -> Encoder {
        // Moderate levels: the rewritten page is compressed on every uncached response.
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
        }
    }

    /// Encodes and flushes one chunk, so the client can start on it at once.
    pub fn push(&mut self, input: Vec<u8>) -> io::Result<Vec<u8>> {
        fn step<W: Write>(w: &mut W, input: &[u8]) -> io::Result<()> {
            if !input.is_empty() {
                w.write_all(input)?;
                w.flush()?;
            }
            Ok(())
        }
        match self {
            Encoder::Identity => Ok(input),
            Encoder::Gzip(e) => {
                step(e.as_mut(), &input)?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Deflate(e) => {
                step(e.as_mut(), &input)?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                step(e.as_mut(), &input)?;
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut enc = Encoder::new(coding);
        let mut encoded = Vec::new();
        for piece in data.chunks(1000) {
            encoded.extend(enc.push(piece.to_vec()).unwrap());
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
    fn accept_encoding_keeps_decodable_codings() {
        let v = decodable_accept_encoding("gzip, deflate, br, zstd").unwrap();
        assert_eq!(v, "gzip, deflate, br");
        assert!(decodable_accept_encoding("zstd").is_none());
        assert_eq!(decodable_accept_encoding("br;q=0, gzip").unwrap(), "gzip");
    }
}
