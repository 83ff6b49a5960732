import Glibc
import Reactor

/// Fetches the issuer of certificates whose bundle lacks it, from the CA Issuers URL their
/// AIA extension names, and writes it as `<certificate file>.issuer` (or at the mirrored
/// path below `--staple-dir`) for the daemon to load them again.
///
/// One fetch per URL, shared by every certificate waiting on it; a downloaded certificate is
/// written only for the certificates it provably issued (`IssuerAcceptance`), never over an
/// existing `.issuer` file. A failed or refused fetch backs off like an OCSP fetch. One log
/// line per change of state of a URL: fetching, fetched, failed (with the retry); a repeated
/// failure with the same reason is logged at debug level.
final class IssuerFetcher {
    private struct Waiting {
        let leafDER: [UInt8]
        let destination: FilePath
        let location: StapleLocation
    }

    private enum Phase {
        /// `attempt` tells this fetch's completion from that of a cancelled earlier one.
        case fetching(HTTPTransferHandle, attempt: UInt64)
        case retrying(TimerHandle)
    }

    private struct Pending {
        var phase: Phase
        var failures = 0
        var lastError: String?
        /// The leaf's issuer name, for log lines.
        let issuerName: String
        var waiting: [FilePath: Waiting] = [:]
    }

    /// Limits of one download: a CA certificate is small, and its server is not ours.
    static let connectTimeout: Duration = .seconds(5)
    static let totalTimeout: Duration = .seconds(10)

    private let loop: EventLoop
    private let logger: Logger
    private let http: HTTPClient
    /// `--one-off`: a failure is final, nothing is retried.
    private let onePass: Bool
    private var pending: [String: Pending] = [:]
    /// Which URL each waiting certificate waits on.
    private var urlByCertificate: [FilePath: String] = [:]
    private let retryBackoff = RetryBackoff()
    private var random = JitterRandom()
    private var isStopped = false
    private var attempts: UInt64 = 0
    /// Issuers already fetched, by URL (DER): a certificate of the same issuer deployed
    /// later gets its `.issuer` without another download.
    private var fetched: [String: [UInt8]] = [:]
    /// URLs remembered at most; a directory with more issuers than this downloads again.
    static let maximumRememberedIssuers = 256

    /// Certificates whose issuer was written: the daemon loads them again.
    var onFetched: ([FilePath]) -> Void = { _ in }
    /// A fetch ended for good (`--one-off`): the daemon checks whether the pass is done.
    var onIdle: () -> Void = {}

    init(loop: EventLoop, logger: Logger, http: HTTPClient, onePass: Bool) {
        self.loop = loop
        self.logger = logger
        self.http = http
        self.onePass = onePass
    }

    /// No fetch under way or planned.
    var isIdle: Bool { pending.isEmpty }

    /// Fetches the issuer `missing` describes for `certificate`, unless a fetch for its URL is
    /// already planned (then the certificate joins it). False when there is nothing to
    /// fetch: no http CA Issuers URL, or an `.issuer` file already there (the operator's, or
    /// one written before: never replaced).
    @discardableResult
    func request(_ missing: MissingIssuer, for certificate: FilePath, location: StapleLocation) -> Bool {
        guard !isStopped, let url = missing.caIssuersURLs.first, !missing.leafDER.isEmpty else { return false }
        let destination = location.issuerPath(forCertificate: certificate)
        guard (try? FileSystem.status(destination, followSymlinks: false)) == nil else { return false }
        if let previous = urlByCertificate[certificate], previous != url { forget(certificate) }
        let waiting = Waiting(leafDER: missing.leafDER, destination: destination, location: location)
        if writeFetchedBefore(url, for: certificate, waiting) { return true }
        urlByCertificate[certificate] = url
        if pending[url] != nil {
            pending[url]?.waiting[certificate] = waiting
            return true
        }
        logger.info("fetching issuer \"\(missing.issuerName)\" from \(url), missing from \(certificate) "
                    + "(once for every certificate of this issuer)")
        var entry = Pending(phase: start(url), issuerName: missing.issuerName)
        entry.waiting[certificate] = waiting
        pending[url] = entry
        return true
    }

    /// Writes the issuer fetched earlier from `url` if it issued this certificate too; the
    /// daemon hears of it as of a fetch, on the next loop pass.
    private func writeFetchedBefore(_ url: String, for certificate: FilePath, _ waiting: Waiting) -> Bool {
        guard let der = fetched[url], let issuer = X509Certificate(der: der),
              let leaf = X509Certificate(der: waiting.leafDER),
              case .success = IssuerAcceptance.issuer(of: leaf, among: [issuer]) else { return false }
        do {
            try write(issuer, for: waiting)
        } catch {
            return false
        }
        logger.info("\(certificate): issuer written to \(waiting.destination) (fetched before from \(url))")
        loop.executeSoon { [weak self] in self?.onFetched([certificate]) }
        return true
    }

    /// The certificate no longer waits (gone, changed, or loaded with an issuer after all).
    func forget(_ certificate: FilePath) {
        guard let url = urlByCertificate.removeValue(forKey: certificate) else { return }
        pending[url]?.waiting[certificate] = nil
        guard let entry = pending[url], entry.waiting.isEmpty else { return }
        pending[url] = nil
        switch entry.phase {
        case .fetching(let handle, _): http.cancel(handle)
        case .retrying(let timer): loop.cancel(timer)
        }
    }

    /// Shutdown: transfers are cancelled, timers dropped.
    func stop() {
        isStopped = true
        for entry in pending.values {
            switch entry.phase {
            case .fetching(let handle, _): http.cancel(handle)
            case .retrying(let timer): loop.cancel(timer)
            }
        }
        pending.removeAll()
        urlByCertificate.removeAll()
    }

