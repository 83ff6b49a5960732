// libFuzzer entry points for the parsers that read hostile bytes. Compiled by run.sh
// together with the daemon's sources (all in one module, so internal types are reachable);
// STAPLER_FUZZ_TARGET picks the target. This enum is the one list of targets: run.sh asks
// the binary for it (STAPLER_FUZZ_TARGET=list), and contrib/fuzz/README.md explains each.
import COpenSSL
import Glibc

enum FuzzTarget: String, CaseIterable {
    case pem, config, haproxycfg, framer, ocsp, headers
    case metrics, addresses, dns
    case command, issuer
    case http, listing, inotify, commandline, process
    case launcherrequest, launcherreport
    case proxy
    case leaf
    case ocspfast

    /// What the target feeds its input to, as `run.sh` and the README list it.
    var summary: String {
        switch self {
        case .pem: "PEM splitter, certificate decoding, bundle parsing"
        case .config: "stapler/stapled config file parser, $JOURNAL_STREAM"
        case .haproxycfg: "haproxy.cfg tokenizer and reader"
        case .framer: "HAProxy runtime API answer framer and answer classifier"
        case .ocsp: "OCSP response verification against a fixed issuer (embedded certificates split off first), and as a staple file recycled at start"
        case .headers: "responder Cache-Control and Content-Type, through to the refresh schedule"
        case .metrics: "metrics endpoint request head: end search over chunks, request parse, answer head"
        case .addresses: "--metrics and socket path option values, through to the kernel's socket address"
        case .command: "--on-update command splitter (sh quoting, no shell), checked against its own quoting"
        case .http: "responder status and header lines and body chunks as curl's callbacks deliver them"
        case .listing: "HAProxy `show ssl cert` listing, through to the name lookup by real path"
        case .inotify: "inotify event records, through to the paths the daemon looks at again"
        case .commandline: "command line words, for the daemon and for check, through to the options"
        case .process: "environment (NOTIFY_SOCKET, HOME, JOURNAL_STREAM, proxy ports for the sandbox), /proc stat texts, the pid file"
        case .issuer: "CA Issuers answers (DER, PEM, PKCS#7), then acceptance as the issuer of a fixed leaf"
        case .launcherrequest: "the --on-update launcher's reading of the daemon's frames: run requests and their staple lists"
        case .launcherreport: "the daemon's reading of the --on-update launcher's frames: started, failed, finished, refused"
        case .dns: "STAPLER_DNS_SERVERS lists, URL hosts and ports, c-ares answers (ares_addrinfo) read into addresses"
        case .proxy: "--ocsp-proxy and http_proxy values, no_proxy lists, through to each URL's route"
        case .ocspfast: "OCSP responses on the fast path against OpenSSL's full check, as they came and signed again by the CA: what the fast path accepts, the full check accepts alike"
        case .leaf: "end-entity certificate DER: our strict leaf decoder against OpenSSL's path, field by field and as a bundle with a known issuer"
        }
    }
}

nonisolated(unsafe) private var target = FuzzTarget.pem
/// The certificate whose staple the `ocsp` target verifies (STAPLER_FUZZ_BUNDLE: leaf + issuer).
nonisolated(unsafe) private var record: CertificateRecord?
/// Where the `ocsp` target writes each input as the bundle's staple file (`<bundle>.ocsp`).
nonisolated(unsafe) private var bundlePath: FilePath = "/"
/// The leaf the `issuer` target checks candidates against (STAPLER_FUZZ_BUNDLE's first certificate).
nonisolated(unsafe) private var issuedLeaf: X509Certificate?
/// The CA the `leaf` target checks its inputs against (STAPLER_FUZZ_BUNDLE's CA).
nonisolated(unsafe) private var leafIssuer: FuzzBodies.LeafIssuer?
/// The CA's private key, with which the `ocspfast` target signs its inputs again
/// (STAPLER_FUZZ_SIGNER_KEY, PEM).
nonisolated(unsafe) private var signingKey: OpaquePointer?
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
    if target == .issuer {
        guard let bundle = environment("STAPLER_FUZZ_BUNDLE"),
              let text = try? FileSystem.readFile(FilePath(bundle), limit: CertificateBundle.maximumFileSize),
              let der = (try? CertificateBundle.decodeCertificates(text))?.first?.der,
              let leaf = X509Certificate(der: der) else {
            standardError("the issuer target needs STAPLER_FUZZ_BUNDLE (a leaf first, in PEM)")
            exit(2)
        }
        issuedLeaf = leaf
    }
    if target == .leaf {
        guard let bundle = environment("STAPLER_FUZZ_BUNDLE"),
              let text = try? FileSystem.readFile(FilePath(bundle), limit: CertificateBundle.maximumFileSize),
              let issuer = FuzzBodies.LeafIssuer(bundle: text) else {
            standardError("the leaf target needs STAPLER_FUZZ_BUNDLE (PEM with a CA that has a subject key identifier)")
            exit(2)
        }
        leafIssuer = issuer
    }
    if target == .ocspfast {
        guard let path = environment("STAPLER_FUZZ_SIGNER_KEY"), let file = fopen(path, "r"),
              let key = PEM_read_PrivateKey(file, nil, nil, nil) else {
            standardError("the ocspfast target needs STAPLER_FUZZ_SIGNER_KEY (the bundle's CA key, PEM)")
            exit(2)
        }
        fclose(file)
        signingKey = key
    }
    if target == .ocsp || target == .ocspfast {
        guard let bundle = environment("STAPLER_FUZZ_BUNDLE") else {
            standardError("the \(target.rawValue) target needs STAPLER_FUZZ_BUNDLE (leaf and issuer PEM)")
            exit(2)
        }
        fixedNow = environment("STAPLER_FUZZ_NOW").flatMap { Int64($0) } ?? UTCTime.now()
        bundlePath = FilePath(bundle)
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
    case .ocsp: FuzzBodies.ocsp(bytes, record: record!, now: fixedNow, certificate: bundlePath)
    case .headers: FuzzBodies.headers(bytes)
    case .metrics: FuzzBodies.metricsRequest(bytes)
    case .addresses: FuzzBodies.addresses(bytes)
    case .command: FuzzBodies.command(bytes)
    case .http: FuzzBodies.http(bytes)
    case .listing: FuzzBodies.listing(bytes)
    case .inotify: FuzzBodies.inotify(bytes)
    case .commandline: FuzzBodies.commandLine(bytes)
    case .process: FuzzBodies.process(bytes)
    case .issuer: FuzzBodies.issuer(bytes, leaf: issuedLeaf!)
    case .dns: FuzzBodies.dns(bytes)
    case .launcherrequest: FuzzBodies.launcherRequest(bytes)
    case .launcherreport: FuzzBodies.launcherReport(bytes)
    case .proxy: FuzzBodies.proxy(bytes)
    case .leaf: FuzzBodies.leaf(bytes, issuer: leafIssuer!)
    case .ocspfast: FuzzBodies.ocspFast(bytes, record: record!, now: fixedNow, signingKey: signingKey!)
    }
    return 0
}
