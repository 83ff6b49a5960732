// What each fuzz target does with one input. Kept apart from the libFuzzer glue so the same
// bodies can be replayed from a test or a debugger. Every body must return normally for any
// input: a trap, a sanitizer report or a hang is a finding.
import Glibc

enum FuzzBodies {
    /// PEM splitting, certificate decoding and the whole bundle parse (no companion file).
    static func pem(_ bytes: [UInt8]) {
        _ = try? PEMParser.blocks(in: bytes)
        _ = try? CertificateBundle.decodeCertificates(bytes)
        var text = bytes
        _ = try? CertificateBundle.parse(pem: &text, path: "/fuzz/bundle.pem", now: 1_800_000_000,
                                         issuers: IssuerStore(), readCompanion: { _ in nil })
    }

    /// The predecessor's config file format, through to settings.
    static func config(_ bytes: [UInt8]) {
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
}
