import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The watcher on a real loop with real inotify: what it reports for files that appear,
/// change and go, before anything is parsed.
final class CertificateWatcherTests: XCTestCase {
    func testScansThenReportsEachPathAnEventNames() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-watcher")
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        try Data("a".utf8).write(to: URL(fileURLWithPath: "\(certs)/a.pem"))
        let loop = try EventLoop()
        let logger = try Logger(verbosity: .debug, toStandardOutput: false, directory: FilePath(temp.path), syslog: false)
        var observations: [CertificateWatcher.Observation] = []
        let watcher = CertificateWatcher(loop: loop, logger: logger) { observations.append($0) }
        var settings = CertificateWatcher.Settings()
        settings.locations = [FilePath(certs)]
        try watcher.configure(settings)
        defer { watcher.close() }

        watcher.rescan()
        guard case .scanned(let files)? = observations.first else { return XCTFail("\(observations)") }
        XCTAssertEqual(files.map(\.path), [FilePath("\(certs)/a.pem")])
        // A directory newly watched is listed once more (a file made between the listing and
        // the watch raised no event the watch could see).
        try loop.runForTest(deadline: .seconds(5)) { observations.count == 2 }
        guard case .scanned = observations[1] else { return XCTFail("\(observations)") }

        // A new file, a key file beside it (not a certificate name: nothing), then a removal.
        observations.removeAll()
        try Data("b".utf8).write(to: URL(fileURLWithPath: "\(certs)/b.pem"))
        try Data("k".utf8).write(to: URL(fileURLWithPath: "\(certs)/b.key"))
        try loop.runForTest(deadline: .seconds(5)) { !observations.isEmpty }
        guard case .present(let path, _, let location)? = observations.first else { return XCTFail("\(observations)") }
        XCTAssertEqual(path, FilePath("\(certs)/b.pem"))
        XCTAssertEqual(location, 0)
        XCTAssertEqual(observations.count, 1, "the key file is no certificate: \(observations)")

        observations.removeAll()
        try FileManager.default.removeItem(atPath: "\(certs)/a.pem")
        try loop.runForTest(deadline: .seconds(5)) { !observations.isEmpty }
        guard case .absent(let gone)? = observations.first else { return XCTFail("\(observations)") }
        XCTAssertEqual(gone, FilePath("\(certs)/a.pem"))
    }

    /// A burst of writes to one file is one observation once the burst settles, and the
    /// same wait sees the next change.
    func testBurstsAreCoalesced() throws {
        let rig = try WatchedDirectory(prefix: "stapler-watcher-burst")
        let (temp, loop) = (rig.temp, rig.loop)
        let path = temp.file("site.pem")
        for round in 0..<50 { try Data("\(round)".utf8).write(to: URL(fileURLWithPath: path)) }
        try loop.runForTest(deadline: .seconds(5)) { !rig.present.isEmpty }
        // Longer than the coalescing window: no second observation for the same burst.
        var settled = false
        loop.schedule(after: CertificateWatcher.changeDelay * 3) { settled = true }
        try loop.runForTest(deadline: .seconds(5)) { settled }
        XCTAssertEqual(rig.present.count, 1)
        try Data("again".utf8).write(to: URL(fileURLWithPath: path))
        try loop.runForTest(deadline: .seconds(5)) { rig.present.count == 2 }
    }
    /// Periodic rescans stat a watched directory's files only where inotify could have
    /// missed a change. A file rewritten in place and still held open raises no event the
    /// watcher acts on (it waits for the close): the rescans between full looks do not see
    /// it, the full look (hourly; here made due at once) does.
    func testPeriodicRescansTrustInotifyUntilTheFullLook() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-watcher-shortcut")
        let loop = try EventLoop()
        let logger = try Logger(verbosity: .info, toStandardOutput: false, directory: FilePath(temp.path), syslog: false)
        let path = FilePath(temp.file("site.pem"))
        try Data("first".utf8).write(to: URL(fileURLWithPath: path.description))
        var known: [FilePath: FileVersion] = [:]
        var scans = 0
        let watcher = CertificateWatcher(loop: loop, logger: logger) {
            switch $0 {
            case .scanned(let files), .rescanned(let files, _):
                scans += 1
                for file in files { known[file.path] = file.version }
            case .present(let path, let status, _): known[path] = FileVersion(status)
            case .absent(let path): known[path] = nil
            }
        }
        watcher.knownInodes = { Set(known.values.map(\.inode)) }
        var settings = CertificateWatcher.Settings()
        settings.locations = [FilePath(temp.path)]
        settings.rescanInterval = .milliseconds(50)
        try watcher.configure(settings)
        defer { watcher.close() }
        watcher.rescan()
        try loop.runForTest(deadline: .seconds(5)) { scans >= 3 }
        let before = try XCTUnwrap(known[path])

        // A write through a descriptor held open: IN_MODIFY, which the watcher does not
        // watch (it acts on the close), so no event. Rescans go by; none stats the file.
        let writer = try XCTUnwrap(FileHandle(forWritingAtPath: path.description))
        defer { try? writer.close() }
        writer.write(Data("second, written in place".utf8))
        let changed = FileVersion(try FileSystem.status(path))
        XCTAssertNotEqual(changed, before)
        let seen = scans
        try loop.runForTest(deadline: .seconds(5)) { scans >= seen + 5 }
        XCTAssertEqual(known[path], before, "a covered directory's known file is not stat'ed between full looks")

        settings.fullScanInterval = .zero
        try watcher.configure(settings)
        try loop.runForTest(deadline: .seconds(5)) { known[path] == changed }
    }

    /// A hard link raises IN_CREATE and no close-write: the new name is reported at once
    /// (the periodic rescan would count it as a file it knows, by inode, until its hourly
    /// full look).
    func testAHardLinkIsReportedByItsEvent() throws {
        let rig = try WatchedDirectory(prefix: "stapler-watcher-link", files: ["a.pem": "a"])
        let temp = rig.temp
        XCTAssertEqual(link(temp.file("a.pem"), temp.file("b.pem")), 0)
        try rig.loop.runForTest(deadline: .seconds(5)) { !rig.present.isEmpty }
        XCTAssertEqual(rig.present, [FilePath(temp.file("b.pem"))])
    }
}

/// A watcher over one temporary directory on a real loop, counting what it reports, ready
/// once its first scan and the second listing of the newly watched directory are done.
private final class WatchedDirectory {
    let temp: TemporaryDirectory
    let loop: EventLoop
    private(set) var watcher: CertificateWatcher!
    private(set) var scans = 0
    private(set) var present: [FilePath] = []

    init(prefix: String, files: [String: String] = [:]) throws {
        temp = try TemporaryDirectory(prefix: prefix)
        for (name, text) in files { try Data(text.utf8).write(to: URL(fileURLWithPath: temp.file(name))) }
        loop = try EventLoop()
        let logger = try Logger(verbosity: .info, toStandardOutput: false, directory: FilePath(temp.path), syslog: false)
        watcher = CertificateWatcher(loop: loop, logger: logger) { [unowned self] in
            switch $0 {
            case .scanned, .rescanned: scans += 1
            case .present(let path, _, _): present.append(path)
            case .absent: break
            }
        }
        var settings = CertificateWatcher.Settings()
        settings.locations = [FilePath(temp.path)]
        try watcher.configure(settings)
        watcher.rescan()
        try loop.runForTest(deadline: .seconds(5)) { self.scans == 2 }
    }

    deinit { watcher.close() }
}
