//! The store on its own: what goes in comes out, the byte bound holds, and
//! purges remove exactly what they name.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use pingora::cache::key::{CacheHashKey, CacheKey};
use pingora::cache::storage::Storage;
use pingora::cache::trace::Span;
use pingora::cache::CacheMeta;
use pingora::http::ResponseHeader;

use super::Store;

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let header = ResponseHeader::build(200, None).unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header)
}

async fn put(store: &'static Store, url: &str, body: &[u8]) {
    let span = Span::inactive();
    let key = CacheKey::new(url, "");
    let mut miss = store
        .get_miss_handler(&key, &meta(), &span.handle())
        .await
        .unwrap();
    miss.write_body(bytes::Bytes::copy_from_slice(body), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
}

async fn get(store: &'static Store, url: &str) -> Option<Vec<u8>> {
    let span = Span::inactive();
    let (_, mut hit) = store
        .lookup(&CacheKey::new(url, ""), &span.handle())
        .await
        .unwrap()?;
    let mut body = Vec::new();
    while let Some(chunk) = hit.read_body().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

fn leak(store: Store) -> &'static Store {
    Box::leak(Box::new(store))
}

#[tokio::test]
async fn a_stored_body_is_read_back_whole_and_by_range() {
    let store = leak(Store::new(1 << 20));
    put(store, "http://a:80/x", b"hello world").await;
    assert_eq!(get(store, "http://a:80/x").await.unwrap(), b"hello world");
    assert!(get(store, "http://b:80/x").await.is_none());
    let span = Span::inactive();
    let (_, mut hit) = store
        .lookup(&CacheKey::new("http://a:80/x", ""), &span.handle())
        .await
        .unwrap()
        .unwrap();
    assert!(hit.can_seek());
    hit.seek(6, Some(11)).unwrap();
    assert_eq!(&hit.read_body().await.unwrap().unwrap()[..], b"world");
    assert!(hit.seek(0, Some(99)).is_err());
}

#[tokio::test]
async fn ten_times_the_bound_of_content_leaves_stored_bytes_within_it() {
    let max = 256 * 1024;
    let store = leak(Store::new(max));
    let body = vec![b'x'; 3000];
    for i in 0..(10 * max / body.len()) {
        put(store, &format!("http://a:80/{i}"), &body).await;
        let stored = store.stats().bytes.load(Ordering::Relaxed) as usize;
        assert!(stored <= max, "stored {stored} bytes over a bound of {max}");
    }
    let stats = store.stats();
    assert!(stats.evictions.load(Ordering::Relaxed) > 0);
    let objects = stats.objects.load(Ordering::Relaxed) as usize;
    assert_eq!(objects, store.primaries().len());
    assert!(objects > 0);
}

#[tokio::test]
async fn an_object_larger_than_the_bound_is_not_stored() {
    let store = leak(Store::new(64 * 1024));
    put(store, "http://a:80/big", &vec![0u8; 100 * 1024]).await;
    assert!(get(store, "http://a:80/big").await.is_none());
    assert_eq!(store.stats().bytes.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn replacing_an_object_counts_its_bytes_once() {
    let store = leak(Store::new(1 << 20));
    put(store, "http://a:80/x", &[1u8; 1000]).await;
    put(store, "http://a:80/x", &[2u8; 500]).await;
    assert_eq!(get(store, "http://a:80/x").await.unwrap(), vec![2u8; 500]);
    assert_eq!(store.stats().objects.load(Ordering::Relaxed), 1);
    let bytes = store.stats().bytes.load(Ordering::Relaxed);
    assert!((500..1000).contains(&bytes), "{bytes} bytes counted");
}

#[tokio::test]
async fn purges_remove_exactly_what_they_name() {
    let store = leak(Store::new(1 << 20));
    for url in [
        "http://a:80/items",
        "http://a:80/items/1",
        "http://a:80/items/2",
        "http://a:80/other",
        "http://b:80/items/1",
    ] {
        put(store, url, url.as_bytes()).await;
    }
    assert_eq!(store.purge_exact("http://a:80/items"), 1);
    assert!(get(store, "http://a:80/items").await.is_none());
    assert!(get(store, "http://a:80/items/1").await.is_some());
    assert_eq!(store.purge_prefix("http://a:80/items/"), 2);
    assert_eq!(
        store.primaries(),
        vec!["http://a:80/other", "http://b:80/items/1"]
    );
    assert_eq!(store.purge_exact("http://a:80/missing"), 0);
}

#[tokio::test]
async fn a_fill_is_readable_while_it_arrives_and_a_broken_one_fails_its_readers() {
    let store = leak(Store::new(1 << 20));
    let span = Span::inactive();
    let key = CacheKey::new("http://a:80/s", "");
    let mut miss = store
        .get_miss_handler(&key, &meta(), &span.handle())
        .await
        .unwrap();
    miss.write_body(bytes::Bytes::from_static(b"one"), false)
        .await
        .unwrap();
    let (_, mut reader) = store.lookup(&key, &span.handle()).await.unwrap().unwrap();
    assert_eq!(&reader.read_body().await.unwrap().unwrap()[..], b"one");
    drop(miss);
    assert!(reader.read_body().await.is_err());
    assert!(store.lookup(&key, &span.handle()).await.unwrap().is_none());
}

/// The map frees a removed entry later, in batches; the body must not wait
/// for that. `held` plays the part of the map's late reference.
#[tokio::test]
async fn an_object_leaving_the_store_frees_its_body_at_once() {
    let store = leak(Store::new(64 << 10));
    let body = vec![b'x'; 20 << 10];
    let mut held = Vec::new();
    for i in 0..3 {
        let url = format!("http://a:80/{i}");
        put(store, &url, &body).await;
        let combined = CacheKey::new(url.as_str(), "").combined_bin();
        held.push(store.objects.get(&combined).unwrap());
    }
    assert!(held.iter().all(|object| object.body().is_some()));

    assert_eq!(store.purge_exact("http://a:80/0"), 1);
    assert!(held[0].body().is_none(), "a purged object kept its body");
    assert!(get(store, "http://a:80/0").await.is_none());

    for i in 3..40 {
        put(store, &format!("http://a:80/{i}"), &body).await;
    }
    assert!(store.stats().evictions.load(Ordering::Relaxed) > 0);
    for (i, object) in held.iter().enumerate().skip(1) {
        let stored = get(store, &format!("http://a:80/{i}")).await;
        assert_eq!(
            stored.is_some(),
            object.body().is_some(),
            "object {i}: in the store and holding a body must go together"
        );
    }
}
