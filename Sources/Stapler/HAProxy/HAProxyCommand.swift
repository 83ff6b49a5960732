import Reactor

/// One command of HAProxy's runtime API, as the bytes written to the stats socket.
enum HAProxyCommand: Equatable {
    /// Interactive mode: the connection stays open and every answer ends with an empty line
    /// and the prompt `> `.
    case prompt
    /// How long HAProxy keeps this connection open without a command (its `stats timeout`
    /// otherwise, 10 s by default).
    case setCLITimeout(seconds: Int)
    /// Replaces the staple of whichever loaded certificate the response's CertID names.
    case setOCSPResponse(base64: String)
    case showCertificates
    /// Opens (or updates) a transaction that gives `certificate` the staple `base64`. Works
    /// for a certificate that had no `.ocsp` file when HAProxy started; needs a commit.
    case setCertificateOCSP(certificate: FilePath, base64: String)
    case commitCertificate(FilePath)
    /// The process's facts, of which `Pid` and `Start_time_sec` tell one process from another.
    case showInfo

    /// The command name without arguments, for error messages.
    var verb: String {
        switch self {
        case .prompt: return "prompt"
        case .setCLITimeout: return "set timeout cli"
        case .setOCSPResponse: return "set ssl ocsp-response"
        case .showCertificates: return "show ssl cert"
        case .setCertificateOCSP: return "set ssl cert"
        case .commitCertificate: return "commit ssl cert"
        case .showInfo: return "show info"
        }
    }

    var bytes: [UInt8] {
        switch self {
        case .prompt: return Array("prompt\n".utf8)
        case .setCLITimeout(let seconds): return Array("set timeout cli \(max(seconds, 1))\n".utf8)
        case .setOCSPResponse(let base64): return Array("set ssl ocsp-response \(base64)\n".utf8)
        case .showCertificates: return Array("show ssl cert\n".utf8)
        case .showInfo: return Array("show info\n".utf8)
        case .setCertificateOCSP(let certificate, let base64):
            // The payload form (`<<`, ended by an empty line) is the only way to give
            // `set ssl cert` its data.
            return Array("set ssl cert ".utf8) + Self.escaped(certificate.addingSuffix(".ocsp"))
                + Array(" <<\n\(base64)\n\n".utf8)
        case .commitCertificate(let certificate):
            return Array("commit ssl cert ".utf8) + Self.escaped(certificate) + [0x0A]
        }
    }

    /// The CLI splits arguments on blanks and commands on `;`; a backslash makes the next
    /// byte literal (checked on 2.6.12 with a certificate named `c d;e.pem`).
    static func escaped(_ argument: FilePath) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(argument.bytes.count)
        for byte in argument.bytes {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: ";"), UInt8(ascii: "\\"):
                result.append(UInt8(ascii: "\\"))
            default: break
            }
            result.append(byte)
        }
        return result
    }

    /// Length of `set ssl ocsp-response <base64>\n` for a staple of `stapleBytes` bytes,
    /// known before encoding anything.
    static func setOCSPResponseLength(stapleBytes: Int) -> Int {
        "set ssl ocsp-response \n".utf8.count + (stapleBytes + 2) / 3 * 4
    }
}
