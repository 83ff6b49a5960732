// What each fuzz target does with one input. Kept apart from the libFuzzer glue so the same
// bodies can be replayed from a test or a debugger. Every body must return normally for any
// input: a trap, a sanitizer report or a hang is a finding.
import CCares
import COpenSSL
import Glibc

enum FuzzBodies {
    /// PEM splitting, certificate decoding and the whole bundle parse (no companion file).
    static func pem(_ bytes: [UInt8]) {
        _ = try? PEMParser.blocks(in: bytes)
        for certificate in (try? CertificateBundle.decodeCertificates(bytes)) ?? [] {
            _ = certificate.caIssuersURLs
            _ = certificate.issuerName
        }
        var text = bytes
        _ = try? CertificateBundle.parse(pem: &text, path: "/fuzz/bundle.pem", now: 1_800_000_000,
                                         issuers: IssuerStore(), readCompanion: { _ in nil })
    }

    /// The issuer the `leaf` target checks its inputs against, interned in a store that keeps
    /// it (a record would hold it in the daemon).
    final class LeafIssuer {
        let certificate: X509Certificate
        let issuer: Issuer
        let store = IssuerStore()
        let pem: [UInt8]

        init?(bundle: [UInt8]) {
            guard let certificate = (try? CertificateBundle.decodeCertificates(bundle))?.first(where: \.isCA),
                  let der = certificate.der else { return nil }
            self.certificate = certificate
            pem = FuzzBodies.pemCertificate(der)
            guard let issuer = store.intern(certificate), issuer.leafCheck != nil else { return nil }
            self.issuer = issuer
        }
    }

