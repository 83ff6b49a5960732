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
    var location: Int {
        get { Int(locationIndex) }
        set { locationIndex = Int32(clamping: newValue) }
    }
    /// What `stat` said when the file was last read, reduced to what tells versions apart.
    private var version: FileVersion
    /// The file's inode when last read: a periodic rescan counts a file whose listing shows
    /// it, in a directory inotify covers, as unchanged (`UnchangedFileShortcut`).
    var inode: UInt64 { version.inode }
    /// Nil while the file yields nothing to staple.
    var record: CertificateRecord?
    /// Why there is nothing to staple (no OCSP URL, expired, unreadable...), as last logged.
    var inactiveReason: String?
    /// The file should hold a usable certificate but does not (unreadable, malformed, issuer
    /// missing), as opposed to a key file or a certificate without an OCSP URL.
    var isBroken: Bool { inactiveKind == .unusable }
    /// The staple being served and where its refresh stands (`StapleRefresher`'s to change).
    var refresh = RefreshState()
    /// The same as `inactiveReason`, as a kind: set and cleared with it. After `refresh`,
    /// whose last byte leaves room for it.
    var inactiveKind: InactiveKind?
    /// `location`, in the padding after `inactiveKind`: with it the object is 248 bytes, a
    /// 256-byte block for malloc instead of 272. A configuration has a handful of locations.
    private var locationIndex: Int32

    init(path: FilePath, location: Int, version: FileVersion) {
        self.path = path
        locationIndex = Int32(clamping: location)
        self.version = version
    }

    convenience init(path: FilePath, location: Int, fileStatus: FileStatus) {
        self.init(path: path, location: location, version: FileVersion(fileStatus))
    }

    /// A difference from what `stat` said when the file was last read means "read it again".
    func hasVersion(_ other: FileVersion) -> Bool { version == other }

    func noteVersion(_ other: FileVersion) { version = other }
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
/// Stored without optionals and enum payloads (sentinels instead): every certificate holds
/// one, and their tag bytes and padding made it 72 bytes instead of 48.
struct StapleSummary: Equatable {
    let thisUpdate: Int64
    let nextUpdate: Int64
    private let fetchedAtOrNone: Int64
    private let cacheMaxAgeOrNone: Int64
    private let revocationTime: Int64
    /// The CRLReason code, `noReason` when the responder gave none.
    private let revocationReason: Int32
    private let revoked: Bool

    private static let none = Int64.min
    private static let noReason = Int32.min

    init(_ response: VerifiedOCSPResponse, fetchedAt: Int64?, cacheMaxAge: Int64?) {
        thisUpdate = response.thisUpdate
        nextUpdate = response.nextUpdate
        fetchedAtOrNone = fetchedAt ?? Self.none
        cacheMaxAgeOrNone = cacheMaxAge ?? Self.none
        switch response.status {
        case .good:
            revoked = false
            revocationTime = 0
            revocationReason = Self.noReason
        case .revoked(let time, let reason):
            revoked = true
            revocationTime = time
            // CRLReason codes are 0 to 10 (RFC 5280 §5.3.1); anything else is kept as given.
            revocationReason = reason.map { Int32(clamping: $0) } ?? Self.noReason
        }
    }

    var status: VerifiedOCSPResponse.Status {
        guard revoked else { return .good }
        return .revoked(time: revocationTime, reason: revocationReason == Self.noReason ? nil : Int(revocationReason))
    }

    /// When we fetched it (nil for a staple recycled from disk).
    var fetchedAt: Int64? { fetchedAtOrNone == Self.none ? nil : fetchedAtOrNone }
    /// The responder's Cache-Control max-age at that time.
    var cacheMaxAge: Int64? { cacheMaxAgeOrNone == Self.none ? nil : cacheMaxAgeOrNone }

    var isRevoked: Bool { revoked }
}
