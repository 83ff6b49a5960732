import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// What the sandbox allows, derived from the options alone, and how a SIGHUP reload is
/// trimmed to it. Pure: the file system is a table.
final class SandboxPlanTests: XCTestCase {
    /// /srv/certs and /srv/more are directories, /srv/single/site.pem a file, /srv/stapler
    /// holds the config, /run/stapler the pid file and metrics socket; nothing else exists.
    private let directories: Set<FilePath> = ["/srv/certs", "/srv/more", "/srv/certs/sub", "/srv/single",
                                              "/srv/stapler", "/run/stapler", "/var/log/stapler", "/etc", "/"]
    private let files: Set<FilePath> = ["/srv/single/site.pem", "/srv/stapler/stapler.conf", "/etc/stapler.conf"]
    private func kind(_ path: FilePath) -> SandboxPlan.PathKind {
        directories.contains(path) ? .directory : files.contains(path) ? .file : .missing
    }

    private func plan(_ arguments: [String], configFile: FilePath? = nil,
                      environment: [String: String] = [:]) throws -> SandboxPlan {
        var options = try ConfigurationHarness.options(arguments)
        options.configFile = configFile
        return SandboxPlan(options: options, environment: environment, pathKinds: kind, linkTargets: links)
    }

    /// /srv/certs/current leads to /srv/releases/v1; /srv/certs/site.pem to a certbot archive.
    private func links(_ location: FilePath, _ recursive: Bool) -> [(target: FilePath, isDirectory: Bool)] {
        location == "/srv/certs" ? [("/srv/releases/v1", true), ("/etc/letsencrypt/archive/site/cert1.pem", false)] : []
    }

    private func access(_ plan: SandboxPlan, _ path: FilePath) -> SandboxPlan.Access? {
        plan.paths.first { $0.path == path }?.access
    }

    func testCertificateDirectoriesAreWrittenAndFilesCoveredThroughTheirDirectory() throws {
        let plan = try plan(["-p", "/srv/certs", "/srv/single/site.pem", "/srv/single/new.pem"])
        XCTAssertTrue(plan.enabled)
        XCTAssertEqual(access(plan, "/srv/certs"), .write)
        XCTAssertEqual(access(plan, "/srv/single"), .write, "a file's staple and temporary files go beside it")
        XCTAssertNil(access(plan, "/srv"), "never the parent of a certificate directory")
        XCTAssertTrue(plan.covers("/srv/certs/sub/a.pem.ocsp", .write))
        XCTAssertFalse(plan.covers("/srv/certsX/a.pem", .read), "a prefix of a name is no parent")
        XCTAssertTrue(plan.notices.isEmpty, "\(plan.notices)")
    }

    func testLinkedDirectoriesAreRuledThroughTheirParentAndLinkedFilesOnlyRead() throws {
        let plan = try plan(["-p", "/srv/certs"])
        XCTAssertEqual(access(plan, "/srv/releases"), .write, "a repointed current -> releases/v2 stays covered")
        XCTAssertEqual(access(plan, "/etc/letsencrypt/archive/site"), .read, "renewals add cert2.pem beside cert1.pem")
        let withStapleDirectory = try self.plan(["-p", "/srv/certs", "--staple-dir", "/var/lib/stapler"])
        XCTAssertEqual(access(withStapleDirectory, "/srv/releases"), .read)
    }

    func testAPathWithoutItsParentIsLeftOutWithOneNotice() throws {
        let plan = try plan(["-p", "/srv/certs", "/srv/gone/certs"])
        XCTAssertFalse(plan.covers("/srv/gone/certs/a.pem", .read))
        XCTAssertEqual(plan.notices, ["sandbox: /srv/gone/certs is left out: /srv/gone does not exist at start; "
                                      + "restart Stapler once it does"])
    }

    func testWithAStapleDirectoryCertificatesAreOnlyRead() throws {
        let plan = try plan(["-p", "/srv/certs", "--staple-dir", "/var/lib/stapler"])
        XCTAssertEqual(access(plan, "/srv/certs"), .read)
        XCTAssertEqual(access(plan, "/var/lib/stapler"), .write)
        XCTAssertEqual(plan.directoriesToCreate, ["/var/lib/stapler"], "created before confining, so it can be ruled")
    }

