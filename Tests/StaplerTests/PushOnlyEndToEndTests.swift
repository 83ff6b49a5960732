import Foundation
import TestSupport
import XCTest

/// `--push-only`, a fleet through shared storage: one Stapler fetches and writes staples into
/// a shared directory, others only read them there, verify them, and push them to their own
/// HAProxy. Real HAProxy processes, a real `openssl ocsp` responder counting its requests,
/// real inotify; what each HAProxy staples is what `openssl s_client -status` receives.
final class PushOnlyEndToEndTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!

    override func setUpWithError() throws {
        guard (try? Shell.resolve("haproxy")) != nil else { throw XCTSkip("haproxy is not installed") }
        temp = try TemporaryDirectory(prefix: "stapler-push-only")
        pki = try TestPKI(directory: temp.file("pki"))
    }

    override func tearDown() {
        pki = nil
        temp = nil
    }

    func testOneWriterFeedsTwoPushOnlyHostsThroughASharedDirectory() throws {
        let port = freeLoopbackPort()
        let certs = try directory("certs")
        let sites = try ["alpha", "beta"].map {
            try pki.haproxySite($0, in: certs, ocspURL: "http://127.0.0.1:\(port)/", stapleAtStart: false)
        }
        let (alpha, beta) = (sites[0], sites[1])
        // The shared volume: staples below --staple-dir, so no HAProxy finds one beside its
        // certificates and every staple it serves was pushed.
        let shared = temp.file("shared")
        let haproxies = try ["writer", "host-a", "host-b"].map {
            try HAProxyProcess(directory: temp.file("haproxy-\($0)"), certificates: [certs + "/"])
        }
        let responder = try OCSPResponderProcess(pki: pki, port: port)
        defer { responder.stop() }

        // The push-only hosts start first, before anything is written. The first runs an
        // --on-update command, as an nginx host would to reload: it lists what changed.
        let hookOutput = temp.file("on-update.txt")
        let hook = ["--on-update", "sh -c 'cat >> \(hookOutput)'", "--on-update-interval", "0"]
        let pushers = try [1, 2].map { host in
            try StaplerProcess(["-v", "-v", "-v", "--push-only", "--staple-dir", shared, "-p", certs,
                                "-s", haproxies[host].adminSocket, "--haproxy-socket-keepalive", "2"]
                               + (host == 1 ? hook : []),
                               logPath: temp.file("push-only-\(host).log"))
        }
        defer { for pusher in pushers { pusher.signal(SIGKILL) } }
        for pusher in pushers {
            pusher.expectLog("push-only: serving the staples another Stapler writes")
            for site in sites { pusher.expectLog("\(stapleFile(site, in: shared)): no staple yet") }
        }
        // Where a fetching Stapler would have asked by now, these asked nothing; the same
        // wait sees the writer's first requests below.
        let asked = { responder.requestCount > 0 }
        XCTAssertFalse(waitUntil(timeout: 2, asked), "push-only hosts made \(responder.requestCount) request(s)")

        let writer = try StaplerProcess(["-v", "-v", "-v", "--staple-dir", shared, "-p", certs,
                                         "-s", haproxies[0].adminSocket, "--metrics", temp.file("writer-metrics.sock")],
                                        logPath: temp.file("writer.log"))
        defer { writer.signal(SIGKILL) }
        XCTAssertTrue(waitUntil(timeout: 15, asked), "the writer asks the responder")
        for site in sites { writer.expectLog("\(site.bundle): staple written: good") }

        // Every HAProxy serves the writer's staples.
        for site in sites {
            for pusher in pushers { pusher.expectLog("\(site.bundle): staple pushed to HAProxy") }
            for haproxy in haproxies { haproxy.expectStaple(.good(), for: site) }
        }

        // The staples that appeared were changes: the command ran for them.
        let listed = { (try? String(contentsOfFile: hookOutput, encoding: .utf8)) ?? "" }
        XCTAssertTrue(waitUntil(timeout: 10) { sites.allSatisfy { listed().contains(self.stapleFile($0, in: shared)) } },
                      "the command was given both new staples: \(listed())\n\(pushers[0].log)")
        XCTAssertFalse(pushers[1].log.contains("on-update"), "the other host has no command")

        // A revocation on the writer's side reaches every HAProxy.
        let requestsBeforeProbes = responder.requestCount
        try responder.revoke(alpha.leaf, in: pki)
        // `revoke` asks the responder itself until it says revoked: not the daemons' requests.
        let probes = responder.requestCount - requestsBeforeProbes
        try Shell.run(["touch", alpha.bundle])
        writer.expectLog("\(alpha.bundle): staple written: revoked")
        for pusher in pushers { pusher.expectLog("is REVOKED: revoked at") }
        for haproxy in haproxies { haproxy.expectStaple(.revoked(), for: alpha) }
        XCTAssertTrue(waitUntil(timeout: 10) { listed().components(separatedBy: self.stapleFile(alpha, in: shared)).count - 1 == 2 },
                      "the revoked staple ran the command again: \(listed())")
        haproxies[1].expectStaple(.good(), for: beta)

        // A touch on the writer's side: a fresh staple (a new thisUpdate needs a new second on
        // the responder's clock: touched again until the writer gets new bytes), pushed by all.
        let betaPushes = pushers.map { $0.log.components(separatedBy: "\(beta.bundle): staple pushed to HAProxy").count }
        try freshStaple(for: beta, from: writer)
        for (pusher, before) in zip(pushers, betaPushes) {
            pusher.expectLog("\(beta.bundle): staple changed in \(stapleFile(beta, in: shared))")
            pusher.expectLog("\(beta.bundle): staple pushed to HAProxy", count: before)
        }

        // A forged staple in the shared directory (a good signature, about another
        // certificate), then a corrupt one: refused by name and reason; HAProxy keeps the
        // last good one.
        let betaStaple = stapleFile(beta, in: shared)
        try plant(try pki.ocspResponse(for: alpha.leaf), at: betaStaple)
        for pusher in pushers {
            pusher.expectLog("\(betaStaple): refused: response does not cover this certificate")
        }
        try plant(Data("not an OCSP response".utf8), at: betaStaple)
        for pusher in pushers { pusher.expectLog("\(betaStaple): refused: not a DER OCSP response") }
        for haproxy in haproxies { haproxy.expectStaple(.good(), for: beta) }
        let pushesAfterForgery = pushers.map { $0.log.components(separatedBy: "\(beta.bundle): staple pushed").count }

        // The writer's next staple puts things right.
        try freshStaple(for: beta, from: writer)
        for (pusher, before) in zip(pushers, pushesAfterForgery) {
            pusher.expectLog("\(beta.bundle): recovered: \(betaStaple) verifies again")
            pusher.expectLog("\(beta.bundle): staple pushed to HAProxy", count: before)
        }
        for haproxy in haproxies { haproxy.expectStaple(.good(), for: beta) }

        // A push-only host's HAProxy restarted finds no staple beside its certificates, and is
        // given every staple that verifies.
        haproxies[1].stop()
        try haproxies[1].start()
        pushers[0].expectLog("giving it every current staple", count: 2)
        haproxies[1].expectStaple(.revoked(), for: alpha)
        haproxies[1].expectStaple(.good(), for: beta)

        // Every request the responder saw was the writer's.
        let metrics = try Shell.run(["curl", "-sS", "--unix-socket", temp.file("writer-metrics.sock"),
                                     "http://localhost/metrics"]).output
        let writerFetches = (sample(metrics, #"stapler_fetches_total{result="success"}"#) ?? -1)
            + (sample(metrics, #"stapler_fetches_total{result="failure"}"#) ?? -1)
        XCTAssertEqual(Double(responder.requestCount - probes), writerFetches, metrics)
        for pusher in pushers {
            XCTAssertFalse(pusher.log.contains("OCSP fetch failed"), pusher.log)
            pusher.stopCleanly()
        }
        writer.stopCleanly()
    }

    /// A staple the writer stops refreshing ages in the open: the metrics keep its
    /// nextUpdate and turn the certificate to `failing` once less than half of
    /// --minimum-validity is left, `stapler check` warns then goes critical, and an expired
    /// staple is never pushed. The staple is signed 20 s in the past (libfaketime) and valid
    /// for a minute, so this takes 40 s.
    func testAStapleNoLongerRefreshedAgesInMetricsAndCheck() throws {
        guard FileManager.default.fileExists(atPath: Self.faketime) else {
            throw XCTSkip("libfaketime is not installed (Debian package faketime)")
        }
        let certs = try directory("certs")
        let site = try pki.haproxySite("aging", in: certs, ocspURL: "http://127.0.0.1:\(freeLoopbackPort())/",
                                       stapleAtStart: false)
        let staple = site.bundle + ".ocsp"
        try plant(try signedInThePast(site, secondsAgo: 20), at: staple)
        let socket = temp.file("metrics.sock")
        let pusher = try StaplerProcess(["-v", "-v", "-v", "--push-only", "--minimum-validity", "30", "-p", certs,
                                         "--no-haproxy-sockets", "--metrics", socket],
                                        logPath: temp.file("push-only.log"))
        defer { pusher.signal(SIGKILL) }
        pusher.expectLog("\(site.bundle): staple found in \(staple): good")
        let scrape = { (try? Shell.run(["curl", "-sS", "--unix-socket", socket, "http://localhost/metrics"]).output) ?? "" }
        let first = scrape()
        let nextUpdate = sample(first, #"stapler_staple_next_update_timestamp_seconds{path="\#(site.bundle)"}"#)
        XCTAssertEqual(sample(first, #"stapler_certificates_by_state{state="good"}"#), 1, first)
        XCTAssertNotNil(nextUpdate, first)
        let check = { try StaplerProcess.run(["check", "-w", "20", site.bundle], in: self.temp.path) }
        let fresh = try check()
        XCTAssertEqual(fresh.status, 0, fresh.output)

        // Under half the minimum validity (15 s) left: failing, and check warns (-w 20).
        pusher.expectLog("\(staple): not refreshed by the fetching Stapler: valid only until", timeout: 40)
        let stale = scrape()
        XCTAssertEqual(sample(stale, #"stapler_certificates_by_state{state="failing"}"#), 1, stale)
        XCTAssertEqual(sample(stale, #"stapler_consecutive_failures{path="\#(site.bundle)"}"#), 1, stale)
        XCTAssertEqual(sample(stale, #"stapler_staple_next_update_timestamp_seconds{path="\#(site.bundle)"}"#), nextUpdate)
        let warned = try check()
        XCTAssertEqual(warned.status, 1, warned.output)
        XCTAssertTrue(warned.output.contains("under the warning 20 s"), warned.output)

        // Expired: said once more, the earliest expiry lies in the past, check is critical.
        pusher.expectLog("\(staple): not refreshed by the fetching Stapler: expired at", timeout: 40)
        let expired = scrape()
        let earliest = sample(expired, "stapler_staple_earliest_expiry_timestamp_seconds")
        XCTAssertLessThanOrEqual(earliest ?? .infinity, Date().timeIntervalSince1970, expired)
        let critical = try check()
        XCTAssertEqual(critical.status, 2, critical.output)

        // A fresh staple from the writer: served again.
        try plant(try pki.ocspResponse(for: site.leaf), at: staple)
        pusher.expectLog("\(site.bundle): recovered: \(staple) verifies again")
        let recovered = scrape()
        XCTAssertEqual(sample(recovered, #"stapler_certificates_by_state{state="good"}"#), 1, recovered)
        XCTAssertFalse(pusher.log.contains("OCSP fetch"), pusher.log)
        pusher.stopCleanly()
    }

    /// `--one-off --push-only`: one pass that pushes what the shared directory holds, then
    /// ends; a certificate without a staple there fails the pass, by name.
    func testOneOffPushesWhatExistsAndFailsForWhatIsMissing() throws {
        let certs = try directory("certs")
        let url = "http://127.0.0.1:\(freeLoopbackPort())/"
        let present = try pki.haproxySite("present", in: certs, ocspURL: url, stapleAtStart: false)
        let missing = try pki.haproxySite("missing", in: certs, ocspURL: url, stapleAtStart: false)
        let shared = temp.file("shared")
        let haproxy = try HAProxyProcess(directory: temp.file("haproxy"), certificates: [certs + "/"])
        try plant(try pki.ocspResponse(for: present.leaf), at: stapleFile(present, in: shared))

        let run = try StaplerProcess.run(["--one-off", "--push-only", "-v", "-v", "-v", "--staple-dir", shared,
                                          "-p", certs, "-s", haproxy.adminSocket], in: temp.path)
        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertTrue(run.output.contains("\(present.bundle): staple pushed to HAProxy \(haproxy.adminSocket)"), run.output)
        XCTAssertTrue(run.output.contains("\(stapleFile(missing, in: shared)): no staple yet"), run.output)
        XCTAssertTrue(run.output.contains("one pass done: 1 stapled, 1 failed"), run.output)
        haproxy.expectStaple(.good(), for: present)
        XCTAssertEqual(try haproxy.stapleSeen(serverName: missing.serverName), .none)

        // Once the staple exists, the pass succeeds.
        try plant(try pki.ocspResponse(for: missing.leaf), at: stapleFile(missing, in: shared))
        let again = try StaplerProcess.run(["--one-off", "--push-only", "--staple-dir", shared, "-p", certs,
                                            "-s", haproxy.adminSocket], in: temp.path)
        XCTAssertEqual(again.status, 0, again.output)
        haproxy.expectStaple(.good(), for: missing)
    }

    /// A change no inotify event announces, as on NFS: the staple is a link into another
    /// directory (a volume that publishes files that way), whose target the writer replaces
    /// there. The periodic rescan (`-r 1`) notices it by its stat; an instance rescanning
    /// hourly, watching the same directory, does not see it in that time.
    func testTheRescanNoticesAChangeNoEventAnnounces() throws {
        let certs = try directory("certs")
        let elsewhere = try directory("published")
        let site = try pki.haproxySite("linked", in: certs, ocspURL: "http://127.0.0.1:\(freeLoopbackPort())/",
                                       stapleAtStart: false)
        let target = "\(elsewhere)/linked.pem.ocsp"
        try plant(try pki.ocspResponse(for: site.leaf), at: target)
        try FileManager.default.createSymbolicLink(atPath: site.bundle + ".ocsp", withDestinationPath: target)
        let start = { (interval: String, name: String) in
            try StaplerProcess(["-v", "-v", "-v", "--push-only", "-r", interval, "--no-haproxy-sockets", "-p", certs],
                               logPath: self.temp.file(name))
        }
        let rescanning = try start("1", "rescanning.log")
        let hourly = try start("3600", "hourly.log")
        defer { for pusher in [rescanning, hourly] { pusher.signal(SIGKILL) } }
        for pusher in [rescanning, hourly] { pusher.expectLog("\(site.bundle): staple found in") }

        try pki.revoke(site.leaf)
        try plant(try pki.ocspResponse(for: site.leaf), at: target)
        let changed = "\(site.bundle): staple changed in \(site.bundle).ocsp: revoked"
        let seen = { (pusher: StaplerProcess) in waitUntil(timeout: 3) { pusher.log.contains(changed) } }
        XCTAssertTrue(seen(rescanning), rescanning.log)
        XCTAssertFalse(seen(hourly), "no event announced it:\n\(hourly.log)")
        rescanning.stopCleanly()
        hourly.stopCleanly()
    }

    // MARK: Helpers

    /// Touches the certificate until the writer writes a new staple for it: `openssl ocsp`
    /// signs the same bytes within one second of its clock, which the writer does not
    /// rewrite. One touch at a time, each waited for, so no fetch is still on its way after.
    private func freshStaple(for site: HAProxySite, from writer: StaplerProcess,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        func count(_ text: String) -> Int { writer.log.components(separatedBy: "\(site.bundle): \(text)").count - 1 }
        let written = count("staple written: good")
        // The responder's thisUpdate has whole seconds: a staple signed in the second of the
        // last one pushed is the same answer to a push-only host (no news, rightly not pushed).
        let start = Int(Date().timeIntervalSince1970)
        _ = waitUntil(timeout: 2) { Int(Date().timeIntervalSince1970) > start }
        for _ in 0..<5 {
            let outcomes = count("staple written") + count("staple unchanged")
            let second = Int(Date().timeIntervalSince1970)
            try Shell.run(["touch", site.bundle])
            guard waitUntil(timeout: 15, { count("staple written") + count("staple unchanged") > outcomes }) else { break }
            if count("staple written: good") > written { return }
            _ = waitUntil(timeout: 2) { Int(Date().timeIntervalSince1970) > second }
        }
        XCTFail("the writer never wrote a fresh staple for \(site.bundle):\n\(writer.log)", file: file, line: line)
    }

    /// libfaketime, from Debian's faketime package (contrib/install-prerequisites.sh).
    static let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

    private func directory(_ name: String) throws -> String {
        let path = temp.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Where a Stapler with `--staple-dir shared` writes the site's staple.
    private func stapleFile(_ site: HAProxySite, in shared: String) -> String {
        shared + site.bundle + ".ocsp"
    }

    /// Puts `bytes` at `path` the way a writer does: a hidden file renamed over it.
    private func plant(_ bytes: Data, at path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = "\(directory)/.planted-\(UUID().uuidString)"
        try bytes.write(to: URL(fileURLWithPath: temporary))
        XCTAssertEqual(rename(temporary, path), 0, path)
    }

    /// A good staple for `site` whose thisUpdate lies `secondsAgo` in the past, valid a minute.
    private func signedInThePast(_ site: HAProxySite, secondsAgo: Int) throws -> Data {
        let output = temp.file("past-\(UUID().uuidString).der")
        try Shell.run(["env", "LD_PRELOAD=\(Self.faketime)", "FAKETIME=-\(secondsAgo)s",
                       "openssl", "ocsp", "-index", pki.index, "-rsigner", pki.certificate, "-rkey", pki.key,
                       "-CA", pki.certificate, "-issuer", pki.certificate, "-cert", site.leaf.certificate,
                       "-respout", output, "-no_nonce", "-nmin", "1"])
        return try Data(contentsOf: URL(fileURLWithPath: output))
    }

    /// The value of the sample written exactly as `series` (name and labels) in `text`.
    private func sample(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1).split(separator: " ")[0])
        }
        return nil
    }
}
