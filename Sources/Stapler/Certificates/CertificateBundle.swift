import Glibc
import Reactor

/// Turns a certificate file (HAProxy style: leaf, maybe chain, maybe key, in PEM) into the
/// `CertificateRecord` the daemon refreshes, or says why there is nothing to staple.
enum CertificateBundle {
    /// Largest certificate (or `.issuer`) file read. Real bundles are a few KiB.
    static let maximumFileSize = 1 << 20

    /// Reads a companion file (`<file>.issuer`); nil when it does not exist.
    typealias CompanionReader = (FilePath) throws(FileError) -> [UInt8]?

    /// Reads `path` (capped) and parses it. The text read is wiped before it is released,
    /// since it may hold the private key.
    static func load(path: FilePath, now: Int64, issuers: IssuerStore,
                     issuerLocation: StapleLocation = .besideCertificate,
                     readCompanion: CompanionReader = readIfPresent) throws(CertificateBundleError)
        -> CertificateRecord {
        var text: [UInt8]
        do {
            text = try FileSystem.readFile(path, limit: maximumFileSize)
        } catch {
            throw CertificateBundleError(path: path, reason: .unreadable(error))
        }
        return try parse(pem: &text, path: path, now: now, issuers: issuers, issuerLocation: issuerLocation,
                         readCompanion: readCompanion)
    }

    /// Parses PEM text read from `path`. `pem` is wiped (zeroed) before this returns,
    /// whatever the outcome: it may hold a private key, and nothing here needs it afterwards.
    /// A missing issuer is looked for in `<file>.issuer`, then, with `--staple-dir`
    /// (`issuerLocation`), at the certificate's mirrored path there, where a fetched one goes.
    static func parse(pem: inout [UInt8], path: FilePath, now: Int64, issuers: IssuerStore,
                      issuerLocation: StapleLocation = .besideCertificate,
                      readCompanion: CompanionReader = readIfPresent) throws(CertificateBundleError)
        -> CertificateRecord {
        defer {
            SensitiveBytes.wipe(&pem)
            OpenSSLErrorQueue.clear()
        }
        if let fast = BundleFastPath(text: pem, issuers: issuers) {
            let leaf = fast.leaf
            return try record(subject: leaf.subject, serialHex: leaf.serialHex, notBefore: leaf.notBefore,
                              notAfter: leaf.notAfter, ocspURLs: leaf.ocspURLs, mustStaple: leaf.mustStaple,
                              certID: fast.certID, issuer: fast.issuer, path: path, now: now, issuers: issuers)
        }
        let certificates: [X509Certificate]
        do {
            certificates = try decodeCertificates(pem, known: issuers.knownCertificate(der:))
        } catch {
            throw CertificateBundleError(path: path, reason: .malformed(error.reason))
        }
        guard !certificates.isEmpty else { throw CertificateBundleError(path: path, reason: .noCertificate) }
        guard let leaf = endEntity(among: certificates) else {
            throw CertificateBundleError(path: path, reason: .noEndEntity)
        }
        let subject = leaf.subject
        func failure(_ reason: CertificateBundleError.Reason) -> CertificateBundleError {
            CertificateBundleError(path: path, reason: reason, subject: subject)
        }
        guard let notBefore = leaf.notBefore, let notAfter = leaf.notAfter else {
            throw failure(.malformed("certificate validity dates cannot be read"))
        }
        guard notAfter > now else { throw failure(.expired(notAfter: notAfter)) }
        let urls = leaf.ocspURLs
        guard !urls.isEmpty else { throw failure(.noOCSPURL) }

        var issuerCertificate = certificates.first { $0 !== leaf && $0.issued(leaf) }
        let companions = companionPaths(of: path, issuerLocation: issuerLocation)
        for companion in companions where issuerCertificate == nil {
            issuerCertificate = try issuerFromCompanion(companion, of: path, for: leaf, subject: subject, read: readCompanion)
        }
        guard let issuerCertificate else {
            let missing = MissingIssuer(leafDER: leaf.der ?? [], issuerName: leaf.issuerName,
                                        caIssuersURLs: leaf.caIssuersURLs, ocspURLs: urls, companions: companions)
            throw CertificateBundleError(path: path, reason: .issuerNotFound, subject: subject, missingIssuer: missing)
        }
        guard let certID = CertID(certificate: leaf, issuer: issuerCertificate),
              let issuer = issuers.intern(issuerCertificate) else {
            throw failure(.malformed("OCSP CertID cannot be computed: "
                                     + OpenSSLErrorQueue.drainDescription(fallback: "OpenSSL failure")))
        }
        return CertificateRecord(subject: subject, serialHex: leaf.serialHex, notBefore: notBefore,
                                 notAfter: notAfter, ocspURLs: issuers.intern(urls: urls), mustStaple: leaf.mustStaple,
                                 certID: certID, issuer: issuer)
    }