    func testLogPidMetricsAndConfigurationPaths() throws {
        let plan = try plan(["-p", "/srv/certs", "--logdir", "/var/log/stapler",
                             "--pidfile", "/run/stapler/stapler.pid", "--metrics", "/run/stapler/metrics.sock"],
                            configFile: "/srv/stapler/stapler.conf")
        XCTAssertEqual(access(plan, "/srv/stapler"), .read, "read through its directory: editors rename over it")
        XCTAssertEqual(access(plan, "/var/log/stapler"), .write)
        XCTAssertEqual(access(plan, "/run/stapler"), .write)
        XCTAssertTrue(plan.bindPorts.isEmpty)
    }

    func testAConfigFileInEtcIsReadAloneNotEtc() throws {
        let plan = try plan(["-p", "/srv/certs"], configFile: "/etc/stapler.conf")
        XCTAssertEqual(access(plan, "/etc/stapler.conf"), .read)
        XCTAssertNil(access(plan, "/etc"))
        XCTAssertFalse(plan.covers("/etc/shadow", .read))
        XCTAssertFalse(plan.covers("/etc/ssl/private/key.pem", .read), "only openssl.cnf and certs of /etc/ssl")
        XCTAssertTrue(plan.covers("/etc/ssl/certs/ca-certificates.crt", .read))

        let home = try self.plan(["-p", "/srv/certs"], configFile: "/home/ops/.stapler.conf",
                                 environment: ["HOME": "/home/ops"])
        XCTAssertEqual(access(home, "/home/ops/.stapler.conf"), .read)
        XCTAssertFalse(home.covers("/home/ops/.ssh/id_ed25519", .read))
    }

    func testPortsFromMetricsProxiesAndDNSServers() throws {
        let plan = try plan(["-p", "/srv/certs", "--metrics", "127.0.0.1:9177"],
                            environment: ["https_proxy": "http://user:pw@proxy.example:3128/", "ALL_PROXY": "socks5://[::1]",
                                          "http_proxy": "proxy:not-a-port", "STAPLER_DNS_SERVERS": "127.0.0.1:5353,[::1]"])
        XCTAssertEqual(plan.bindPorts, [9177])
        XCTAssertEqual(plan.connectPorts, [80, 443, 53, 3128, 1080, 5353])
    }

    func testTheOCSPProxyPortAndProxyOnly() throws {
        let proxied = try plan(["-p", "/srv/certs", "--ocsp-proxy", "http://cache.example:3129"])
        XCTAssertTrue(proxied.connectPorts.isSuperset(of: [80, 443, 53, 3129]))
        XCTAssertTrue(proxied.learnsResponderPorts)
        let only = try plan(["-p", "/srv/certs", "--ocsp-proxy", "http://cache.example:3129", "--ocsp-proxy-only"])
        XCTAssertEqual(only.connectPorts, [53, 3129])
        XCTAssertFalse(only.learnsResponderPorts, "responders are never asked directly")
        let pushOnly = try plan(["-p", "/srv/certs", "--staple-dir", "/srv/shared", "--push-only"])
        XCTAssertEqual(pushOnly.connectPorts, [])
        XCTAssertEqual(access(pushOnly, "/srv/certs"), .read)
        XCTAssertEqual(access(pushOnly, "/srv/shared"), .read)
    }

    func testProxyPortSpellings() {
        XCTAssertEqual(SandboxPlan.proxyPort("proxy:8080"), 8080)
        XCTAssertEqual(SandboxPlan.proxyPort("http://proxy"), 1080, "curl's default proxy port")
        XCTAssertEqual(SandboxPlan.proxyPort("https://proxy"), 443)
        XCTAssertEqual(SandboxPlan.proxyPort("HTTP://a@b:c@[2001:db8::1]:81/path?q"), 81)
        XCTAssertNil(SandboxPlan.proxyPort("proxy:0"))
        XCTAssertNil(SandboxPlan.proxyPort("proxy:65536"))
        XCTAssertNil(SandboxPlan.proxyPort("[::1"))
        XCTAssertNil(SandboxPlan.proxyPort(""))
    }

    func testAnAbstractNotifySocketIsNotScoped() throws {
        XCTAssertTrue(try plan(["/srv/certs"], environment: ["NOTIFY_SOCKET": "/run/systemd/notify"]).scopesAbstractUnixSockets)
        XCTAssertFalse(try plan(["/srv/certs"], environment: ["NOTIFY_SOCKET": "@/org/systemd/notify"]).scopesAbstractUnixSockets)
    }

