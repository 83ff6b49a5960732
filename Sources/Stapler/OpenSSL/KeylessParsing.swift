import COpenSSL

/// An OpenSSL library context with only the null provider: nothing to decode keys with, so
/// a certificate parsed in it skips its public key (see `X509Certificate(der:withPublicKey:)`).
/// Loading the null provider also stops OpenSSL from loading the default one into it.
enum KeylessParsing {
    nonisolated(unsafe) static let context: OpaquePointer? = {
        guard let context = OSSL_LIB_CTX_new() else { return nil }
        guard OSSL_PROVIDER_load(context, "null") != nil else {
            OSSL_LIB_CTX_free(context)
            OpenSSLErrorQueue.clear()
            return nil
        }
        return context
    }()
}
