//! GeoIP databases of both record shapes, real and deliberately broken, read through edgeseo.

mod common;

use common::shared_data;
use edgeseo::geoip::GeoIp;

#[test]
fn maxmind_test_databases_give_the_expected_countries() {
    let Some(dir) = shared_data("geoip/maxmind-test") else {
        return;
    };
    let expectations = std::fs::read_to_string(dir.join("country-expectations.tsv")).unwrap();
    let mut header = Vec::new();
    let mut checked = 0;
    for line in expectations.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        if header.is_empty() {
            header = cols.iter().map(|c| c.to_string()).collect();
            continue;
        }
        let get = |name: &str| cols[header.iter().position(|h| h == name).unwrap()];
        let db = GeoIp::open(&dir.join("test-data").join(format!("{}.mmdb", get("db")))).unwrap();
        let expected = Some(get("mmdb_country_iso")).filter(|c| !c.is_empty() && *c != "-");
        let found = db.country(get("probe_ip").parse().unwrap());
        assert_eq!(found.as_deref(), expected, "{line}");
        checked += 1;
    }
    assert!(checked > 1000, "{checked} probes");
}

#[test]
fn ip_location_db_records_with_country_code_are_read() {
    let Some(path) = shared_data("geoip/ip-location-db/geo-whois-asn-country.mmdb") else {
        return;
    };
    let db = GeoIp::open(&path).unwrap();
    assert_eq!(
        db.country("36.80.10.1".parse().unwrap()).as_deref(),
        Some("ID")
    );
    assert_eq!(
        db.country("14.160.1.1".parse().unwrap()).as_deref(),
        Some("VN")
    );
    assert_eq!(
        db.country("171.96.1.1".parse().unwrap()).as_deref(),
        Some("TH")
    );
    assert_eq!(db.country("10.0.0.1".parse().unwrap()), None);
}

#[test]
fn broken_databases_are_refused_or_answer_unknown_without_panicking() {
    let Some(dir) = shared_data("geoip/maxmind-test/test-data") else {
        return;
    };
    for name in [
        "GeoIP2-City-Test-Broken-Double-Format.mmdb",
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    ] {
        if let Ok(db) = GeoIp::open(&dir.join(name)) {
            for ip in ["1.1.1.1", "81.2.69.160", "2001:218::1", "::1.1.1.3"] {
                let _ = db.country(ip.parse().unwrap());
            }
        }
    }
    assert!(GeoIp::open(std::path::Path::new("/nonexistent.mmdb")).is_err());
}
