import Reactor

/// What an answer of HAProxy's runtime API means, from its text (prompt and trailing empty
/// line already removed). The texts are HAProxy 2.6.12's, seen on a real instance.
enum HAProxyAnswer: Equatable {
    /// Nothing but the prompt: `prompt`, `set timeout cli`.
    case empty
    /// `OCSP Response updated!`
    case ocspResponseUpdated
    /// `OCSP single response: Certificate ID does not match any certificate or issuer.`:
    /// either no loaded certificate has this CertID, or it had no `.ocsp` file when HAProxy
    /// started (then only a `set ssl cert` transaction can give it one).
    case certificateIDNotFound
    /// HAProxy refused the staple itself: any other answer about "OCSP". Seen on 2.6.12:
    /// `OCSP single response: no longer valid..` (two dots; also for a thisUpdate in the
    /// future), `OCSP single response: missing nextupdate.`, `OCSP single response:
    /// certificate status is unknown.`, `OCSP response status not successful.`, `Failed to
    /// get basic response from OCSP Response.`, `Unable to parse OCSP response.`,
    /// `'set ssl ocsp-response' received invalid base64 encoded response.`
    case ocspResponseRejected
    /// `Transaction created for certificate <name>!` or `Transaction updated for certificate
    /// <name>!`. The name may differ from the one asked for: when another client left a
    /// transaction open, 2.6.12 adds the payload to that one.
    case transactionOpened(certificate: FilePath)
    /// `Committing <name>.` then `Success!`
    case committed
    /// `Can't replace a certificate which is not referenced by the configuration!`
    case certificateNotInConfiguration
    /// `Permission denied`: the socket's level is below what the command needs
    /// (`set ssl cert` and `commit ssl cert` need `level admin`).
    case permissionDenied
    /// `Unknown command, but maybe one of the following ones is a better match: ...`
    case unknownCommand
    case other(String)

    init(_ text: [UInt8]) {
        let string = String(decoding: text, as: UTF8.self)
        // Answers that carry a certificate name come before the catch-all "OCSP" test, as
        // the name itself may contain those letters.
        if string.isEmpty {
            self = .empty
        } else if string == "OCSP Response updated!" {
            self = .ocspResponseUpdated
        } else if string == "OCSP single response: Certificate ID does not match any certificate or issuer." {
            self = .certificateIDNotFound
        } else if let name = Self.transactionCertificate(text) {
            self = .transactionOpened(certificate: name)
        } else if string.hasPrefix("Committing ") && string.hasSuffix("\nSuccess!") {
            self = .committed
        } else if string.hasPrefix("Can't replace a certificate which is not referenced by the configuration!") {
            self = .certificateNotInConfiguration
        } else if string == "Permission denied" {
            self = .permissionDenied
        } else if string.hasPrefix("Unknown command") {
            self = .unknownCommand
        } else if string.contains("OCSP") || string.hasPrefix("'set ssl ocsp-response' ") {
            self = .ocspResponseRejected
        } else {
            self = .other(Self.excerpt(string))
        }
    }

    /// The name in `Transaction created|updated for certificate <name>!`, as bytes (paths
    /// need not be UTF-8).
    private static func transactionCertificate(_ text: [UInt8]) -> FilePath? {
        for prefix in ["Transaction created for certificate ", "Transaction updated for certificate "] {
            let head = Array(prefix.utf8)
            if text.count > head.count + 1, text.starts(with: head), text.last == UInt8(ascii: "!"),
               !text.contains(0x0A) {
                return FilePath(bytes: text[head.count..<(text.count - 1)])
            }
        }
        return nil
    }

    /// An answer short enough for one log line.
    static func excerpt(_ text: String, limit: Int = 200) -> String {
        let flat = text.split(separator: "\n", omittingEmptySubsequences: true).joined(separator: " | ")
        return flat.count <= limit ? flat : String(flat.prefix(limit)) + "..."
    }
}
