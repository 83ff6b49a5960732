import Foundation
import TestSupport
import XCTest

/// Event-driven freshness, as an operator sees it: the built `stapler` binary, real inotify,
/// real signals and a real `openssl ocsp` responder. Every daemon runs with `-r 3600`, so the
/// periodic rescan can never be what makes a test pass: only events and signals can.
final class EventsEndToEndTests: XCTestCase {
    /// One CA, one responder and a pool of leaves for the whole class. `openssl ocsp` notices
    /// a changed index.txt only by its mtime in whole seconds, so leaves are issued before the
    /// responder that answers for them starts (the bulk tests start their own that way, which
    /// also keeps their request counts to themselves).
    private final class Fixture {
        let directory: TemporaryDirectory
        let pki: TestPKI
        let responder: OCSPResponderProcess
        private var pool: [TestPKI.Leaf]

        init() throws {
            directory = try TemporaryDirectory(prefix: "stapler-events-pki")
            pki = try TestPKI(directory: directory.file("ca"))
            let port = freeLoopbackPort()
            pool = try pki.issueLeaves(count: 150, ocspURLs: ["http://127.0.0.1:\(port)/"])
            responder = try OCSPResponderProcess(pki: pki, port: port)
        }

        /// Leaves the shared responder knows, each handed out once.
        func leaves(_ count: Int) throws -> [TestPKI.Leaf] {
            guard pool.count >= count else { throw XCTSkip("the leaf pool is too small; issue more in Fixture.init") }
            defer { pool.removeFirst(count) }
            return Array(pool.prefix(count))
        }

        /// A responder of its own, and `count` leaves that name it.
        func dedicatedResponder(leaves count: Int) throws -> (OCSPResponderProcess, [TestPKI.Leaf]) {
            let port = freeLoopbackPort()
            let leaves = try pki.issueLeaves(count: count, ocspURLs: ["http://127.0.0.1:\(port)/"])
            return (try OCSPResponderProcess(pki: pki, port: port), leaves)
        }
    }

    private static let shared = SharedFixture(make: { try Fixture() }, release: { $0.responder.stop() })

    private var fixture: Fixture!
    private var pki: TestPKI { fixture.pki }
    private var responder: OCSPResponderProcess { fixture.responder }
    private var temp: TemporaryDirectory!
    private var stapler: StaplerProcess?

    /// "Within about a second": the coalescing window is 100 ms and a fetch from loopback a
    /// few ms; the margin is for a loaded CI machine.
    private let prompt: TimeInterval = 2

    override func setUpWithError() throws {
        fixture = try Self.shared.value()
        temp = try TemporaryDirectory(prefix: "stapler-events")
    }

    override func tearDown() {
        if let stapler, (testRun?.totalFailureCount ?? 0) > 0 {
            print("---- stapler log ----\n\(stapler.log.suffix(6000))\n---- end ----")
        }
        stapler = nil
        temp = nil
        fixture = nil
    }

    override class func tearDown() {
        shared.tearDown()
        super.tearDown()
    }

    // MARK: 1. New certificates

    func testNewCertificateIsStapledWithinASecond() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(2)
        let daemon = try startDaemon([certs])

        // Written the way most tools do: to a temporary name, then renamed into place.
        let renamed = "\(certs)/renamed.pem"
        var started = Date()
        try pki.writeBundle(leaves[0], to: renamed)
        XCTAssertTrue(waitForGoodStaple(renamed, leaves[0], timeout: prompt), "no staple within \(prompt) s")
        let renameLatency = Date().timeIntervalSince(started)

        // Written in place (cp, cat >): create, write, close-write.
        let copied = "\(certs)/copied.pem"
        started = Date()
        let bytes = try bundleBytes(leaves[1])
        XCTAssertTrue(FileManager.default.createFile(atPath: copied, contents: bytes))
        XCTAssertTrue(waitForGoodStaple(copied, leaves[1], timeout: prompt), "no staple within \(prompt) s")
        let copyLatency = Date().timeIntervalSince(started)

