// swift-tools-version:6.0
import PackageDescription

// No package dependencies: the daemon must stay small (no Foundation, no runtime beyond the
// static Swift stdlib) and CI builds from a fresh clone each run.
let package = Package(
    name: "Stapler",
    products: [
        .executable(name: "stapler", targets: ["Stapler"]),
        .library(name: "Reactor", targets: ["Reactor"]),
    ],
    targets: [
        // Thin C shims: only what Swift cannot import or call directly.
        .target(name: "CEpoll"),
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "CCares", linkerSettings: [.linkedLibrary("cares")]),
        .target(name: "COpenSSL", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(name: "CLandlock"),
        .target(name: "CSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),

        // The event loop and its I/O sources. Knows nothing about OCSP.
        .target(name: "Reactor", dependencies: ["CEpoll", "CCurl", "CCares"]),

        // The daemon. An executable target that tests can still `@testable import`.
        .executableTarget(name: "Stapler", dependencies: ["Reactor", "COpenSSL", "CLandlock", "CSeccomp"]),

        // Real peers for the tests: a scriptable HTTP server on the Reactor, a throwaway PKI
        // (openssl CLI), an `openssl ocsp` responder and HAProxy processes.
        .target(name: "TestSupport", dependencies: ["Reactor"], path: "Tests/TestSupport"),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "TestSupport"]),
        .testTarget(name: "StaplerTests", dependencies: ["Stapler", "Reactor", "COpenSSL", "TestSupport"]),
    ]
)