    /// Clears what OpenSSL queued: the bundle parse after it reports the queue in its errors.
    private static func isName(_ der: [UInt8]) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard let (name, consumed) = ASN1.decode(der, { d2i_X509_NAME(nil, $0, $1) }) else { return false }
        X509_NAME_free(name)
        return consumed == der.count
    }

    static func pemCertificate(_ der: [UInt8]) -> [UInt8] {
        Array("-----BEGIN CERTIFICATE-----\n".utf8) + Base64.encodedBytes(der) + Array("\n-----END CERTIFICATE-----\n".utf8)
    }

    /// Our leaf decoder against OpenSSL's, for any DER: whenever `LeafCertificate` accepts the
    /// bytes, OpenSSL must parse them and give the same facts, the issuer check must not
    /// accept what `X509Certificate.issued` refuses, and the CertID must be OpenSSL's. Then
    /// the bytes as a bundle with `issuer` (leaf first, then the CA): a store that knows the
    /// CA (fast path) and a fresh one (OpenSSL) must give the same record or the same error.
    static func leaf(_ bytes: [UInt8], issuer known: LeafIssuer) {
        defer { OpenSSLErrorQueue.clear() }
        func mismatch(_ what: String) -> Never { fatalError("leaf: \(what) differs from OpenSSL's path") }
        // The issuer Name is not checked by `LeafCertificate`, only compared with known
        // issuers' subjects (which OpenSSL decoded): one OpenSSL refuses is out of scope.
        if let fast = LeafCertificate(der: bytes), isName(Array(fast.issuerName)) {
            guard let slow = X509Certificate(der: bytes, withPublicKey: false) else { mismatch("acceptance") }
            if slow.isCA { mismatch("isCA") }
            if fast.subject != slow.subject { mismatch("subject") }
            if fast.serialHex != slow.serialHex { mismatch("serial") }
            if fast.notBefore != slow.notBefore || fast.notAfter != slow.notAfter { mismatch("validity") }
            if fast.ocspURLs != slow.ocspURLs { mismatch("OCSP URLs") }
            if fast.mustStaple != slow.mustStaple { mismatch("must-staple") }
            if !fast.authorityKeyID.elementsEqual(ASN1.bytes(X509_get0_authority_key_id(slow.pointer))) {
                mismatch("authority key identifier")
            }
            var name: UnsafePointer<UInt8>?
            var length = 0
            guard X509_NAME_get0_der(X509_get_issuer_name(slow.pointer), &name, &length) == 1, let name,
                  fast.issuerName.elementsEqual(UnsafeBufferPointer(start: name, count: length)) else {
                mismatch("issuer name")
            }
            if let check = known.issuer.leafCheck, check.issued(fast) {
                if !known.certificate.issued(slow) { mismatch("issuer check") }
                if check.certID(of: fast) != CertID(certificate: slow, issuer: known.certificate) { mismatch("CertID") }
            }
        }
        func outcome(_ store: IssuerStore) -> String {
            var text = pemCertificate(bytes) + known.pem
            do {
                let record = try CertificateBundle.parse(pem: &text, path: "/fuzz/leaf.pem", now: 1_800_000_000,
                                                         issuers: store, readCompanion: { _ in nil })
                return "\(record.subject) \(record.serialHex) \(record.notBefore) \(record.notAfter) \(record.ocspURLs) "
                    + "\(record.mustStaple) \(record.certID.hex) \(record.issuer.subject)"
            } catch {
                return "\(error)"
            }
        }
        let fast = outcome(known.store), slow = outcome(IssuerStore())
        if fast != slow { mismatch("bundle outcome (\(fast) against \(slow))") }
    }

    /// The predecessor's config file format, through to settings; the same bytes as the
    /// `$JOURNAL_STREAM` value systemd hands over. (Command-line words: `commandline`.)
    static func config(_ bytes: [UInt8]) {
        _ = JournalStream(String(decoding: bytes, as: UTF8.self))?.isOpen(on: STDOUT_FILENO)
        guard let entries = try? ConfigFile.parse(bytes, file: "/fuzz/stapler.conf") else { return }
        _ = try? ConfigFile.settings(from: entries, file: "/fuzz/stapler.conf", options: OptionTable.run)
    }

    /// haproxy.cfg: the line tokenizer on every line, then the whole reader. A crt-list named
    /// in the input reads the input again (once: lists are read once per crt-base).
    static func haproxyConfig(_ bytes: [UInt8]) {
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            _ = try? HAProxyLineTokenizer.words(line, environment: ["HOME": "/root", "EMPTY": ""])
        }
        var parser = HAProxyConfigParser(environment: ["CERTS": "/etc/certs"], workingDirectory: "/etc/haproxy",
                                         load: { (_, _) throws(ConfigurationError) in bytes })
        try? parser.parse(bytes, file: "/fuzz/haproxy.cfg")
        _ = parser.summary(for: "/fuzz/haproxy.cfg")
    }

    /// The runtime API answer framer, fed in chunks whose sizes come from the input's first
    /// bytes, and every answer it frames classified.
    static func framer(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        var framer = HAProxyPromptFramer(limit: 64 + Int(first) * 16)
        var index = 1
        var step = 1
        while index < bytes.count {
            step = Int(bytes[index] % 17) + 1
            let end = min(bytes.count, index + step)
            switch framer.append(bytes[index..<end]) {
            case .answer(let text):
                _ = HAProxyAnswer(text)
            case .incomplete, .tooLarge, .trailingBytes:
                break
            }
            index = end
        }
        _ = HAProxyAnswer(bytes)
    }

    /// OCSP response verification for one fixed certificate and issuer, as a responder's
    /// answer (with a nonce) and as the certificate's staple file at start: written to
    /// `<certificate>.ocsp`, read back through the size cap, verified (as a responder's answer
    /// without a nonce is) and, if good, judged for recycling.
    static func ocsp(_ bytes: [UInt8], record: CertificateRecord, now: Int64, certificate: FilePath) {
        _ = try? OCSPResponseVerifier.verify(bytes, for: record, now: now, expectedNonce: [0x04, 0x02, 0x01, 0x02])
        // The split the verifier makes to skip decoding remembered delegates: what it leaves
        // is shorter and has no certificates left to split off.
        if let layout = OCSPResponseLayout(der: bytes) {
            precondition(layout.withoutCertificates.count < bytes.count, "nothing was removed")
            precondition(OCSPResponseLayout(der: layout.withoutCertificates) == nil, "certificates left behind")
            _ = record.issuer.delegatedSigners.checkedCertificates(layout.certificates, at: now)
        }

        let staplePath = StapleFile.path(forCertificate: certificate)
        // A new file each time: truncating one in place makes ext4 flush it on close
        // (auto_da_alloc), which cut this target to a few hundred runs a second.
        _ = staplePath.withCString { unlink($0) }
        let fd = staplePath.withCString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { fatalError("cannot write \(staplePath): errno \(errno)") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else { fatalError("short write to \(staplePath)") }
        guard let staple = try? StapleFile.read(forCertificate: certificate) else { return }
        precondition(staple == bytes && staple.count <= StapleFile.maximumSize, "read back \(staple.count) bytes")
        guard let verified = try? OCSPResponseVerifier.verify(staple, for: record, now: now) else { return }
        let summary = StapleSummary(verified, fetchedAt: nil, cacheMaxAge: nil)
        let policy = RefreshPolicy(minimumValidity: 3600)
        guard policy.isRecyclable(nextUpdate: summary.nextUpdate, now: now) else { return }
        _ = policy.nextRefresh(thisUpdate: verified.thisUpdate, nextUpdate: verified.nextUpdate, fetchedAt: now,
                               cacheMaxAge: nil, certificateNotAfter: record.notAfter, now: now, random: 0.5)
    }

    /// The OCSP fast path against OpenSSL's full check. Each input is tried as it came and,
    /// when it has the fast path's shape, signed again with the CA's key, so that mutations
    /// of the signed part reach the acceptance rather than stop at the signature: whatever
    /// the fast path accepts, the full check must accept, with the same result.
    static func ocspFast(_ bytes: [UInt8], record: CertificateRecord, now: Int64, signingKey: OpaquePointer) {
        compareOCSPPaths(bytes, record: record, now: now)
        if let layout = OCSPResponseFastPath.layout(of: bytes), let resigned = resign(bytes, layout, key: signingKey) {
            compareOCSPPaths(resigned, record: record, now: now)
        }
    }

    private static func compareOCSPPaths(_ der: [UInt8], record: CertificateRecord, now: Int64) {
        let skew = OCSPResponseVerifier.defaultClockSkew
        guard let fast = OCSPResponseFastPath.accept(der, certID: record.certID, issuer: record.issuer, now: now,
                                                     allowedClockSkew: skew) else { return }
        guard let full = try? OCSPResponseVerifier.verifyWithOpenSSL(der, certID: record.certID, issuer: record.issuer,
                                                                     now: now, allowedClockSkew: skew) else {
            fatalError("ocspfast: the fast path accepted a response the full check refuses")
        }
        precondition(fast == full, "ocspfast: the fast path and the full check give different results")
    }

    /// `der` with a signature by `key` over the same signed part, under the algorithm of the
    /// key's kind with the layout's digest; the enclosing lengths encoded again.
    private static func resign(_ der: [UInt8], _ layout: OCSPResponseFastPath.Layout, key: OpaquePointer) -> [UInt8]? {
        defer { OpenSSLErrorQueue.clear() }
        let kind: ResponseSignerKey.KeyKind = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC ? .ec : .rsa
        guard let algorithm = OCSPResponseFastPath.SignatureAlgorithm.allCases.first(where: {
            $0.digest == layout.algorithm.digest && $0.keyKind == kind
        }), let context = EVP_MD_CTX_new() else { return nil }
        defer { EVP_MD_CTX_free(context) }
        let signed = Array(der[layout.signed])
        var length = 0
        guard EVP_DigestSignInit_ex(context, nil, algorithm.digest.name, nil, nil, key, nil) == 1,
              EVP_DigestSign(context, nil, &length, signed, signed.count) == 1 else { return nil }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, signed, signed.count) == 1 else { return nil }
        var basic = signed + algorithm.der + ASN1.element(tag: 0x03, wrapping: [0] + signature.prefix(length))
        if !layout.certificates.isEmpty {
            basic += ASN1.element(tag: 0xA0, wrapping: ASN1.sequence(wrapping: layout.certificates.flatMap { der[$0] }))
        }
        let responseBytes = ASN1.sequence(wrapping: OCSPResponseFastPath.basicResponseType
                                          + ASN1.element(tag: 0x04, wrapping: ASN1.sequence(wrapping: basic)))
        return ASN1.sequence(wrapping: [0x0A, 0x01, 0x00] + ASN1.element(tag: 0xA0, wrapping: responseBytes))
    }

    /// What a CA Issuers URL answered: decoded as DER, PEM or PKCS#7, every certificate found
    /// then judged as the issuer of `leaf`, and an accepted one encoded as the `.issuer` file.
    static func issuer(_ bytes: [UInt8], leaf: X509Certificate) {
        guard let candidates = try? IssuerDocument.certificates(in: bytes) else { return }
        if case .success(let issuer) = IssuerAcceptance.issuer(of: leaf, among: candidates), let der = issuer.der {
            _ = IssuerFetcher.pem(der)
        }
    }

    /// A responder's Cache-Control and Content-Type values (split at the first NUL), and the
    /// refresh the daemon would plan from that max-age, with times taken from the input too.
    static func headers(_ bytes: [UInt8]) {
        let split = bytes.firstIndex(of: 0) ?? bytes.endIndex
        let cacheControl = String(decoding: bytes[..<split], as: UTF8.self)
        let contentType = String(decoding: bytes[min(split + 1, bytes.endIndex)...], as: UTF8.self)
        _ = OCSPExchange.isOCSPContentType(contentType)
        let maxAge = CacheControl.maxAge(cacheControl)
        // The last 24 bytes as three Int64s: every extreme of the type is reachable.
        let tail = Array(repeating: 0, count: max(0, 24 - bytes.count)) + Array(bytes.suffix(24))
        let times = (0..<3).map { word in
            Int64(bitPattern: tail[word * 8 ..< word * 8 + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        let policy = RefreshPolicy(minimumValidity: times[2])
        _ = policy.nextRefresh(thisUpdate: times[0], nextUpdate: times[1], fetchedAt: times[2], cacheMaxAge: maxAge,
                               certificateNotAfter: times[1] ^ times[2], now: times[0] &- times[2], random: 0.5)
        _ = policy.isRecyclable(nextUpdate: times[1], now: times[0])
    }

    /// A metrics client's bytes as the server reads them: in chunks (sizes from the first
    /// byte), the end of the head searched from just before each new chunk as `readHead`
    /// does, which must find what a search of the whole buffer finds; then the head parsed
    /// and its fields echoed into an answer head.
    static func metricsRequest(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let step = Int(first % 31) + 1
        var head: [UInt8] = []
        var index = 1
        while index < bytes.count && head.count <= 8 << 10 {
            let end = min(bytes.count, index + step)
            let searchFrom = max(0, head.count - 3)
            head.append(contentsOf: bytes[index..<end])
            index = end
            let found = SimpleHTTPServer.headEnd(in: head, from: searchFrom)
            precondition(found == SimpleHTTPServer.headEnd(in: head, from: 0), "the chunked search missed the end of the head")
            guard let found else { continue }
            if let request = SimpleHTTPServer.parse(Array(head[..<found])) {
                _ = request.path
                _ = request.header("Host")
                let response = SimpleHTTPServer.Response(status: 200, headers: request.headers, body: [])
                let answer = SimpleHTTPServer.serializeHead(response, contentLength: 0)
                // Whatever the client sent, echoed fields cannot end the answer's head early.
                precondition(SimpleHTTPServer.headEnd(in: answer, from: 0) == answer.count - 3, "a field split the head")
            }
            return
        }
    }

    /// Option values naming where to listen or connect: `--metrics` (HOST:PORT, [IPV6]:PORT,
    /// PORT, a socket path) and socket path lists (`-s`), through the settings layer as the
    /// command line gives them. Every `--metrics` value accepted must also make a kernel
    /// socket address, or the daemon would fail at bind with a worse message.
    static func addresses(_ bytes: [UInt8]) {
        if let address = try? SettingValueParser.metricsAddress(bytes) {
            _ = address.description
            if case .failure(let error) = Result(catching: { () throws(SystemError) in try SocketAddress(address) }) {
                preconditionFailure("--metrics accepted \(address) but it makes no socket address: \(error)")
            }
        }
        var layer = SettingsLayer()
        try? layer.apply(.metrics, .values([bytes]), context: "--metrics")
        let paths = bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { Array($0) }
        try? layer.apply(.haproxySockets, .values(paths), context: "--haproxy-sockets")
    }

    /// An `--on-update` value, as the command line or the config file gives it, split into
    /// argv. Whatever it accepts must be words a C string can carry, and quoting them again
    /// must give the same words back (the splitter agrees with its own quoting).
    static func command(_ bytes: [UInt8]) {
        var layer = SettingsLayer()
        try? layer.apply(.onUpdate, .values([bytes]), context: "--on-update")
        guard let words = try? CommandWords.split(bytes) else { return }
        precondition(!words.isEmpty && !words.contains(where: { $0.contains(0) }), "accepted an empty command or a NUL")
        precondition((try? CommandWords.split(CommandWords.quoted(words))) == words, "quoting did not give the words back")
    }

    /// The launcher reading the daemon's bytes (a compromised daemon's, say): frames cut in
    /// chunks of the first byte's size plus one, each decoded as a run request. An accepted
    /// request must list only staple paths, give the command an environment without NUL and
    /// with the right count, and survive encoding and decoding again.
    static func launcherRequest(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        _ = try? LauncherRequest.decode(Array(bytes.dropFirst()))
        eachFrame(bytes.dropFirst(), step: Int(first) + 1, limit: LauncherRequest.maximumFrame) { payload in
            guard let request = try? LauncherRequest.decode(payload) else { return }
            guard let count = try? LauncherRequest.stapleCount(request.staples) else { preconditionFailure("accepted a bad list") }
            precondition(count == request.staples.count(where: { $0 == UInt8(ascii: "\n") }), "miscounted the staples")
            let environment = UpdateCommandRun.environment(staples: request.staples, count: count)
            precondition(!environment.contains(where: { $0.contains(0) }), "a NUL in the command's environment")
            precondition((try? LauncherRequest.decode(request.encoded())) == request, "a request changed on its way")
        }
    }

    /// The daemon reading the launcher's bytes: frames in chunks as for `launcherRequest`,
    /// each decoded as a report; an accepted one survives encoding and decoding again and
    /// becomes the log line the daemon would write.
    static func launcherReport(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        _ = try? LauncherReport.decode(Array(bytes.dropFirst()))
        eachFrame(bytes.dropFirst(), step: Int(first) + 1, limit: LauncherReport.maximumFrame) { payload in
            guard let report = try? LauncherReport.decode(payload) else { return }
            precondition(report.encoded() == payload || { if case .refused = report { true } else { false } }(),
                         "a report changed on its way")
            switch report {
            case .finished(let completion):
                _ = "\(completion.termination) after \(UpdateHook.seconds(completion.duration)): \(UpdateHook.excerpt(completion))"
            case .spawnFailed(let call, let errno):
                _ = UpdateCommandError.spawn(ChildProcess.SpawnError(program: Array("nginx".utf8), call: call, errno: errno)).description
            case .started, .refused:
                break
            }
        }
    }

    private static func eachFrame(_ bytes: ArraySlice<UInt8>, step: Int, limit: Int, _ body: ([UInt8]) -> Void) {
        var decoder = FrameDecoder(limit: limit)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let end = min(bytes.endIndex, index + step)
            decoder.append(bytes[index..<end])
            index = end
            while let payload = try? decoder.next() { body(payload) }
        }
        precondition(decoder.pendingBytes >= 0 && decoder.pendingBytes <= limit + FrameDecoder.headerSize + step,
                     "the decoder held \(decoder.pendingBytes) bytes")
    }

    /// What curl's callbacks hand over from a responder. The first two bytes set the header
    /// and body caps (zero included); the rest is lines, "\n" kept: one starting with NUL is a
    /// body chunk (without the NUL), any other a status or header line. What is kept then
    /// goes where the daemon sends it: the Content-Type check and Cache-Control's max-age.
    /// The first line is also a certificate's OCSP URL on its way to a request.
    static func http(_ bytes: [UInt8]) {
        guard bytes.count >= 2 else { return }
        let firstLine = bytes[2...].prefix { $0 != 0x0A }
        let url = String(decoding: firstLine, as: UTF8.self)
        if X509Certificate.isUsableOCSPURL(url) {
            let get = OCSPRequest.getURL(base: url, der: [0x30, 0x03, 0x0a, 0x01, 0x00])
            _ = HTTPClient.origin(of: get)
            _ = HTTPTransfer.problem(with: .get(get))
        }
        var response = HTTPResponseCollector(maxBodyBytes: Int(bytes[1]) * 256, maxHeaderBytes: Int(bytes[0]) * 64)
        var start = 2
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A).map { $0 + 1 } ?? bytes.count
            let line = bytes[start..<end]
            let isBody = line.first == 0
            let piece = isBody ? line.dropFirst() : line
            let taken = piece.withUnsafeBytes { isBody ? response.receiveBody($0) : response.receiveHeaderLine($0) }
            precondition(taken == 0 || taken == piece.count, "took \(taken) of \(piece.count) bytes")
            precondition(response.body.count <= response.maxBodyBytes, "body passed its cap")
            start = end
        }
        if let contentType = response.contentType { _ = OCSPExchange.isOCSPContentType(contentType) }
        if let cacheControl = response.cacheControl { _ = CacheControl.maxAge(cacheControl) }
    }

    /// HAProxy's `show ssl cert` answer (framed already: `framer` covers that), and the
    /// lookup of certificates by real path, with a stand-in for realpath that resolves some
    /// names to their directory and others not at all.
    static func listing(_ bytes: [UInt8]) {
        guard let listing = HAProxyCertificateListing(bytes) else { return }
        let resolve: (FilePath) -> FilePath? = { $0.bytes.count % 3 == 0 ? nil : $0.directory }
        var names = HAProxyCertificateNames()
        names.update(from: listing, at: MonotonicInstant(nanoseconds: 0), resolve: resolve)
        precondition(names.count <= listing.certificates.count, "more names than certificates listed")
        for name in listing.certificates {
            precondition(!name.bytes.contains(0) && !name.bytes.contains(0x0A), "a listed name holds a NUL or newline")
            _ = names.name(for: name, resolve: resolve)
        }
        _ = HAProxyAnswer.excerpt(String(decoding: bytes, as: UTF8.self))
    }

    /// A read's worth of inotify records, then what the daemon makes of them: names checked
    /// against the discovery rules and ignore patterns, folded into paths to look at again.
    /// Watch numbers that are a multiple of 4 belong to no directory any more.
    static func inotify(_ bytes: [UInt8]) {
        let events = bytes.withUnsafeBytes { InotifyRecordDecoder.events(in: $0) }
        precondition(events.count <= bytes.count / InotifyRecordDecoder.headerSize, "more events than headers")
        let rules = DiscoveryRules(ignorePatterns: [IgnorePattern("*.bak"), IgnorePattern("old/[!a-c]?*.pem"),
                                                    IgnorePattern("/certs/w1/x*")],
                                   recursive: bytes.count % 2 == 0)
        let directory: (WatchDescriptor) -> FilePath? = {
            $0.rawValue % 4 == 0 ? nil : FilePath("/certs/w\($0.rawValue)")
        }
        var changes = FileSystemChanges()
        changes.absorb(events, rules: rules, directory: directory)
        changes.absorbParentEvents(events, parent: directory, isLocation: { $0.lastComponent == "site.pem" })
        for event in events {
            precondition(!event.name.bytes.contains(0), "a decoded name holds a NUL")
            // Names from disk are also read for the pid of a temporary file's writer (signal 0: asks only).
            _ = FileSystem.isStaleTemporaryFile(event.name)
        }
    }

    /// Command line words (split at NUL, as argv is), parsed for the daemon and for `check`;
    /// the daemon's then merged into options as at start. haproxy.cfg files named are not
    /// read (`haproxycfg` covers them), so no input reaches the file system.
    static func commandLine(_ bytes: [UInt8]) {
        let words = bytes.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        let run = CommandLineParser(options: OptionTable.run, positionalSetting: .certPaths, positionalName: "CERT_PATH")
        if case .settings(var layer, _)? = try? run.parse(words) {
            layer.haproxyConfigs = nil
            _ = try? ConfigurationLoader.resolve(commandLine: layer, file: nil, environment: [:], base: "/fuzz")
        }
        _ = try? CommandLineParser(options: OptionTable.check).parse(words)
    }

    /// What the process reads about itself, split at NUL: environment entries (one a line),
    /// /proc/self/stat, /proc/stat, its pid file; the last byte is also the clock ticks per
    /// second. NOTIFY_SOCKET, HOME and JOURNAL_STREAM then go where the daemon uses them.
    static func process(_ bytes: [UInt8]) {
        var fields = bytes.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false).map(Array.init)
        while fields.count < 4 { fields.append([]) }
        let entries = fields[0].split(separator: 0x0A, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        let environment = ProcessEnvironment.dictionary(entries)
        if let notifier = ServiceNotifier(environment: environment),
           let address = try? ServiceNotifier.address(of: notifier.socket) {
            let length = address.withSockaddr { $1 }
            precondition(Int(length) <= MemoryLayout<sockaddr_un>.size, "address length past sockaddr_un")
        }
        _ = ConfigurationLoader.defaultConfigFiles(environment: environment)
        _ = JournalStream.isStandardOutput(environment: environment)
        _ = ProcessStartTime.parse(selfStat: fields[1], systemStat: fields[2], ticksPerSecond: Int64(bytes.last ?? 100) - 1)
        _ = ProcessControl.pidFile(fields[3], names: 4242)
        // The sandbox's ports from proxy variables, STAPLER_DNS_SERVERS and NOTIFY_SOCKET.
        let plan = SandboxPlan(options: Options(), environment: environment, pathKinds: { _ in .missing })
        precondition(plan.connectPorts.isSuperset(of: [SandboxPlan.httpPort, SandboxPlan.httpsPort]), "default ports lost")
        precondition(!plan.connectPorts.contains(0), "port 0 allowed")
    }

    /// Names and addresses from outside: a DNS server list as STAPLER_DNS_SERVERS gives it
    /// (an accepted list must read back the same from its c-ares form), the same bytes as a
    /// URL whose host and port the HTTP client resolves (a plain name must make a
    /// CURLOPT_RESOLVE entry curl parses as host:port:addresses), and as a c-ares answer:
    /// nodes of family, address length, TTL and address bytes, each address in a buffer of
    /// exactly its claimed length so AddressSanitizer sees any read beyond it.
    static func dns(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let list = try? NameServerList(parsing: text) {
            precondition((try? NameServerList(parsing: list.description)) == list, "\(list) does not read back")
        }
        if let endpoint = URLEndpoint(url: text), endpoint.isPlainName {
            precondition(!endpoint.host.isEmpty && !endpoint.host.contains(":") && endpoint.port > 0,
                         "unusable endpoint \(endpoint) from \(text)")
            _ = endpoint.resolveEntry([.init(text: "127.0.0.1", isIPv6: false), .init(text: "::1", isIPv6: true)])
        }
        fuzzedAddrinfo(bytes) { info in
            if let answer = ResolvedAddresses(info) {
                precondition(!answer.addresses.isEmpty && answer.addresses.count <= ResolvedAddresses.maxAddresses)
                precondition(answer.timeToLive >= 0)
            }
        }
    }

    /// Proxies from outside: a proxy URL as `--ocsp-proxy` or `http_proxy` gives it (an
    /// accepted one names a host and port that read back the same from its description,
    /// which carries no credentials), a `no_proxy` list, and a URL routed with both.
    static func proxy(_ bytes: [UInt8]) {
        let parts = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        let proxyText = parts[0]
        let noProxyText = parts.count > 1 ? parts[1] : ""
        let url = parts.count > 2 ? parts[2] : "http://ocsp.example.test/x"
        if let proxy = try? ProxyURL(parsing: proxyText) {
            precondition(!proxy.endpoint.host.isEmpty && proxy.port > 0, "unusable proxy from \(proxyText)")
            let again = try? ProxyURL(parsing: proxy.description)
            precondition(again?.endpoint.host == proxy.endpoint.host && again?.port == proxy.port,
                         "\(proxy) does not read back")
            precondition(!proxy.description.contains("@"), "credentials in \(proxy)")
            _ = ProxyRoute.choose(for: url, setting: .proxy(proxy), bypassesProxy: false)
        }
        _ = try? SettingValueParser.proxyURL(Array(proxyText.utf8))
        let list = NoProxyList(parsing: noProxyText)
        if let endpoint = URLEndpoint(url: url) { _ = list.exempts(host: endpoint.host) }
        _ = list.exempts(host: proxyText)
    }

    /// Builds an `ares_addrinfo` from bytes: per node a family byte (even: AF_INET, odd:
    /// AF_INET6, 0xFF: AF_UNIX), a length byte, four TTL bytes, then `length` address bytes.
    private static func fuzzedAddrinfo(_ bytes: [UInt8], _ body: (UnsafePointer<ares_addrinfo>) -> Void) {
        var nodes: [UnsafeMutablePointer<ares_addrinfo_node>] = []
        var buffers: [UnsafeMutableRawPointer] = []
        defer {
            nodes.forEach { $0.deallocate() }
            buffers.forEach { $0.deallocate() }
        }
        var index = 0
        while index + 6 <= bytes.count && nodes.count < 64 {
            let familyByte = bytes[index]
            let length = Int(bytes[index + 1]) % (MemoryLayout<sockaddr_in6>.size + 4)
            let ttl = bytes[(index + 2)..<(index + 6)].reduce(Int32(0)) { $0 << 8 | Int32($1) }
            index += 6
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(length, 1), alignment: 1)
            buffers.append(buffer)
            let available = min(length, bytes.count - index)
            bytes.withUnsafeBytes { source in
                if available > 0 { buffer.copyMemory(from: source.baseAddress! + index, byteCount: available) }
            }
            if available < length { (buffer + available).initializeMemory(as: UInt8.self, repeating: 0, count: length - available) }
            if length >= 2 {
                // The address's own family field, so both checks of the reader are exercised.
                let family = familyByte == 0xFF ? AF_UNIX : (familyByte % 2 == 0 ? AF_INET : AF_INET6)
                buffer.storeBytes(of: sa_family_t(familyByte & 0x40 == 0 ? family : AF_INET), as: sa_family_t.self)
            }
            index += available
            let node = UnsafeMutablePointer<ares_addrinfo_node>.allocate(capacity: 1)
            node.initialize(to: ares_addrinfo_node())
            node.pointee.ai_ttl = ttl
            node.pointee.ai_family = familyByte == 0xFF ? AF_UNIX : (familyByte % 2 == 0 ? AF_INET : AF_INET6)
            node.pointee.ai_addrlen = ares_socklen_t(length)
            node.pointee.ai_addr = length == 0 ? nil : buffer.assumingMemoryBound(to: sockaddr.self)
            nodes.last?.pointee.ai_next = node
            nodes.append(node)
        }
        var info = ares_addrinfo()
        info.nodes = nodes.first
        withUnsafePointer(to: &info) { body($0) }
    }
}
