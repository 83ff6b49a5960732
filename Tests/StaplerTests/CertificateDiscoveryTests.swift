import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

final class CertificateDiscoveryTests: XCTestCase {
    private func touch(_ path: String) {
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)), path)
    }

    private func names(_ result: DiscoveryResult, under root: String) -> [String] {
        result.files.map { String($0.path.description.dropFirst(root.count + 1)) }.sorted()
    }

    func testPicksCertificatesByExtensionAndNeverStaplesKeysOrHiddenFiles() throws {
        let temp = try TemporaryDirectory()
        for name in ["a.pem", "b.crt", "c.cer", "D.PEM", "a.pem.ocsp", "a.key", "a.pem.issuer", ".hidden.pem",
                     ".a.pem.1.2.stapler-tmp", "notes.txt", "pem"] {
            touch(temp.file(name))
        }
        let result = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules())
        XCTAssertEqual(names(result, under: temp.path), ["D.PEM", "a.pem", "b.crt", "c.cer"])
        XCTAssertEqual(result.directories.map(\.path), [FilePath(temp.path)])
        XCTAssertTrue(result.problems.isEmpty)
    }

    func testHonoursExtensionsAndIgnorePatterns() throws {
        let temp = try TemporaryDirectory()
        for name in ["keep.pem", "skip-me.pem", "other.bundle"] { touch(temp.file(name)) }
        let rules = DiscoveryRules(extensions: ["pem", "bundle"], ignorePatterns: [IgnorePattern("skip-*.pem")])
        XCTAssertEqual(names(CertificateDiscovery.scan([FilePath(temp.path)], rules: rules), under: temp.path),
                       ["keep.pem", "other.bundle"])
    }

    func testRecursesOnlyWhenAskedAndSurvivesSymlinkLoops() throws {
        let temp = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: temp.file("sub/deeper"), withIntermediateDirectories: true)
        touch(temp.file("top.pem"))
        touch(temp.file("sub/mid.pem"))
        touch(temp.file("sub/deeper/low.pem"))
        try FileManager.default.createSymbolicLink(atPath: temp.file("sub/deeper/loop"), withDestinationPath: temp.path)
        let flat = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules())
        XCTAssertEqual(names(flat, under: temp.path), ["top.pem"])
        let deep = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules(recursive: true))
        XCTAssertEqual(names(deep, under: temp.path), ["sub/deeper/low.pem", "sub/mid.pem", "top.pem"])
        XCTAssertEqual(deep.directories.count, 3, "the loop back to the top is not walked again")
    }

    func testExplicitFilesAreTakenWhateverTheirExtensionAndMissingPathsAreReported() throws {
        let temp = try TemporaryDirectory()
        touch(temp.file("bundle.txt"))
        touch(temp.file("x.pem.ocsp"))
        let result = CertificateDiscovery.scan([FilePath(temp.file("bundle.txt")), FilePath(temp.file("x.pem.ocsp")),
                                                FilePath(temp.file("missing.pem"))], rules: DiscoveryRules())
        XCTAssertEqual(result.files.map(\.path), [FilePath(temp.file("bundle.txt"))])
        XCTAssertEqual(result.problems.count, 1)
        XCTAssertEqual(result.problems.first?.path, FilePath(temp.file("missing.pem")))
        XCTAssertTrue(result.problems.first!.description.contains("No such file or directory"))
    }

    func testNonUTF8NamesAreFoundExactly() throws {
        let temp = try TemporaryDirectory()
        let odd = FilePath(temp.path).appending(FilePath(bytes: [0x63, 0xFF, 0x20] + Array("x.pem".utf8)))
        let fd = odd.withCString { open($0, O_CREAT | O_WRONLY, 0o644) }
        close(fd)
        let result = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules())
        XCTAssertEqual(result.files.map(\.path), [odd])
        XCTAssertEqual(try FileSystem.status(result.files[0].path).kind, .regular)
    }

    func testRescanOfAnUnchangedDirectoryShowsIdenticalStatus() throws {
        let temp = try TemporaryDirectory()
        for index in 0..<50 { touch(temp.file("c\(index).pem")) }
        let first = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules())
        let second = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules())
        XCTAssertEqual(first.files.sorted { $0.path < $1.path }, second.files.sorted { $0.path < $1.path })
        // An explicit time: file time stamps are coarse (a few ms), so "now" could equal
        // the creation time.
        var times = [timeval(tv_sec: time(nil) + 3600, tv_usec: 0), timeval(tv_sec: time(nil) + 3600, tv_usec: 0)]
        XCTAssertEqual(utimes(temp.file("c7.pem"), &times), 0)
        let third = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules())
        let changed = third.files.filter { file in !first.files.contains(file) }
        XCTAssertEqual(changed.map(\.path), [FilePath(temp.file("c7.pem"))], "a touch changes the stat")
    }

    /// A periodic rescan of a directory inotify covers takes the listing's word for a regular
    /// file it already knows by inode (a touch is inotify's to report, so this scan does not
    /// see it) and only counts it; it stats everything else: a file replaced by a rename, a
    /// new file, a symbolic link (its target's changes raise no event here), and every file
    /// of a directory the shortcut does not cover.
    func testShortcutStatsOnlyWhatInotifyCannotVouchFor() throws {
        let temp = try TemporaryDirectory()
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        for name in ["kept", "touched", "replaced"] { touch("\(certs)/\(name).pem") }
        touch(temp.file("target.pem"))
        XCTAssertEqual(symlink(temp.file("target.pem"), "\(certs)/link.pem"), 0)
        let directory = FilePath(certs)
        XCTAssertTrue(try OpenDirectory(directory).changesRaiseEvents,
                      "\(certs) is on a file system this test expects inotify to cover (ext4, tmpfs...)")
        let first = CertificateDiscovery.scan([directory], rules: DiscoveryRules())
        XCTAssertEqual(first.files.count, 4)
        var known: [String: FileVersion] = [:]
        for file in first.files { known[file.path.lastComponent.description] = file.version }

        var later = [timeval(tv_sec: time(nil) + 3600, tv_usec: 0), timeval(tv_sec: time(nil) + 3600, tv_usec: 0)]
        XCTAssertEqual(utimes("\(certs)/touched.pem", &later), 0)
        XCTAssertEqual(utimes(temp.file("target.pem"), &later), 0)
        // Made before the rename frees replaced.pem's inode: a new file may get a freed inode
        // number, and one that had been known would be counted here (inotify reports new
        // names to the running daemon, which then knows the file by its new status).
        touch("\(certs)/added.pem")
        touch("\(certs)/new.tmp")
        XCTAssertEqual(rename("\(certs)/new.tmp", "\(certs)/replaced.pem"), 0)

        let inodes = Set(known.values.map(\.inode))
        let shortcut = UnchangedFileShortcut(watchedDirectories: [directory], knownInodes: inodes)
        let second = CertificateDiscovery.scan([directory], rules: DiscoveryRules(), shortcut: shortcut)
        var found: [String: FileVersion] = [:]
        for file in second.files { found[file.path.lastComponent.description] = file.version }
        XCTAssertEqual(Set(found.keys), ["replaced.pem", "link.pem", "added.pem"], "stat'ed")
        XCTAssertEqual(second.unchangedWithoutStat, 2, "kept.pem and touched.pem, only counted")
        XCTAssertNotEqual(found["replaced.pem"]?.inode, known["replaced.pem"]?.inode)
        XCTAssertEqual(found["link.pem"], FileVersion(try FileSystem.status(FilePath(temp.file("target.pem")))),
                       "a link is followed and stat'ed every time")

        let uncovered = UnchangedFileShortcut(watchedDirectories: [], knownInodes: inodes)
        let third = CertificateDiscovery.scan([directory], rules: DiscoveryRules(), shortcut: uncovered)
        XCTAssertEqual(third.unchangedWithoutStat, 0)
        XCTAssertEqual(third.files.count, 5)
        XCTAssertNotEqual(third.files.first { $0.path.lastComponent == "touched.pem" }?.version, known["touched.pem"],
                          "stat'ed: the touch shows")
    }

    func testTemporaryFilesOfDeadWritersAreReportedStaleAndLiveOnesAreNot() throws {
        let temp = try TemporaryDirectory()
        // A pid that surely ran and is gone: a child we waited for.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = ".a.pem.ocsp.\(child.processIdentifier).3\(FileSystem.temporarySuffix)"
        let live = ".b.pem.ocsp.\(getpid()).4\(FileSystem.temporarySuffix)"
        touch(temp.file(dead))
        touch(temp.file(live))
        touch(temp.file("a.pem"))
        let result = CertificateDiscovery.scan([FilePath(temp.path)], rules: DiscoveryRules())
        XCTAssertEqual(result.staleTemporaryFiles, [FilePath(temp.file(dead))])
        XCTAssertEqual(result.files.map(\.path), [FilePath(temp.file("a.pem"))])
    }
}