    func testNoSandboxAndTheConfigKeyTurnItOff() throws {
        XCTAssertFalse(try ConfigurationHarness.options(["--no-sandbox", "/srv/certs"]).sandbox)
        XCTAssertFalse(try ConfigurationHarness.options(["--sandbox=false", "/srv/certs"]).sandbox)
        XCTAssertTrue(try ConfigurationHarness.options(["/srv/certs"]).sandbox)
        let temp = try TemporaryDirectory(prefix: "stapler-sandbox-key")
        let config = FilePath(temp.file("stapler.conf"))
        try FileSystem.writeAtomically(Array("cert-paths = [/srv/certs]\nsandbox = false\n".utf8), to: config)
        XCTAssertFalse(try ConfigurationHarness.options(["-c", config.description]).sandbox)
        try FileSystem.writeAtomically(Array("cert-paths = [/srv/certs]\nsandbox = maybe\n".utf8), to: config)
        XCTAssertNotNil(ConfigurationHarness.error(["-c", config.description]))
    }

    // MARK: SIGHUP

    func testAReloadKeepsWhatTheRulesetCoversAndRefusesTheRestOneLineEach() throws {
        let running = try ConfigurationHarness.options(["-p", "/srv/certs", "--metrics", "127.0.0.1:9177"])
        let plan = SandboxPlan(options: running, environment: [:], pathKinds: kind, linkTargets: links)
        let fresh = try ConfigurationHarness.options(["-p", "/srv/certs/sub", "/srv/more", "--metrics", "127.0.0.1:9178",
                                                      "--staple-dir", "/var/lib/elsewhere", "-R"])
        let (admitted, lines) = plan.admit(fresh, running: running, checksPorts: true, pathKinds: kind)
        XCTAssertEqual(lines, [
            "restart Stapler to write staples below /var/lib/elsewhere: outside the sandbox set at start",
            "restart Stapler to watch /srv/more: outside the sandbox set at start",
            "restart Stapler to serve metrics on port 9178: outside the sandbox set at start",
        ])
        XCTAssertEqual(admitted.certificateLocations.map(\.path), ["/srv/certs/sub"], "beneath a rule: watched")
        XCTAssertNil(admitted.stapleDirectory)
        XCTAssertEqual(admitted.metricsAddress, running.metricsAddress)
        XCTAssertTrue(admitted.recursive, "everything else in the reload applies")

        let beforeTheTCPLayer = plan.admit(fresh, running: running, checksPorts: false, pathKinds: kind)
        XCTAssertEqual(beforeTheTCPLayer.0.metricsAddress, fresh.metricsAddress)
    }

    // MARK: Landlock ABIs

    func testEachABIHandlesOnlyTheRightsItKnows() {
        XCTAssertEqual(Landlock.handledFileSystemRights(abi: 1), 0x1FFF)
        XCTAssertEqual(Landlock.handledFileSystemRights(abi: 2), 0x3FFF, "REFER")
        XCTAssertEqual(Landlock.handledFileSystemRights(abi: 4), 0x7FFF, "TRUNCATE since 3; 4 adds only TCP")
        XCTAssertEqual(Landlock.handledFileSystemRights(abi: 7), 0xFFFF, "IOCTL_DEV since 5")
        XCTAssertEqual(Landlock.rights(.write, abi: 1) & ~Landlock.handledFileSystemRights(abi: 1), 0,
                       "never a right the kernel would refuse")
        XCTAssertEqual(Landlock.rights(.read, abi: 7) & 1, 0, "execute is never granted")
        XCTAssertEqual(Landlock.scopes(abi: 5, abstractUnixSockets: true, signals: true), 0)
        XCTAssertEqual(Landlock.scopes(abi: 6, abstractUnixSockets: false, signals: true), 2)
    }

    // MARK: System calls

    func testNoForbiddenSystemCallIsAllowedAndNoneIsListedTwice() {
        let allowed = SystemCallAllowList.allowed
        XCTAssertEqual(Set(allowed).count, allowed.count, "listed twice: \(allowed.filter { n in allowed.filter { $0 == n }.count > 1 })")
        XCTAssertTrue(Set(allowed).isDisjoint(with: SystemCallAllowList.forbidden),
                      "\(Set(allowed).intersection(SystemCallAllowList.forbidden))")
        for name in ["execve", "execveat", "ptrace", "mount", "kexec_load", "bpf", "init_module", "finit_module",
                     "delete_module", "clone", "clone3"] {
            XCTAssertFalse(allowed.contains(name), name)
        }
    }
}