    private func start(_ url: String) -> Phase {
        let request = HTTPRequest(url: url, connectTimeout: Self.connectTimeout, totalTimeout: Self.totalTimeout,
                                  maxBodyBytes: IssuerDocument.maximumSize)
        attempts += 1
        let attempt = attempts
        let handle = http.start(request) { [weak self] result in self?.finished(url, attempt: attempt, result) }
        return .fetching(handle, attempt: attempt)
    }

    private func finished(_ url: String, attempt: UInt64, _ result: Result<HTTPResponse, HTTPError>) {
        guard !isStopped, var entry = pending[url], case .fetching(_, attempt) = entry.phase else { return }
        let candidates: [X509Certificate]
        do {
            candidates = try IssuerDocument.certificates(in: result.get().body)
        } catch let error as HTTPError {
            return failed(url, entry, reason: "\(error.reason)")
        } catch let error as IssuerDocumentError {
            return failed(url, entry, reason: error.reason)
        } catch {
            return failed(url, entry, reason: "\(error)")
        }
        var written: [FilePath] = []
        var refusal: String?
        var writeError: String?
        for (certificate, waiting) in entry.waiting {
            guard let leaf = X509Certificate(der: waiting.leafDER) else { continue }
            switch IssuerAcceptance.issuer(of: leaf, among: candidates) {
            case .failure(let error):
                refusal = refusal ?? error.reason
            case .success(let issuer):
                if fetched.count < Self.maximumRememberedIssuers || fetched[url] != nil { fetched[url] = issuer.der }
                do {
                    try write(issuer, for: waiting)
                    written.append(certificate)
                } catch {
                    // Someone else's `.issuer` appeared meanwhile: theirs stays, and the
                    // daemon's reload reads it.
                    if case .file(let fileError) = error.reason, fileError.errno == EEXIST {
                        written.append(certificate)
                    } else {
                        writeError = writeError ?? error.description
                    }
                }
            }
        }
        if !written.isEmpty {
            let first = written.min()!
            let example = entry.waiting[first]?.destination.description ?? "\(first).issuer"
            logger.info("issuer \"\(entry.issuerName)\" fetched from \(url) and written for "
                        + "\(written.count) certificate(s), e.g. \(example)")
        }
        for certificate in written {
            entry.waiting[certificate] = nil
            urlByCertificate[certificate] = nil
        }
        if entry.waiting.isEmpty {
            pending[url] = nil
        } else {
            let reason = writeError.map { "cannot write it: \($0)" }
                ?? "refused: \(refusal ?? "not the issuer")"
            failed(url, entry, reason: reason)
        }
        if !written.isEmpty { onFetched(written.sorted()) }
        if pending[url] == nil { onIdle() }
    }

    private func failed(_ url: String, _ entry: Pending, reason: String) {
        var entry = entry
        entry.failures += 1
        let count = entry.waiting.count
        if onePass {
            logger.warning("cannot fetch issuer \"\(entry.issuerName)\" of \(count) certificate(s) from \(url): \(reason)")
            for certificate in entry.waiting.keys { urlByCertificate[certificate] = nil }
            pending[url] = nil
            onIdle()
            return
        }
        let delay = retryBackoff.delay(failures: entry.failures, urgent: true, random: Double.random(in: 0..<1, using: &random))
        let line = "cannot fetch issuer \"\(entry.issuerName)\" of \(count) certificate(s) from \(url): \(reason); "
            + "retrying in \(delay) s"
        if entry.lastError == reason {
            logger.debug(line)
        } else {
            logger.warning(line)
        }
        entry.lastError = reason
        entry.phase = .retrying(loop.schedule(after: .seconds(delay)) { [weak self] in self?.retry(url) })
        pending[url] = entry
    }

    private func retry(_ url: String) {
        guard !isStopped, var entry = pending[url], case .retrying = entry.phase else { return }
        // An `.issuer` that appeared meanwhile (the operator's) is the daemon's to read.
        for (certificate, waiting) in entry.waiting
        where (try? FileSystem.status(waiting.destination, followSymlinks: false)) != nil {
            entry.waiting[certificate] = nil
            urlByCertificate[certificate] = nil
        }
        guard !entry.waiting.isEmpty else {
            pending[url] = nil
            return
        }
        entry.phase = start(url)
        pending[url] = entry
    }

    /// PEM, as HAProxy reads `.issuer` files; created whole, never over an existing file.
    private func write(_ issuer: X509Certificate, for waiting: Waiting) throws(StapleFileError) {
        guard let der = issuer.der else {
            throw StapleFileError(path: waiting.destination, reason: .file(FileError(
                path: waiting.destination, operation: "encode", reason: .system(errno: EINVAL))))
        }
        try StapleFile.makeDirectories(waiting.location.directoriesToCreate(for: waiting.destination),
                                       for: waiting.destination)
        do {
            try FileSystem.createAtomically(Self.pem(der), at: waiting.destination)
        } catch {
            throw StapleFileError(path: waiting.destination, reason: .file(error))
        }
    }

    static func pem(_ der: [UInt8]) -> [UInt8] {
        let body = Array(Base64.encode(der).utf8)
        var text = Array("-----BEGIN CERTIFICATE-----\n".utf8)
        var offset = 0
        while offset < body.count {
            text += body[offset..<min(offset + pemLineLength, body.count)]
            text.append(UInt8(ascii: "\n"))
            offset += pemLineLength
        }
        return text + Array("-----END CERTIFICATE-----\n".utf8)
    }

    /// RFC 7468 §2: base64 lines of 64 characters.
    private static let pemLineLength = 64
}
