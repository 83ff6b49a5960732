import COpenSSL

/// The CA certificate that issued one or more of our certificates: the trust anchor when
/// their OCSP responses are verified. Thousands of certificates share a handful of issuers,
/// so each distinct issuer exists once (see `IssuerStore`) and certificates point at it.
///
/// Immutable after creation but for `delegatedSigners`, which only the verifier changes, on
/// the daemon's one thread; OpenSSL's X509 objects are safe to read from several threads.
/// That is what the `@unchecked Sendable` promise rests on.
final class Issuer: @unchecked Sendable, CustomStringConvertible {
    /// The X509 object, owned: freed when the last certificate using this issuer goes.
    let certificate: X509Certificate
    /// SHA-256 of the DER: the interning key.
    let fingerprint: [UInt8]
    let subject: String
    /// For leaves read without OpenSSL's X.509 decoder; nil if OpenSSL cannot tell.
    let leafCheck: IssuerLeafCheck?
    /// Responder certificates this issuer delegated to, already checked in full.
    let delegatedSigners = DelegatedSigners()
    /// Its key, prepared for checking the responses it signs itself; nil when OpenSSL's
    /// path must check them (a key kind `ResponseSignerKey` does not handle).
    private(set) lazy var responseSignerKey: ResponseSignerKey? = ResponseSignerKey(certificate)

    init(certificate: X509Certificate, fingerprint: [UInt8]) {
        self.certificate = certificate
        self.fingerprint = fingerprint
        subject = certificate.subject
        leafCheck = IssuerLeafCheck(certificate)
    }

    var description: String { subject }
}

/// Hands out one shared `Issuer` per distinct issuer certificate (same DER, same object).
/// Holds them weakly: an issuer lives as long as some certificate record refers to it.
/// Also shares the OCSP URL lists, which a CA writes identically into every certificate it
/// issues: 10,000 certificates then hold a few arrays instead of 10,000 (about 110 bytes each).
final class IssuerStore {
    private struct WeakIssuer {
        weak var issuer: Issuer?
    }

    /// Bytes as a dictionary key, hashed in one pass: `[UInt8]`'s own hashing feeds the
    /// hasher byte by byte, which made these lookups a tenth of the cost of a bundle.
    private struct ByteKey: Hashable {
        let bytes: [UInt8]

        func hash(into hasher: inout Hasher) {
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    private var issuers: [ByteKey: WeakIssuer] = [:]
    /// The same issuers by the DER bytes they were parsed from: a bundle carrying a known
    /// issuer reuses its parsed certificate instead of decoding it again (OpenSSL 3.0's
    /// key decoding is the dearest step of loading a bundle).
    private var issuersByDER: [ByteKey: WeakIssuer] = [:]
    /// The same issuers by their certificate object: a certificate handed out by
    /// `knownCertificate(der:)` comes back to `intern` without being hashed again. An entry
    /// counts only while its issuer lives and holds that very object.
    private var issuersByObject: [ObjectIdentifier: WeakIssuer] = [:]
    private var insertionsSincePrune = 0

    init() {}

    /// The parsed certificate of a live issuer whose DER is exactly `der`.
    func knownCertificate(der: [UInt8]) -> X509Certificate? {
        knownIssuer(der: der)?.certificate
    }

    /// The live issuer whose DER is exactly `der`.
    func knownIssuer(der: [UInt8]) -> Issuer? {
        issuersByDER[ByteKey(bytes: der)]?.issuer
    }

    /// The shared issuer for `certificate`, created on first use. Nil only if OpenSSL cannot
    /// hash the certificate (out of memory).
    func intern(_ certificate: X509Certificate) -> Issuer? {
        if let known = issuersByObject[ObjectIdentifier(certificate)]?.issuer, known.certificate === certificate {
            return known
        }
        guard let fingerprint = certificate.sha256Fingerprint else { return nil }
        if let existing = issuers[ByteKey(bytes: fingerprint)]?.issuer { return existing }
        let issuer = Issuer(certificate: certificate, fingerprint: fingerprint)
        issuers[ByteKey(bytes: fingerprint)] = WeakIssuer(issuer: issuer)
        if let der = certificate.der { issuersByDER[ByteKey(bytes: der)] = WeakIssuer(issuer: issuer) }
        issuersByObject[ObjectIdentifier(certificate)] = WeakIssuer(issuer: issuer)
        insertionsSincePrune += 1
        if insertionsSincePrune > 64 { prune() }
        return issuer
    }

    private var urlLists: Set<[String]> = []
    /// Distinct URL lists kept for sharing; beyond this (hostile or very mixed directories)
    /// lists are simply not shared, so the set cannot grow without bound.
    static let maximumSharedURLLists = 1024

    /// An array equal to `urls`, sharing storage with earlier equal ones.
    func intern(urls: [String]) -> [String] {
        if let existing = urlLists.firstIndex(of: urls) { return urlLists[existing] }
        if urlLists.count < Self.maximumSharedURLLists { urlLists.insert(urls) }
        return urls
    }

    /// Issuers still referenced by some certificate.
    var count: Int { issuers.values.filter { $0.issuer != nil }.count }

    /// Drops the entries of issuers no certificate uses any more.
    func prune() {
        issuers = issuers.filter { $0.value.issuer != nil }
        issuersByDER = issuersByDER.filter { $0.value.issuer != nil }
        issuersByObject = issuersByObject.filter { $0.value.issuer != nil }
        insertionsSincePrune = 0
    }
}
