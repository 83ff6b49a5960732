import Reactor
import COpenSSL

/// An OCSP CertID (RFC 6960 §4.1.1) with SHA-1 hashes, as DER: hashAlgorithm, issuerNameHash,
/// issuerKeyHash, serialNumber. SHA-1 because HAProxy indexes the staples it holds by the
/// SHA-1 CertID; a SHA-256 one would never match there.
struct CertID: Hashable, Sendable, CustomStringConvertible {
    let der: [UInt8]

    init(der: [UInt8]) { self.der = der }

    /// Computes the CertID of `certificate` as issued by `issuer`; nil if OpenSSL fails.
    init?(certificate: X509Certificate, issuer: X509Certificate) {
        defer { OpenSSLErrorQueue.clear() }
        guard let id = OCSP_cert_to_id(EVP_sha1(), certificate.pointer, issuer.pointer) else { return nil }
        defer { OCSP_CERTID_free(id) }
        guard let der = ASN1.encode({ i2d_OCSP_CERTID(id, $0) }) else { return nil }
        self.der = der
    }

    /// Lower-case hex of the DER, the form `show ssl ocsp-response` prints.
    var hex: String { ASCII.hex(der) }

    var description: String { hex }

    /// A fresh OpenSSL OCSP_CERTID for this value; the caller frees it (or hands it to a
    /// function that takes ownership).
    func makeOpenSSLObject() -> OpaquePointer? {
        guard let (object, consumed) = ASN1.decode(der, { d2i_OCSP_CERTID(nil, $0, $1) }) else {
            OpenSSLErrorQueue.clear()
            return nil
        }
        guard consumed == der.count else {
            OCSP_CERTID_free(object)
            return nil
        }
        return object
    }
}