    /// The record of a leaf read by `BundleFastPath`, after the checks `parse` makes of one
    /// read by OpenSSL, in the same order and with the same errors.
    private static func record(subject: String, serialHex: String, notBefore: Int64, notAfter: Int64,
                               ocspURLs urls: [String], mustStaple: Bool, certID: CertID, issuer: Issuer,
                               path: FilePath, now: Int64, issuers: IssuerStore) throws(CertificateBundleError)
        -> CertificateRecord {
        guard notAfter > now else {
            throw CertificateBundleError(path: path, reason: .expired(notAfter: notAfter), subject: subject)
        }
        guard !urls.isEmpty else { throw CertificateBundleError(path: path, reason: .noOCSPURL, subject: subject) }
        return CertificateRecord(subject: subject, serialHex: serialHex, notBefore: notBefore, notAfter: notAfter,
                                 ocspURLs: issuers.intern(urls: urls), mustStaple: mustStaple, certID: certID,
                                 issuer: issuer)
    }

    /// HAProxy's convention: `<certificate file>.issuer` holds the issuer in PEM when the
    /// bundle does not.
    private static func issuerFromCompanion(_ companion: FilePath, of path: FilePath, for leaf: X509Certificate,
                                            subject: String, read: CompanionReader) throws(CertificateBundleError)
        -> X509Certificate? {
        var text: [UInt8]
        do {
            guard let bytes = try read(companion) else { return nil }
            text = bytes
        } catch {
            throw CertificateBundleError(path: path, reason: .unreadable(error), subject: subject)
        }
        defer { SensitiveBytes.wipe(&text) }
        do {
            return try decodeCertificates(text).first { $0.issued(leaf) }
        } catch {
            throw CertificateBundleError(path: path, reason: .malformed("\(companion): \(error.reason)"),
                                         subject: subject)
        }
    }

    /// The `.issuer` files that may hold the issuer of the certificate at `path`, in order.
    static func companionPaths(of path: FilePath, issuerLocation: StapleLocation) -> [FilePath] {
        let beside = path.addingSuffix(".issuer")
        let fetched = issuerLocation.issuerPath(forCertificate: path)
        return fetched == beside ? [beside] : [beside, fetched]
    }

    /// The end-entity certificate: not a CA and, if several qualify, the first that issued
    /// no other certificate of the bundle.
    static func endEntity(among certificates: [X509Certificate]) -> X509Certificate? {
        let candidates = certificates.filter { !$0.isCA }
        return candidates.first { candidate in
            !certificates.contains { $0 !== candidate && candidate.issued($0) }
        } ?? candidates.first
    }

    /// Every CERTIFICATE block, decoded (end-entity certificates without their public key).
    /// Private key blocks are never decoded (so their
    /// plain bytes exist only in `text`, which the caller wipes); other blocks are ignored.
    /// `known` returns an already parsed certificate for DER it has seen (shared issuers).
    static func decodeCertificates(_ text: [UInt8], known: ([UInt8]) -> X509Certificate? = { _ in nil })
        throws(PEMError) -> [X509Certificate] {
        var certificates: [X509Certificate] = []
        for (number, block) in try PEMParser.blocks(in: text).enumerated() where block.isCertificate {
            guard let der = Base64.decode(text[block.body]), !der.isEmpty else {
                throw PEMError(reason: "PEM block \(number + 1) (CERTIFICATE): invalid base64")
            }
            if let parsed = known(der) {
                certificates.append(parsed)
                continue
            }
            // Leaves without their key (half the cost of parsing one); a CA may be an issuer,
            // whose key checks responses, so it is parsed again in full (once per CA: known
            // issuers are reused above).
            guard var certificate = X509Certificate(der: der, withPublicKey: false) else {
                let detail = OpenSSLErrorQueue.drainDescription(fallback: "trailing bytes")
                throw PEMError(reason: "PEM block \(number + 1) (CERTIFICATE) is not an X.509 certificate: \(detail)")
            }
            if certificate.isCA, let full = X509Certificate(der: der) { certificate = full }
            certificates.append(certificate)
        }
        return certificates
    }

    /// Reads a file capped at `maximumFileSize`; a missing file is nil, not an error.
    static func readIfPresent(_ path: FilePath) throws(FileError) -> [UInt8]? {
        do {
            return try FileSystem.readFile(path, limit: maximumFileSize)
        } catch {
            if error.errno == ENOENT { return nil }
            throw error
        }
    }
}
