import Reactor

/// Everything the daemon remembers about one certificate file between events: the parsed
/// record (or why there is none), the staple being served, and where its refresh stands.
/// The daemon's table holds one per file; the refresher keeps `refresh` up to date.
///
/// Kept small on purpose (the daemon holds tens of thousands): no staple bytes once they are
/// written and pushed, no OpenSSL objects, no PEM.
final class TrackedCertificate {
    let path: FilePath
    /// Index of the configured location it belongs to (for its HAProxy sockets).
    var location: Int
    /// What `stat` said when the file was last read; a difference means "read it again".
    var fileStatus: FileStatus
    /// Nil while the file yields nothing to staple.
    var record: CertificateRecord?
    /// Why there is nothing to staple (no OCSP URL, expired, unreadable...), as last logged.
    var inactiveReason: String?
    /// The same, as a kind: set and cleared with `inactiveReason`.
    var inactiveKind: InactiveKind?
    /// The file should hold a usable certificate but does not (unreadable, malformed, issuer
    /// missing), as opposed to a key file or a certificate without an OCSP URL.
    var isBroken: Bool { inactiveKind == .unusable }
    /// The staple being served and where its refresh stands (`StapleRefresher`'s to change).
    var refresh = RefreshState()

    init(path: FilePath, location: Int, fileStatus: FileStatus) {
        self.path = path
        self.location = location
        self.fileStatus = fileStatus
    }
}

/// Kinds of "nothing to staple", for counting: only `unusable` is a failure of ours.
enum InactiveKind: Equatable {
    /// No end-entity certificate in the file (a key file, a CA certificate).
    case notALeaf
    /// The certificate names no OCSP responder: normal since 2025, never queried.
    case noOCSPURL
    /// The certificate itself has expired (RFC 5019 §3.2: no queries for it).
    case expired
    /// Unreadable, malformed, or its issuer cannot be found.
    case unusable

    init(_ reason: CertificateBundleError.Reason) {
        switch reason {
        case .noCertificate, .noEndEntity: self = .notALeaf
        case .noOCSPURL: self = .noOCSPURL
        case .expired: self = .expired
        case .malformed, .unreadable, .issuerNotFound: self = .unusable
        }
    }
}

/// The staple a certificate is served with, reduced to what scheduling, status and metrics use.
struct StapleSummary: Equatable {
    var status: VerifiedOCSPResponse.Status
    var thisUpdate: Int64
    var nextUpdate: Int64
    /// When we fetched it (nil for a staple recycled from disk).
    var fetchedAt: Int64?
    /// The responder's Cache-Control max-age at that time.
    var cacheMaxAge: Int64?

    init(_ response: VerifiedOCSPResponse, fetchedAt: Int64?, cacheMaxAge: Int64?) {
        status = response.status
        thisUpdate = response.thisUpdate
        nextUpdate = response.nextUpdate
        self.fetchedAt = fetchedAt
        self.cacheMaxAge = cacheMaxAge
    }

    var isRevoked: Bool {
        if case .revoked = status { return true }
        return false
    }
}