        print("new certificate stapled after \(ms(renameLatency)) (rename) and \(ms(copyLatency)) (in place)")
        XCTAssertEqual(responder.requestCount(serial: leaves[0].serial), 1)
        XCTAssertEqual(responder.requestCount(serial: leaves[1].serial), 1)
        XCTAssertTrue(daemon.isRunning)
    }

    // MARK: 2. touch to refresh

    func testTouchFetchesAFreshStapleEvenWhenTheOldOneIsGood() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(2)
        let touched = "\(certs)/touched.pem", other = "\(certs)/other.pem"
        try pki.writeBundle(leaves[0], to: touched)
        try pki.writeBundle(leaves[1], to: other)
        // Good staples on disk already: the daemon recycles them and asks nobody.
        for (leaf, certificate) in [(leaves[0], touched), (leaves[1], other)] {
            try pki.ocspResponse(for: leaf).write(to: URL(fileURLWithPath: certificate + ".ocsp"))
        }
        let daemon = try startDaemon([certs])
        XCTAssertTrue(daemon.waitForLog("staple on disk is good", count: 2))
        XCTAssertEqual(responder.requestCount(serial: leaves[0].serial), 0, "recycled, not fetched")
        let before = try fileIdentity(touched + ".ocsp")

        let started = Date()
        try Shell.run(["touch", touched])
        XCTAssertTrue(waitUntil(timeout: prompt) { self.responder.requestCount(serial: leaves[0].serial) == 1 },
                      "the responder saw no request within \(prompt) s of the touch")
        XCTAssertTrue(waitUntil(timeout: prompt) { (try? self.fileIdentity(touched + ".ocsp")) != before },
                      "the staple file was not rewritten")
        print("touch to request: \(ms(Date().timeIntervalSince(started)))")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: touched + ".ocsp", for: leaves[0]), "good")
        XCTAssertEqual(responder.requestCount(serial: leaves[1].serial), 0, "only the touched file is refreshed")
    }

    // MARK: 3. Replace by rename

    func testCertificateReplacedByRenameGetsTheStapleOfTheNewCertificate() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(2)
        let certificate = "\(certs)/site.pem"
        try pki.writeBundle(leaves[0], to: certificate)
        let daemon = try startDaemon([certs])
        XCTAssertTrue(waitForGoodStaple(certificate, leaves[0]))

        // Renewed certificate: written beside it under another name, renamed over it.
        let staged = "\(certs)/site.pem.new"
        try pki.writeBundle(leaves[1], to: staged)
        XCTAssertEqual(rename(staged, certificate), 0)
        XCTAssertTrue(waitForGoodStaple(certificate, leaves[1], timeout: prompt),
                      "the staple does not match the new certificate within \(prompt) s")
        XCTAssertEqual(responder.requestCount(serial: leaves[1].serial), 1)
        XCTAssertEqual(responder.requestCount(serial: leaves[0].serial), 1, "the old certificate is not asked about again")
        XCTAssertTrue(daemon.isRunning)
    }

    // MARK: 4. Delete

    func testDeletedCertificateIsNoLongerRefreshed() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(2)
        let deleted = "\(certs)/deleted.pem", kept = "\(certs)/kept.pem"
        try pki.writeBundle(leaves[0], to: deleted)
        try pki.writeBundle(leaves[1], to: kept)
        let daemon = try startDaemon([certs])
        XCTAssertTrue(waitForGoodStaple(deleted, leaves[0]))
        XCTAssertTrue(waitForGoodStaple(kept, leaves[1]))

        try FileManager.default.removeItem(atPath: deleted)
        XCTAssertTrue(daemon.waitForLog("\(deleted): no longer found, forgotten", timeout: prompt))

        // Events about the other file (and a rescan) do not bring it back.
        try Shell.run(["touch", kept])
        XCTAssertTrue(waitUntil(timeout: prompt) { self.responder.requestCount(serial: leaves[1].serial) == 2 })
        let offset = daemon.log.utf8.count
        daemon.signal(SIGHUP)
        XCTAssertTrue(waitForLog("scanned:", of: daemon, after: offset))
        try Shell.run(["touch", kept])
        XCTAssertTrue(waitUntil(timeout: prompt) { self.responder.requestCount(serial: leaves[1].serial) == 3 })

        XCTAssertEqual(responder.requestCount(serial: leaves[0].serial), 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: deleted + ".ocsp"), "the staple file stays")

        // The SIGUSR1 table lists what is tracked: the kept file, not the deleted one.
        let before = daemon.log.utf8.count
        daemon.signal(SIGUSR1)
        XCTAssertTrue(waitForLog("\(kept): staple good", of: daemon, after: before))
        let table = String(decoding: Array(daemon.log.utf8.dropFirst(before)), as: UTF8.self)
        XCTAssertTrue(table.contains("status: 1 certificate file(s)"), table)
        XCTAssertFalse(table.contains("\(deleted):"), table)
    }

    // MARK: 5. New subdirectories with -R

    func testRecursiveModeWatchesSubdirectoriesCreatedLater() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(3)
        let daemon = try startDaemon(["-R", certs])

        // mkdir, then a certificate written into it right away.
        try FileManager.default.createDirectory(atPath: "\(certs)/new", withIntermediateDirectories: false)
        try pki.writeBundle(leaves[0], to: "\(certs)/new/a.pem")
        XCTAssertTrue(waitForGoodStaple("\(certs)/new/a.pem", leaves[0], timeout: prompt))

        // A certificate written into it once it is watched.
        XCTAssertTrue(waitUntil(timeout: prompt) { self.lastScan(of: daemon, watches: 2) })
        try pki.writeBundle(leaves[1], to: "\(certs)/new/b.pem")
        XCTAssertTrue(waitForGoodStaple("\(certs)/new/b.pem", leaves[1], timeout: prompt))

        // A whole tree prepared elsewhere and moved in.
        let staging = try makeDirectory("staging")
        try FileManager.default.createDirectory(atPath: "\(staging)/tree/deeper", withIntermediateDirectories: true)
        try pki.writeBundle(leaves[2], to: "\(staging)/tree/deeper/c.pem")
        XCTAssertEqual(rename("\(staging)/tree", "\(certs)/tree"), 0)
        XCTAssertTrue(waitForGoodStaple("\(certs)/tree/deeper/c.pem", leaves[2], timeout: prompt))

        // ...and its subdirectories are watched too.
        let later = try fixture.leaves(2)
        XCTAssertTrue(waitUntil(timeout: prompt) { self.lastScan(of: daemon, watches: 4) })
        try pki.writeBundle(later[0], to: "\(certs)/tree/deeper/d.pem")
        XCTAssertTrue(waitForGoodStaple("\(certs)/tree/deeper/d.pem", later[0], timeout: prompt))

        // A subdirectory renamed within the tree: its certificates keep their staples (moved
        // along, so no new request), and it stays watched under its new name.
        let offset = daemon.log.utf8.count
        XCTAssertEqual(rename("\(certs)/new", "\(certs)/renamed"), 0)
        XCTAssertTrue(waitForForgotten("\(certs)/new/a.pem", by: daemon))
        // The rescan the rename causes, and the second look at the newly watched name: after
        // that only the watch can tell about a new file.
        XCTAssertTrue(waitForLog("scanned:", of: daemon, after: offset, count: 2))
        XCTAssertTrue(lastScan(of: daemon, watches: 4))
        try pki.writeBundle(later[1], to: "\(certs)/renamed/e.pem")
        XCTAssertTrue(waitForGoodStaple("\(certs)/renamed/e.pem", later[1], timeout: prompt),
                      "a renamed subdirectory is still watched")
        XCTAssertEqual(responder.requestCount(serial: leaves[0].serial), 1)
        XCTAssertEqual(responder.requestCount(serial: leaves[1].serial), 1)
    }

    // MARK: Certificate files named on the command line

    func testCertificateFilesNamedExplicitlyFollowTouchAndReplacement() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(3)
        let named = "\(certs)/named.pem", unnamed = "\(certs)/unnamed.pem"
        try pki.writeBundle(leaves[0], to: named)
        try pki.writeBundle(leaves[2], to: unnamed)
        let daemon = try startDaemon([named])
        XCTAssertTrue(waitForGoodStaple(named, leaves[0]))

        try Shell.run(["touch", named])
        XCTAssertTrue(waitUntil(timeout: prompt) { self.responder.requestCount(serial: leaves[0].serial) == 2 },
                      "touching a file named on the command line fetches a fresh staple")

        try pki.writeBundle(leaves[1], to: named + ".new")
        XCTAssertEqual(rename(named + ".new", named), 0)
        XCTAssertTrue(waitForGoodStaple(named, leaves[1], timeout: prompt),
                      "a file named on the command line and replaced gets the new certificate's staple")

        // Its directory is watched for its sake only: the other file there is not ours.
        try Shell.run(["touch", unnamed])
        XCTAssertFalse(waitUntil(timeout: 0.5) { self.responder.requestCount(serial: leaves[2].serial) > 0 })
        XCTAssertFalse(FileManager.default.fileExists(atPath: unnamed + ".ocsp"))
        XCTAssertTrue(daemon.isRunning)
    }

    // MARK: Lost events

    /// The rescan after an overflow reports only what changed since the previous scan: a new
    /// file, a touched one, a deleted one and a renamed one, whose own events were all lost,
    /// are each noticed; the unchanged one is left alone.
    func testOverflowedEventQueueRescansEverything() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(5)
        try pki.writeBundle(leaves[0], to: "\(certs)/first.pem")
        for (index, name) in [(2, "touched"), (3, "deleted"), (4, "renamed")] {
            try pki.writeBundle(leaves[index], to: "\(certs)/\(name).pem")
        }
        let daemon = try startDaemon([certs])
        XCTAssertTrue(waitForGoodStaple("\(certs)/first.pem", leaves[0]))
        for (index, name) in [(2, "touched"), (3, "deleted"), (4, "renamed")] {
            XCTAssertTrue(waitForGoodStaple("\(certs)/\(name).pem", leaves[index]))
        }

        // While the daemon is stopped, more events than the kernel queues (16384 by default:
        // each new file is a create, a close-write and an attrib), then a certificate whose
        // own events are lost.
        let limit = Int((try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 16384
        guard limit <= 65536 else { throw XCTSkip("max_queued_events is \(limit): too many files to overflow it") }
        daemon.signal(SIGSTOP)
        defer { daemon.signal(SIGCONT) }
        let junk = (0..<(limit / 3 + 200)).map { "\(certs)/junk-\($0).txt" }
        for chunk in stride(from: 0, to: junk.count, by: 2000) {
            try Shell.run(["touch"] + junk[chunk..<min(chunk + 2000, junk.count)])
        }
        try pki.writeBundle(leaves[1], to: "\(certs)/second.pem")
        var later = [timeval(tv_sec: time(nil) + 3600, tv_usec: 0), timeval(tv_sec: time(nil) + 3600, tv_usec: 0)]
        XCTAssertEqual(utimes("\(certs)/touched.pem", &later), 0)
        try FileManager.default.removeItem(atPath: "\(certs)/deleted.pem")
        try FileManager.default.moveItem(atPath: "\(certs)/renamed.pem", toPath: "\(certs)/moved.pem")
        daemon.signal(SIGCONT)

        XCTAssertTrue(daemon.waitForLog("inotify queue overflowed", timeout: prompt))
        XCTAssertTrue(waitForGoodStaple("\(certs)/second.pem", leaves[1], timeout: prompt))
        XCTAssertTrue(waitForGoodStaple("\(certs)/moved.pem", leaves[4], timeout: prompt))
        XCTAssertTrue(daemon.waitForLog("\(certs)/touched.pem: changed on disk, fetching a fresh staple", timeout: prompt))
        XCTAssertTrue(waitUntil(timeout: prompt) { self.responder.requestCount(serial: leaves[2].serial) == 2 })
        for gone in ["deleted", "renamed"] {
            XCTAssertTrue(daemon.waitForLog("\(certs)/\(gone).pem: no longer found, forgotten", timeout: prompt))
        }
        XCTAssertEqual(responder.requestCount(serial: leaves[0].serial), 1, "unchanged files are not fetched again")
    }

    // MARK: 6. Many at once

    func testFiveHundredCertificatesCopiedInAtOnceAreEachFetchedOnce() throws {
        let (bulkResponder, leaves) = try fixture.dedicatedResponder(leaves: 500)
        defer { bulkResponder.stop() }
        let staging = try makeDirectory("staging")
        var names: [String] = []
        for (index, leaf) in leaves.enumerated() {
            names.append(String(format: "site-%03d.pem", index))
            try pki.writeBundle(leaf, to: "\(staging)/\(names[index])")
        }
        let certs = try makeDirectory("certs")
        let daemon = try startDaemon([certs])

        // Half moved in (a deployment tool), half copied (cp: create, write, close).
        let started = Date()
        for name in names.prefix(250) { XCTAssertEqual(rename("\(staging)/\(name)", "\(certs)/\(name)"), 0) }
        try Shell.run(["cp"] + names.suffix(250).map { "\(staging)/\($0)" } + [certs])

        XCTAssertTrue(waitUntil(timeout: 60, interval: 0.1) { self.staples(in: certs).count == 500 },
                      "\(staples(in: certs).count) of 500 staples")
        print("500 certificates stapled \(ms(Date().timeIntervalSince(started))) after the copy began")
        // Any late duplicate would come within a coalescing window or two.
        XCTAssertFalse(waitUntil(timeout: 0.5) { bulkResponder.requestCount > 500 })

        let counts = requestCounts(bulkResponder.log)
        let unexpected = leaves.filter { counts[$0.serial] != 1 }.map { "\($0.serial): \(counts[$0.serial] ?? 0)" }
        XCTAssertEqual(unexpected, [], "each certificate fetched exactly once")
        XCTAssertEqual(bulkResponder.requestCount, 500)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: "\(certs)/\(names[0]).ocsp", for: leaves[0]), "good")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: "\(certs)/\(names[499]).ocsp", for: leaves[499]), "good")
        XCTAssertTrue(daemon.isRunning)
    }

    // MARK: 7. Kubernetes secret volume

    func testKubernetesSecretUpdateRefetchesForTheNewCertificate() throws {
        let volume = try makeDirectory("secret")
        let leaves = try fixture.leaves(2)
        // The kubelet's layout: files are links through ..data into a timestamped directory.
        let first = "..2026_01_01_00_00_00.000000001"
        try FileManager.default.createDirectory(atPath: "\(volume)/\(first)", withIntermediateDirectories: false)
        try pki.writeBundle(leaves[0], to: "\(volume)/\(first)/tls.pem")
        try FileManager.default.createSymbolicLink(atPath: "\(volume)/..data", withDestinationPath: first)
        try FileManager.default.createSymbolicLink(atPath: "\(volume)/tls.pem", withDestinationPath: "..data/tls.pem")
        let certificate = "\(volume)/tls.pem"
        let daemon = try startDaemon([volume])
        XCTAssertTrue(waitForGoodStaple(certificate, leaves[0]))

        // The update: a new timestamped directory, a ..data_tmp link to it renamed over ..data,
        // the old directory removed. No event names tls.pem itself.
        let second = "..2026_01_02_00_00_00.000000002"
        try FileManager.default.createDirectory(atPath: "\(volume)/\(second)", withIntermediateDirectories: false)
        try pki.writeBundle(leaves[1], to: "\(volume)/\(second)/tls.pem")
        try FileManager.default.createSymbolicLink(atPath: "\(volume)/..data_tmp", withDestinationPath: second)
        XCTAssertEqual(rename("\(volume)/..data_tmp", "\(volume)/..data"), 0)
        try FileManager.default.removeItem(atPath: "\(volume)/\(first)")

        XCTAssertTrue(waitForGoodStaple(certificate, leaves[1], timeout: prompt),
                      "no staple for the new certificate within \(prompt) s")
        XCTAssertEqual(responder.requestCount(serial: leaves[1].serial), 1)
        XCTAssertTrue(daemon.isRunning)
    }

    // MARK: 8. Watched directory removed and created again

    func testWatchedDirectoryRemovedAndCreatedAgainIsPickedUpAgain() throws {
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: false)
        let leaves = try fixture.leaves(3)
        try pki.writeBundle(leaves[0], to: "\(certs)/a.pem")
        // Unconfined: a Landlock rule holds the directory's inode, and a directory made again
        // is a new one the ruleset set at start does not know (README, Confinement).
        let daemon = try startDaemon(["--no-sandbox", certs])
        XCTAssertTrue(waitForGoodStaple("\(certs)/a.pem", leaves[0]))

        try FileManager.default.removeItem(atPath: certs)
        XCTAssertTrue(waitForForgotten("\(certs)/a.pem", by: daemon))

        // Created again by mkdir, then filled.
        var started = Date()
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: false)
        try pki.writeBundle(leaves[1], to: "\(certs)/b.pem")
        XCTAssertTrue(waitForGoodStaple("\(certs)/b.pem", leaves[1], timeout: prompt),
                      "the re-created directory was not picked up within \(prompt) s")
        let mkdirLatency = Date().timeIntervalSince(started)

        // Files written once it is watched again are seen by their own events.
        XCTAssertTrue(waitUntil(timeout: prompt) { self.lastScan(of: daemon, watches: 1) })
        try pki.writeBundle(leaves[0], to: "\(certs)/a.pem")
        XCTAssertTrue(waitForGoodStaple("\(certs)/a.pem", leaves[0], timeout: prompt))

        // Removed again, and a prepared directory renamed into its place.
        try FileManager.default.removeItem(atPath: certs)
        XCTAssertTrue(waitForForgotten("\(certs)/b.pem", by: daemon))
        XCTAssertTrue(waitUntil(timeout: prompt) { self.lastScan(of: daemon, watches: 0) })
        let staging = try makeDirectory("staging")
        try pki.writeBundle(leaves[2], to: "\(staging)/c.pem")
        started = Date()
        XCTAssertEqual(rename(staging, certs), 0)
        XCTAssertTrue(waitForGoodStaple("\(certs)/c.pem", leaves[2], timeout: prompt),
                      "the directory renamed into place was not picked up within \(prompt) s")
        print("re-created directory picked up after \(ms(mkdirLatency)) (mkdir) and "
              + "\(ms(Date().timeIntervalSince(started))) (rename)")
    }

    func testConfiguredSymlinkRepointedToAnotherDirectoryIsFollowed() throws {
        let releases = try makeDirectory("releases")
        let leaves = try fixture.leaves(3)
        for (release, leaf) in [("v1", leaves[0]), ("v2", leaves[1])] {
            try FileManager.default.createDirectory(atPath: "\(releases)/\(release)", withIntermediateDirectories: false)
            try pki.writeBundle(leaf, to: "\(releases)/\(release)/site.pem")
        }
        // A deploy tool's "current" link, configured as the certificate path.
        let current = temp.file("current")
        try FileManager.default.createSymbolicLink(atPath: current, withDestinationPath: "releases/v1")
        let daemon = try startDaemon([current])
        XCTAssertTrue(waitForGoodStaple("\(current)/site.pem", leaves[0]))

        // Repointed atomically (ln -s to a temporary name, rename over the link).
        let offset = daemon.log.utf8.count
        try FileManager.default.createSymbolicLink(atPath: temp.file("current.tmp"), withDestinationPath: "releases/v2")
        XCTAssertEqual(rename(temp.file("current.tmp"), current), 0)
        XCTAssertTrue(waitForGoodStaple("\(current)/site.pem", leaves[1], timeout: prompt),
                      "the certificate behind the repointed link was not stapled within \(prompt) s")

        // The directory it leads to now is the one watched.
        XCTAssertTrue(waitForLog("scanned:", of: daemon, after: offset, count: 2))
        try pki.writeBundle(leaves[2], to: "\(current)/other.pem")
        XCTAssertTrue(waitForGoodStaple("\(current)/other.pem", leaves[2], timeout: prompt),
                      "a file added behind the repointed link was not seen")
    }

    func testRecursiveModeFollowsASubdirectorySymlinkRepointedOrRemoved() throws {
        let certs = try makeDirectory("certs")
        let releases = try makeDirectory("releases")
        let leaves = try fixture.leaves(2)
        for (release, leaf) in [("v1", leaves[0]), ("v2", leaves[1])] {
            try FileManager.default.createDirectory(atPath: "\(releases)/\(release)", withIntermediateDirectories: false)
            try pki.writeBundle(leaf, to: "\(releases)/\(release)/site-\(release).pem")
        }
        try FileManager.default.createSymbolicLink(atPath: "\(certs)/live", withDestinationPath: "../releases/v1")
        let daemon = try startDaemon(["-R", certs])
        XCTAssertTrue(waitForGoodStaple("\(certs)/live/site-v1.pem", leaves[0]))

        try FileManager.default.createSymbolicLink(atPath: "\(certs)/live.tmp", withDestinationPath: "../releases/v2")
        XCTAssertEqual(rename("\(certs)/live.tmp", "\(certs)/live"), 0)
        XCTAssertTrue(waitForGoodStaple("\(certs)/live/site-v2.pem", leaves[1], timeout: prompt),
                      "the certificate behind the repointed subdirectory link was not stapled within \(prompt) s")
        XCTAssertTrue(waitForForgotten("\(certs)/live/site-v1.pem", by: daemon))

        try FileManager.default.removeItem(atPath: "\(certs)/live")
        XCTAssertTrue(waitForForgotten("\(certs)/live/site-v2.pem", by: daemon),
                      "certificates behind a removed subdirectory link are still tracked")
    }

    // MARK: 9. SIGHUP

    func testSighupAppliesAChangedConfigFileAndRefusesABrokenOne() throws {
        // The second path lies beneath the first (not scanned: no -R), so the sandbox set at
        // start covers it; a path outside is refused (SandboxEndToEndTests).
        let first = try makeDirectory("first"), second = try makeDirectory("first/second")
        let leaves = try fixture.leaves(2)
        try pki.writeBundle(leaves[0], to: "\(first)/a.pem")
        try pki.writeBundle(leaves[1], to: "\(second)/b.pem")
        let config = temp.file("stapler.conf")
        try "cert-paths = [\(first)]\nrefresh-interval = 3600\nverbosity = 4\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try StaplerProcess(["-c", config], logPath: temp.file("stapler.log"))
        stapler = daemon
        XCTAssertTrue(waitForGoodStaple("\(first)/a.pem", leaves[0]))
        XCTAssertEqual(responder.requestCount(serial: leaves[1].serial), 0)

        try "cert-paths = [\(first), \(second)]\nrefresh-interval = 3600\nverbosity = 4\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        XCTAssertTrue(daemon.waitForLog("configuration reloaded"))
        XCTAssertTrue(waitForGoodStaple("\(second)/b.pem", leaves[1], timeout: prompt))

        // A broken file: refused in one line, the running configuration (both paths) stays.
        try "cert-paths = [\(first)]\nno-such-setting = 1\n".write(toFile: config, atomically: true, encoding: .utf8)
        let offset = daemon.log.utf8.count
        daemon.signal(SIGHUP)
        XCTAssertTrue(waitForLog("scanned:", of: daemon, after: offset))
        let after = String(decoding: Array(daemon.log.utf8.dropFirst(offset)), as: UTF8.self)
        let complaints = after.split(separator: "\n").filter { $0.contains(" ERROR ") || $0.contains(" CRITICAL ") }
        XCTAssertEqual(complaints.count, 1, "\(complaints)")
        XCTAssertTrue(complaints.first?.contains("no-such-setting") ?? false, "\(complaints)")
        XCTAssertTrue(daemon.isRunning)

        try Shell.run(["touch", "\(second)/b.pem"])
        XCTAssertTrue(waitUntil(timeout: prompt) { self.responder.requestCount(serial: leaves[1].serial) == 2 },
                      "the second path is still served after the refused reload")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0)
    }

    // MARK: 10. SIGTERM during a cold start

    func testSigtermDuringAColdStartExitsPromptlyLeavingOnlyCompleteStaples() throws {
        let (coldResponder, leaves) = try fixture.dedicatedResponder(leaves: 300)
        defer { coldResponder.stop() }
        let certs = try makeDirectory("certs")
        var leafOfStaple: [String: TestPKI.Leaf] = [:]
        for (index, leaf) in leaves.enumerated() {
            let name = String(format: "site-%03d.pem", index)
            try pki.writeBundle(leaf, to: "\(certs)/\(name)")
            leafOfStaple[name + ".ocsp"] = leaf
        }
        let daemon = try startDaemon(["-t", "2", certs], waitForScan: false)

        XCTAssertTrue(waitUntil(timeout: 30, interval: 0.005) { self.staples(in: certs).count >= 5 })
        daemon.signal(SIGTERM)
        let signalled = Date()
        let status = daemon.waitForExit(timeout: 5)
        let exitTime = Date().timeIntervalSince(signalled)
        XCTAssertEqual(status, 0)
        XCTAssertLessThan(exitTime, 2, "exit took \(ms(exitTime))")

        let present = staples(in: certs)
        print("SIGTERM after \(present.count) of 300 staples; exited in \(ms(exitTime))")
        XCTAssertLessThan(present.count, 300, "the cold start was over before SIGTERM: nothing tested")
        for name in present {
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: "\(certs)/\(name)", for: leafOfStaple[name]!), "good", name)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: certs).filter { $0.hasSuffix(".stapler-tmp") }
        XCTAssertEqual(leftovers, [])
    }

    // MARK: 11. -D --pidfile

    func testDaemonModeDetachesWritesThePidFileAndRemovesItOnSigterm() throws {
        let certs = try makeDirectory("certs")
        let logs = try makeDirectory("logs")
        let leaf = try fixture.leaves(1)[0]
        try pki.writeBundle(leaf, to: "\(certs)/a.pem")
        let pidFile = temp.file("stapler.pid")

        let started = Date()
        let launcher = try StaplerProcess(["-D", "--pidfile", pidFile, "--logdir", logs, "-r", "3600",
                                           "--verbosity", "4", certs], logPath: temp.file("launcher.log"))
        XCTAssertEqual(launcher.waitForExit(timeout: 5), 0, launcher.log)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2, "the launching process returns at once")

        // Init scripts and systemd (Type=forking) read the pid file as soon as the command returns.
        let pid = Int32(((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        XCTAssertGreaterThan(pid, 0, "the pid file is there when the command returns")
        guard pid > 0 else { return }
        defer { if isAlive(pid) { kill(pid, SIGKILL) } }
        XCTAssertNotEqual(pid, launcher.pid)
        XCTAssertTrue(isAlive(pid), "the pid file names a running process")
        XCTAssertEqual(try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
                       StaplerProcess.binary)
        XCTAssertNotEqual(processGroupAndSession(pid)?.session, processGroupAndSession(getpid())?.session,
                          "detached into a session of its own")
        XCTAssertTrue(waitForGoodStaple("\(certs)/a.pem", leaf), "the detached daemon works")
        let log = "\(logs)/stapler.log"
        XCTAssertTrue(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("staple written"))

        // logrotate: the log moved away, SIGHUP, a new log under the old name.
        XCTAssertEqual(rename(log, log + ".1"), 0)
        kill(pid, SIGHUP)
        XCTAssertTrue(waitUntil(timeout: 5) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("configuration reloaded")
        }, "SIGHUP reopens the log file")

        kill(pid, SIGTERM)
        XCTAssertTrue(waitUntil(timeout: 5) { !FileManager.default.fileExists(atPath: pidFile) },
                      "SIGTERM removes the pid file")
        XCTAssertTrue(waitUntil(timeout: 5) { !self.isAlive(pid) }, "the daemon exits")
    }

    func testDaemonModeReportsAFailedStartThroughTheExitStatus() throws {
        let certs = try makeDirectory("certs")
        let launcher = try StaplerProcess(["-D", "--pidfile", temp.file("missing/stapler.pid"), "-r", "3600", certs],
                                          logPath: temp.file("launcher.log"))
        XCTAssertEqual(launcher.waitForExit(timeout: 5), 1, "a daemon that cannot start is no success")
        XCTAssertTrue(launcher.log.contains("the daemon stopped during start-up"), launcher.log)
    }

    // MARK: 12. Idle

    func testIdleDaemonDoesNotWakeUp() throws {
        let certs = try makeDirectory("certs")
        let leaves = try fixture.leaves(50)
        for (index, leaf) in leaves.enumerated() { try pki.writeBundle(leaf, to: "\(certs)/site-\(index).pem") }
        let daemon = try startDaemon([certs])
        XCTAssertTrue(waitUntil(timeout: 30, interval: 0.1) { self.staples(in: certs).count == 50 })
        XCTAssertTrue(daemon.waitForLog("staple written", count: 50))

        // Let the tail of the burst settle (responses, closes), then watch for wake-ups.
        func switches() -> Int { voluntaryContextSwitches(daemon.pid) ?? -1 }
        var previous = switches()
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.5) {
            let current = switches()
            defer { previous = current }
            return current == previous
        })
        let before = switches()
        Thread.sleep(forTimeInterval: 3) // the measurement window itself
        let after = switches()
        XCTAssertGreaterThanOrEqual(before, 0)
        XCTAssertLessThanOrEqual(after - before, 2, "the idle daemon woke up \(after - before) times in 3 s")
        XCTAssertEqual(daemon.threadCount, 1)
        XCTAssertTrue(daemon.isRunning)

        // The same measurement sees wake-ups when there are some: a touch makes it fetch.
        try Hardening.touch("\(certs)/site-0.pem")
        let busy = switches()
        XCTAssertTrue(waitUntil(timeout: 3, interval: 0.1) { switches() - busy > 2 }, "a touch wakes the daemon up")
        XCTAssertTrue(daemon.waitForLog("\(certs)/site-0.pem: changed on disk"), daemon.log)
    }

    // MARK: Helpers

    private func makeDirectory(_ name: String) throws -> String {
        let path = temp.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Starts the daemon on `arguments` and (by default) waits until its first scan is done,
    /// so its watches are in place.
    @discardableResult
    private func startDaemon(_ arguments: [String], waitForScan: Bool = true) throws -> StaplerProcess {
        let daemon = try StaplerProcess(["-r", "3600", "--verbosity", "4"] + arguments,
                                        logPath: temp.file("stapler.log"))
        stapler = daemon
        if waitForScan {
            XCTAssertTrue(daemon.waitForLog("scanned:"), "no first scan: \(daemon.log)")
        }
        return daemon
    }

    private func bundleBytes(_ leaf: TestPKI.Leaf) throws -> Data {
        let scratch = temp.file("scratch-\(leaf.serial).pem")
        try pki.writeBundle(leaf, to: scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        return try Data(contentsOf: URL(fileURLWithPath: scratch))
    }

    /// Waits until the staple beside `certificate` is one openssl accepts as "good" for `leaf`.
    private func waitForGoodStaple(_ certificate: String, _ leaf: TestPKI.Leaf, timeout: TimeInterval = 10) -> Bool {
        waitUntil(timeout: timeout, interval: 0.05) {
            FileManager.default.fileExists(atPath: certificate + ".ocsp")
                && (try? pki.verifyWithOpenSSL(staple: certificate + ".ocsp", for: leaf)) == "good"
        }
    }

    private func staples(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".ocsp") && !$0.hasPrefix(".")
        }
    }

    private struct FileIdentity: Equatable {
        var inode: UInt64
        var modified: Date
    }

    private func fileIdentity(_ path: String) throws -> FileIdentity {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return FileIdentity(inode: (attributes[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0,
                            modified: attributes[.modificationDate] as? Date ?? .distantPast)
    }

    /// Requests per serial in an `openssl ocsp -req_text` log, in one pass.
    private func requestCounts(_ log: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in log.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("Serial Number: ") { counts[String(trimmed.dropFirst(15)), default: 0] += 1 }
        }
        return counts
    }

    /// Whether the latest scan left `count` watched directories (from the debug line).
    private func lastScan(of daemon: StaplerProcess, watches count: Int) -> Bool {
        let scans = daemon.log.split(separator: "\n").filter { $0.contains("scanned:") }
        return scans.last?.hasSuffix(" \(count) watched director\(count == 1 ? "y" : "ies")") ?? false
    }

    /// Waits for `text` in what the daemon logged past `offset` (a byte count of its log).
    private func waitForLog(_ text: String, of daemon: StaplerProcess, after offset: Int, count: Int = 1,
                            timeout: TimeInterval = 10) -> Bool {
        waitUntil(timeout: timeout) {
            String(decoding: Array(daemon.log.utf8.dropFirst(offset)), as: UTF8.self)
                .components(separatedBy: text).count - 1 >= count
        }
    }

    /// Waits for the line saying the daemon dropped `certificate` (by its own event, or by
    /// the rescan its directory's disappearance caused).
    private func waitForForgotten(_ certificate: String, by daemon: StaplerProcess) -> Bool {
        waitUntil(timeout: prompt) {
            let log = daemon.log
            return log.contains("\(certificate): no longer found, forgotten")
        }
    }

    private func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // Reparented to init, it may linger as a zombie until reaped: that is exited too.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.split(separator: ")").last?.split(separator: " ").first
        return state != "Z" && state != "X"
    }

    /// Fields 5 and 6 of /proc/PID/stat (after the parenthesised command name).
    private func processGroupAndSession(_ pid: Int32) -> (group: Int, session: Int)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 3,
              let group = Int(fields[2]), let session = Int(fields[3]) else { return nil }
        return (group, session)
    }

    private func voluntaryContextSwitches(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("voluntary_ctxt_switches:") {
            return Int(line.dropFirst("voluntary_ctxt_switches:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    private func ms(_ interval: TimeInterval) -> String { "\(Int(interval * 1000)) ms" }
}
