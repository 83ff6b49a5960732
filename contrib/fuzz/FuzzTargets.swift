// libFuzzer entry points for the parsers that read hostile bytes. Compiled by run.sh
// together with the daemon's sources (all in one module, so internal types are reachable);
// STAPLER_FUZZ_TARGET picks the target: pem, config, haproxycfg, framer, ocsp.
import Glibc

enum FuzzTarget: String {
    case pem, config, haproxycfg, framer, ocsp
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
    guard let name = environment("STAPLER_FUZZ_TARGET"), let chosen = FuzzTarget(rawValue: name) else {
        standardError("set STAPLER_FUZZ_TARGET to one of: pem config haproxycfg framer ocsp")
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
    }
    return 0
}
