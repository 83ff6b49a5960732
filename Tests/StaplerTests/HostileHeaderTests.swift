import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// A correctly signed answer with a hostile Cache-Control header (anyone on the plain-HTTP
/// path can add one) is stapled like any other, and the daemon keeps running: these shapes
/// once killed it (an index past an empty split, an overflow adding max-age to now).
final class HostileHeaderTests: XCTestCase {
    /// Each route's Cache-Control fields (several fields are joined by the client).
    static let hostileCacheControls: [(route: String, fields: [String])] = [
        ("equals", ["="]),
        ("double-equals", ["=="]),
        ("commas-equals", [",,="]),
        ("trailing-equals", ["max-age=60,="]),
        ("empty-max-age", ["max-age="]),
        ("open-quote", ["max-age=\""]),
        ("negative", ["max-age=-1"]),
        ("int64-max", ["max-age=9223372036854775807"]),
        ("int64-max-minus-now", ["max-age=\(Int64.max - Int64(Date().timeIntervalSince1970))"]),
        ("past-uint64", ["max-age=184467440737095516160"]),
        ("several-fields", ["public", "=", "max-age=9223372036854775807", ","]),
        ("huge", [Array(repeating: "a=\"b\"", count: 2_000).joined(separator: ",") + ",max-age=="]),
    ]

    func testHostileCacheControlNeitherStopsTheDaemonNorTheStaple() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-hostile-headers")
        let pki = try TestPKI(directory: temp.file("pki"))
        let hostile = try HostileResponder()
        defer { hostile.stop() }
        let certs = try Hardening.makeDirectory(temp.file("certs"))
        let oneOff = try Hardening.makeDirectory(temp.file("one-off"))
        var bundles: [(route: String, daemon: String, oneOff: String, leaf: TestPKI.Leaf)] = []
        for (route, fields) in Self.hostileCacheControls {
            let leaf = try pki.issueLeaf(commonName: "\(route).test", ocspURLs: [hostile.url(route: route)])
            let headers = [HostileResponder.Header("Content-Type", HostileResponder.Behaviour.ocspContentType)]
                + fields.map { HostileResponder.Header("Cache-Control", $0) }
            hostile.set(.answer(status: 200, headers: headers, body: Array(try pki.ocspResponse(for: leaf))), for: route)
            let bundle = "\(certs)/\(route).pem", single = "\(oneOff)/\(route).pem"
            try pki.writeBundle(leaf, to: bundle)
            try pki.writeBundle(leaf, to: single)
            bundles.append((route, bundle, single, leaf))
        }

        let pass = try StaplerProcess.run(["--one-off", "-v", oneOff], in: temp.path)
        XCTAssertEqual(pass.status, 0, pass.output)
        for item in bundles {
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: item.oneOff + ".ocsp", for: item.leaf), "good", item.route)
        }

        let daemon = try StaplerProcess(["-v", certs], logPath: temp.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }
        for item in bundles {
            XCTAssertTrue(daemon.waitForLog("\(item.daemon): staple written", timeout: 20), "\(item.route): \(daemon.log)")
        }
        for item in bundles {
            XCTAssertEqual(try pki.verifyWithOpenSSL(staple: item.daemon + ".ocsp", for: item.leaf), "good", item.route)
        }
        // Still alive after scheduling every next refresh: a touch fetches again.
        XCTAssertTrue(daemon.isRunning, daemon.log)
        try Hardening.touch(bundles[0].daemon)
        XCTAssertTrue(daemon.waitForLog("\(bundles[0].daemon): changed on disk", timeout: 10), daemon.log)
        XCTAssertTrue(daemon.waitForLog("\(bundles[0].daemon): staple unchanged", timeout: 10), daemon.log)
        XCTAssertTrue(daemon.isRunning, daemon.log)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }

    /// Only a final 200 carries an answer, and a Content-Type must be the OCSP one: the daemon
    /// and `stapler check --fetch` apply the same rules (check used to skip the type).
    func testStatusAndContentTypeRulesHoldForTheDaemonAndCheckAlike() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-hostile-status")
        let pki = try TestPKI(directory: temp.file("pki"))
        let hostile = try HostileResponder()
        defer { hostile.stop() }
        let certs = try Hardening.makeDirectory(temp.file("certs"))
        let cases: [(route: String, expected: String, behaviour: (TestPKI.Leaf) throws -> HostileResponder.Behaviour)] = [
            ("203", "HTTP status 203 (only 200 carries an OCSP answer)", {
                .answer(status: 203, headers: [.init("Content-Type", HostileResponder.Behaviour.ocspContentType)],
                        body: Array(try pki.ocspResponse(for: $0)))
            }),
            ("204", "HTTP status 204 (only 200 carries an OCSP answer)", { _ in .answer(status: 204, headers: [], body: []) }),
            ("304", "HTTP status 304 (only 200 carries an OCSP answer)", { _ in .answer(status: 304, headers: [], body: []) }),
            ("html", "unexpected Content-Type \"text/html\"", { .ocsp(try pki.ocspResponse(for: $0), contentType: "text/html") }),
        ]
        var bundles: [String] = []
        for item in cases {
            let leaf = try pki.issueLeaf(commonName: "\(item.route).test", ocspURLs: [hostile.url(route: item.route)])
            hostile.set(try item.behaviour(leaf), for: item.route)
            let bundle = "\(certs)/\(item.route).pem"
            try pki.writeBundle(leaf, to: bundle)
            bundles.append(bundle)
        }
        let pass = try StaplerProcess.run(["--one-off", certs], in: temp.path)
        XCTAssertEqual(pass.status, 1, pass.output)
        for (item, bundle) in zip(cases, bundles) {
            let line = "\(bundle): OCSP fetch failed: \(hostile.url(route: item.route)): \(item.expected)"
            XCTAssertTrue(pass.output.contains(line), "\(item.route): \(pass.output)")
            XCTAssertFalse(Hardening.exists(bundle + ".ocsp"), item.route)
            let check = try StaplerProcess.run(["check", "--fetch", bundle], in: temp.path)
            XCTAssertTrue(check.output.contains("fetch: \(hostile.url(route: item.route)): \(item.expected)"),
                          "\(item.route): \(check.output)")
        }
    }
}
