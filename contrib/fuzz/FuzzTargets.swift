// libFuzzer entry points for the parsers that read hostile bytes. Compiled by run.sh
// together with the daemon's sources (all in one module, so internal types are reachable);
// STAPLER_FUZZ_TARGET picks the target. This enum is the one list of targets: run.sh asks
// the binary for it (STAPLER_FUZZ_TARGET=list), and contrib/fuzz/README.md explains each.
import Glibc

enum FuzzTarget: String, CaseIterable {
    case pem, config, haproxycfg, framer, ocsp, headers
    case metrics, addresses, dns

    /// What the target feeds its input to, as `run.sh` and the README list it.
    var summary: String {
        switch self {
        case .pem: "PEM splitter, certificate decoding, bundle parsing"
        case .config: "stapler/stapled config file parser, $JOURNAL_STREAM"
        case .haproxycfg: "haproxy.cfg tokenizer and reader"
        case .framer: "HAProxy runtime API answer framer and answer classifier"
        case .ocsp: "OCSP response verification against a fixed issuer"
        case .headers: "responder Cache-Control and Content-Type, through to the refresh schedule"
        case .metrics: "metrics endpoint request head: end search over chunks, request parse, answer head"
        case .addresses: "--metrics and socket path option values, through to the kernel's socket address"
        case .dns: "STAPLER_DNS_SERVERS lists, URL hosts and ports, c-ares answers (ares_addrinfo) read into addresses"
        }
    }
}

nonisolated(unsafe) private var target = FuzzTarget.pem
/// The certificate whose staple the `ocsp` target verifies (STAPLER_FUZZ_BUNDLE: leaf + issuer).
nonisolated(unsafe) private var record: CertificateRecord?
/// A fixed "now" for the `ocsp` target, so runs reproduce (STAPLER_FUZZ_NOW, Unix seconds).
nonisolated(unsafe) private var fixedNow: Int64 = 0

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    if environment("STAPLER_FUZZ_TARGET") == "list" {
        for target in FuzzTarget.allCases { standardOutput("\(target.rawValue)\t\(target.summary)\n") }
        exit(0)
    }
    guard let name = environment("STAPLER_FUZZ_TARGET"), let chosen = FuzzTarget(rawValue: name) else {
        standardError("set STAPLER_FUZZ_TARGET to list or one of: "
                      + FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))
        exit(2)
    }
    target = chosen
    if target == .ocsp {
        guard let bundle = environment("STAPLER_FUZZ_BUNDLE") else {
            standardError("the ocsp target needs STAPLER_FUZZ_BUNDLE (leaf and issuer PEM)")
            exit(2)
        }
        fixedNow = environment("STAPLER_FUZZ_NOW").flatMap { Int64($0) } ?? UTCTime.now()
        do {
            record = try CertificateBundle.load(path: FilePath(bundle), now: fixedNow, issuers: IssuerStore())
        } catch {
            standardError("\(error)")
            exit(2)
        }
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    switch target {
    case .pem: FuzzBodies.pem(bytes)
    case .config: FuzzBodies.config(bytes)
    case .haproxycfg: FuzzBodies.haproxyConfig(bytes)
    case .framer: FuzzBodies.framer(bytes)
    case .ocsp: FuzzBodies.ocsp(bytes, record: record!, now: fixedNow)
    case .headers: FuzzBodies.headers(bytes)
    case .metrics: FuzzBodies.metricsRequest(bytes)
    case .addresses: FuzzBodies.addresses(bytes)
    case .dns: FuzzBodies.dns(bytes)
    }
    return 0
}
