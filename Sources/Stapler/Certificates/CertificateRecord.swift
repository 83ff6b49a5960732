import Reactor

/// What the daemon keeps about one certificate between refreshes: the few facts an OCSP
/// request, a verification and a log line need. Deliberately small (the daemon holds
/// 100,000 of them): no OpenSSL objects, no PEM text; the issuer is shared; the serial
/// number is read from the CertID, which holds it anyway.
struct CertificateRecord: Sendable {
    /// One-line subject for logs, e.g. `CN=example.com`.
    let subject: String
    /// Validity, Unix seconds.
    let notBefore: Int64
    let notAfter: Int64
    /// http(s) OCSP responder URLs from the AIA extension, in certificate order; never empty.
    let ocspURLs: [String]
    /// The issuing CA, shared with every other certificate it issued.
    let issuer: Issuer
    /// SHA-1 CertID, the key HAProxy and the responder know this certificate by.
    let certID: CertID
    /// TLS Feature status_request: clients hard-fail without a valid staple.
    let mustStaple: Bool
    /// The serial as given, kept only when the CertID does not spell it the same way.
    private let unusualSerialHex: [UInt8]?

    init(subject: String, serialHex: String, notBefore: Int64, notAfter: Int64, ocspURLs: [String],
         mustStaple: Bool, certID: CertID, issuer: Issuer) {
        self.subject = subject
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.ocspURLs = ocspURLs
        self.mustStaple = mustStaple
        self.certID = certID
        self.issuer = issuer
        unusualSerialHex = Self.serialHex(of: certID) == serialHex ? nil : Array(serialHex.utf8)
    }

    /// Upper-case hex, as `openssl` and index.txt show it.
    var serialHex: String {
        if let unusualSerialHex { return String(decoding: unusualSerialHex, as: UTF8.self) }
        return Self.serialHex(of: certID) ?? ""
    }

    /// The serial in the form `X509Certificate.serialHex` gives for a positive one: the
    /// magnitude without leading zero bytes, "00" for zero. Nil for a negative serial (left
    /// to the stored text) or a CertID not in canonical form.
    private static func serialHex(of certID: CertID) -> String? {
        certID.withSerialContent { content -> String? in
            guard let content, let first = content.first, first & 0x80 == 0 else { return nil }
            let magnitude = content.drop { $0 == 0 }
            return magnitude.isEmpty ? "00" : ASCII.hex(magnitude, uppercase: true)
        }
    }
}
