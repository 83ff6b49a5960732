/// What the daemon keeps about one certificate between refreshes: the few facts an OCSP
/// request, a verification and a log line need. Deliberately small (the daemon holds
/// 10,000 of them): no OpenSSL objects, no PEM text; the issuer is shared.
struct CertificateRecord: Sendable {
    /// One-line subject for logs, e.g. `CN=example.com`.
    let subject: String
    /// Upper-case hex.
    let serialHex: String
    /// Validity, Unix seconds.
    let notBefore: Int64
    let notAfter: Int64
    /// http(s) OCSP responder URLs from the AIA extension, in certificate order; never empty.
    let ocspURLs: [String]
    /// TLS Feature status_request: clients hard-fail without a valid staple.
    let mustStaple: Bool
    /// SHA-1 CertID, the key HAProxy and the responder know this certificate by.
    let certID: CertID
    /// The issuing CA, shared with every other certificate it issued.
    let issuer: Issuer
}
