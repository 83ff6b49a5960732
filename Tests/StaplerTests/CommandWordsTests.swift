import XCTest
@testable import Stapler

/// `--on-update` commands split into argv without a shell, by sh's quoting rules.
final class CommandWordsTests: XCTestCase {
    private func split(_ text: String) throws -> [String] {
        try CommandWords.split(Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    private func problem(_ text: String) -> String? {
        do {
            _ = try CommandWords.split(Array(text.utf8))
            return nil
        } catch {
            return error.reason
        }
    }

    func testBlanksSeparateWords() throws {
        XCTAssertEqual(try split("nginx -s reload"), ["nginx", "-s", "reload"])
        XCTAssertEqual(try split("  systemctl\treload \n nginx  "), ["systemctl", "reload", "nginx"])
    }

    func testShellScriptIsOneWordForSh() throws {
        XCTAssertEqual(try split("sh -c 'nginx -t && nginx -s reload; echo \"done\" | logger'"),
                       ["sh", "-c", "nginx -t && nginx -s reload; echo \"done\" | logger"])
    }

    func testQuotesAndBackslashes() throws {
        XCTAssertEqual(try split(#"rsync -a "/etc/my certs/" host:/x"#), ["rsync", "-a", "/etc/my certs/", "host:/x"])
        XCTAssertEqual(try split(#"a'b c'd"#), ["ab cd"])
        XCTAssertEqual(try split(#"a\ b"#), ["a b"])
        XCTAssertEqual(try split(#"echo '' x"#), ["echo", "", "x"])
        XCTAssertEqual(try split(#"echo "a\"b\\c\d""#), [#"echo"#, #"a"b\c\d"#])
        XCTAssertEqual(try split(#"echo 'it'\''s'"#), ["echo", "it's"])
        XCTAssertEqual(try split(#"echo "\$HOME" '$HOME' \$HOME"#), ["echo", #"\$HOME"#, "$HOME", "$HOME"])
    }

    func testShellSyntaxOutsideQuotesIsRefusedWithAHint() {
        for text in ["nginx -t && nginx -s reload", "a | b", "a; b", "a > log", "echo $HOME", "echo `id`", "(a)"] {
            let reason = problem(text)
            XCTAssertNotNil(reason, text)
            XCTAssertTrue(reason?.contains("write sh -c '...' for a shell, or quote it") ?? false, "\(text): \(reason ?? "")")
        }
    }

    func testMalformedCommands() {
        XCTAssertEqual(problem("sh -c 'unclosed"), "a single quote is not closed")
        XCTAssertEqual(problem(#"echo "unclosed"#), "a double quote is not closed")
        XCTAssertEqual(problem(#"echo \"#), "ends with a backslash")
        XCTAssertEqual(problem("   "), "no command given")
        XCTAssertEqual(problem("a\u{0}b"), "contains a NUL byte")
        XCTAssertEqual(problem("'a\u{0}b'"), "contains a NUL byte")
    }

    func testQuotedGivesTheWordsBack() throws {
        let words: [[UInt8]] = [Array("sh".utf8), Array("-c".utf8), Array("it's $x | y".utf8), [], [0xff, 0x20, 0x5c]]
        XCTAssertEqual(try CommandWords.split(CommandWords.quoted(words)), words)
    }
}
