import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The staple watcher (`--push-only`) on a real loop with real files: a staple another
/// Stapler renames into place is reported, by inotify where events come and by the periodic
/// rescan where they do not (NFS), and an unchanged staple is never reported again.
final class StapleWatcherTests: XCTestCase {
    /// Writes `bytes` to `path` as Stapler's writer does: a hidden temporary file renamed
    /// over the staple (IN_MOVED_TO, a new inode).
    private func replace(_ path: String, with bytes: String) throws {
        let temporary = (path as NSString).deletingLastPathComponent + "/.staple-\(UUID().uuidString).tmp"
        try Data(bytes.utf8).write(to: URL(fileURLWithPath: temporary))
        XCTAssertEqual(rename(temporary, path), 0)
    }

    /// Runs the loop for `duration`, whatever happens meanwhile.
    private func idle(_ loop: EventLoop, for duration: Duration) throws {
        var done = false
        let timer = loop.schedule(after: duration) { done = true }
        try loop.runForTest(deadline: duration + .seconds(5)) { done }
        loop.cancel(timer)
    }

    /// Without events (how NFS behaves: a change made by another host raises none here) only
    /// the rescan notices a replaced staple, by its stat; unchanged staples are not reported.
    func testTheRescanAloneNoticesAReplacedStapleAndNothingElse() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-staple-watch-rescan")
        let staples = temp.file("staples")
        try FileManager.default.createDirectory(atPath: staples, withIntermediateDirectories: true)
        let paths = (1...3).map { "\(staples)/site\($0).pem.ocsp" }
        for path in paths { try replace(path, with: "first") }
        let loop = try EventLoop()
        var changed: [FilePath] = []
        let watcher = try StapleWatcher(loop: loop, settings: .init(rescanInterval: .milliseconds(200), watchesEvents: false)) {
            changed.append($0)
        }
        defer { watcher.close() }
        for path in paths { watcher.follow(FilePath(path)) }

        // About five rescans over unchanged files: nothing to report, nothing to read.
        try idle(loop, for: .seconds(1))
        XCTAssertEqual(changed, [], "unchanged staples are not reported")

        // The same wait sees a staple replaced by the writer: same size, a new inode.
        let replacedAt = Date()
        try replace(paths[1], with: "other")
        try loop.runForTest(deadline: .seconds(5)) { !changed.isEmpty }
        XCTAssertEqual(changed, [FilePath(paths[1])])
        XCTAssertLessThan(Date().timeIntervalSince(replacedAt), 1, "within one rescan interval")

        // A touch (mtime) and a removal are changes too; then quiet again.
        changed.removeAll()
        try Shell.run(["touch", "-d", "2020-01-01", paths[2]])
        try FileManager.default.removeItem(atPath: paths[0])
        try loop.runForTest(deadline: .seconds(5)) { changed.count == 2 }
        XCTAssertEqual(Set(changed), [FilePath(paths[0]), FilePath(paths[2])])
        changed.removeAll()
        try idle(loop, for: .milliseconds(700))
        XCTAssertEqual(changed, [], "a missing staple is reported once, not at every rescan")
    }

    /// With inotify, a staple renamed into place is reported at once (no rescan configured),
    /// the writer's temporary files are not, and a staple directory that does not exist yet
    /// (the writer has not written below --staple-dir so far) is watched from its creation.
    func testEventsReportRenamesAtOnceEvenInADirectoryMadeLater() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-staple-watch-events")
        let root = temp.file("staples")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let present = "\(root)/present/site.pem.ocsp"
        try FileManager.default.createDirectory(atPath: "\(root)/present", withIntermediateDirectories: true)
        let later = "\(root)/srv/certs/site.pem.ocsp"
        let loop = try EventLoop()
        var changed: [FilePath] = []
        let watcher = try StapleWatcher(loop: loop, settings: .init(rescanInterval: nil, watchesEvents: true)) {
            changed.append($0)
        }
        defer { watcher.close() }
        watcher.follow(FilePath(present))
        watcher.follow(FilePath(later))

        try replace(present, with: "one")
        try loop.runForTest(deadline: .seconds(5)) { !changed.isEmpty }
        XCTAssertEqual(changed, [FilePath(present)], "the temporary file is not a followed staple")

        // The writer makes the directories, then renames its first staple into place.
        changed.removeAll()
        try FileManager.default.createDirectory(atPath: "\(root)/srv/certs", withIntermediateDirectories: true)
        try replace(later, with: "two")
        try loop.runForTest(deadline: .seconds(5)) { changed.contains(FilePath(later)) }

        // And its next staple there comes by its own event.
        changed.removeAll()
        try replace(later, with: "three")
        try loop.runForTest(deadline: .seconds(5)) { !changed.isEmpty }
        XCTAssertEqual(changed, [FilePath(later)])
    }
}
