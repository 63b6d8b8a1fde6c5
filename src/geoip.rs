//! Country lookup for locale suggestions. Reads MaxMind DB files of both common record shapes:
//! MaxMind's GeoIP2/GeoLite2 (`{"country": {"iso_code": "ID"}}`) and ip-location-db's
//! (`{"country_code": "ID"}`). A default database is compiled into the binary (geoip/README.md).

use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;

static DEFAULT_DB: &[u8] = include_bytes!("../geoip/iptoasn-country.mmdb");

#[derive(Debug, thiserror::Error)]
#[error("GeoIP database {path}: {source}")]
pub struct GeoIpError {
    path: String,
    source: maxminddb::MaxMindDbError,
}

pub struct GeoIp {
    reader: Reader<Source>,
}

/// The database bytes: compiled in, or read from a file (never mapped, so replacing the file on
/// disk cannot disturb a running lookup).
enum Source {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Source {
    fn as_ref(&self) -> &[u8] {
        match self {
            Source::Static(b) => b,
            Source::Owned(b) => b,
        }
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Country<'a> {
    iso_code: Option<&'a str>,
}

impl GeoIp {
    pub fn embedded() -> GeoIp {
        GeoIp {
            reader: Reader::from_source(Source::Static(DEFAULT_DB))
                .expect("the compiled-in GeoIP database is valid"),
        }
    }

    pub fn open(path: &Path) -> Result<GeoIp, GeoIpError> {
        let err = |source| GeoIpError {
            path: path.display().to_string(),
            source,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.into()))?;
        let reader = Reader::from_source(Source::Owned(bytes)).map_err(err)?;
        Ok(GeoIp { reader })
    }

    /// ISO 3166-1 alpha-2 country of `ip`, if the database knows it. Lookup errors (a damaged
    /// database) count as unknown: a suggestion is never worth failing a request.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let result = self.reader.lookup(ip).ok()?;
        let record: Record<'_> = result.decode().ok()??;
        record
            .country
            .and_then(|c| c.iso_code)
            .or(record.country_code)
            .map(str::to_ascii_uppercase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_database_knows_southeast_asia() {
        let geo = GeoIp::embedded();
        let c = |ip: &str| geo.country(ip.parse().unwrap());
        assert_eq!(c("36.80.10.1").as_deref(), Some("ID"));
        assert_eq!(c("14.160.1.1").as_deref(), Some("VN"));
        assert_eq!(c("1.0.128.1").as_deref(), Some("TH"));
        assert_eq!(c("127.0.0.1"), None);
        assert_eq!(c("::1"), None);
    }
}
