// What each fuzz target does with one input. Kept apart from the libFuzzer glue so the same
// bodies can be replayed from a test or a debugger. Every body must return normally for any
// input: a trap, a sanitizer report or a hang is a finding.
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

    /// The predecessor's config file format, through to settings; the same bytes as the
    /// `$JOURNAL_STREAM` value systemd hands over; and its lines as command-line words for
    /// the daemon's options and for `stapler check`'s (pure parsing: nothing is read).
    static func config(_ bytes: [UInt8]) {
        _ = JournalStream(String(decoding: bytes, as: UTF8.self))?.isOpen(on: STDOUT_FILENO)
        let words = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        _ = try? CommandLineParser(options: OptionTable.run, positionalSetting: .certPaths).parse(words)
        _ = try? CommandLineParser(options: OptionTable.check).parse(words)
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

    /// OCSP response verification for one fixed certificate and issuer.
    static func ocsp(_ bytes: [UInt8], record: CertificateRecord, now: Int64) {
        _ = try? OCSPResponseVerifier.verify(bytes, for: record, now: now)
        _ = try? OCSPResponseVerifier.verify(bytes, for: record, now: now, expectedNonce: [0x04, 0x02, 0x01, 0x02])
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
}
