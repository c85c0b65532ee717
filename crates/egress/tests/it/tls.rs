//! rustls provider selection. This test binary compiles rustls with both `ring` (via async-nats, as
//! the services do) and `aws-lc-rs` (via reqwest), where rustls cannot pick a provider by itself.

use async_nats::rustls;

use crate::server::guarded;

#[test]
fn building_the_client_does_not_need_a_process_default_provider() {
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    // The trap being avoided: with two providers compiled in and none installed, rustls panics.
    let ambiguous = std::panic::catch_unwind(rustls::ClientConfig::builder);
    assert!(ambiguous.is_err(), "both providers should be compiled in");

    let egress = guarded();
    let url = "https://example.com/".parse().unwrap();
    assert_eq!(egress.check_url(&url), Ok(()));
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "the library must not install one"
    );
}
