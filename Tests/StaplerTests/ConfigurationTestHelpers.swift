import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Loads a configuration the way the daemon does, but with the working directory and the
/// default config locations pinned, so what is in this machine's /etc never matters.
enum ConfigurationHarness {
    static let workingDirectory: FilePath = "/srv/work"

    static func command(_ arguments: [String], configFiles: [FilePath] = [], environment: [String: String] = [:],
                        workingDirectory: FilePath = workingDirectory) throws(ConfigurationError) -> Command {
        try ConfigurationLoader.load(arguments: arguments, environment: environment,
                                     workingDirectory: workingDirectory, defaultConfigFiles: configFiles)
    }

    static func options(_ arguments: [String], configFiles: [FilePath] = [], environment: [String: String] = [:],
                        workingDirectory: FilePath = workingDirectory,
                        file: StaticString = #filePath, line: UInt = #line) throws -> Options {
        let result = try command(arguments, configFiles: configFiles, environment: environment,
                                 workingDirectory: workingDirectory)
        guard case .run(let options) = result else {
            XCTFail("expected a run command, got \(result)", file: file, line: line)
            throw ConfigurationError.invalidSettings("not a run command")
        }
        return options
    }

    /// The error loading `arguments` fails with; fails the test if it succeeds.
    static func error(_ arguments: [String], configFiles: [FilePath] = [], environment: [String: String] = [:],
                      workingDirectory: FilePath = workingDirectory,
                      file: StaticString = #filePath, line: UInt = #line) -> ConfigurationError? {
        do {
            let result = try command(arguments, configFiles: configFiles, environment: environment,
                                     workingDirectory: workingDirectory)
            XCTFail("expected an error, got \(result)", file: file, line: line)
            return nil
        } catch {
            XCTAssertFalse(error.description.contains("\n"), "error is not one line: \(error)", file: file, line: line)
            return error
        }
    }

    static func paths(_ options: Options) -> [String] {
        options.certificateLocations.map { $0.path.description }
    }

    static func sockets(_ options: Options) -> [[String]] {
        options.certificateLocations.map { $0.haproxySockets.map(\.description) }
    }
}

/// Writes `text` into a file under `directory` and returns its path.
@discardableResult
func writeFile(_ text: String, named name: String, in directory: TemporaryDirectory) throws -> FilePath {
    let path = directory.file(name)
    let parent = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: false, encoding: .utf8)
    return FilePath(path)
}
