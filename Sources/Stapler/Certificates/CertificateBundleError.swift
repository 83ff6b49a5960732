import Reactor

/// Why a certificate file yields nothing to staple. Each case renders as one log line naming
/// the file (and the certificate, when one was found).
struct CertificateBundleError: Error, Equatable, Sendable, CustomStringConvertible {
    enum Reason: Equatable, Sendable {
        /// The file (or its `.issuer` companion) cannot be read.
        case unreadable(FileError)
        /// No certificate at all: a key, DH parameters or an unrelated file.
        case noCertificate
        /// Only CA certificates (a chain or CA file in the directory).
        case noEndEntity
        /// Text or DER that cannot be parsed.
        case malformed(String)
        /// The issuer is neither in the file nor in `<file>.issuer`.
        case issuerNotFound
        /// RFC 5019 §3.2: no queries for expired certificates.
        case expired(notAfter: Int64)
        /// No http(s) OCSP URL: normal since Let's Encrypt dropped OCSP in 2025.
        case noOCSPURL
    }

    let path: FilePath
    let reason: Reason
    /// The end-entity certificate's subject, when the failure came after finding it.
    let subject: String?
    /// With `.issuerNotFound`: what fetching the issuer needs.
    let missingIssuer: MissingIssuer?

    init(path: FilePath, reason: Reason, subject: String? = nil, missingIssuer: MissingIssuer? = nil) {
        self.path = path
        self.reason = reason
        self.subject = subject
        self.missingIssuer = missingIssuer
    }

    /// Files that are not certificates to staple (keys, CA files): skipped without a warning.
    var isQuiet: Bool { reason == .noCertificate || reason == .noEndEntity }

    var description: String {
        let certificate = subject.map { "certificate \"\($0)\"" } ?? "certificate"
        switch reason {
        case .unreadable(let error):
            return "\(path): cannot read \(error.path): \(error.reasonDescription)"
        case .noCertificate:
            return "\(path): no certificate in the file, skipped"
        case .noEndEntity:
            return "\(path): only CA certificates in the file, skipped"
        case .malformed(let detail):
            return "\(path): not a usable certificate file: \(detail)"
        case .issuerNotFound:
            let companions = missingIssuer?.companions ?? [path.addingSuffix(".issuer")]
            return "\(path): issuer of \(certificate) found neither in the file nor in "
                + companions.map(\.description).joined(separator: " nor ")
        case .expired(let notAfter):
            return "\(path): \(certificate) expired at \(UTCTime.format(notAfter)), not querying OCSP"
        case .noOCSPURL:
            return "\(path): \(certificate) has no OCSP responder URL, nothing to staple"
        }
    }
}

/// A leaf whose issuer is missing, with what `IssuerFetcher` needs to get it.
struct MissingIssuer: Equatable, Sendable {
    /// The leaf's DER, to check a downloaded issuer against.
    let leafDER: [UInt8]
    /// The leaf's issuer name, for log lines.
    let issuerName: String
    /// http CA Issuers URLs from the leaf's AIA extension, in certificate order.
    let caIssuersURLs: [String]
    /// The leaf's OCSP URLs, asked once the issuer is in (the sandbox opens their ports).
    let ocspURLs: [String]
    /// The `.issuer` files looked for (beside the certificate, and below `--staple-dir`).
    let companions: [FilePath]
}
