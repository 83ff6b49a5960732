import Reactor

/// The answer to `show ssl cert`: the names HAProxy knows its certificates by (the path as
/// it loaded them; for a `crt <dir>` bind, the directory joined with the file name).
///
/// 2.6.12 answers `# filename` and then one name per line; while a transaction is open it
/// first lists `# transaction` and the name prefixed with `*`: those lines name no
/// certificate of their own and are passed over.
struct HAProxyCertificateListing: Equatable {
    var certificates: [FilePath] = []

    /// Nil when the text is not a listing (it must start with a `# ` header).
    init?(_ text: [UInt8]) {
        var sawHeader = false
        var inTransactions = false
        for line in text.split(separator: 0x0A, omittingEmptySubsequences: true) {
            if line.starts(with: Array("# ".utf8)) {
                sawHeader = true
                inTransactions = line.elementsEqual("# transaction".utf8)
                continue
            }
            guard sawHeader else { return nil }
            // A name HAProxy could not have loaded (control bytes) cannot be a certificate.
            guard !line.contains(where: { $0 == 0 || $0 == 0x0D }) else { continue }
            guard line.first != UInt8(ascii: "*"), !inTransactions else { continue }
            certificates.append(FilePath(bytes: line))
        }
        if !sawHeader && !text.isEmpty { return nil }
    }
}

/// HAProxy's names for certificates, looked up by real path, so that a certificate the
/// daemon found through a symlink or another spelling still matches the name HAProxy uses.
struct HAProxyCertificateNames {
    private var nameByRealPath: [FilePath: FilePath] = [:]
    private(set) var listedAt: MonotonicInstant?

    var count: Int { nameByRealPath.count }

    mutating func update(from listing: HAProxyCertificateListing, at now: MonotonicInstant,
                         resolve: (FilePath) -> FilePath?) {
        nameByRealPath = [:]
        nameByRealPath.reserveCapacity(listing.certificates.count)
        for name in listing.certificates {
            nameByRealPath[resolve(name) ?? name] = name
        }
        listedAt = now
    }

    func name(for certificate: FilePath, resolve: (FilePath) -> FilePath?) -> FilePath? {
        if let real = resolve(certificate), let name = nameByRealPath[real] { return name }
        return nameByRealPath[certificate]
    }

    /// Whether a new listing may be asked for: never listed, or not within `interval`.
    /// Keeps certificates HAProxy does not serve from costing a listing each.
    func mayRefresh(now: MonotonicInstant, interval: Duration) -> Bool {
        guard let listedAt else { return true }
        return now.duration(since: listedAt) >= interval
    }

    mutating func forget() {
        nameByRealPath = [:]
        listedAt = nil
    }
}
